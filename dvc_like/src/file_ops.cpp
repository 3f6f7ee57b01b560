#include "cmf/data/file_ops.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <utility>

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

int FileOps::Open(const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd >= 0 ? fd : -errno;
}

int FileOps::Lock(int fd, int operation) {
  while (::flock(fd, operation) != 0) {
    if (errno != EINTR) return errno;
  }
  return 0;
}

void FileOps::AfterOpen(const std::string&) {}

std::shared_ptr<FileOps> FileOps::Real() {
  static std::shared_ptr<FileOps> real = std::make_shared<FileOps>();
  return real;
}

namespace {

std::atomic<FileOps*> g_default_ops{nullptr};

FileOps& OpsOr(FileOps* ops) { return ops ? *ops : FileOps::Default(); }

Status ErrnoError(std::string_view what, const fs::path& path, int err) {
  return Status::IOError(std::string(what) + " '" + path.string() +
                         "': " + std::strerror(err));
}

// Six characters for a temporary's name that no other writer picks.
std::string RandomSuffix() {
  static constexpr char kChars[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 engine = [] {
    std::random_device device;
    std::seed_seq seed{
        device(), device(), static_cast<unsigned>(::getpid()),
        static_cast<unsigned>(
            std::chrono::steady_clock::now().time_since_epoch().count())};
    return std::mt19937_64(seed);
  }();
  std::uint64_t bits = engine();
  std::string s(6, 'x');
  for (char& c : s) {
    c = kChars[bits % (sizeof kChars - 1)];
    bits /= sizeof kChars - 1;
  }
  return s;
}

}  // namespace

FileOps& FileOps::Default() {
  FileOps* installed = g_default_ops.load(std::memory_order_acquire);
  return installed ? *installed : *Real();
}

ScopedDefaultFileOps::ScopedDefaultFileOps(FileOps& ops)
    : previous_(g_default_ops.exchange(&ops)) {}

ScopedDefaultFileOps::~ScopedDefaultFileOps() {
  g_default_ops.store(previous_);
}

// --- AtomicFile ---

Result<AtomicFile> AtomicFile::Create(const fs::path& path) {
  return Create(path, Options());
}

Result<AtomicFile> AtomicFile::Create(const fs::path& path,
                                      const Options& options) {
  FileOps& ops = OpsOr(options.ops);
  const fs::path dir =
      options.temp_dir.empty() ? path.parent_path() : options.temp_dir;
  // The name's first 200 bytes at most: a name near the 255-byte limit must
  // still leave room for the suffix.
  std::string base = path.filename().string();
  if (base.size() > 200) base.resize(200);
  const std::string stem = (dir / (base + ".cmf-")).string();
  // O_EXCL under a fresh random name (as mkstemp, but with creat's mode, so
  // that the umask applies as it would to any new file).
  for (int attempt = 0;; ++attempt) {
    std::string temp = stem + RandomSuffix();
    int fd =
        ops.Open(temp, O_RDWR | O_CREAT | O_EXCL, options.mode.value_or(0666));
    if (fd >= 0) {
      if (options.mode && ::fchmod(fd, *options.mode) != 0) {
        int err = errno;
        ::close(fd);
        ::unlink(temp.c_str());
        return ErrnoError("cannot write", path, err);
      }
      return AtomicFile(path, std::move(temp), fd, options);
    }
    if (-fd != EEXIST || attempt == 100) {
      return ErrnoError("cannot write", path, -fd);
    }
  }
}

AtomicFile::AtomicFile(fs::path path, std::string temp, int fd,
                       const Options& options)
    : path_(std::move(path)),
      temp_(std::move(temp)),
      fd_(fd),
      options_(options) {}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)),
      temp_(std::exchange(other.temp_, std::string())),
      fd_(std::exchange(other.fd_, -1)),
      options_(other.options_) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    if (!temp_.empty()) ::unlink(temp_.c_str());
    path_ = std::move(other.path_);
    temp_ = std::exchange(other.temp_, std::string());
    fd_ = std::exchange(other.fd_, -1);
    options_ = other.options_;
  }
  return *this;
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_.empty()) ::unlink(temp_.c_str());
}

FileOps& AtomicFile::ops() const { return OpsOr(options_.ops); }

Status AtomicFile::Fail(std::string_view what, int err) const {
  return ErrnoError(what, path_, err);
}

Status AtomicFile::Write(std::string_view bytes) {
  if (fd_ < 0) return Status::IOError("'" + path_.string() + "' is closed");
  if (int err = ops().Write(fd_, bytes.data(), bytes.size()))
    return Fail("cannot write", err);
  return Status::Ok();
}

Status AtomicFile::Flush() {
  if (fd_ < 0) return Status::IOError("'" + path_.string() + "' is closed");
  if (options_.durability == Durability::kDurable) {
    if (int err = ops().Fsync(fd_)) return Fail("cannot flush to disk", err);
  }
  return Status::Ok();
}

Status AtomicFile::FlushFolder() {
  if (options_.durability != Durability::kDurable) return Status::Ok();
  fs::path dir = path_.parent_path();
  return FsyncFolder(dir.empty() ? fs::path(".") : dir, options_.ops);
}

Status AtomicFile::Commit(const fs::path& final_path) {
  path_ = final_path;
  return Commit();
}

Status AtomicFile::Commit() {
  CMF_RETURN_IF_ERROR(Flush());
  if (int err = ops().Rename(temp_, path_.string()))
    return Fail("cannot replace", err);
  temp_.clear();
  ::close(std::exchange(fd_, -1));
  return FlushFolder();
}

Status AtomicFile::CommitNew() {
  CMF_RETURN_IF_ERROR(Flush());
  if (::link(temp_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    if (err == EEXIST)
      return Status::AlreadyExists("'" + path_.string() + "' exists");
    return Fail("cannot create", err);
  }
  ::unlink(std::exchange(temp_, std::string()).c_str());
  ::close(std::exchange(fd_, -1));
  return FlushFolder();
}

std::string AtomicFile::Release() {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  return std::exchange(temp_, std::string());
}

Status WriteFileAtomically(const fs::path& path, std::string_view bytes,
                           const AtomicFile::Options& options) {
  CMF_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path, options));
  CMF_RETURN_IF_ERROR(file.Write(bytes));
  return file.Commit();
}

Status FsyncFolder(const fs::path& dir, FileOps* ops) {
  FileOps& o = OpsOr(ops);
  int fd = o.Open(dir.string(), O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0) return ErrnoError("cannot open folder", dir, -fd);
  int err = o.Fsync(fd);
  ::close(fd);
  // A file system that cannot flush a folder (some network ones) has nothing
  // to flush there.
  if (err && err != EINVAL && err != ENOTSUP)
    return ErrnoError("cannot flush folder", dir, err);
  return Status::Ok();
}

// --- FileLock ---

Result<FileLock> FileLock::Acquire(const fs::path& path, Kind kind,
                                   FileOps* ops) {
  FileOps& o = OpsOr(ops);
  int fd = o.Open(path.string(), O_RDWR | O_CREAT, 0644);
  if (fd < 0) return ErrnoError("cannot open lock", path, -fd);
  if (int err = o.Lock(fd, kind == Kind::kShared ? LOCK_SH : LOCK_EX)) {
    ::close(fd);
    return ErrnoError("cannot lock", path, err);
  }
  return FileLock(fd);
}

Result<std::optional<FileLock>> FileLock::AcquireIfSupported(
    const fs::path& path, FileOps* ops) {
  FileOps& o = OpsOr(ops);
  int fd = o.Open(path.string(), O_RDONLY, 0);
  if (fd == -ENOENT) {
    mode_t mask = ::umask(0);
    ::umask(mask);
    fd = o.Open(path.string(), O_RDONLY | O_CREAT, 0666 & ~(mask & 0002));
  }
  if (fd < 0) {
    if (fd == -EACCES || fd == -EROFS) return std::optional<FileLock>();
    return ErrnoError("cannot open lock", path, -fd);
  }
  if (int err = o.Lock(fd, LOCK_EX)) {
    ::close(fd);
    if (err == ENOLCK || err == ENOSYS || err == EOPNOTSUPP)
      return std::optional<FileLock>();
    return ErrnoError("cannot lock", path, err);
  }
  return std::optional<FileLock>(FileLock(fd));
}

FileLock::FileLock(FileLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)) {}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the lock
}

}  // namespace cmf::data
