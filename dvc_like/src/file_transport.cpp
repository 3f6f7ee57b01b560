// The file transport: a remote object store on a mounted file system (a path
// or a file:// URL), such as a parallel file system at the datacenter.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "cmf/data/fault.h"
#include "cmf/data/file_ops.h"
#include "cmf/data/hash.h"
#include "cmf/data/transport.h"

namespace fs = std::filesystem;

namespace cmf::data {
namespace {

Status Errno(const std::string& what, int err) {
  return Status::IOError(what + ": " + std::strerror(err));
}

// Copies all of SRC into DST (both open), in the kernel where it can.
Status CopyFd(int src, int dst, const std::string& what, Progress* progress) {
  for (;;) {
    ssize_t n = ::copy_file_range(src, nullptr, dst, nullptr, 16 << 20, 0);
    if (n == 0) return Status::Ok();
    if (n > 0) {
      if (progress) progress->Add(0, static_cast<std::uint64_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS &&
        errno != EOPNOTSUPP) {
      return Errno(what, errno);
    }
    break;  // this pair of file systems cannot: copy by hand
  }
  std::vector<char> buffer(1 << 20);
  for (;;) {
    ssize_t n = ::read(src, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno(what, errno);
    if (n == 0) return Status::Ok();
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::write(dst, buffer.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return Errno(what, errno);
      done += w;
    }
    if (progress) progress->Add(0, static_cast<std::uint64_t>(n));
  }
}

class FileTransport : public ObjectTransport {
 public:
  FileTransport(std::string url, fs::path root)
      : url_(std::move(url)), root_(std::move(root)) {}

  std::string Describe() const override { return url_; }

  fs::path PathOf(const std::string& hash) const {
    return root_ / "sha256" / hash.substr(0, 2) / hash.substr(2);
  }

  Result<bool> Has(const std::string& hash) override {
    struct stat st {};
    if (::stat(PathOf(hash).c_str(), &st) == 0) return S_ISREG(st.st_mode);
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return Errno("cannot read '" + PathOf(hash).string() + "'", errno);
  }

  Status Put(std::span<const PutItem> items, Progress* progress,
             std::vector<std::string>* damaged) override {
    if (items.empty()) return Status::Ok();
    fs::path tmp = root_ / "tmp";
    std::error_code ec;
    fs::create_directories(tmp, ec);
    if (ec) {
      return Status::IOError("cannot write to '" + tmp.string() +
                             "': " + ec.message());
    }
    // Copy everything under temporary names on all cores, flush the file
    // system once, then name each object (and flush again for the names).
    // A copy whose bytes do not match its name is dropped before that. An
    // error anywhere drops every temporary (AtomicFile's destructor).
    std::vector<std::optional<AtomicFile>> copies(items.size());
    std::vector<char> bad(items.size(), 0);
    std::atomic<std::size_t> next{0};
    std::mutex mutex;
    Status failed;
    auto worker = [&] {
      for (std::size_t i; (i = next.fetch_add(1)) < items.size();) {
        {
          std::lock_guard<std::mutex> lock(mutex);
          if (!failed.ok()) return;
        }
        Status st = CopyOne(items[i], tmp, &copies[i], progress);
        if (st.ok()) {
          Result<std::string> actual = HashFile(copies[i]->temp_path());
          st = actual.status();
          if (actual.ok() && *actual != items[i].hash) {
            copies[i].reset();
            bad[i] = 1;
          }
        }
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(mutex);
          if (failed.ok()) failed = st;
        }
      }
    };
    unsigned threads = std::min<std::size_t>(
        items.size(), std::max(2u, std::thread::hardware_concurrency()));
    std::vector<std::thread> pool;
    for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (auto& t : pool) t.join();
    if (!failed.ok()) return failed;
    CMF_RETURN_IF_ERROR(SyncFs(tmp));
    CrashPoint("put:renamed-none");
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (bad[i]) {
        if (damaged) damaged->push_back(items[i].hash);
        continue;
      }
      // The rename replaces what is there: a copy whose bytes were wrong too.
      fs::create_directories(copies[i]->path().parent_path(), ec);
      CMF_RETURN_IF_ERROR(copies[i]->Commit());
    }
    return SyncFs(tmp);
  }

  Status Get(const std::string& hash, int fd, Progress* progress) override {
    fs::path path = PathOf(hash);
    int src = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (src < 0) {
      if (errno == ENOENT) {
        return Status::NotFound("'" + url_ + "' has no object " + hash);
      }
      return Errno("cannot read '" + path.string() + "'", errno);
    }
    Status st =
        CopyFd(src, fd, "cannot copy '" + path.string() + "'", progress);
    ::close(src);
    return st;
  }

  Result<bool> Verify(const std::string& hash) override {
    Result<std::string> actual = HashFile(PathOf(hash));
    if (!actual.ok() && actual.status().code() == Code::kNotFound) {
      return Status::NotFound("'" + url_ + "' has no object " + hash);
    }
    CMF_RETURN_IF_ERROR(actual.status());
    return *actual == hash;
  }

  Result<std::string> ReadSmall(const std::string& name) override {
    std::ifstream in(root_ / name);
    if (!in) {
      return Status::NotFound("'" + url_ + "' has no " + name);
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  Result<std::string> CreateSmall(const std::string& name,
                                  const std::string& content) override {
    std::error_code ec;
    fs::create_directories(root_ / "tmp", ec);
    AtomicFile::Options options;
    options.mode = 0444;
    options.temp_dir = root_ / "tmp";
    CMF_ASSIGN_OR_RETURN(AtomicFile file,
                         AtomicFile::Create(root_ / name, options));
    CMF_RETURN_IF_ERROR(file.Write(content));
    // A new name only: whoever names it first names the store.
    Status made = file.CommitNew();
    if (!made.ok() && made.code() != Code::kAlreadyExists) return made;
    return ReadSmall(name);
  }

  Result<bool> HasFolder(const std::string& relative) override {
    std::error_code ec;
    return fs::is_directory(root_ / relative, ec);
  }

 private:
  // Copies ITEM into a new temporary under TMP, named for its object but
  // not renamed: each is renamed once all are flushed (so not flushed one by
  // one here).
  Status CopyOne(const PutItem& item, const fs::path& tmp,
                 std::optional<AtomicFile>* copy, Progress* progress) {
    int src = ::open(item.source.c_str(), O_RDONLY | O_CLOEXEC);
    if (src < 0) {
      return Errno("cannot read '" + item.source.string() + "'", errno);
    }
    AtomicFile::Options options;
    options.mode = 0444;
    options.durability = Durability::kAtomic;
    options.temp_dir = tmp;
    Result<AtomicFile> made = AtomicFile::Create(PathOf(item.hash), options);
    if (!made.ok()) {
      ::close(src);
      return made.status();
    }
    copy->emplace(std::move(made).value());
    Status st =
        CopyFd(src, (*copy)->fd(), "cannot copy to '" + url_ + "'", progress);
    ::close(src);
    if (progress) progress->Add(1, 0);
    return st;
  }

  Status SyncFs(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("cannot open '" + dir.string() + "'", errno);
    int rc = ::syncfs(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return Errno("cannot flush '" + dir.string() + "'", err);
    return Status::Ok();
  }

  std::string url_;
  fs::path root_;
};

}  // namespace

Result<std::unique_ptr<ObjectTransport>> OpenFileTransport(
    const std::string& url) {
  fs::path root = FileUrlPath(url);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return Status::NotFound("the object store '" + url +
                            "' does not exist (or is not a folder)");
  }
  return std::unique_ptr<ObjectTransport>(new FileTransport(url, root));
}

}  // namespace cmf::data
