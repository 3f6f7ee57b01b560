// AtomicFile and FileLock, and the callers that write through them, under
// injected faults (a full disk, an fsync that fails, a rename that never
// happens, a lock that cannot be taken): each reports the error and leaves the
// old file whole, with no temporary behind.
#include "cmf/data/file_ops.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>

#include "cmf/config.h"
#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "cmf/import.h"
#include "cmf/repo.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
namespace fs = std::filesystem;

namespace {

// Fails the chosen call with ERR and counts what was called.
class Faulty : public data::FileOps {
 public:
  enum class Call {
    kNone,
    kWrite,
    kFsync,
    kFolderFsync,
    kRename,
    kOpen,
    kLock
  };
  explicit Faulty(Call fail = Call::kNone, int err = EIO)
      : fail_(fail), err_(err) {}

  int Write(int fd, const void* data, std::size_t size) override {
    ++writes;
    if (fail_ == Call::kWrite) return err_;
    return FileOps::Write(fd, data, size);
  }
  int Fsync(int fd) override {
    struct stat st {};
    bool folder = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    ++(folder ? folder_fsyncs : file_fsyncs);
    if (fail_ == (folder ? Call::kFolderFsync : Call::kFsync)) return err_;
    return FileOps::Fsync(fd);
  }
  int Rename(const std::string& from, const std::string& to) override {
    ++renames;
    if (fail_ == Call::kRename) return err_;
    return FileOps::Rename(from, to);
  }
  int Open(const std::string& path, int flags, mode_t mode) override {
    if (fail_ == Call::kOpen) return -err_;
    return FileOps::Open(path, flags, mode);
  }
  int Lock(int fd, int operation) override {
    if (fail_ == Call::kLock) return err_;
    return FileOps::Lock(fd, operation);
  }

  int writes = 0, file_fsyncs = 0, folder_fsyncs = 0, renames = 0;

 private:
  Call fail_;
  int err_;
};

// The names in DIR (not recursive).
std::set<std::string> Names(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.insert(e.path().filename().string());
  return out;
}

mode_t ModeOf(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("atomic file: writes, flushes the file and its folder, renames") {
  TempDir dir;
  Faulty ops;
  data::AtomicFile::Options options;
  options.ops = &ops;
  REQUIRE(data::WriteFileAtomically(dir / "f", "first", options).ok());
  CHECK(test::ReadFile(dir / "f") == "first");
  CHECK(ops.file_fsyncs == 1);
  CHECK(ops.folder_fsyncs == 1);
  CHECK(ops.renames == 1);
  REQUIRE(data::WriteFileAtomically(dir / "f", "second, longer", options).ok());
  CHECK(test::ReadFile(dir / "f") == "second, longer");
  CHECK(Names(dir.path()) == std::set<std::string>{"f"});
  // As creat(2) would: 0666 less the umask.
  mode_t mask = ::umask(0);
  ::umask(mask);
  CHECK(ModeOf(dir / "f") == (0666 & ~mask));
}

TEST_CASE("atomic file: kAtomic renames without flushing; a mode is exact") {
  TempDir dir;
  Faulty ops;
  data::AtomicFile::Options options;
  options.ops = &ops;
  options.durability = data::Durability::kAtomic;
  options.mode = 0440;
  REQUIRE(data::WriteFileAtomically(dir / "f", "bytes", options).ok());
  CHECK(ops.file_fsyncs == 0);
  CHECK(ops.folder_fsyncs == 0);
  CHECK(ModeOf(dir / "f") == 0440);
}

TEST_CASE(
    "atomic file: a failed write, flush or rename keeps the old file and "
    "leaves no temporary") {
  for (auto [call, err] : {std::pair{Faulty::Call::kWrite, ENOSPC},
                           std::pair{Faulty::Call::kFsync, EIO},
                           std::pair{Faulty::Call::kRename, EXDEV},
                           std::pair{Faulty::Call::kOpen, EROFS}}) {
    CAPTURE(static_cast<int>(call));
    TempDir dir;
    test::WriteFile(dir / "f", "old");
    Faulty ops(call, err);
    data::AtomicFile::Options options;
    options.ops = &ops;
    Status st = data::WriteFileAtomically(dir / "f", "new", options);
    REQUIRE_FALSE(st.ok());
    CHECK(st.code() == Code::kIOError);
    CHECK(st.message().find((dir / "f").string()) != std::string::npos);
    CHECK(st.message().find(std::strerror(err)) != std::string::npos);
    CHECK(test::ReadFile(dir / "f") == "old");
    CHECK(Names(dir.path()) == std::set<std::string>{"f"});
  }
}

TEST_CASE("atomic file: a folder that cannot be flushed is reported") {
  TempDir dir;
  Faulty ops(Faulty::Call::kFolderFsync, EIO);
  data::AtomicFile::Options options;
  options.ops = &ops;
  Status st = data::WriteFileAtomically(dir / "f", "new", options);
  CHECK(st.code() == Code::kIOError);
  CHECK(st.message().find("cannot flush folder") != std::string::npos);
}

TEST_CASE("atomic file: a name of 255 bytes (the limit) is written too") {
  TempDir dir;
  const std::string name(255, 'n');
  REQUIRE(data::WriteFileAtomically(dir / name, "long").ok());
  CHECK(test::ReadFile(dir / name) == "long");
  CHECK(Names(dir.path()) == std::set<std::string>{name});
}

TEST_CASE("atomic file: dropped uncommitted, nothing remains") {
  TempDir dir;
  {
    Result<data::AtomicFile> f = data::AtomicFile::Create(dir / "f");
    REQUIRE(f.ok());
    REQUIRE(f->Write("half").ok());
    CHECK(fs::exists(f->temp_path()));
    CHECK(fs::path(f->temp_path()).parent_path() == dir.path());
  }
  CHECK(Names(dir.path()).empty());
}

TEST_CASE("atomic file: a library writes by name, Commit names it") {
  TempDir dir;
  Result<data::AtomicFile> f = data::AtomicFile::Create(dir / "out");
  REQUIRE(f.ok());
  test::WriteFile(f->temp_path(), "written by name");  // truncates, rewrites
  REQUIRE(f->Commit().ok());
  CHECK(test::ReadFile(dir / "out") == "written by name");
  CHECK(Names(dir.path()) == std::set<std::string>{"out"});
}

TEST_CASE("atomic file: CommitNew never replaces") {
  TempDir dir;
  REQUIRE(data::WriteFileAtomically(dir / "id", "first").ok());
  {
    Result<data::AtomicFile> f = data::AtomicFile::Create(dir / "id");
    REQUIRE(f.ok());
    REQUIRE(f->Write("second").ok());
    CHECK(f->CommitNew().code() == Code::kAlreadyExists);
    CHECK(test::ReadFile(dir / "id") == "first");
  }
  Result<data::AtomicFile> g = data::AtomicFile::Create(dir / "new");
  REQUIRE(g.ok());
  REQUIRE(g->Write("made").ok());
  REQUIRE(g->CommitNew().ok());
  CHECK(test::ReadFile(dir / "new") == "made");
  CHECK(Names(dir.path()) == std::set<std::string>{"id", "new"});
}

TEST_CASE("file lock: exclusive excludes, shared shares, release on drop") {
  TempDir dir;
  const fs::path path = dir / "lock";
  // Another open file description, as another process would have.
  auto try_lock = [&](int op) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    bool got = ::flock(fd, op | LOCK_NB) == 0;
    ::close(fd);
    return got;
  };
  {
    Result<data::FileLock> lock = data::FileLock::Acquire(path);
    REQUIRE(lock.ok());
    CHECK_FALSE(try_lock(LOCK_SH));
  }
  CHECK(try_lock(LOCK_EX));
  {
    Result<data::FileLock> shared =
        data::FileLock::Acquire(path, data::FileLock::Kind::kShared);
    REQUIRE(shared.ok());
    CHECK(try_lock(LOCK_SH));
    CHECK_FALSE(try_lock(LOCK_EX));
  }
}

TEST_CASE("file lock: an open or lock that fails is an IOError") {
  TempDir dir;
  Faulty no_open(Faulty::Call::kOpen, EACCES);
  Result<data::FileLock> a = data::FileLock::Acquire(
      dir / "lock", data::FileLock::Kind::kExclusive, &no_open);
  CHECK(a.status().code() == Code::kIOError);
  CHECK(a.status().message().find("cannot open lock") != std::string::npos);
  Faulty no_lock(Faulty::Call::kLock, ENOLCK);
  Result<data::FileLock> b = data::FileLock::Acquire(
      dir / "lock", data::FileLock::Kind::kExclusive, &no_lock);
  CHECK(b.status().code() == Code::kIOError);
  // Where locks are optional, a file system without them gives no lock.
  Result<std::optional<data::FileLock>> c =
      data::FileLock::AcquireIfSupported(dir / "lock", &no_lock);
  REQUIRE(c.ok());
  CHECK_FALSE(c->has_value());
  Result<std::optional<data::FileLock>> d =
      data::FileLock::AcquireIfSupported(dir / "lock2");
  REQUIRE(d.ok());
  CHECK(d->has_value());
}

// --- the callers, through the default FileOps ---

TEST_CASE("config: a write that cannot be flushed changes nothing") {
  TempDir dir;
  Result<Config> config = Config::Open(dir / "config");
  REQUIRE(config.ok());
  REQUIRE(config->Set("core.site", "aaaa").ok());
  const std::string before = test::ReadFile(dir / "config");
  for (Faulty::Call call :
       {Faulty::Call::kWrite, Faulty::Call::kFsync, Faulty::Call::kRename}) {
    Faulty ops(call, ENOSPC);
    data::ScopedDefaultFileOps scoped(ops);
    Status st = config->Set("core.site", "bbbb");
    CHECK(st.code() == Code::kIOError);
    CHECK(test::ReadFile(dir / "config") == before);
    CHECK(config->Get("core.site").value() == "aaaa");
    CHECK(Names(dir.path()) == std::set<std::string>{"config"});
  }
  Faulty counting;
  data::ScopedDefaultFileOps scoped(counting);
  REQUIRE(config->Set("core.site", "cccc").ok());
  CHECK(counting.file_fsyncs == 1);
  CHECK(counting.folder_fsyncs == 1);
}

TEST_CASE("repo: init on a disk that fails leaves no repository") {
  TempDir dir;
  Faulty ops(Faulty::Call::kFsync, EIO);
  data::ScopedDefaultFileOps scoped(ops);
  Result<Repo> repo = Repo::Init(dir.path());
  CHECK(repo.status().code() == Code::kIOError);
  CHECK(Names(dir.path()).empty());
}

TEST_CASE("repo: the cache lock reports a lock that cannot be taken") {
  TempDir dir;
  Result<Repo> repo = Repo::Init(dir.path());
  REQUIRE(repo.ok());
  Faulty ops(Faulty::Call::kLock, ENOLCK);
  data::ScopedDefaultFileOps scoped(ops);
  Result<CacheLock> lock = CacheLock::Acquire(*repo, /*exclusive=*/true);
  CHECK(lock.status().code() == Code::kIOError);
  CHECK(lock.status().message().find("cannot lock") != std::string::npos);
}

TEST_CASE("export: a failed rename keeps the old export whole") {
  TempDir dir;
  Result<Repo> repo = Repo::Init(dir.path());
  REQUIRE(repo.ok());
  REQUIRE(ExportJsonToFile(repo->store(), std::nullopt, dir / "out.json").ok());
  const std::string before = test::ReadFile(dir / "out.json");
  CHECK(before.find("\"cmf-export\"") != std::string::npos);
  test::WriteFile(dir / "out.json", "an older export");
  Faulty ops(Faulty::Call::kRename, EIO);
  data::ScopedDefaultFileOps scoped(ops);
  CHECK(
      ExportJsonToFile(repo->store(), std::nullopt, dir / "out.json").code() ==
      Code::kIOError);
  CHECK(test::ReadFile(dir / "out.json") == "an older export");
  CHECK(Names(dir.path()) == std::set<std::string>{".cmf", "out.json"});
}

TEST_CASE("object cache: a cache given no FileOps uses the default's") {
  TempDir dir;
  data::ObjectCache cache(dir / "objects");
  Faulty ops(Faulty::Call::kFsync, EIO);
  {
    data::ScopedDefaultFileOps scoped(ops);
    CHECK(cache.PutBytes("some bytes").status().code() == Code::kIOError);
  }
  CHECK_FALSE(cache.Has(data::HashBytes("some bytes")));
  REQUIRE(cache.PutBytes("some bytes").ok());
  CHECK(cache.Has(data::HashBytes("some bytes")));
}
