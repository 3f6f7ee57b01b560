#include "cmf/data/sha256.h"

// OpenSSL's own SHA-256 functions, where this OpenSSL still has them: they run
// the same assembly as the EVP interface (SHA extensions, AVX2), but need none
// of the set-up that OpenSSL 3 does on the first EVP fetch in a process (its
// configuration file, library context and default provider: about 1 ms, paid
// by every command that hashes even a few bytes, such as an unchanged add
// naming its folder's manifest). They are deprecated, not removed, in 3.x.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/opensslconf.h>
#if defined(OPENSSL_NO_DEPRECATED_3_0)
#include <openssl/evp.h>
#define CMF_SHA256_EVP 1
#else
#include <openssl/sha.h>
#endif

#include <stdexcept>

namespace cmf::data {

#if CMF_SHA256_EVP
struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

namespace {

// The algorithm, looked up once (OpenSSL 3 would otherwise look it up again
// for every hasher: a cost per file when there are many small ones).
const EVP_MD* Sha256Md() {
  static EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return fetched != nullptr ? fetched : EVP_sha256();
}

}  // namespace

Sha256::Sha256() : impl_(new Impl) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr ||
      EVP_DigestInit_ex(impl_->ctx, Sha256Md(), nullptr) != 1) {
    throw std::runtime_error("OpenSSL cannot initialise SHA-256");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(impl_->ctx);
  delete impl_;
}

void Sha256::Update(const void* data, std::size_t size) {
  EVP_DigestUpdate(impl_->ctx, data, size);
}

Digest Sha256::Finish() {
  Digest digest{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(impl_->ctx, digest.data(), &length);
  return digest;
}
#else
struct Sha256::Impl {
  SHA256_CTX ctx;
};

Sha256::Sha256() : impl_(new Impl) {
  if (SHA256_Init(&impl_->ctx) != 1) {
    delete impl_;
    throw std::runtime_error("OpenSSL cannot initialise SHA-256");
  }
}

Sha256::~Sha256() { delete impl_; }

void Sha256::Update(const void* data, std::size_t size) {
  SHA256_Update(&impl_->ctx, data, size);
}

Digest Sha256::Finish() {
  Digest digest{};
  SHA256_Final(digest.data(), &impl_->ctx);
  return digest;
}
#endif

std::string ToHex(const Digest& digest) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(digest.size() * 2, '0');
  for (std::size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0xf];
  }
  return out;
}

std::string HashBytes(std::string_view bytes) {
  Sha256 hasher;
  hasher.Update(bytes);
  return ToHex(hasher.Finish());
}

bool IsSha256Hex(std::string_view text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace cmf::data
