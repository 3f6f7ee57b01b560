#include "cmf/data/object_cache.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "cmf/data/hash.h"
#include "cmf/data/scan.h"
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

int FileOps::CreateTemp(std::string& pattern) {
  int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

std::shared_ptr<FileOps> FileOps::Real() {
  static std::shared_ptr<FileOps> real = std::make_shared<FileOps>();
  return real;
}

std::string_view ToString(LinkMode mode) {
  switch (mode) {
    case LinkMode::kReflink:
      return "reflink";
    case LinkMode::kHardlink:
      return "hardlink";
    case LinkMode::kSymlink:
      return "symlink";
    case LinkMode::kCopy:
      return "copy";
  }
  return "copy";
}

Result<std::vector<LinkMode>> ParseLinkOrder(std::string_view text) {
  if (text == "auto" || text.empty()) {
    // Only strategies after which the workspace file and the object are
    // separate files: a hard-linked or symlinked file written in place (root
    // ignores the read-only mode) would change the object under its name.
    return std::vector<LinkMode>{LinkMode::kReflink, LinkMode::kCopy};
  }
  std::vector<LinkMode> order;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view name = text.substr(start, comma - start);
    bool known = false;
    for (LinkMode m : {LinkMode::kReflink, LinkMode::kHardlink,
                       LinkMode::kSymlink, LinkMode::kCopy}) {
      if (name == ToString(m)) {
        order.push_back(m);
        known = true;
      }
    }
    if (!known) {
      return Status::InvalidArgument(
          "cache.link must be 'auto' or a list of reflink, hardlink, symlink, "
          "copy; not '" +
          std::string(text) + "'");
    }
    start = comma + 1;
  }
  return order;
}

namespace {

Status ErrnoStatus(const std::string& what, int err) {
  return Status::IOError(what + ": " + std::strerror(err));
}

bool SameFile(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino &&
         a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

// A temporary path under the cache's tmp/ folder, removed unless committed.
class TempObject {
 public:
  TempObject(const fs::path& tmp_dir, FileOps& ops)
      : tmp_dir_(tmp_dir), ops_(ops) {}
  ~TempObject() {
    if (fd_ >= 0) ::close(fd_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }

  // Creates an empty temporary file, open for writing.
  Status Open() {
    std::error_code ec;
    fs::create_directories(tmp_dir_, ec);
    std::string pattern = (tmp_dir_ / "obj-XXXXXX").string();
    int fd = ops_.CreateTemp(pattern);
    if (fd < 0) {
      return ErrnoStatus(
          "cannot write to the object cache '" + tmp_dir_.string() + "'", -fd);
    }
    fd_ = fd;
    path_ = pattern;
    return Status::Ok();
  }

  // A fresh name for a temporary (for link() and rename(), which create it).
  Status Reserve() {
    CMF_RETURN_IF_ERROR(Open());
    ::close(fd_);
    fd_ = -1;
    ::unlink(path_.c_str());
    return Status::Ok();
  }

  // Takes over PATH (already created under tmp/) as this temporary.
  void Adopt(const std::string& path) { path_ = path; }

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  // Makes the object read-only, flushes it and moves it to FINAL (unless an
  // object is already there: same name, same bytes).
  Status Commit(const fs::path& final_path) {
    if (::chmod(path_.c_str(), 0444) != 0)
      return ErrnoStatus("cannot protect object", errno);
    int fd = fd_ >= 0 ? fd_ : ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      int err = ops_.Fsync(fd);
      if (fd != fd_) ::close(fd);
      if (err) return ErrnoStatus("cannot flush object to disk", err);
    }
    std::error_code ec;
    if (fs::exists(final_path, ec))
      return Status::Ok();  // the destructor removes ours
    fs::path dir = final_path.parent_path();
    fs::create_directories(dir, ec);
    if (ec)
      return Status::IOError("cannot create '" + dir.string() +
                             "': " + ec.message());
    if (int err = ops_.Rename(path_, final_path.string())) {
      return ErrnoStatus(
          "cannot move object into '" + final_path.string() + "'", err);
    }
    path_.clear();
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ops_.Fsync(dfd);  // best effort: makes the new name durable
      ::close(dfd);
    }
    return Status::Ok();
  }

 private:
  fs::path tmp_dir_;
  FileOps& ops_;
  int fd_ = -1;
  std::string path_;
};

// Replaces DEST by a new hard link to TARGET (atomically, through a temporary
// name beside DEST).
int RelinkHard(const fs::path& target, const fs::path& dest) {
  struct stat t {
  }, d{};
  if (::stat(target.c_str(), &t) == 0 && ::lstat(dest.c_str(), &d) == 0 &&
      t.st_dev == d.st_dev && t.st_ino == d.st_ino) {
    return 0;  // already that file (and rename() of two links to one file does
               // nothing)
  }
  std::string temp = dest.string() + ".cmf-link";
  ::unlink(temp.c_str());
  if (::link(target.c_str(), temp.c_str()) != 0) return errno;
  int err = ::rename(temp.c_str(), dest.c_str()) == 0 ? 0 : errno;
  ::unlink(temp.c_str());  // left behind when the rename failed
  return err;
}

int RelinkSymbolic(const fs::path& target, const fs::path& dest) {
  std::string temp = dest.string() + ".cmf-link";
  ::unlink(temp.c_str());
  if (::symlink(target.c_str(), temp.c_str()) != 0) return errno;
  if (::rename(temp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return err;
  }
  return 0;
}

// Copies SRC into the open file FD, hashing as it goes.
Status CopyHashing(const fs::path& src, int fd, FileOps& ops, std::string* hash,
                   std::uint64_t* size) {
  Sha256 hasher;
  *size = 0;
  CMF_RETURN_IF_ERROR(
      ReadFileInBlocks(src, [&](const char* data, std::size_t n) {
        hasher.Update(data, n);
        *size += n;
        if (int err = ops.Write(fd, data, n))
          return ErrnoStatus("cannot write to the object cache", err);
        return Status::Ok();
      }));
  *hash = ToHex(hasher.Finish());
  return Status::Ok();
}

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
  CMF_ASSIGN_OR_RETURN(ScanResult scan, Scan(*this, path, ScanOptions{}));
  return scan.info;
}

Result<ObjectInfo> ObjectCache::Store(const fs::path& path) const {
  ScanOptions options;
  options.store = true;
  options.link_order = {LinkMode::kReflink, LinkMode::kCopy};
  CMF_ASSIGN_OR_RETURN(ScanResult scan, Scan(*this, path, options));
  return scan.info;
}

Result<ObjectCache::Stored> ObjectCache::StoreFile(
    const fs::path& path, std::span<const LinkMode> order) const {
  const std::string name = path.string();
  struct stat before {};
  if (::stat(name.c_str(), &before) != 0) {
    if (errno == ENOENT) return Status::NotFound("no such file '" + name + "'");
    return ErrnoStatus("cannot read '" + name + "'", errno);
  }
  if (!S_ISREG(before.st_mode))
    return Status::IOError("'" + name + "' is not a regular file");
  const bool is_symlink_to_cache = [&] {
    std::error_code ec;
    return fs::is_symlink(fs::symlink_status(path, ec)) &&
           fs::canonical(path, ec).string().starts_with(
               fs::weakly_canonical(root_, ec).string());
  }();

  if (is_symlink_to_cache) {  // stored before, by the symlink strategy
    CMF_ASSIGN_OR_RETURN(std::string hash, HashFile(path));
    if (Has(hash))
      return Stored{hash, static_cast<std::uint64_t>(before.st_size),
                    LinkMode::kSymlink};
  }
  Status last = Status::IOError("no link strategy given for '" + name + "'");
  for (LinkMode mode : order) {
    TempObject temp(root_ / "tmp", *ops_);
    Stored stored;
    stored.mode = mode;
    if (mode == LinkMode::kCopy) {
      CMF_RETURN_IF_ERROR(temp.Open());
      CMF_RETURN_IF_ERROR(
          CopyHashing(path, temp.fd(), *ops_, &stored.hash, &stored.size));
    } else {
      if (mode == LinkMode::kReflink) {
        CMF_RETURN_IF_ERROR(temp.Open());
        int src = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
        if (src < 0) return ErrnoStatus("cannot read '" + name + "'", errno);
        int rc = ::ioctl(temp.fd(), FICLONE, src);
        int err = errno;
        ::close(src);
        if (rc != 0) {
          last = ErrnoStatus("cannot reflink '" + name + "'", err);
          continue;  // EOPNOTSUPP, EXDEV, EINVAL: this file system cannot clone
        }
      } else {
        if (is_symlink_to_cache) {
          last = Status::IOError("'" + name + "' is a link into the cache");
          continue;
        }
        CMF_RETURN_IF_ERROR(temp.Reserve());
        int rc = mode == LinkMode::kHardlink
                     ? ::link(name.c_str(), temp.path().c_str())
                     : ::rename(name.c_str(), temp.path().c_str());
        if (rc != 0) {
          last = ErrnoStatus(
              "cannot " + std::string(ToString(mode)) + " '" + name + "'",
              errno);
          continue;  // EXDEV, EPERM, EMLINK: try the next strategy
        }
        if (mode == LinkMode::kSymlink) {
          // The file now lives at temp.path(); put a link back at once so that
          // PATH never goes missing, then repoint it once the object is named.
          if (int err = RelinkSymbolic(temp.path(), path)) {
            ::rename(temp.path().c_str(), name.c_str());
            return ErrnoStatus("cannot link '" + name + "' to the cache", err);
          }
        }
      }
      Result<std::string> hash = HashFile(temp.path());
      if (!hash.ok()) {
        if (mode == LinkMode::kSymlink)
          ::rename(temp.path().c_str(), name.c_str());
        return hash.status();
      }
      stored.hash = *hash;
      struct stat after {};
      if (::stat(temp.path().c_str(), &after) != 0) {
        return ErrnoStatus("cannot stat '" + temp.path() + "'", errno);
      }
      stored.size = static_cast<std::uint64_t>(after.st_size);
      if (mode == LinkMode::kHardlink && !SameFile(before, after)) {
        return Status::IOError("'" + name + "' changed while it was added");
      }
    }
    fs::path object = PathOf(stored.hash);
    if (mode == LinkMode::kSymlink) {
      std::string moved = temp.path();
      Status st = temp.Commit(object);
      if (!st.ok()) {
        ::rename(moved.c_str(), name.c_str());  // put the file back
        return st;
      }
      if (int err = RelinkSymbolic(object, path)) {
        return ErrnoStatus("cannot link '" + name + "' to the cache", err);
      }
      return stored;
    }
    bool existed = Has(stored.hash);
    CMF_RETURN_IF_ERROR(temp.Commit(object));
    if (mode == LinkMode::kHardlink && existed) {
      // Same content was cached already: share that object instead.
      if (int err = RelinkHard(object, path)) {
        return ErrnoStatus("cannot link '" + name + "' to the cache", err);
      }
    }
    return stored;
  }
  return last;
}

Result<std::string> ObjectCache::PutBytes(std::string_view bytes) const {
  std::string hash = HashBytes(bytes);
  if (Has(hash)) return hash;
  TempObject temp(root_ / "tmp", *ops_);
  CMF_RETURN_IF_ERROR(temp.Open());
  if (int err = ops_->Write(temp.fd(), bytes.data(), bytes.size())) {
    return ErrnoStatus("cannot write to the object cache", err);
  }
  CMF_RETURN_IF_ERROR(temp.Commit(PathOf(hash)));
  return hash;
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

Status ObjectCache::Materialize(const std::string& hash, const fs::path& dest,
                                std::span<const LinkMode> order) const {
  if (!Has(hash))
    return Status::NotFound("object '" + hash + "' is not in the cache");
  fs::path object = PathOf(hash);
  std::error_code ec;
  if (dest.has_parent_path()) fs::create_directories(dest.parent_path(), ec);
  Status last =
      Status::IOError("no link strategy given for '" + dest.string() + "'");
  for (LinkMode mode : order) {
    int err = 0;
    if (mode == LinkMode::kHardlink) {
      err = RelinkHard(object, dest);
    } else if (mode == LinkMode::kSymlink) {
      err = RelinkSymbolic(object, dest);
    } else {
      // reflink or copy: a private, writable file, built beside DEST and
      // renamed.
      std::string temp = dest.string() + ".cmf-checkout";
      int out =
          ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (out < 0)
        return ErrnoStatus("cannot write '" + dest.string() + "'", errno);
      bool done = false;
      if (mode == LinkMode::kReflink) {
        int in = ::open(object.c_str(), O_RDONLY | O_CLOEXEC);
        done = in >= 0 && ::ioctl(out, FICLONE, in) == 0;
        err = done ? 0 : errno;
        if (in >= 0) ::close(in);
      } else {
        Status st =
            ReadFileInBlocks(object, [&](const char* data, std::size_t n) {
              if (int e = ops_->Write(out, data, n))
                return ErrnoStatus("cannot write", e);
              return Status::Ok();
            });
        done = st.ok();
        if (!st.ok()) last = st.With("'" + dest.string() + "'");
      }
      ::close(out);
      if (done && ::rename(temp.c_str(), dest.c_str()) == 0)
        return Status::Ok();
      if (done) err = errno;
      ::unlink(temp.c_str());
      if (mode == LinkMode::kCopy && !done) continue;
    }
    if (err == 0) return Status::Ok();
    last = ErrnoStatus(
        "cannot " + std::string(ToString(mode)) + " '" + dest.string() + "'",
        err);
  }
  return last;
}

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

}  // namespace cmf::data
