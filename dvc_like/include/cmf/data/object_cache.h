// The content-addressed object cache: .cmf/objects/sha256/ab/cdef...
//
// An object is a file named by the SHA-256 of its content. Objects are
// read-only (mode 0444) and are written atomically: bytes go to a temporary
// file under objects/tmp/, are flushed to disk, and are renamed into place, so
// a reader never sees a partial object and an interrupted write leaves at most
// a stray temporary file (never a file under a hash name).
//
// A directory is stored as a manifest object (doc/formats.md): a header line,
// then one line per regular file below it, sorted by path, with mode, size,
// hash and path. Its hash is the hash of the manifest, so it changes whenever
// any file below it changes.
//
// An ObjectCache holds only its root path and a FileOps; it is safe to use from
// several threads and several processes at once (the same object written twice
// is written once, by rename).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "cmf/status.h"

namespace cmf::data {

// The few file-system calls through which objects are written: a seam for tests
// that need a write that fails halfway, a full disk or a rename that never
// happens. Each returns 0 or an errno value.
class FileOps {
 public:
  virtual ~FileOps() = default;
  virtual int Write(int fd, const void* data, std::size_t size);
  virtual int Fsync(int fd);
  virtual int Rename(const std::string& from, const std::string& to);

  // The real calls, shared by every cache that is given no other.
  static std::shared_ptr<FileOps> Real();
};

// What a path's content is, once hashed.
struct ObjectInfo {
  std::string hash;  // 64 lowercase hex digits
  std::uint64_t size =
      0;  // bytes of a file; for a directory the sum of its files' sizes
  bool is_directory = false;
};

class ObjectCache {
 public:
  // ROOT is the objects/ folder; it need not exist until the first write.
  explicit ObjectCache(std::filesystem::path root,
                       std::shared_ptr<FileOps> ops = FileOps::Real());

  const std::filesystem::path& root() const { return root_; }

  // Where the object HASH lives (whether or not it is there).
  std::filesystem::path PathOf(const std::string& hash) const;

  // True when the object HASH is in the cache.
  bool Has(const std::string& hash) const;

  // Hashes the file or directory at PATH without storing it. NotFound when PATH
  // does not exist; IOError when it cannot be read, changes while it is read,
  // or holds a file of a kind other than regular file or directory.
  Result<ObjectInfo> Hash(const std::filesystem::path& path) const;

  // Hashes the file or directory at PATH and stores its content (for a
  // directory: every file and the manifest). Reads each file once. Errors as
  // Hash, plus IOError when the cache cannot be written; on error no object is
  // left half-written.
  Result<ObjectInfo> Store(const std::filesystem::path& path) const;

 private:
  Result<ObjectInfo> HashOrStore(const std::filesystem::path& path,
                                 bool store) const;
  Result<ObjectInfo> FileObject(const std::filesystem::path& path,
                                bool store) const;
  Result<ObjectInfo> DirectoryObject(const std::filesystem::path& path,
                                     bool store) const;
  Status PutBytes(const std::string& hash, const std::string& bytes) const;

  std::filesystem::path root_;
  std::shared_ptr<FileOps> ops_;
};

}  // namespace cmf::data
