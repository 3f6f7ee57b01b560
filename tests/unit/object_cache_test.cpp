#include "cmf/data/object_cache.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "cmf/data/hash.h"
#include "cmf/data/scan.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
namespace fs = std::filesystem;

namespace {

// Writes fail with ENOSPC once LIMIT bytes have been written: a disk that fills
// up halfway.
class FullDisk : public data::FileOps {
 public:
  explicit FullDisk(std::size_t limit) : limit_(limit) {}
  int Write(int fd, const void* data, std::size_t size) override {
    if (written_ + size > limit_) return ENOSPC;
    written_ += size;
    return FileOps::Write(fd, data, size);
  }

 private:
  std::size_t limit_;
  std::size_t written_ = 0;
};

// The rename that would publish an object never happens.
class RenameFails : public data::FileOps {
 public:
  int Rename(const std::string&, const std::string&) override { return EIO; }
};

}  // namespace

TEST_CASE(
    "object cache: a stored file lands read-only under sha256/ab/cdef...") {
  TempDir dir;
  test::WriteFile(dir / "a.txt", "some bytes");
  data::ObjectCache cache(dir / "objects");
  Result<data::ObjectInfo> info = data::StorePath(cache, dir / "a.txt");
  REQUIRE(info.ok());
  CHECK(info->hash == data::HashBytes("some bytes"));
  CHECK(info->size == 10);
  fs::path object = dir / "objects" / "sha256" / info->hash.substr(0, 2) /
                    info->hash.substr(2);
  CHECK(cache.PathOf(info->hash) == object);
  CHECK(cache.Has(info->hash));
  CHECK(test::ReadFile(object) == "some bytes");
  struct stat st {};
  REQUIRE(::stat(object.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0444);
  CHECK(test::CountFiles(dir / "objects" / "tmp") == 0);
}

TEST_CASE("object cache: hashing alone stores nothing") {
  TempDir dir;
  test::WriteFile(dir / "a.txt", "x");
  data::ObjectCache cache(dir / "objects");
  Result<data::ObjectInfo> info = data::HashPath(cache, dir / "a.txt");
  REQUIRE(info.ok());
  CHECK_FALSE(cache.Has(info->hash));
  CHECK(test::CountFiles(dir / "objects") == 0);
}

TEST_CASE("object cache: storing the same content twice keeps one object") {
  TempDir dir;
  test::WriteFile(dir / "a", "same");
  test::WriteFile(dir / "b", "same");
  data::ObjectCache cache(dir / "objects");
  REQUIRE(data::StorePath(cache, dir / "a").ok());
  REQUIRE(data::StorePath(cache, dir / "b").ok());
  CHECK(test::CountFiles(dir / "objects") == 1);
}

TEST_CASE(
    "object cache: a directory is one manifest object whose hash follows its "
    "files") {
  TempDir dir;
  test::WriteFile(dir / "d" / "x.txt", "one");
  test::WriteFile(dir / "d" / "sub" / "y.txt", "two");
  data::ObjectCache cache(dir / "objects");
  Result<data::ObjectInfo> first = data::StorePath(cache, dir / "d");
  REQUIRE(first.ok());
  CHECK(first->is_directory);
  CHECK(first->size == 6);
  std::string manifest = test::ReadFile(cache.PathOf(first->hash));
  CHECK(manifest == "cmf-manifest 1\n100644 3 " + data::HashBytes("two") +
                        " sub/y.txt\n" + "100644 3 " + data::HashBytes("one") +
                        " x.txt\n");
  CHECK(cache.Has(data::HashBytes("one")));
  CHECK(cache.Has(data::HashBytes("two")));

  Result<data::ObjectInfo> same = data::HashPath(cache, dir / "d");
  REQUIRE(same.ok());
  CHECK(same->hash == first->hash);
  test::WriteFile(dir / "d" / "sub" / "y.txt", "changed");
  Result<data::ObjectInfo> changed = data::HashPath(cache, dir / "d");
  REQUIRE(changed.ok());
  CHECK(changed->hash != first->hash);
}

TEST_CASE(
    "object cache: a disk that fills up halfway leaves no object and no "
    "temporary file") {
  TempDir dir;
  test::WriteFile(dir / "big", std::string(3 << 20, 'z'));
  data::ObjectCache cache(dir / "objects", std::make_shared<FullDisk>(1 << 20));
  Result<data::ObjectInfo> info = data::StorePath(cache, dir / "big");
  REQUIRE_FALSE(info.ok());
  CHECK(info.status().code() == Code::kIOError);
  CHECK(info.status().message().find("No space left") != std::string::npos);
  CHECK(test::CountFiles(dir / "objects") == 0);
}

TEST_CASE(
    "object cache: a rename that never happens leaves no object under a hash "
    "name") {
  TempDir dir;
  test::WriteFile(dir / "f", "content");
  data::ObjectCache cache(dir / "objects", std::make_shared<RenameFails>());
  REQUIRE_FALSE(data::StorePath(cache, dir / "f").ok());
  CHECK_FALSE(cache.Has(data::HashBytes("content")));
  CHECK(test::CountFiles(dir / "objects") == 0);
}

TEST_CASE("object cache: a missing path is NotFound, a FIFO is refused") {
  TempDir dir;
  data::ObjectCache cache(dir / "objects");
  CHECK(data::HashPath(cache, dir / "none").status().code() == Code::kNotFound);
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0644) == 0);
  Result<data::ObjectInfo> fifo = data::HashPath(cache, dir / "fifo");
  CHECK(fifo.status().code() == Code::kIOError);
  CHECK(fifo.status().message().find(
            "neither a regular file nor a directory") != std::string::npos);
}
