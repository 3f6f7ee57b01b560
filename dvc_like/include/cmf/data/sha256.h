// SHA-256 through OpenSSL, as 64 lowercase hex digits: the hasher and the
// hashing of bytes in memory (cmf/data/hash.h hashes files).
//
// Sha256 is an incremental hasher owned by one thread at a time. The free
// functions are thread-safe and may be called from many threads at once.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace cmf::data {

using Digest = std::array<std::uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, std::size_t size);
  void Update(std::string_view text) { Update(text.data(), text.size()); }
  // Returns the digest of everything passed to Update; the hasher must not be
  // used afterwards.
  Digest Finish();

 private:
  struct Impl;
  Impl* impl_;
};

// Lowercase hex of a digest (64 characters).
std::string ToHex(const Digest& digest);

// The SHA-256 of a byte string, in hex.
std::string HashBytes(std::string_view bytes);

// True when TEXT is exactly 64 lowercase hex digits.
bool IsSha256Hex(std::string_view text);

}  // namespace cmf::data
