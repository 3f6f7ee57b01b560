#include "cmf/repo.h"

#include <doctest/doctest.h>

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
  r.id = NewUuidV7(1);
  r.pipeline = "p";
  r.stage = "s";
  Result<RowId> row = repo->store().BeginExecution(r);
  CHECK(row.status().code() == Code::kInvalidArgument);
  CHECK(row.status().message().find("reading only") != std::string::npos);
  CHECK(repo->store().ListExecutions({}).ok());
}
