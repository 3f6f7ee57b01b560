// Storing in the object cache: a file by the first link strategy that works,
// bytes, or an object that arrives from elsewhere. The batch forms leave a
// pending object for Publish (object_cache_publish.cpp).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <system_error>
#include <utility>

#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "file_reader.h"
#include "object_cache_internal.h"

namespace fs = std::filesystem;

namespace cmf::data {

using cache_internal::ErrnoStatus;

namespace {

// A temporary object under the cache's tmp/ folder, removed unless committed.
class TempObject {
 public:
  TempObject(const fs::path& tmp_dir, FileOps& ops)
      : tmp_dir_(tmp_dir), ops_(ops) {}

  // Creates an empty temporary file, open for writing.
  Status Open() {
    std::error_code ec;
    fs::create_directories(tmp_dir_, ec);
    AtomicFile::Options options;
    options.temp_dir = tmp_dir_;
    options.ops = &ops_;
    Result<AtomicFile> file = AtomicFile::Create(tmp_dir_ / "obj", options);
    if (!file.ok()) {
      return Status::IOError("cannot write to the object cache: " +
                             file.status().message());
    }
    file_.emplace(std::move(file).value());
    return Status::Ok();
  }

  // Gives up the temporary: it is no longer removed, and its path is returned.
  std::string Release() { return file_ ? file_->Release() : std::string(); }

  int fd() const { return file_ ? file_->fd() : -1; }
  const std::string& path() const { return file_->temp_path(); }

  // Makes the object read-only, flushes it and moves it to FINAL (unless an
  // object is already there: same name, same bytes).
  Status Commit(const fs::path& final_path) {
    if (::fchmod(file_->fd(), 0444) != 0)
      return ErrnoStatus("cannot protect object", errno);
    std::error_code ec;
    if (fs::exists(final_path, ec))
      return Status::Ok();  // the destructor removes ours
    fs::path dir = final_path.parent_path();
    fs::create_directories(dir, ec);
    if (ec)
      return Status::IOError("cannot create '" + dir.string() +
                             "': " + ec.message());
    CrashPoint("cache:written");
    CMF_RETURN_IF_ERROR(file_->Commit(final_path));
    CrashPoint("cache:named");
    return Status::Ok();
  }

 private:
  fs::path tmp_dir_;
  FileOps& ops_;
  std::optional<AtomicFile> file_;
};

// Copies SRC, listed as EXPECTED, into the open file FD, hashing as it goes.
Status CopyHashing(const fs::path& src, int fd, FileOps& ops,
                   const FileStat& expected, std::string* hash,
                   std::uint64_t* size) {
  Sha256 hasher;
  *size = 0;
  CMF_RETURN_IF_ERROR(ReadFileInBlocks(
      src,
      [&](const char* data, std::size_t n) {
        hasher.Update(data, n);
        *size += n;
        if (int err = ops.Write(fd, data, n))
          return ErrnoStatus("cannot write to the object cache", err);
        return Status::Ok();
      },
      &expected));
  *hash = ToHex(hasher.Finish());
  return Status::Ok();
}

// Clones the file NAME, listed as EXPECTED, into the open file FD (FICLONE).
// Sets *CLONE_ERR to 0, or to the errno value of a clone that failed. IOError
// when NAME cannot be read or no longer looks like EXPECTED.
Status CloneInto(const std::string& name, int fd, const FileStat& expected,
                 int* clone_err) {
  int src = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (src < 0) return ErrnoStatus("cannot read '" + name + "'", errno);
  struct stat src_st {};
  bool same = ::fstat(src, &src_st) == 0 && ToFileStat(src_st) == expected;
  int rc = same ? ::ioctl(fd, FICLONE, src) : 0;
  int err = errno;
  ::close(src);
  if (!same) return Status::IOError("'" + name + "' changed while it was read");
  *clone_err = rc != 0 ? err : 0;
  return Status::Ok();
}

// Fills HASH and SIZE from the clone at PATH.
Status HashClone(const std::string& path, std::string* hash,
                 std::uint64_t* size) {
  Result<std::string> hashed = HashFile(path);  // the clone
  if (!hashed.ok()) return hashed.status();
  *hash = *hashed;
  struct stat after {};
  if (::stat(path.c_str(), &after) != 0) {
    return ErrnoStatus("cannot stat '" + path + "'", errno);
  }
  *size = static_cast<std::uint64_t>(after.st_size);
  return Status::Ok();
}

// Writes BYTES into a new temporary object.
Status WriteTemp(TempObject& temp, FileOps& ops, std::string_view bytes) {
  CMF_RETURN_IF_ERROR(temp.Open());
  if (int err = ops.Write(temp.fd(), bytes.data(), bytes.size()))
    return ErrnoStatus("cannot write to the object cache", err);
  return Status::Ok();
}

}  // namespace

Result<ObjectCache::Stored> ObjectCache::StoreFile(
    const fs::path& path, std::span<const LinkMode> order) const {
  std::vector<Pending> pending;
  Result<Stored> stored = StoreFile(path, order, &pending);
  if (!stored.ok()) return stored;
  CMF_RETURN_IF_ERROR(Publish(pending));
  return stored;
}

Result<ObjectCache::Stored> ObjectCache::StoreFile(
    const fs::path& path, std::span<const LinkMode> order,
    std::vector<Pending>* pending) const {
  const std::string name = path.string();
  struct stat st {};
  if (::stat(name.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::NotFound("no such file '" + name + "'");
    return ErrnoStatus("cannot read '" + name + "'", errno);
  }
  if (!S_ISREG(st.st_mode))
    return Status::IOError("'" + name + "' is not a regular file");
  struct stat link_st {};
  Listed listed;
  listed.stat = ToFileStat(st);
  listed.executable = (st.st_mode & S_IXUSR) != 0;
  listed.is_link =
      ::lstat(name.c_str(), &link_st) == 0 && S_ISLNK(link_st.st_mode);
  listed.links = static_cast<std::uint64_t>(st.st_nlink);
  return StoreFile(path, order, pending, listed);
}

Result<ObjectCache::Stored> ObjectCache::StoreFile(
    const fs::path& path, std::span<const LinkMode> order,
    std::vector<Pending>* pending, const Listed& listed) const {
  const std::string name = path.string();
  std::error_code ec;
  if (listed.is_link && fs::canonical(path, ec).string().starts_with(
                            fs::weakly_canonical(root_, ec).string())) {
    // Stored before, by the symlink strategy.
    CMF_ASSIGN_OR_RETURN(std::string hash, HashFileContent(path, &listed.stat));
    if (Has(hash)) return Stored{hash, listed.stat.size, LinkMode::kSymlink};
    return Status::IOError("'" + name +
                           "' links to a damaged object; run cmf fsck");
  }

  // A symbolic link (to a file elsewhere), or a file reached through a link to
  // a folder, is never linked into the cache: its target is not the
  // workspace's to make read-only or to replace. Its bytes are copied.
  const bool foreign = listed.is_link || listed.behind_link;
  std::vector<LinkMode> effective;
  for (LinkMode mode : order) {
    if (foreign &&
        (mode == LinkMode::kHardlink || mode == LinkMode::kSymlink)) {
      mode = LinkMode::kCopy;
    }
    if (std::find(effective.begin(), effective.end(), mode) ==
        effective.end()) {
      effective.push_back(mode);
    }
  }
  const mode_t object_mode = listed.executable ? 0555 : 0444;
  Status last = Status::IOError("no link strategy given for '" + name + "'");
  for (LinkMode mode : effective) {
    Stored stored;
    stored.mode = mode;
    if (mode == LinkMode::kHardlink || mode == LinkMode::kSymlink) {
      if (listed.stat.dev != CacheDevice()) {
        last = Status::IOError("cannot link '" + name + "' into the cache");
        continue;  // another file system: try the next strategy
      }
      // Hashed where it is; Publish links it into the cache under the
      // object's name (and, for symlink, puts a symbolic link in its place).
      CMF_ASSIGN_OR_RETURN(stored.hash, HashFileContent(path, &listed.stat));
      stored.size = listed.stat.size;
      if (listed.links > 1 && !IsObjectInode(stored.hash, listed.stat)) {
        // Another name shares this inode (a hard link from outside the
        // workspace, or to a file not added): not ours to make read-only.
        Listed shared = listed;
        shared.behind_link = true;
        return StoreFile(path, order, pending, shared);
      }
      Pending p{"", PathOf(stored.hash), path, mode};
      p.size = stored.size;
      p.mtime_ns = listed.stat.mtime_ns;
      p.executable = listed.executable;
      pending->push_back(std::move(p));
      return stored;
    }
    TempObject temp(root_ / "tmp", ops());
    if (mode == LinkMode::kCopy) {
      CMF_RETURN_IF_ERROR(temp.Open());
      CMF_RETURN_IF_ERROR(CopyHashing(path, temp.fd(), ops(), listed.stat,
                                      &stored.hash, &stored.size));
    } else {  // reflink
      if (no_reflink_.load(std::memory_order_relaxed)) continue;
      CMF_RETURN_IF_ERROR(temp.Open());
      int err = 0;
      CMF_RETURN_IF_ERROR(CloneInto(name, temp.fd(), listed.stat, &err));
      if (err != 0) {
        last = ErrnoStatus("cannot reflink '" + name + "'", err);
        if (err == EOPNOTSUPP || err == ENOTTY || err == EINVAL ||
            err == EXDEV) {
          // This file system cannot clone.
          no_reflink_.store(true, std::memory_order_relaxed);
        }
        continue;
      }
      CMF_RETURN_IF_ERROR(HashClone(temp.path(), &stored.hash, &stored.size));
    }
    if (::chmod(temp.path().c_str(), object_mode) != 0) {
      return ErrnoStatus("cannot protect object", errno);
    }
    pending->push_back({temp.Release(), PathOf(stored.hash), path, mode});
    return stored;
  }
  return last;
}

bool ObjectCache::IsObjectInode(const std::string& hash,
                                const FileStat& stat) const {
  struct stat object {};
  return ::stat(PathOf(hash).c_str(), &object) == 0 &&
         static_cast<std::uint64_t>(object.st_dev) == stat.dev &&
         static_cast<std::uint64_t>(object.st_ino) == stat.ino;
}

Result<std::string> ObjectCache::PutBytes(std::string_view bytes) const {
  std::string hash = HashBytes(bytes);
  if (Has(hash)) return hash;
  TempObject temp(root_ / "tmp", ops());
  CMF_RETURN_IF_ERROR(WriteTemp(temp, ops(), bytes));
  CMF_RETURN_IF_ERROR(temp.Commit(PathOf(hash)));  // flushes this one file
  return hash;
}

Result<std::string> ObjectCache::PutBytes(std::string_view bytes,
                                          std::vector<Pending>* pending) const {
  std::string hash = HashBytes(bytes);
  if (Has(hash)) return hash;
  TempObject temp(root_ / "tmp", ops());
  CMF_RETURN_IF_ERROR(WriteTemp(temp, ops(), bytes));
  if (::chmod(temp.path().c_str(), 0444) != 0)
    return ErrnoStatus("cannot protect object", errno);
  pending->push_back({temp.Release(), PathOf(hash), {}, LinkMode::kCopy});
  return hash;
}

Status ObjectCache::Import(const std::string& hash,
                           const std::function<Status(int fd)>& fill) const {
  if (!IsSha256Hex(hash)) {
    return Status::InvalidArgument("not an object name: '" + hash + "'");
  }
  if (Has(hash)) return Status::Ok();
  TempObject temp(root_ / "tmp", ops());
  CMF_RETURN_IF_ERROR(temp.Open());
  CMF_RETURN_IF_ERROR(fill(temp.fd()));
  CMF_ASSIGN_OR_RETURN(std::string actual, HashFile(temp.path()));
  if (actual != hash) {
    return Status::Corruption("the bytes received for object " + hash +
                              " hash to " + actual + "; not stored");
  }
  return temp.Commit(PathOf(hash));
}

}  // namespace cmf::data
