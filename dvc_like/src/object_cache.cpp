#include "cmf/data/object_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <vector>

#include "cmf/data/hash.h"
#include "file_reader.h"

namespace fs = std::filesystem;

namespace cmf::data {

int FileOps::Write(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return 0;
}

int FileOps::Fsync(int fd) { return ::fsync(fd) == 0 ? 0 : errno; }

int FileOps::Rename(const std::string& from, const std::string& to) {
  return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

std::shared_ptr<FileOps> FileOps::Real() {
  static std::shared_ptr<FileOps> real = std::make_shared<FileOps>();
  return real;
}

namespace {

constexpr char kManifestHeader[] = "cmf-manifest 1\n";

Status ErrnoStatus(const std::string& what, int err) {
  return Status::IOError(what + ": " + std::strerror(err));
}

// A temporary file under the cache's tmp/ folder that is removed unless it is
// renamed.
class TempObject {
 public:
  ~TempObject() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  Status Open(const fs::path& tmp_dir) {
    std::error_code ec;
    fs::create_directories(tmp_dir, ec);
    std::string pattern = (tmp_dir / "obj-XXXXXX").string();
    fd_ = ::mkostemp(pattern.data(), O_CLOEXEC);
    if (fd_ < 0)
      return ErrnoStatus(
          "cannot write to the object cache '" + tmp_dir.string() + "'", errno);
    path_ = pattern;
    return Status::Ok();
  }

  int fd() const { return fd_; }

  // Makes the object read-only, flushes it and moves it to FINAL (unless an
  // object is already there: same name, same bytes).
  Status Commit(FileOps& ops, const fs::path& final_path) {
    if (::fchmod(fd_, 0444) != 0)
      return ErrnoStatus("cannot protect object", errno);
    if (int err = ops.Fsync(fd_))
      return ErrnoStatus("cannot flush object to disk", err);
    ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    if (fs::exists(final_path, ec))
      return Status::Ok();  // the destructor removes the copy
    fs::path dir = final_path.parent_path();
    fs::create_directories(dir, ec);
    if (ec)
      return Status::IOError("cannot create '" + dir.string() +
                             "': " + ec.message());
    if (int err = ops.Rename(path_, final_path.string())) {
      return ErrnoStatus(
          "cannot move object into '" + final_path.string() + "'", err);
    }
    path_.clear();
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ops.Fsync(dfd);  // best effort: makes the new name durable
      ::close(dfd);
    }
    return Status::Ok();
  }

 private:
  int fd_ = -1;
  std::string path_;
};

}  // namespace

ObjectCache::ObjectCache(fs::path root, std::shared_ptr<FileOps> ops)
    : root_(std::move(root)), ops_(std::move(ops)) {}

fs::path ObjectCache::PathOf(const std::string& hash) const {
  return root_ / "sha256" / hash.substr(0, 2) / hash.substr(2);
}

bool ObjectCache::Has(const std::string& hash) const {
  if (!IsSha256Hex(hash)) return false;
  std::error_code ec;
  return fs::is_regular_file(PathOf(hash), ec);
}

Result<ObjectInfo> ObjectCache::Hash(const fs::path& path) const {
  return HashOrStore(path, /*store=*/false);
}

Result<ObjectInfo> ObjectCache::Store(const fs::path& path) const {
  return HashOrStore(path, /*store=*/true);
}

Result<ObjectInfo> ObjectCache::HashOrStore(const fs::path& path,
                                            bool store) const {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) {
    if (ec && ec != std::errc::no_such_file_or_directory &&
        ec != std::errc::not_a_directory) {
      return Status::IOError("cannot read '" + path.string() +
                             "': " + ec.message());
    }
    return Status::NotFound("no such file or directory '" + path.string() +
                            "'");
  }
  if (fs::is_directory(st)) return DirectoryObject(path, store);
  if (fs::is_regular_file(st)) return FileObject(path, store);
  return Status::IOError("'" + path.string() +
                         "' is neither a regular file nor a directory");
}

Result<ObjectInfo> ObjectCache::FileObject(const fs::path& path,
                                           bool store) const {
  ObjectInfo info;
  Sha256 hasher;
  TempObject temp;
  if (store) CMF_RETURN_IF_ERROR(temp.Open(root_ / "tmp"));
  Status st = ReadFileInBlocks(path, [&](const char* data, std::size_t size) {
    hasher.Update(data, size);
    info.size += size;
    if (store) {
      if (int err = ops_->Write(temp.fd(), data, size)) {
        return ErrnoStatus("cannot write to the object cache", err);
      }
    }
    return Status::Ok();
  });
  if (!st.ok()) return st;
  info.hash = ToHex(hasher.Finish());
  if (store) CMF_RETURN_IF_ERROR(temp.Commit(*ops_, PathOf(info.hash)));
  return info;
}

Result<ObjectInfo> ObjectCache::DirectoryObject(const fs::path& path,
                                                bool store) const {
  struct Entry {
    std::string relative;
    bool executable;
  };
  std::vector<Entry> entries;
  std::error_code ec;
  fs::recursive_directory_iterator it(path, ec), end;
  if (ec)
    return Status::IOError("cannot list '" + path.string() +
                           "': " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec)
      return Status::IOError("cannot list '" + path.string() +
                             "': " + ec.message());
    const fs::directory_entry& entry = *it;
    if (entry.path().filename() == ".cmf" && entry.is_directory()) {
      it.disable_recursion_pending();  // a nested cmf repository is not data
      continue;
    }
    fs::file_status fst = entry.status(ec);
    if (ec)
      return Status::IOError("cannot stat '" + entry.path().string() +
                             "': " + ec.message());
    if (fs::is_directory(fst)) continue;
    if (!fs::is_regular_file(fst)) {
      return Status::IOError("'" + entry.path().string() +
                             "' is neither a regular file nor a directory");
    }
    std::string relative =
        entry.path().lexically_relative(path).generic_string();
    if (relative.find('\n') != std::string::npos) {
      return Status::InvalidArgument("file name with a line break under '" +
                                     path.string() + "'");
    }
    bool executable =
        (fst.permissions() & fs::perms::owner_exec) != fs::perms::none;
    entries.push_back({std::move(relative), executable});
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.relative < b.relative;
  });

  ObjectInfo info;
  info.is_directory = true;
  std::string manifest = kManifestHeader;
  for (const Entry& e : entries) {
    CMF_ASSIGN_OR_RETURN(ObjectInfo file, FileObject(path / e.relative, store));
    info.size += file.size;
    manifest += e.executable ? "100755 " : "100644 ";
    manifest +=
        std::to_string(file.size) + " " + file.hash + " " + e.relative + "\n";
  }
  info.hash = HashBytes(manifest);
  if (store) CMF_RETURN_IF_ERROR(PutBytes(info.hash, manifest));
  return info;
}

Status ObjectCache::PutBytes(const std::string& hash,
                             const std::string& bytes) const {
  if (Has(hash)) return Status::Ok();
  TempObject temp;
  CMF_RETURN_IF_ERROR(temp.Open(root_ / "tmp"));
  if (int err = ops_->Write(temp.fd(), bytes.data(), bytes.size())) {
    return ErrnoStatus("cannot write to the object cache", err);
  }
  return temp.Commit(*ops_, PathOf(hash));
}

}  // namespace cmf::data
