#include "cmf/data/transport.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "cmf/data/open_transport.h"
#include "cmf/data/ssh.h"
#include "cmf/sync.h"
#include "support.h"

using namespace cmf;
using namespace cmf::data;
using cmf::test::ReadFile;
using cmf::test::TempDir;
using cmf::test::WriteFile;
namespace fs = std::filesystem;

TEST_CASE("transport: URL schemes, and credentials never shown") {
  CHECK(UrlScheme("/lustre/proj/cmf") == "file");
  CHECK(UrlScheme("relative/dir") == "file");
  CHECK(UrlScheme("file:///data") == "file");
  CHECK(UrlScheme("ssh://host/path") == "ssh");
  CHECK(UrlScheme("me@dtn.example.org:proj/cmf") == "ssh");
  CHECK(UrlScheme("s3://bucket/x") == "s3");
  CHECK(FileUrlPath("file:///data/x") == "/data/x");

  CHECK(UrlHasPassword("https://me:hunter2@example.org/x"));
  CHECK_FALSE(UrlHasPassword("ssh://me@example.org/x"));
  CHECK_FALSE(UrlHasPassword("/a:b@c/d"));
  CHECK(data::RedactUrl("ssh://me:hunter2@host/x") == "ssh://me@host/x");
  CHECK(data::RedactUrl("https://me:hunter2@example.org/x") ==
        "https://example.org/x");
  CHECK(data::RedactUrl("https://ghp_token@example.org/x") ==
        "https://example.org/x");
  CHECK(data::RedactUrl("ssh://me@host/x") == "ssh://me@host/x");

  Result<std::unique_ptr<ObjectTransport>> s3 = OpenTransport("s3://bucket/x");
  CHECK(s3.status().code() == Code::kInvalidArgument);
  CHECK(s3.status().message().find("unknown URL scheme 's3'") !=
        std::string::npos);
}

TEST_CASE("transport: ssh URLs") {
  Result<SshUrl> full = ParseSshUrl("ssh://alice@dtn:2222/lustre/cmf");
  REQUIRE(full.ok());
  CHECK(full->user == "alice");
  CHECK(full->host == "dtn");
  CHECK(full->port == 2222);
  CHECK(full->path == "/lustre/cmf");
  Result<SshUrl> scp = ParseSshUrl("bob@edge:proj/cmf");
  REQUIRE(scp.ok());
  CHECK(scp->user == "bob");
  CHECK(scp->port == 22);
  CHECK(scp->path == "proj/cmf");
  CHECK(ParseSshUrl("ssh://h:99999/x").status().code() ==
        Code::kInvalidArgument);
  CHECK(ParseSshUrl("ssh://me:pw@h/x").status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("transport: sizes and data policies") {
  CHECK(*ParseSize("64M") == 64ull << 20);
  CHECK(*ParseSize("1G") == 1ull << 30);
  CHECK(*ParseSize("4096") == 4096);
  CHECK(*ParseSize("2K") == 2048);
  CHECK_FALSE(ParseSize("lots").ok());
  CHECK_FALSE(ParseSize("-1M").ok());
  CHECK_FALSE(ParseSize("5T").ok());
  CHECK_FALSE(ParseSize("").ok());
  CHECK_FALSE(ParseSize(" 5M").ok());
  CHECK_FALSE(ParseSize("+5M").ok());
  CHECK(*ParseSize("16777215G") == 16777215ull << 30);
  // No silent wrap-around past 2^64 - 1.
  CHECK(ParseSize("17179869184G").status().message().find("too large") !=
        std::string::npos);
  CHECK(
      ParseSize("99999999999999999999").status().message().find("too large") !=
      std::string::npos);
  CHECK(*ParseDataPolicy("relevant") == DataPolicy::kRelevant);
  CHECK_FALSE(ParseDataPolicy("some").ok());
}

TEST_CASE("transport: file store puts whole objects and gets them back") {
  TempDir dir;
  fs::create_directories(dir / "store");
  Result<std::unique_ptr<ObjectTransport>> t =
      OpenTransport((dir / "store").string());
  REQUIRE(t.ok());
  WriteFile(dir / "a", "alpha");
  WriteFile(dir / "b", std::string(3 << 20, 'b'));
  std::vector<ObjectTransport::PutItem> items{
      {HashBytes("alpha"), dir / "a", 5},
      {*HashFile(dir / "b"), dir / "b", 3u << 20}};
  CHECK_FALSE(*(*t)->Has(items[0].hash));
  std::vector<std::string> damaged;
  REQUIRE((*t)->Put(items, nullptr, &damaged).ok());
  CHECK(damaged.empty());
  CHECK(*(*t)->Has(items[0].hash));
  CHECK(*(*t)->Has(items[1].hash));
  CHECK(cmf::test::CountFiles(dir / "store" / "tmp") ==
        0);  // no temporaries left
  CHECK(ReadFile(dir / "store/sha256" / items[0].hash.substr(0, 2) /
                 items[0].hash.substr(2)) == "alpha");

  // The store's id: made once, then the same for everyone.
  Result<std::string> id = (*t)->CreateSmall("store-id", "abc123");
  REQUIRE(id.ok());
  CHECK(*id == "abc123");
  CHECK(*(*t)->CreateSmall("store-id", "other") == "abc123");

  // Into a cache, verified.
  ObjectCache cache(dir / "cache");
  REQUIRE(
      cache
          .Import(items[1].hash,
                  [&](int fd) { return (*t)->Get(items[1].hash, fd, nullptr); })
          .ok());
  CHECK(cache.Has(items[1].hash));
  CHECK((*t)->Get(HashBytes("absent"), -1, nullptr).code() == Code::kNotFound);
  CHECK(OpenTransport((dir / "nowhere").string()).status().code() ==
        Code::kNotFound);
}

TEST_CASE(
    "transport: bytes that do not match their name never enter the cache") {
  TempDir dir;
  ObjectCache cache(dir / "cache");
  const std::string claimed = HashBytes("the real content");
  Status st = cache.Import(claimed, [](int fd) {
    const char lie[] = "something else";
    return ::write(fd, lie, sizeof lie - 1) == sizeof lie - 1
               ? Status::Ok()
               : Status::IOError("write");
  });
  CHECK(st.code() == Code::kCorruption);
  CHECK_FALSE(cache.Has(claimed));
  CHECK(cmf::test::CountFiles(dir / "cache") == 0);
}

TEST_CASE(
    "transport: a file store never names bytes that do not match, and "
    "replaces a damaged copy when asked") {
  TempDir dir;
  fs::create_directories(dir / "store");
  Result<std::unique_ptr<ObjectTransport>> t =
      OpenTransport((dir / "store").string());
  REQUIRE(t.ok());
  const std::string good = HashBytes("good bytes");
  const std::string other = HashBytes("other");
  WriteFile(dir / "damaged", "gone bad!!");  // claims to be "good bytes"
  WriteFile(dir / "other", "other");
  std::vector<ObjectTransport::PutItem> items{{good, dir / "damaged", 10},
                                              {other, dir / "other", 5}};
  std::vector<std::string> damaged;
  REQUIRE((*t)->Put(items, nullptr, &damaged).ok());
  CHECK(damaged == std::vector<std::string>{good});
  CHECK_FALSE(*(*t)->Has(good));
  CHECK(*(*t)->Has(other));
  CHECK(cmf::test::CountFiles(dir / "store" / "tmp") == 0);
  CHECK(*(*t)->Verify(other));
  CHECK((*t)->Verify(good).status().code() == Code::kNotFound);

  // A copy there whose bytes are wrong (an older push of a damaged object):
  // Verify finds it, and a put with replace mends it.
  fs::path there = dir / "store/sha256" / good.substr(0, 2) / good.substr(2);
  WriteFile(there, "gone bad!!");
  CHECK_FALSE(*(*t)->Verify(good));
  WriteFile(dir / "restored", "good bytes");
  std::vector<ObjectTransport::PutItem> fix{
      {good, dir / "restored", 10, /*replace=*/true}};
  damaged.clear();
  REQUIRE((*t)->Put(fix, nullptr, &damaged).ok());
  CHECK(damaged.empty());
  CHECK(*(*t)->Verify(good));
  CHECK(ReadFile(there) == "good bytes");
}
