// Writing a file whole, and locking one: the two ways cmf touches shared files.
//
// Every file cmf replaces (config, workspace files, exports, side files of the
// store, objects, slices) is written by AtomicFile: a new temporary file beside
// it, written, flushed to disk, renamed over the old name, and the folder
// flushed. A reader sees the old bytes or the new, never a part; a killed
// process or a full disk leaves the old file as it was; once Commit returns, a
// power cut loses nothing. Every lock cmf takes on a file is a FileLock
// (flock(2): released by the kernel when its holder dies, so a killed process
// never leaves a lock behind).
//
// Both go through FileOps, the seam through which tests make a call fail (a
// full disk, a read-only folder, an fsync that reports EIO, a rename that never
// happens) for every caller at once.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cmf/status.h"

namespace cmf::data {

// The file-system calls through which files are written and locked. Each
// returns 0 (a descriptor, for Open) or an errno value (negated, for Open).
// Calls retry EINTR themselves.
class FileOps {
 public:
  virtual ~FileOps() = default;
  virtual int Write(int fd, const void* data, std::size_t size);
  // Flushes a file, or a folder's entries (FD open on the folder).
  virtual int Fsync(int fd);
  // Flushes the whole file system that FD lies on (syncfs).
  virtual int SyncFs(int fd);
  virtual int Rename(const std::string& from, const std::string& to);
  // open(2) with O_CLOEXEC added; returns the descriptor or -errno.
  virtual int Open(const std::string& path, int flags, mode_t mode);
  // flock(2), waiting while OPERATION has no LOCK_NB.
  virtual int Lock(int fd, int operation);
  // Called when a file that is being hashed has been opened, before its bytes
  // are read; does nothing. Tests change the file at exactly that moment.
  virtual void AfterOpen(const std::string& path);

  // The real calls, shared by everything that is given no other.
  static std::shared_ptr<FileOps> Real();
  // What the helpers below use when they are given no FileOps: the real calls,
  // unless a test has put others in their place (ScopedDefaultFileOps).
  static FileOps& Default();
};

// Where a finished file's bytes must be before it takes its name.
enum class Durability {
  // The file is flushed before the rename and the folder after it: once Commit
  // returns, a power cut loses nothing.
  kDurable,
  // Renamed only: a killed process never leaves a part, a power cut may lose
  // the change. For files that can be made again (a workspace copy of an
  // object, a cache) and for a batch whose caller flushes the file system once
  // for all of them (syncfs) before naming them.
  kAtomic,
};

// A file being written under a temporary name, which takes its final name
// only at Commit. Destroying it uncommitted removes the temporary, so every
// error path leaves the final name as it was.
class AtomicFile {
 public:
  struct Options {
    // The file's permission bits; none: what creat(2) gives (0666 less the
    // umask).
    std::optional<mode_t> mode;
    Durability durability = Durability::kDurable;
    // The folder of the temporary (on the file system of PATH); empty: beside
    // PATH, as "NAME.cmf-XXXXXX" (NAME cut to its first 200 bytes).
    std::filesystem::path temp_dir;
    // The calls to make; null: FileOps::Default().
    FileOps* ops = nullptr;
  };

  // Creates the temporary that will become PATH (its folder must exist).
  static Result<AtomicFile> Create(const std::filesystem::path& path);
  static Result<AtomicFile> Create(const std::filesystem::path& path,
                                   const Options& options);

  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  Status Write(std::string_view bytes);
  // The open temporary, for writers of their own (copy_file_range, a clone).
  int fd() const { return fd_; }
  // Its name, for a library that writes by name (HDF5): it opens and
  // truncates the same file, and Commit flushes what it wrote once it has
  // closed it.
  const std::string& temp_path() const { return temp_; }
  const std::filesystem::path& path() const { return path_; }

  // Flushes (kDurable), renames over PATH, flushes PATH's folder (kDurable).
  Status Commit();
  // As Commit, to FINAL_PATH instead of the path given to Create (a file
  // whose name depends on its bytes: an object).
  Status Commit(const std::filesystem::path& final_path);
  // As Commit, but PATH is created only where nothing is there (link(2), never
  // a replacement): AlreadyExists otherwise, and the temporary is removed.
  Status CommitNew();
  // Gives up the temporary without naming it: it is no longer removed and its
  // name is returned (a batch that names its files itself).
  std::string Release();

 private:
  AtomicFile(std::filesystem::path path, std::string temp, int fd,
             const Options& options);
  Status Flush();
  Status FlushFolder();
  Status Fail(std::string_view what, int err) const;
  FileOps& ops() const;

  std::filesystem::path path_;
  std::string temp_;
  int fd_ = -1;
  Options options_;
};

// Writes BYTES as the whole new content of PATH (an AtomicFile).
Status WriteFileAtomically(const std::filesystem::path& path,
                           std::string_view bytes,
                           const AtomicFile::Options& options = {});

// Flushes the entries of the folder DIR (new names, removals) to disk.
Status FsyncFolder(const std::filesystem::path& dir, FileOps* ops = nullptr);

// An flock(2) on a file, held until the object is destroyed. The kernel drops
// it when its holder dies, so a lock is never stale.
class FileLock {
 public:
  enum class Kind { kShared, kExclusive };

  // Opens PATH (created, 0644, when absent) and locks it, waiting while
  // another process holds a lock that conflicts.
  static Result<FileLock> Acquire(const std::filesystem::path& path,
                                  Kind kind = Kind::kExclusive,
                                  FileOps* ops = nullptr);
  // As Acquire, for a lock file in a folder shared by a group (a remote):
  // opened read-only when it exists (anyone who can read a file may lock it),
  // created group-writable, and nullopt (no lock) where the file system
  // cannot lock or the folder cannot be written, for callers that stay safe
  // without one.
  static Result<std::optional<FileLock>> AcquireIfSupported(
      const std::filesystem::path& path, FileOps* ops = nullptr);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  // The locked file's descriptor (a lock file may also hold a few bytes).
  int fd() const { return fd_; }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// For tests: makes OPS the FileOps that FileOps::Default() returns while this
// object lives (one at a time; not for use while other threads write files).
class ScopedDefaultFileOps {
 public:
  explicit ScopedDefaultFileOps(FileOps& ops);
  ~ScopedDefaultFileOps();
  ScopedDefaultFileOps(const ScopedDefaultFileOps&) = delete;
  ScopedDefaultFileOps& operator=(const ScopedDefaultFileOps&) = delete;

 private:
  FileOps* previous_;
};

}  // namespace cmf::data
