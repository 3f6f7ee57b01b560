// Scanning a file or a directory tree: what its content is, by hash, read at
// disk speed.
//
// Scan stats every file, takes the hash of each unchanged file from a stat
// cache (path, device, inode, size, mtime -> hash), hashes the rest in
// parallel on all cores in large blocks, and optionally stores them in the
// object cache. A directory's hash is the hash of its manifest:
//
//   cmf-manifest 1
//   100644 3 2d71...e5 sub/y.txt
//
// one line per regular file, sorted by path: mode (100755 when the owner may
// execute it), size, SHA-256 and the path relative to the directory
// (doc/formats.md; "cmf-manifest 2", with escaped paths, when a path holds a
// line break). Nested .cmf folders are skipped. Symbolic links are followed;
// when storing, what a link leads to is copied (or cloned), never linked into
// the cache, replaced or made read-only: it may lie outside the workspace.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/data/file_stat.h"
#include "cmf/data/object_cache.h"
#include "cmf/data/progress.h"
#include "cmf/status.h"

namespace cmf::data {

// Remembers files' hashes by their FileStat. Scan calls Lookup from several
// threads at once (and nothing else meanwhile), the rest from the calling
// thread only.
class StatCache {
 public:
  virtual ~StatCache() = default;
  // Called once per scan before any Lookup, with the absolute path scanned: a
  // chance to load the entries under it in one go.
  virtual void Prefetch(const std::filesystem::path& root) { (void)root; }
  // What is known of a file.
  struct Known {
    std::string hash;
    // The file's ctime (ns) just after it became the cached object itself
    // (its inode linked, or symbolically linked, under the object's name);
    // 0 when it never was. While the file's ctime is still this, its inode
    // has gained and lost no name (link, unlink and rename all set ctime), so
    // the object is still there: a scan need not look it up.
    std::int64_t object_ctime_ns = 0;
  };
  // What is remembered for the absolute PATH if it still looks like STAT.
  virtual std::optional<Known> Lookup(const std::string& path,
                                      const FileStat& stat) = 0;
  virtual void Remember(const std::string& path, const FileStat& stat,
                        const Known& known) = 0;
  // Called once at the end of a scan that succeeded: persist what was
  // remembered.
  virtual Status Flush() { return Status::Ok(); }
};

struct ScanOptions {
  StatCache* stat_cache = nullptr;  // none: hash everything
  bool store = false;               // also store the content in the cache
  std::vector<LinkMode> link_order = {LinkMode::kCopy};  // when storing
  unsigned threads = 0;                                  // 0: one per core
  Progress* progress = nullptr;  // told of every file and byte read
};

struct ScannedFile {
  std::string path;  // relative to the directory, '/'-separated ("" for a file)
  std::uint64_t size = 0;
  bool executable = false;
  std::string hash;
};

struct ScanResult {
  ObjectInfo info;
  std::vector<ScannedFile> files;  // sorted by path; one entry for a file
  std::uint64_t hashed_files =
      0;  // read this time, not taken from the stat cache
  std::uint64_t hashed_bytes = 0;
};

// Scans the file or directory at PATH. NotFound when it does not exist;
// IOError when something cannot be read, changes while it is read, or is
// neither a regular file nor a directory. When storing, errors of the cache as
// ObjectCache::StoreFile.
Result<ScanResult> Scan(const ObjectCache& cache,
                        const std::filesystem::path& path,
                        const ScanOptions& options);

// Scans several paths at once, as Scan does each: one pool of threads for all
// their files and, when storing, one flush of the file system before any
// object is named. The results are in the order of PATHS. Fails (storing
// nothing) at the first path or file that Scan would fail at.
Result<std::vector<ScanResult>> ScanMany(
    const ObjectCache& cache, std::span<const std::filesystem::path> paths,
    const ScanOptions& options);

// The manifest text of FILES (already sorted by path).
std::string BuildManifest(const std::vector<ScannedFile>& files);

// The files a manifest lists. Corruption when TEXT is not a manifest.
Result<std::vector<ScannedFile>> ParseManifest(std::string_view text);

// Hashes the file or directory at PATH without storing it (Scan without
// options). NotFound when PATH does not exist; IOError when it cannot be read,
// changes while it is read, or holds a file of a kind other than regular file
// or directory.
Result<ObjectInfo> HashPath(const ObjectCache& cache,
                            const std::filesystem::path& path);

// Hashes the file or directory at PATH and stores its content in CACHE,
// copying (or reflinking) so that PATH is left as it was. Errors as HashPath,
// plus IOError when the cache cannot be written; on error no object is left
// half-written.
Result<ObjectInfo> StorePath(const ObjectCache& cache,
                             const std::filesystem::path& path);

}  // namespace cmf::data
