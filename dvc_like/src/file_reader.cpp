#include "file_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace cmf::data {
namespace {

constexpr std::size_t kBlockSize =
    1 << 20;  // one read per MiB (64 KiB to 1 MiB measured alike)

bool SameVersion(const struct stat& a, const struct stat& b) {
  return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
         a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ino == b.st_ino;
}

}  // namespace

Status ReadFileInBlocks(
    const std::filesystem::path& path,
    const std::function<Status(const char*, std::size_t)>& sink) {
  const std::string name = path.string();
  int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR)
      return Status::NotFound("no such file '" + name + "'");
    return Status::IOError("cannot read '" + name + "': " + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  struct stat before {};
  if (::fstat(fd, &before) != 0) {
    return Status::IOError("cannot stat '" + name +
                           "': " + std::strerror(errno));
  }
  if (!S_ISREG(before.st_mode))
    return Status::IOError("'" + name + "' is not a regular file");
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);

  std::unique_ptr<char[]> buffer(new char[kBlockSize]);
  for (;;) {
    ssize_t n = ::read(fd, buffer.get(), kBlockSize);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IOError("cannot read '" + name +
                             "': " + std::strerror(errno));
    }
    if (n == 0) break;
    CMF_RETURN_IF_ERROR(sink(buffer.get(), static_cast<std::size_t>(n)));
  }

  struct stat after {};
  if (::fstat(fd, &after) != 0 || !SameVersion(before, after)) {
    return Status::IOError("'" + name + "' changed while it was read");
  }
  return Status::Ok();
}

}  // namespace cmf::data
