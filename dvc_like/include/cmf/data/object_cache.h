// The content-addressed object cache: .cmf/objects/sha256/ab/cdef...
//
// An object is a file named by the SHA-256 of its content. Objects are
// read-only (mode 0444) and are written atomically: bytes go to a temporary
// file under objects/tmp/, are flushed to disk, and are renamed into place, so
// a reader never sees a partial object and an interrupted write leaves at most
// a stray temporary file (never a file under a hash name).
//
// A file enters the cache by one of four link strategies, tried in the order
// the caller gives until one works on this file system (doc/formats.md):
// reflink (a copy-on-write clone, FICLONE), hardlink (the workspace file and
// the object share one read-only inode), symlink (the file moves into the
// cache and a symbolic link takes its place), copy (the bytes are copied).
//
// A directory is stored as a manifest object (cmf/data/scan.h).
//
// An ObjectCache holds only its root path and a FileOps; it is safe to use from
// several threads and several processes at once (the same object written twice
// is written once, by rename).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/data/file_ops.h"
#include "cmf/data/file_stat.h"
#include "cmf/status.h"

namespace cmf::data {

enum class LinkMode { kReflink, kHardlink, kSymlink, kCopy };

// "reflink", "hardlink", "symlink", "copy".
std::string_view ToString(LinkMode mode);

// Parses config cache.link: "auto" (reflink, then hardlink, then copy) or a
// comma-separated list of modes tried in that order. InvalidArgument for
// anything else.
Result<std::vector<LinkMode>> ParseLinkOrder(std::string_view text);

// What a path's content is, once hashed.
struct ObjectInfo {
  std::string hash;  // 64 lowercase hex digits
  std::uint64_t size =
      0;  // bytes of a file; for a directory the sum of its files
  bool is_directory = false;
};

// How long a file under tmp/ must have gone unwritten before it counts as left
// behind by a command that was killed (and `cmf gc` removes it). A command that
// is still running writes its temporary files as it goes and names them soon
// after; a day leaves room for the slowest push of many large objects.
inline constexpr std::chrono::seconds kStaleTemporaryAge =
    std::chrono::hours(24);

// A file under an object store's tmp/ folder.
struct Temporary {
  std::string name;  // relative to the store's root: "tmp/obj-Ab12Cd"
  std::uint64_t size = 0;
};

// The regular files under ROOT/tmp/ (ROOT: a cache's or a remote store's
// objects/ folder) whose last modification is at least MIN_AGE old, sorted by
// name. Empty when there is no tmp/. IOError when it cannot be listed.
Result<std::vector<Temporary>> StaleTemporaries(
    const std::filesystem::path& root,
    std::chrono::seconds min_age = kStaleTemporaryAge);

// Removes ROOT/NAME (from StaleTemporaries) when it is still at least MIN_AGE
// old; one written meanwhile is kept. Returns whether it was removed; IOError
// when it cannot be.
Result<bool> RemoveTemporary(const std::filesystem::path& root,
                             const Temporary& temporary,
                             std::chrono::seconds min_age = kStaleTemporaryAge);

class ObjectCache {
 public:
  // ROOT is the objects/ folder; it need not exist until the first write.
  // OPS: the calls that write objects; null, FileOps::Default() at each write.
  explicit ObjectCache(std::filesystem::path root,
                       std::shared_ptr<FileOps> ops = nullptr);
  ~ObjectCache();
  ObjectCache(const ObjectCache&) = delete;
  ObjectCache& operator=(const ObjectCache&) = delete;

  const std::filesystem::path& root() const { return root_; }

  // Creates objects/sha256/00 to ff. A cache where they exist never creates a
  // folder while it names objects (where it would: folders are created one
  // by one, before objects are named in parallel).
  Status CreateFolders() const;

  // Where the object HASH lives (whether or not it is there).
  std::filesystem::path PathOf(const std::string& hash) const;

  // True when the object HASH is in the cache.
  bool Has(const std::string& hash) const;

  // Stores the regular file at PATH by the first strategy of ORDER that works
  // and returns its hash and the strategy used. With kHardlink the file becomes
  // read-only (it is the object); with kSymlink it is replaced by a link to the
  // object. When the object exists already, a hardlinked or symlinked PATH is
  // relinked to it. A file that is not PATH's alone (PATH is a symbolic link,
  // or its inode has another name that is not its object: a hard link from
  // elsewhere) is never linked, replaced or made read-only: kHardlink and
  // kSymlink copy it instead. IOError as Store, or when PATH changed while it
  // was stored.
  struct Stored {
    std::string hash;
    std::uint64_t size = 0;
    LinkMode mode = LinkMode::kCopy;
  };
  Result<Stored> StoreFile(const std::filesystem::path& path,
                           std::span<const LinkMode> order) const;

  // An object prepared but not yet visible under its name (see StoreFile's
  // second form).
  struct Pending {
    std::string temp;  // under tmp/, complete and read-only;
                       // empty: the source itself (hardlink, symlink)
    std::filesystem::path final_path;
    std::filesystem::path source;  // the workspace file it came from
    LinkMode mode = LinkMode::kCopy;
    std::uint64_t size = 0;  // the source as hashed (hardlink, symlink)
    std::int64_t mtime_ns = 0;
    bool executable = false;  // the source's owner may execute it
    // Set by Publish for a source that became the object (hardlink,
    // symlink): its ctime once it had the object's name (StatCache::Known).
    std::int64_t linked_ctime_ns = 0;
  };

  // As StoreFile, for many files at once: prepares the object and appends it
  // to PENDING (which must then go to Publish or Discard) instead of
  // publishing it, so that one flush of the file system covers them all.
  // Thread-safe when each thread has its own PENDING.
  Result<Stored> StoreFile(const std::filesystem::path& path,
                           std::span<const LinkMode> order,
                           std::vector<Pending>* pending) const;

  // What a caller that listed a file knows of it already, so that storing it
  // need not ask the file system again: how stat(2) saw it (through links),
  // whether its owner may execute it, whether the path is a symbolic link, and
  // whether it was reached through a symbolic link to a folder.
  struct Listed {
    FileStat stat;
    bool executable = false;
    bool is_link = false;
    // Reached through a link to a folder (perhaps outside the workspace): its
    // bytes are copied, as a link's are; the file is never linked or chmod'ed.
    bool behind_link = false;
    std::uint64_t links = 1;  // st_nlink: more than one, it may be shared
  };

  // As the form above, for a regular file listed as LISTED: IOError ("changed
  // while it was read") when the file no longer looks like that.
  Result<Stored> StoreFile(const std::filesystem::path& path,
                           std::span<const LinkMode> order,
                           std::vector<Pending>* pending,
                           const Listed& listed) const;

  // Flushes the file system once, then gives every pending object its name
  // (or, when that object exists already, relinks a hard- or symlinked source
  // to it), then flushes again. Empties PENDING; on error the objects not yet
  // published are discarded. MEANWHILE, when given, runs on the calling thread
  // during the last flush (work that need not wait for the names to be on
  // disk), once every object has its name and before PENDING is emptied (it
  // may read their linked_ctime_ns); its error is returned when naming
  // succeeded.
  Status Publish(std::vector<Pending>& pending,
                 const std::function<Status()>& meanwhile = {}) const;

  // Drops pending objects; their sources are left as they were.
  void Discard(std::vector<Pending>& pending) const;

  // Stores BYTES as an object and returns its hash.
  Result<std::string> PutBytes(std::string_view bytes) const;

  // As PutBytes, but prepares the object and appends it to PENDING (for
  // Publish), like StoreFile's batch forms.
  Result<std::string> PutBytes(std::string_view bytes,
                               std::vector<Pending>* pending) const;

  // Stores an object that arrives from elsewhere: FILL writes its bytes to the
  // open temporary file it is given; they are hashed, and enter the cache under
  // HASH only when they match it. Corruption (and nothing stored) when they do
  // not. Does nothing when the object is there already.
  Status Import(const std::string& hash,
                const std::function<Status(int fd)>& fill) const;

  // The bytes of object HASH. NotFound when it is not in the cache.
  Result<std::string> ReadObject(const std::string& hash) const;

  // Places the content of object HASH at DEST (replacing a file there) by the
  // first strategy of ORDER that works; a copy is writable, a hardlink is
  // read-only. Parent folders are created. NotFound when the object is missing.
  Status Materialize(const std::string& hash, const std::filesystem::path& dest,
                     std::span<const LinkMode> order) const;

  // Re-hashes object HASH: true when its content matches its name. NotFound
  // when it is missing.
  Result<bool> Verify(const std::string& hash) const;

  // Calls SINK for every object in the cache (hash and size), in no particular
  // order; stops at SINK's first error.
  Status ForEach(const std::function<Status(const std::string&, std::uint64_t)>&
                     sink) const;

  // Deletes object HASH. NotFound when it is not there.
  Status Remove(const std::string& hash) const;

 private:
  std::filesystem::path root_;
  std::shared_ptr<FileOps> ops_;
  FileOps& ops() const { return ops_ ? *ops_ : FileOps::Default(); }
  // The device of the cache's file system (hard links must stay on it), looked
  // up once; and which of the 256 folders objects/sha256/XX/ are known to
  // exist, so that naming an object creates its folder at most once.
  std::uint64_t CacheDevice() const;
  // Returns 0 or an errno value.
  int EnsureFolder(const std::filesystem::path& folder,
                   unsigned char prefix) const;
  // Flushes the cache's file system (syncfs); returns 0 or an errno value.
  int SyncCacheFs() const;
  // Whether the file that looks like STAT is object HASH itself (its inode).
  bool IsObjectInode(const std::string& hash, const FileStat& stat) const;
  // Marks the folders that exist, from one listing of objects/sha256/.
  void LearnFolders() const;
  // Before naming PENDING: checks that sources published in place did not
  // change, and makes the folders the objects go to.
  Status PrepareNames(const std::vector<Pending>& pending) const;

  // Set once a clone failed because this file system cannot make one, so that
  // later files skip straight to the next strategy.
  mutable std::atomic<bool> no_reflink_{false};
  mutable std::atomic<std::int64_t> cache_device_{-1};
  mutable std::atomic<std::uint64_t> folders_[4] = {};
  mutable std::atomic<bool> folders_learned_{false};
  // objects/sha256/, open for Has once it exists (-1 until then).
  mutable std::atomic<int> sha256_fd_{-1};
};

}  // namespace cmf::data
