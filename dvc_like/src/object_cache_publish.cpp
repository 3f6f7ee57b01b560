// Naming pending objects: one flush of the file system for all of them, then
// each gets its name under objects/sha256/ (in parallel), then one more flush.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "object_cache_internal.h"

namespace fs = std::filesystem;

namespace cmf::data {

using cache_internal::ErrnoStatus;
using cache_internal::RelinkHard;
using cache_internal::RelinkSymbolic;

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

namespace {

// Names one object; returns 0 or an errno value.
int NameObject(ObjectCache::Pending& p, FileOps& ops) {
  fs::path dir = p.final_path.parent_path();
  if (!p.temp.empty()) {
    // A complete new copy: it takes the name even when an object is there
    // already (same bytes, or it mends a damaged one).
    return ops.Rename(p.temp, p.final_path.string());
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
}

// Names the objects of PENDING on several threads, and sets DONE[i] for each
// one named. Stops at the first failure and returns it.
Status NameInParallel(std::vector<ObjectCache::Pending>& pending, FileOps& ops,
                      std::vector<char>& done) {
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  Status first;
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < pending.size();) {
      if (int err = NameObject(pending[i], ops)) {
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
  return first;
}

}  // namespace

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

  // Named on all cores: with many small files this is most of the cost.
  std::vector<char> done(pending.size(), 0);
  Status first = NameInParallel(pending, ops(), done);
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

}  // namespace cmf::data
