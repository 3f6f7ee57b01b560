// What gc and fsck ask of an object store: every object, whether one still
// matches its name, removing one, and the temporaries a killed command left
// under tmp/.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <system_error>

#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "object_cache_internal.h"

namespace fs = std::filesystem;

namespace cmf::data {

using cache_internal::ErrnoStatus;

Result<bool> ObjectCache::Verify(const std::string& hash) const {
  if (!Has(hash))
    return Status::NotFound("object '" + hash + "' is not in the cache");
  CMF_ASSIGN_OR_RETURN(std::string actual, HashFile(PathOf(hash)));
  return actual == hash;
}

Status ObjectCache::ForEach(
    const std::function<Status(const std::string&, std::uint64_t)>& sink)
    const {
  std::error_code ec;
  fs::path base = root_ / "sha256";
  if (!fs::exists(base, ec)) return Status::Ok();
  for (const auto& prefix : fs::directory_iterator(base, ec)) {
    std::string head = prefix.path().filename().string();
    if (!prefix.is_directory() || head.size() != 2) continue;
    for (const auto& entry : fs::directory_iterator(prefix.path(), ec)) {
      std::string hash = head + entry.path().filename().string();
      if (!IsSha256Hex(hash)) continue;
      std::error_code size_ec;
      std::uint64_t size = entry.file_size(size_ec);
      CMF_RETURN_IF_ERROR(sink(hash, size_ec ? 0 : size));
    }
    if (ec) break;
  }
  if (ec)
    return Status::IOError("cannot list the object cache: " + ec.message());
  return Status::Ok();
}

Status ObjectCache::Remove(const std::string& hash) const {
  if (!Has(hash))
    return Status::NotFound("object '" + hash + "' is not in the cache");
  if (::unlink(PathOf(hash).c_str()) != 0) {
    return ErrnoStatus("cannot remove object '" + hash + "'", errno);
  }
  return Status::Ok();
}

namespace {

// Whether the file at PATH (as lstat sees it) was last modified MIN_AGE ago or
// earlier; fills SIZE.
bool OldEnough(const fs::path& path, std::chrono::seconds min_age,
               std::uint64_t* size) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  *size = static_cast<std::uint64_t>(st.st_size);
  return now.tv_sec - st.st_mtim.tv_sec >= min_age.count();
}

}  // namespace

Result<std::vector<Temporary>> StaleTemporaries(const fs::path& root,
                                                std::chrono::seconds min_age) {
  std::vector<Temporary> out;
  fs::path tmp = root / "tmp";
  DIR* dir = ::opendir(tmp.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT || errno == ENOTDIR) return out;
    return ErrnoStatus("cannot list '" + tmp.string() + "'", errno);
  }
  while (struct dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::uint64_t size = 0;
    if (OldEnough(tmp / name, min_age, &size))
      out.push_back({"tmp/" + name, size});
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end(), [](const Temporary& a, const Temporary& b) {
    return a.name < b.name;
  });
  return out;
}

Result<bool> RemoveTemporary(const fs::path& root, const Temporary& temporary,
                             std::chrono::seconds min_age) {
  fs::path path = root / temporary.name;
  if (path.parent_path() != root / "tmp")
    return Status::InvalidArgument("'" + temporary.name +
                                   "' is not under tmp/");
  std::uint64_t size = 0;
  if (!OldEnough(path, min_age, &size)) return false;
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoStatus("cannot remove '" + path.string() + "'", errno);
  }
  return true;
}

}  // namespace cmf::data
