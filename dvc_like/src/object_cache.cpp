#include "cmf/data/object_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "file_reader.h"

namespace fs = std::filesystem;

namespace cmf::data {

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
    // A clone where the file system can make one; otherwise the workspace
    // file itself becomes the object, read-only until `cmf unlock` (as
    // git-annex's locked files): adding then reads each byte once and writes
    // none. A copy only across file systems. (Root ignores the read-only mode:
    // a hard-linked file that root rewrites in place changes the object, which
    // cmf status and cmf fsck then report. `reflink,copy` avoids that.)
    return std::vector<LinkMode>{LinkMode::kReflink, LinkMode::kHardlink,
                                 LinkMode::kCopy};
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

}  // namespace

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
      int src = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
      if (src < 0) return ErrnoStatus("cannot read '" + name + "'", errno);
      struct stat src_st {};
      bool same =
          ::fstat(src, &src_st) == 0 && ToFileStat(src_st) == listed.stat;
      int rc = same ? ::ioctl(temp.fd(), FICLONE, src) : 0;
      int err = errno;
      ::close(src);
      if (!same)
        return Status::IOError("'" + name + "' changed while it was read");
      if (rc != 0) {
        last = ErrnoStatus("cannot reflink '" + name + "'", err);
        if (err == EOPNOTSUPP || err == ENOTTY || err == EINVAL ||
            err == EXDEV) {
          // This file system cannot clone.
          no_reflink_.store(true, std::memory_order_relaxed);
        }
        continue;
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

bool ObjectCache::IsObjectInode(const std::string& hash,
                                const FileStat& stat) const {
  struct stat object {};
  return ::stat(PathOf(hash).c_str(), &object) == 0 &&
         static_cast<std::uint64_t>(object.st_dev) == stat.dev &&
         static_cast<std::uint64_t>(object.st_ino) == stat.ino;
}

int ObjectCache::SyncCacheFs() const {
  int root_fd = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return errno;
  int err = ops().SyncFs(root_fd);
  ::close(root_fd);
  return err;
}

Status ObjectCache::PrepareNames(const std::vector<Pending>& pending) const {
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
      return Status::IOError("'" + p.source.string() +
                             "' changed while it was added");
    }
  }
  // The folders they go to, created one by one before the objects are named
  // in parallel (creating two folders at once makes both wait for the lock of
  // their parent).
  LearnFolders();
  for (const Pending& p : pending) {
    fs::path dir = p.final_path.parent_path();
    const std::string head = dir.filename().string();
    unsigned prefix = 0;
    std::from_chars(head.data(), head.data() + head.size(), prefix, 16);
    if (int err = EnsureFolder(dir, static_cast<unsigned char>(prefix)))
      return ErrnoStatus("cannot create '" + dir.string() + "'", err);
  }
  return Status::Ok();
}

Status ObjectCache::Publish(std::vector<Pending>& pending,
                            const std::function<Status()>& meanwhile) const {
  if (pending.empty()) return meanwhile ? meanwhile() : Status::Ok();
  // One flush for all of them: an object gets its name only once its bytes
  // are on disk, so a crash never leaves a damaged object under a hash name.
  // The flush mostly waits for the disk: this thread checks the sources and
  // makes the folders meanwhile.
  std::error_code mkdir_ec;
  fs::create_directories(root_ / "sha256", mkdir_ec);
  int flush_err = 0;
  std::thread flush([&] { flush_err = SyncCacheFs(); });
  Status ready = PrepareNames(pending);
  flush.join();
  if (ready.ok() && flush_err) {
    ready = ErrnoStatus("cannot flush the object cache to disk", flush_err);
  }
  if (!ready.ok()) {
    Discard(pending);
    return ready;
  }
  CrashPoint("cache:written");

  // Names one object; returns 0 or an errno value.
  auto publish = [&](Pending& p) -> int {
    fs::path dir = p.final_path.parent_path();
    if (!p.temp.empty()) {
      // A complete new copy: it takes the name even when an object is there
      // already (same bytes, or it mends a damaged one).
      return ops().Rename(p.temp, p.final_path.string());
    }
    ::chmod(p.source.c_str(), p.executable ? 0555 : 0444);
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
    // The source is the object now. Its ctime, read after the object's (the
    // same inode, unchanged meanwhile), dates that; a later scan that finds
    // the same ctime knows the object is still there (StatCache::Known).
    struct stat object {
    }, source{};
    if (err == 0 && ::stat(p.final_path.c_str(), &object) == 0 &&
        ::stat(p.source.c_str(), &source) == 0 &&
        object.st_dev == source.st_dev && object.st_ino == source.st_ino &&
        object.st_ctim.tv_sec == source.st_ctim.tv_sec &&
        object.st_ctim.tv_nsec == source.st_ctim.tv_nsec) {
      p.linked_ctime_ns = CtimeNs(source);
    }
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
  CrashPoint("cache:named");
  if (!first.ok()) {
    std::vector<Pending> rest;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (!done[i]) rest.push_back(std::move(pending[i]));
    }
    Discard(rest);
  }
  // The new names: one more flush (one journal commit, not one per folder),
  // with MEANWHILE on this thread.
  std::thread names([&] { SyncCacheFs(); });
  Status also = meanwhile ? meanwhile() : Status::Ok();
  names.join();
  pending.clear();
  return first.ok() ? also : first;
}

void ObjectCache::Discard(std::vector<Pending>& pending) const {
  for (const Pending& p : pending) {
    if (!p.temp.empty())
      ::unlink(p.temp.c_str());  // a symlink's source was not touched yet
  }
  pending.clear();
}

namespace {

// Writes BYTES into a new temporary object.
Status WriteTemp(TempObject& temp, FileOps& ops, std::string_view bytes) {
  CMF_RETURN_IF_ERROR(temp.Open());
  if (int err = ops.Write(temp.fd(), bytes.data(), bytes.size()))
    return ErrnoStatus("cannot write to the object cache", err);
  return Status::Ok();
}

}  // namespace

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
      // renamed (not flushed: the cache holds the bytes, a checkout can be
      // made again, and git does not flush its checkouts either).
      AtomicFile::Options options;
      options.durability = Durability::kAtomic;
      options.ops = &ops();
      Result<AtomicFile> out = AtomicFile::Create(dest, options);
      if (!out.ok()) return out.status();
      bool done = false;
      if (mode == LinkMode::kReflink) {
        int in = ::open(object.c_str(), O_RDONLY | O_CLOEXEC);
        done = in >= 0 && ::ioctl(out->fd(), FICLONE, in) == 0;
        err = done ? 0 : errno;
        if (in >= 0) ::close(in);
      } else {
        Status st =
            ReadFileInBlocks(object, [&](const char* data, std::size_t n) {
              return out->Write(std::string_view(data, n));
            });
        done = st.ok();
        if (!st.ok()) last = st;
      }
      if (done) {
        Status named = out->Commit();
        if (named.ok()) return named;
        last = named;
        err = 0;
        continue;
      }
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
