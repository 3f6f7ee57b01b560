#include "cmf/data/object_cache.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

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

int FileOps::SyncFs(int fd) { return ::syncfs(fd) == 0 ? 0 : errno; }

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

  // Gives up the temporary: it is no longer removed, and its path is returned.
  std::string Release() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return std::exchange(path_, std::string());
  }

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

// Replaces DEST by a symbolic link to TARGET, relative when both are absolute
// (so that moving the whole workspace keeps it working, as git-annex does).
int RelinkSymbolic(const fs::path& target, const fs::path& dest) {
  fs::path link = target;
  if (target.is_absolute() && dest.is_absolute()) {
    fs::path relative = target.lexically_relative(dest.parent_path());
    if (!relative.empty()) link = relative;
  }
  std::string temp = dest.string() + ".cmf-link";
  ::unlink(temp.c_str());
  if (::symlink(link.c_str(), temp.c_str()) != 0) return errno;
  if (::rename(temp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return err;
  }
  return 0;
}

// True when the file at PATH lies on the file system of the cache at ROOT
// (where hard links into the cache can be made).
bool SameDevice(const fs::path& path, const fs::path& root) {
  struct stat a {
  }, b{};
  fs::path probe = root;
  std::error_code ec;
  while (!probe.empty() && !fs::exists(probe, ec)) probe = probe.parent_path();
  return ::stat(path.c_str(), &a) == 0 && ::stat(probe.c_str(), &b) == 0 &&
         a.st_dev == b.st_dev;
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
  struct stat before {};
  if (::stat(name.c_str(), &before) != 0) {
    if (errno == ENOENT) return Status::NotFound("no such file '" + name + "'");
    return ErrnoStatus("cannot read '" + name + "'", errno);
  }
  if (!S_ISREG(before.st_mode))
    return Status::IOError("'" + name + "' is not a regular file");
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(path, ec)) &&
      fs::canonical(path, ec).string().starts_with(
          fs::weakly_canonical(root_, ec).string())) {
    // Stored before, by the symlink strategy.
    CMF_ASSIGN_OR_RETURN(std::string hash, HashFile(path));
    if (Has(hash)) {
      return Stored{hash, static_cast<std::uint64_t>(before.st_size),
                    LinkMode::kSymlink};
    }
    return Status::IOError("'" + name +
                           "' links to a damaged object; run cmf fsck");
  }

  // A symbolic link (to a file elsewhere) is never linked into the cache: its
  // target is not the workspace's to make read-only. Its bytes are copied.
  struct stat link_st {};
  const bool is_link =
      ::lstat(name.c_str(), &link_st) == 0 && S_ISLNK(link_st.st_mode);
  std::vector<LinkMode> effective;
  for (LinkMode mode : order) {
    if (is_link &&
        (mode == LinkMode::kHardlink || mode == LinkMode::kSymlink)) {
      mode = LinkMode::kCopy;
    }
    if (std::find(effective.begin(), effective.end(), mode) ==
        effective.end()) {
      effective.push_back(mode);
    }
  }
  const mode_t object_mode = (before.st_mode & S_IXUSR) ? 0555 : 0444;
  Status last = Status::IOError("no link strategy given for '" + name + "'");
  for (LinkMode mode : effective) {
    TempObject temp(root_ / "tmp", *ops_);
    Stored stored;
    stored.mode = mode;
    if (mode == LinkMode::kCopy) {
      CMF_RETURN_IF_ERROR(temp.Open());
      CMF_RETURN_IF_ERROR(
          CopyHashing(path, temp.fd(), *ops_, &stored.hash, &stored.size));
    } else {
      if (mode == LinkMode::kReflink) {
        if (no_reflink_.load(std::memory_order_relaxed)) continue;
        CMF_RETURN_IF_ERROR(temp.Open());
        int src = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
        if (src < 0) return ErrnoStatus("cannot read '" + name + "'", errno);
        int rc = ::ioctl(temp.fd(), FICLONE, src);
        int err = errno;
        ::close(src);
        if (rc != 0) {
          last = ErrnoStatus("cannot reflink '" + name + "'", err);
          if (err == EOPNOTSUPP || err == ENOTTY || err == EINVAL ||
              err == EXDEV) {
            no_reflink_.store(
                true,
                std::memory_order_relaxed);  // this file system cannot clone
          }
          continue;
        }
      } else {
        // Hashed where it is; Publish links it into the cache under the
        // object's name (and, for symlink, puts a symbolic link in its place).
        CMF_ASSIGN_OR_RETURN(stored.hash, HashFile(path));
        stored.size = static_cast<std::uint64_t>(before.st_size);
        Pending p{"", PathOf(stored.hash), path, mode};
        p.size = stored.size;
        p.mtime_ns =
            static_cast<std::int64_t>(before.st_mtim.tv_sec) * 1'000'000'000 +
            before.st_mtim.tv_nsec;
        if (!SameDevice(path, root_)) {
          last = Status::IOError("cannot link '" + name + "' into the cache");
          continue;  // another file system: try the next strategy
        }
        pending->push_back(std::move(p));
        return stored;
      }
      Result<std::string> hash = HashFile(temp.path());  // the clone
      if (!hash.ok()) return hash.status();
      stored.hash = *hash;
      struct stat after {};
      if (::stat(temp.path().c_str(), &after) != 0) {
        return ErrnoStatus("cannot stat '" + temp.path() + "'", errno);
      }
      stored.size = static_cast<std::uint64_t>(after.st_size);
    }
    if (::chmod(temp.path().c_str(), object_mode) != 0) {
      return ErrnoStatus("cannot protect object", errno);
    }
    pending->push_back({temp.Release(), PathOf(stored.hash), path, mode});
    return stored;
  }
  return last;
}

Status ObjectCache::Publish(std::vector<Pending>& pending) const {
  if (pending.empty()) return Status::Ok();
  // One flush for all of them: an object gets its name only once its bytes
  // are on disk, so a crash never leaves a damaged object under a hash name.
  std::error_code mkdir_ec;
  fs::create_directories(root_ / "sha256", mkdir_ec);
  int root_fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int flush_err = root_fd < 0 ? errno : ops_->SyncFs(root_fd);
  if (root_fd >= 0) ::close(root_fd);
  if (flush_err) {
    Discard(pending);
    return ErrnoStatus("cannot flush the object cache to disk", flush_err);
  }
  // A source published in place must still be as it was hashed. All are
  // checked before any is touched, so that a refusal leaves every file as it
  // was.
  for (const Pending& p : pending) {
    if (!p.temp.empty()) continue;
    struct stat now {};
    bool same = ::stat(p.source.c_str(), &now) == 0 &&
                static_cast<std::uint64_t>(now.st_size) == p.size &&
                static_cast<std::int64_t>(now.st_mtim.tv_sec) * 1'000'000'000 +
                        now.st_mtim.tv_nsec ==
                    p.mtime_ns;
    if (!same) {
      std::string name = p.source.string();
      Discard(pending);
      return Status::IOError("'" + name + "' changed while it was added");
    }
  }

  // Names one object; returns 0 or an errno value.
  auto publish = [&](Pending& p) -> int {
    fs::path dir = p.final_path.parent_path();
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errno;
    if (!p.temp.empty()) {
      // A complete new copy: it takes the name even when an object is there
      // already (same bytes, or it mends a damaged one).
      return ops_->Rename(p.temp, p.final_path.string());
    }
    struct stat st {};
    ::stat(p.source.c_str(), &st);
    ::chmod(p.source.c_str(), (st.st_mode & S_IXUSR) ? 0555 : 0444);
    int err = ::link(p.source.c_str(), p.final_path.c_str()) == 0 ? 0 : errno;
    if (err == EEXIST) {
      // Share the cached object only when its bytes are still right;
      // otherwise the source takes its place.
      const std::string hash =
          dir.filename().string() + p.final_path.filename().string();
      Result<std::string> actual = HashFile(p.final_path);
      bool existing_ok = actual.ok() && *actual == hash;
      if (existing_ok) {
        err = p.mode == LinkMode::kHardlink ? RelinkHard(p.final_path, p.source)
                                            : 0;
      } else {
        err = RelinkHard(p.source, p.final_path);
      }
    }
    if (err == 0 && p.mode == LinkMode::kSymlink)
      err = RelinkSymbolic(p.final_path, p.source);
    return err;
  };

  // Named on all cores: with many small files this is most of the cost.
  std::atomic<std::size_t> next{0};
  std::vector<char> done(pending.size(), 0);
  std::mutex mutex;
  Status first;
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < pending.size();) {
      if (int err = publish(pending[i])) {
        std::lock_guard<std::mutex> lock(mutex);
        if (first.ok()) {
          first = ErrnoStatus("cannot move object into '" +
                                  pending[i].final_path.string() + "'",
                              err);
        }
        next = pending.size();
        return;
      }
      done[i] = 1;
    }
  };
  unsigned threads = std::max(
      1u, std::min<unsigned>(std::thread::hardware_concurrency(),
                             static_cast<unsigned>(pending.size() / 64 + 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  if (!first.ok()) {
    std::vector<Pending> rest;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (!done[i]) rest.push_back(std::move(pending[i]));
    }
    Discard(rest);
  }
  // The new names: one more flush (one journal commit, not one per folder).
  root_fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd >= 0) {
    ops_->SyncFs(root_fd);
    ::close(root_fd);
  }
  pending.clear();
  return first;
}

void ObjectCache::Discard(std::vector<Pending>& pending) const {
  for (const Pending& p : pending) {
    if (!p.temp.empty())
      ::unlink(p.temp.c_str());  // a symlink's source was not touched yet
  }
  pending.clear();
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

Status ObjectCache::Import(const std::string& hash,
                           const std::function<Status(int fd)>& fill) const {
  if (!IsSha256Hex(hash)) {
    return Status::InvalidArgument("not an object name: '" + hash + "'");
  }
  if (Has(hash)) return Status::Ok();
  TempObject temp(root_ / "tmp", *ops_);
  CMF_RETURN_IF_ERROR(temp.Open());
  CMF_RETURN_IF_ERROR(fill(temp.fd()));
  CMF_ASSIGN_OR_RETURN(std::string actual, HashFile(temp.path()));
  if (actual != hash) {
    return Status::Corruption("the bytes received for object " + hash +
                              " hash to " + actual + "; not stored");
  }
  return temp.Commit(PathOf(hash));
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
