#include "file_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "cmf/data/file_ops.h"
#include "cmf/data/sha256.h"

namespace cmf::data {

namespace {

// One read per 256 KiB: the block stays in the core's L2 cache between the
// kernel's copy and the hash (64 KiB to 1 MiB measure within 3 %).
constexpr std::size_t kBlockSize = 256 << 10;

// Above this size the kernel is told that the file is read from start to end.
// Every file is read into a buffer, never mapped: on the virtual machines this
// runs on, a page fault costs more than copying its 4 KiB (a 96 MiB file in
// the page cache hashed at 670 MB/s through a mapping, at 1,170 MB/s read in
// 256 KiB blocks; doc/performance.md).
constexpr std::uint64_t kLargeFile = 1 << 20;

bool SameVersion(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ino == b.st_ino;
}

// Each thread reads into a buffer of its own, allocated once; a read nested
// in another's sink gets a buffer of its own.
class BlockBuffer {
 public:
  BlockBuffer() {
    thread_local std::unique_ptr<char[]> shared(new char[kBlockSize]);
    thread_local bool in_use = false;
    if (!in_use) {
      in_use_ = &in_use;
      in_use = true;
      data_ = shared.get();
    } else {
      own_.reset(new char[kBlockSize]);
      data_ = own_.get();
    }
  }
  ~BlockBuffer() {
    if (in_use_ != nullptr) *in_use_ = false;
  }
  BlockBuffer(const BlockBuffer&) = delete;
  BlockBuffer& operator=(const BlockBuffer&) = delete;
  char* data() const { return data_; }

 private:
  bool* in_use_ = nullptr;
  std::unique_ptr<char[]> own_;
  char* data_ = nullptr;
};

// A file opened for reading, checked to be a regular file (and, when the
// caller listed it, still the file it listed).
class OpenFile {
 public:
  ~OpenFile() {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Open(const std::string& name, const FileStat* expected) {
    name_ = name;
    fd_ = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      int err = errno;
      if (err == ENOENT || err == ENOTDIR)
        return Status::NotFound("no such file '" + name + "'");
      return Status::IOError("cannot read '" + name +
                             "': " + std::strerror(err));
    }
    if (::fstat(fd_, &before_) != 0) {
      return Status::IOError("cannot stat '" + name +
                             "': " + std::strerror(errno));
    }
    if (!S_ISREG(before_.st_mode))
      return Status::IOError("'" + name + "' is not a regular file");
    if (expected != nullptr && !(ToFileStat(before_) == *expected))
      return Changed();
    if (size() > kLargeFile) ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
    return Status::Ok();
  }

  // Reads the file up to the size it had when opened; a file that grows or
  // shrinks meanwhile fails Finish (its size or mtime differs).
  Status Read(const std::function<Status(const char*, std::size_t)>& sink) {
    BlockBuffer block;
    char* buffer = block.data();
    for (std::uint64_t done = 0; done < size();) {
      ssize_t n = ::read(fd_, buffer, kBlockSize);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Status::IOError("cannot read '" + name_ +
                               "': " + std::strerror(errno));
      }
      if (n == 0) break;
      done += static_cast<std::uint64_t>(n);
      CMF_RETURN_IF_ERROR(sink(buffer, static_cast<std::size_t>(n)));
    }
    return Status::Ok();
  }

  // Checks that the file still looks as it did when opened.
  Status Finish() const {
    struct stat after {};
    if (::fstat(fd_, &after) != 0 || !SameVersion(before_, after))
      return Changed();
    return Status::Ok();
  }

  Status Changed() const {
    return Status::IOError("'" + name_ + "' changed while it was read");
  }

  const std::string& name() const { return name_; }
  std::uint64_t size() const {
    return static_cast<std::uint64_t>(before_.st_size);
  }

 private:
  std::string name_;
  int fd_ = -1;
  struct stat before_ {};
};

}  // namespace

Status ReadFileInBlocks(
    const std::filesystem::path& path,
    const std::function<Status(const char*, std::size_t)>& sink) {
  return ReadFileInBlocks(path, sink, nullptr);
}

Status ReadFileInBlocks(
    const std::filesystem::path& path,
    const std::function<Status(const char*, std::size_t)>& sink,
    const FileStat* expected) {
  OpenFile file;
  CMF_RETURN_IF_ERROR(file.Open(path.string(), expected));
  CMF_RETURN_IF_ERROR(file.Read(sink));
  return file.Finish();
}

Result<std::string> HashFileContent(const std::filesystem::path& path,
                                    const FileStat* expected) {
  OpenFile file;
  CMF_RETURN_IF_ERROR(file.Open(path.string(), expected));
  FileOps::Default().AfterOpen(file.name());
  Sha256 hasher;
  CMF_RETURN_IF_ERROR(file.Read([&](const char* data, std::size_t n) {
    hasher.Update(data, n);
    return Status::Ok();
  }));
  CMF_RETURN_IF_ERROR(file.Finish());
  return ToHex(hasher.Finish());
}

}  // namespace cmf::data
