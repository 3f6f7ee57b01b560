// The object cache's layout: where an object lives, whether it is there, the
// folders objects/sha256/00 to ff, and reading an object back. Storing,
// naming, linking and collecting objects are in the object_cache_*.cpp files
// (object_cache_internal.h).
#include "cmf/data/object_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>
#include <utility>

#include "cmf/data/hash.h"
#include "file_reader.h"
#include "object_cache_internal.h"

namespace fs = std::filesystem;

namespace cmf::data {

using cache_internal::ErrnoStatus;

ObjectCache::ObjectCache(fs::path root, std::shared_ptr<FileOps> ops)
    : root_(std::move(root)), ops_(std::move(ops)) {}

ObjectCache::~ObjectCache() {
  int fd = sha256_fd_.load();
  if (fd >= 0) ::close(fd);
}

fs::path ObjectCache::PathOf(const std::string& hash) const {
  return root_ / "sha256" / hash.substr(0, 2) / hash.substr(2);
}

bool ObjectCache::Has(const std::string& hash) const {
  if (!IsSha256Hex(hash)) return false;
  // Looked up relative to objects/sha256/, held open once it exists: two
  // path components to resolve instead of the whole path (an unchanged tree
  // of many files asks this for every file).
  int dir = sha256_fd_.load(std::memory_order_acquire);
  if (dir < 0) {
    dir =
        ::open((root_ / "sha256").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return false;
    int expected = -1;
    if (!sha256_fd_.compare_exchange_strong(expected, dir)) {
      ::close(dir);  // another thread was first
      dir = expected;
    }
  }
  char name[66];
  name[0] = hash[0];
  name[1] = hash[1];
  name[2] = '/';
  std::memcpy(name + 3, hash.data() + 2, 62);
  name[65] = '\0';
  struct stat st {};
  return ::fstatat(dir, name, &st, 0) == 0 && S_ISREG(st.st_mode);
}

std::uint64_t ObjectCache::CacheDevice() const {
  std::int64_t known = cache_device_.load(std::memory_order_relaxed);
  if (known >= 0) return static_cast<std::uint64_t>(known);
  // The cache's nearest folder that exists (objects/ appears on first write).
  fs::path probe = root_;
  std::error_code ec;
  while (!probe.empty() && !fs::exists(probe, ec)) probe = probe.parent_path();
  struct stat st {};
  if (::stat(probe.c_str(), &st) != 0) return ~std::uint64_t{0};
  cache_device_.store(static_cast<std::int64_t>(st.st_dev),
                      std::memory_order_relaxed);
  return static_cast<std::uint64_t>(st.st_dev);
}

int ObjectCache::EnsureFolder(const fs::path& folder,
                              unsigned char prefix) const {
  const std::uint64_t bit = std::uint64_t{1} << (prefix % 64);
  std::atomic<std::uint64_t>& word = folders_[prefix / 64];
  if (word.load(std::memory_order_acquire) & bit) return 0;
  if (::mkdir(folder.c_str(), 0755) != 0 && errno != EEXIST) {
    if (errno != ENOENT) return errno;
    std::error_code ec;  // objects/sha256/ itself is missing
    fs::create_directories(folder, ec);
    if (ec) return ec.value();
  }
  word.fetch_or(bit, std::memory_order_release);
  return 0;
}

void ObjectCache::LearnFolders() const {
  if (folders_learned_.exchange(true)) return;
  DIR* dir = ::opendir((root_ / "sha256").c_str());
  if (dir == nullptr) return;
  auto hex = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  };
  while (const dirent* entry = ::readdir(dir)) {
    const char* name = entry->d_name;
    if (entry->d_type != DT_DIR || !hex(name[0]) || !hex(name[1]) ||
        name[2] != '\0') {
      continue;  // DT_UNKNOWN too: EnsureFolder will find out
    }
    unsigned prefix = 0;
    std::from_chars(name, name + 2, prefix, 16);
    folders_[prefix / 64].fetch_or(std::uint64_t{1} << (prefix % 64));
  }
  ::closedir(dir);
}

Status ObjectCache::CreateFolders() const {
  static constexpr char kHex[] = "0123456789abcdef";
  fs::path base = root_ / "sha256";
  for (unsigned prefix = 0; prefix < 256; ++prefix) {
    const char name[3] = {kHex[prefix >> 4], kHex[prefix & 15], '\0'};
    if (int err = EnsureFolder(base / name, static_cast<unsigned char>(prefix)))
      return ErrnoStatus("cannot create '" + (base / name).string() + "'", err);
  }
  return Status::Ok();
}

Result<std::string> ObjectCache::ReadObject(const std::string& hash) const {
  if (!Has(hash))
    return Status::NotFound("object '" + hash + "' is not in the cache");
  std::string bytes;
  CMF_RETURN_IF_ERROR(
      ReadFileInBlocks(PathOf(hash), [&](const char* data, std::size_t n) {
        bytes.append(data, n);
        return Status::Ok();
      }));
  return bytes;
}

}  // namespace cmf::data
