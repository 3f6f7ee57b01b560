#include "cmf/repo.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "cmf/clock.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
namespace fs = std::filesystem;

TEST_CASE(
    "repo: init lays out config, metadata.db, objects/ and a bare log.git") {
  TempDir dir;
  Result<Repo> repo = Repo::Init(dir.path());
  REQUIRE(repo.ok());
  fs::path cmf = dir / ".cmf";
  CHECK(repo->cmf_dir() == cmf);
  CHECK(repo->workspace() == dir.path());
  CHECK(fs::is_regular_file(cmf / "config"));
  CHECK(fs::is_regular_file(cmf / "metadata.db"));
  CHECK(fs::is_directory(cmf / "objects"));
  CHECK(fs::is_regular_file(cmf / "log.git" / "HEAD"));
  CHECK(repo->site().size() == 16);
  CHECK(test::ReadFile(cmf / "config").find("site = " + repo->site()) !=
        std::string::npos);
  // nothing but .cmf/ was created in the workspace
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("repo: init where a repository exists fails and changes nothing") {
  TempDir dir;
  REQUIRE(Repo::Init(dir.path()).ok());
  std::string config = test::ReadFile(dir / ".cmf" / "config");
  Result<Repo> again = Repo::Init(dir.path());
  CHECK(again.status().code() == Code::kAlreadyExists);
  CHECK(test::ReadFile(dir / ".cmf" / "config") == config);
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);  // no stray temporary folder
}

TEST_CASE("repo: each init draws its own site id") {
  TempDir a, b;
  CHECK(Repo::Init(a.path()).value().site() !=
        Repo::Init(b.path()).value().site());
}

TEST_CASE("repo: the repository is found from any subfolder") {
  TempDir dir;
  REQUIRE(Repo::Init(dir.path()).ok());
  fs::create_directories(dir / "a" / "b" / "c");
  Result<Repo> repo = Repo::Open({.start = dir / "a" / "b" / "c"});
  REQUIRE(repo.ok());
  CHECK(repo->workspace() == dir.path());
}

TEST_CASE("repo: outside any repository Open is NotFound with git's wording") {
  TempDir dir;
  Result<Repo> repo = Repo::Open({.start = dir.path()});
  CHECK(repo.status().code() == Code::kNotFound);
  CHECK(repo.status().message().find("not a cmf repository") !=
        std::string::npos);
}

TEST_CASE("repo: CMF_DIR names the repository, as .cmf or as its workspace") {
  TempDir dir, elsewhere;
  REQUIRE(Repo::Init(dir.path()).ok());
  CHECK(Repo::Open({.start = elsewhere.path(), .cmf_dir = dir / ".cmf"}).ok());
  CHECK(Repo::Open({.start = elsewhere.path(), .cmf_dir = dir.path()}).ok());
  CHECK(Repo::Open({.start = dir.path(), .cmf_dir = elsewhere.path()})
            .status()
            .code() == Code::kNotFound);
}

TEST_CASE("config: values round-trip through the git-config file") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  REQUIRE(repo.config().Set("core.pipeline", "ALDKL").ok());
  CHECK(repo.config().Get("core.pipeline").value() == "ALDKL");
  CHECK(test::ReadFile(dir / ".cmf" / "config").find("pipeline = ALDKL") !=
        std::string::npos);
  Result<Config> fresh = Config::Open(dir / ".cmf" / "config");
  REQUIRE(fresh.ok());
  CHECK(fresh->Get("core.pipeline").value() == "ALDKL");
  CHECK(repo.config().Get("core.nothing").status().code() == Code::kNotFound);
  CHECK(repo.config().Set("nodot", "x").code() == Code::kInvalidArgument);
  REQUIRE(repo.config().Unset("core.pipeline").ok());
  CHECK(repo.config().Unset("core.pipeline").code() == Code::kNotFound);
}

TEST_CASE(
    "config: a lock left by a writer that was killed is taken over; a live "
    "writer's lock is respected") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  const fs::path lock = dir / ".cmf" / "config.lock";
  // What kill -9 in the middle of a write leaves behind.
  test::WriteFile(lock, "[core]\n\thalf = writ");
  REQUIRE(repo.config().Set("core.pipeline", "ALDKL").ok());
  CHECK(!fs::exists(lock));
  CHECK(Config::Open(dir / ".cmf" / "config")->Get("core.pipeline").value() ==
        "ALDKL");
  // A writer that is alive holds its lock's flock: it is waited for, not
  // overwritten.
  test::WriteFile(lock, "");
  int held = ::open(lock.c_str(), O_RDONLY);
  REQUIRE(held >= 0);
  REQUIRE(::flock(held, LOCK_EX) == 0);
  Status busy = repo.config().Set("core.pipeline", "other");
  CHECK(busy.code() == Code::kConflict);
  CHECK(busy.message().find("being written by another process") !=
        std::string::npos);
  CHECK(fs::exists(lock));
  ::close(held);
  fs::remove(lock);
  CHECK(repo.config().Get("core.pipeline").value() == "ALDKL");
}

TEST_CASE(
    "config: reads what git writes and writes what git reads (quotes, "
    "escapes, subsections, comments, continued lines)") {
  TempDir dir;
  const fs::path file = dir / "config";
  test::WriteFile(file,
                  "# a comment\n"
                  "[Core]\n"
                  "\tPipeline = \"two  words\" ; and a comment\n"
                  "\tsite = abc # trailing\n"
                  "[remote \"Hub.Site\"]\n"
                  "  url = ssh://h/x \\\n"
                  "continued\n"
                  "  flag\n"
                  "[cache]\n"
                  "\tlink = \"tab\\there\\\\\"\n");
  Result<Config> config = Config::Open(file);
  REQUIRE(config.ok());
  CHECK(config->Get("core.pipeline").value() == "two  words");
  CHECK(config->Get("CORE.Site").value() == "abc");
  CHECK(config->Get("remote.Hub.Site.url").value() == "ssh://h/x continued");
  CHECK(config->Get("remote.hub.site.url").status().code() ==
        Code::kNotFound);  // subsections keep their case
  CHECK(config->Get("remote.Hub.Site.flag").value() == "true");
  CHECK(config->Get("cache.link").value() == "tab\there\\");
  CHECK(config->List()->size() == 5);

  // Written back: the untouched lines stay as they were.
  REQUIRE(config->Set("core.site", "  spaced; with # marks \"q\"").ok());
  REQUIRE(config->Set("remote.Hub.Site.push", "relevant").ok());
  REQUIRE(config->Set("store.synchronous", "normal").ok());
  REQUIRE(config->Unset("cache.link").ok());
  std::string text = test::ReadFile(file);
  CHECK(text.find("# a comment\n[Core]\n\tPipeline = \"two  words\" ; and a "
                  "comment\n") == 0);
  CHECK_FALSE(fs::exists(dir / "config.lock"));
  Result<Config> again = Config::Open(file);
  REQUIRE(again.ok());
  CHECK(again->Get("core.site").value() == "  spaced; with # marks \"q\"");
  CHECK(again->Get("remote.Hub.Site.push").value() == "relevant");
  CHECK(again->Get("store.synchronous").value() == "normal");
  CHECK(again->Get("cache.link").status().code() == Code::kNotFound);

  // git itself agrees, both ways.
  if (test::RunProcess({"git", "--version"}, dir.path()).exit_code == 0) {
    auto git = [&](std::vector<std::string> args) {
      args.insert(args.begin(), {"git", "config", "-f", file.string()});
      return test::RunProcess(args, dir.path());
    };
    CHECK(git({"--get", "core.site"}).out == "  spaced; with # marks \"q\"\n");
    CHECK(git({"--get", "remote.Hub.Site.url"}).out == "ssh://h/x continued\n");
    CHECK(git({"--get", "store.synchronous"}).out == "normal\n");
    REQUIRE(git({"cache.link", "hardlink,copy"}).exit_code == 0);
    REQUIRE(git({"remote.other.url", "/srv/x y"}).exit_code == 0);
    Result<Config> after_git = Config::Open(file);
    REQUIRE(after_git.ok());
    CHECK(after_git->Get("cache.link").value() == "hardlink,copy");
    CHECK(after_git->Get("remote.other.url").value() == "/srv/x y");
  }

  // Bad files and keys.
  test::WriteFile(dir / "bad", "[core\n\tx = 1\n");
  Result<Config> bad = Config::Open(dir / "bad");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("line 1") != std::string::npos);
  test::WriteFile(dir / "orphan", "x = 1\n");
  CHECK_FALSE(Config::Open(dir / "orphan").ok());
  CHECK(again->Set("core.9lives", "x").code() == Code::kInvalidArgument);
  CHECK(again->Set(".x", "x").code() == Code::kInvalidArgument);
  // A writer that finds the lock held fails and changes nothing.
  test::WriteFile(dir / "config.lock", "");
  int held = ::open((dir / "config.lock").c_str(), O_RDONLY);
  REQUIRE(::flock(held, LOCK_EX) == 0);
  CHECK(again->Set("core.pipeline", "x").code() == Code::kConflict);
  CHECK(Config::Open(file)->Get("core.pipeline").value() == "two  words");
  ::close(held);
}

TEST_CASE(
    "config: a value that ends in a carriage return reads back as it was set "
    "(found by tests/fuzz config)") {
  TempDir dir;
  const fs::path file = dir / "config";
  Result<Config> config = Config::Open(file);
  REQUIRE(config.ok());
  REQUIRE(config->Set("core.pipeline", "line\r").ok());
  REQUIRE(config->Set("core.other", "\n\t\t\r").ok());
  Result<Config> again = Config::Open(file);
  REQUIRE(again.ok());
  CHECK(again->Get("core.pipeline").value() == "line\r");
  CHECK(again->Get("core.other").value() == "\n\t\t\r");
}

TEST_CASE(
    "config: a file that ends inside a quoted value is refused, as a line "
    "that does, so that cmf never writes a file it cannot read back (found by "
    "tests/fuzz config)") {
  TempDir dir;
  const fs::path file = dir / "config";
  test::WriteFile(file, "[core]\n\tsite = abc\n[remote \"a\"]\n\turl = \"x");
  Result<Config> config = Config::Open(file);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().message().find("line 4: a quoted value runs past its "
                                       "line") != std::string::npos);
  // Closed, it reads; and a value written after it reads back.
  test::WriteFile(file, "[core]\n\tsite = abc\n[remote \"a\"]\n\turl = \"x\"");
  config = Config::Open(file);
  REQUIRE(config.ok());
  REQUIRE(config->Set("other.key", "y").ok());
  Result<Config> again = Config::Open(file);
  REQUIRE(again.ok());
  CHECK(again->Get("remote.a.url").value() == "x");
  CHECK(again->Get("other.key").value() == "y");
}

TEST_CASE(
    "config: a value continued past the end of the file keeps its value when "
    "a line is written after it (found by tests/fuzz config)") {
  TempDir dir;
  const fs::path file = dir / "config";
  test::WriteFile(file, "[core]\n\tsite = abc\\\n");
  Result<Config> config = Config::Open(file);
  REQUIRE(config.ok());
  CHECK(config->Get("core.site").value() == "abc");
  REQUIRE(config->Set("other.key", "y").ok());
  REQUIRE(config->Set("core.pipeline", "p").ok());
  Result<Config> again = Config::Open(file);
  REQUIRE(again.ok());
  CHECK(again->Get("core.site").value() == "abc");
  CHECK(again->Get("other.key").value() == "y");
  CHECK(again->Get("core.pipeline").value() == "p");
}

TEST_CASE(
    "config: a subsection name that spans lines is refused, since no key could "
    "name it (found by tests/fuzz config)") {
  TempDir dir;
  const fs::path file = dir / "config";
  for (const std::string text :
       {"[old.\n\tv = a]\n\tx = 1\n", "[remote \"x\\\ny\"]\n\turl = /srv\n"}) {
    CAPTURE(text);
    test::WriteFile(file, text);
    Result<Config> config = Config::Open(file);
    REQUIRE_FALSE(config.ok());
    CHECK(config.status().message().find("line 1: malformed section header") !=
          std::string::npos);
  }
  // The old form [section.sub] still reads, as git reads it.
  test::WriteFile(file, "[Remote.Hub.Site]\n\turl = /srv\n");
  Result<Config> config = Config::Open(file);
  REQUIRE(config.ok());
  CHECK(config->Get("remote.hub.site.url").value() == "/srv");
}

TEST_CASE("repo: an unknown store.synchronous value is refused when opening") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  REQUIRE(repo.config().Set("store.synchronous", "sometimes").ok());
  Result<Repo> again = Repo::Open({.start = dir.path()});
  CHECK(again.status().code() == Code::kInvalidArgument);
}

TEST_CASE(
    "repo: opened for reading, the store refuses writes and the config is not "
    "read") {
  TempDir dir;
  REQUIRE(Repo::Init(dir.path()).ok());
  Result<Repo> repo = Repo::Open({.start = dir.path()}, OpenMode::kRead);
  REQUIRE(repo.ok());
  CHECK(repo->site().empty());
  ExecutionRecord r;
  r.id = NewUuidV7(1).value();
  r.pipeline = "p";
  r.stage = "s";
  Result<RowId> row = repo->store().BeginExecution(r);
  CHECK(row.status().code() == Code::kInvalidArgument);
  CHECK(row.status().message().find("reading only") != std::string::npos);
  CHECK(repo->store().ListExecutions({}).ok());
}
