#include "cmf/data/hash.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include "cmf/data/file_ops.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;

TEST_CASE("hash: SHA-256 of known strings matches the published test vectors") {
  CHECK(data::HashBytes("") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(data::HashBytes("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("hash: a file hashes to the hash of its bytes, read in blocks") {
  TempDir dir;
  std::string content(3 * (1 << 20) + 17, '\0');  // spans several read blocks
  for (std::size_t i = 0; i < content.size(); ++i)
    content[i] = static_cast<char>(i * 7 + 3);
  test::WriteFile(dir / "big.bin", content);
  Result<std::string> h = data::HashFile(dir / "big.bin");
  REQUIRE(h.ok());
  CHECK(*h == data::HashBytes(content));
  CHECK(data::IsSha256Hex(*h));
}

TEST_CASE("hash: a missing file is NotFound, a directory is an IOError") {
  TempDir dir;
  CHECK(data::HashFile(dir / "nope").status().code() == Code::kNotFound);
  CHECK(data::HashFile(dir.path()).status().code() == Code::kIOError);
}

TEST_CASE("hash: IsSha256Hex accepts only 64 lowercase hex digits") {
  CHECK(data::IsSha256Hex(std::string(64, 'a')));
  CHECK_FALSE(data::IsSha256Hex(std::string(64, 'A')));
  CHECK_FALSE(data::IsSha256Hex(std::string(63, 'a')));
  CHECK_FALSE(data::IsSha256Hex(std::string(64, 'g')));
}

TEST_CASE(
    "hash: a large file equals its bytes' hash, and one cut short while it is "
    "read is reported") {
  TempDir dir;
  // Several read blocks, and not a whole number of blocks or pages.
  std::string content(5 * (1 << 20) + 4099, '\0');
  for (std::size_t i = 0; i < content.size(); ++i)
    content[i] = static_cast<char>((i * 2654435761u) >> 13);
  test::WriteFile(dir / "big", content);
  CHECK(data::HashFile(dir / "big").value() == data::HashBytes(content));

  // Truncated after it is opened and before it is read: the bytes read are
  // fewer than its size at open, which must end as an error for this file.
  struct Truncating : data::FileOps {
    std::string victim;
    void AfterOpen(const std::string& path) override {
      if (path == victim) REQUIRE(::truncate(path.c_str(), 8192) == 0);
    }
  } truncating;
  truncating.victim = (dir / "big").string();
  Result<std::string> cut = Status::IOError("not hashed");
  {
    data::ScopedDefaultFileOps scoped(truncating);
    cut = data::HashFile(dir / "big");
  }
  REQUIRE_FALSE(cut.ok());
  CHECK(cut.status().message().find("changed while it was read") !=
        std::string::npos);
  // The process is fine, and so is the next file.
  CHECK(data::HashFile(dir / "big").value() ==
        data::HashBytes(content.substr(0, 8192)));
}
