#include "cmf/run.h"

#include <doctest/doctest.h>
#include <git2.h>

#include "cmf/code_version.h"
#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "cmf/exec.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A git repository in DIR with FILE committed.
void GitCommit(const fs::path& dir, const std::string& file) {
  git_libgit2_init();
  git_repository* repo = nullptr;
  REQUIRE(git_repository_init(&repo, dir.c_str(), 0) == 0);
  git_index* index = nullptr;
  REQUIRE(git_repository_index(&index, repo) == 0);
  REQUIRE(git_index_add_bypath(index, file.c_str()) == 0);
  REQUIRE(git_index_write(index) == 0);
  git_oid tree_id, commit_id;
  REQUIRE(git_index_write_tree(&tree_id, index) == 0);
  git_tree* tree = nullptr;
  REQUIRE(git_tree_lookup(&tree, repo, &tree_id) == 0);
  git_signature* sig = nullptr;
  REQUIRE(git_signature_now(&sig, "Test", "test@example.org") == 0);
  REQUIRE(git_commit_create_v(&commit_id, repo, "HEAD", sig, sig, nullptr,
                              "first", tree, 0) == 0);
  git_signature_free(sig);
  git_tree_free(tree);
  git_index_free(index);
  git_repository_free(repo);
}

}  // namespace

TEST_CASE(
    "run: a run records its inputs, stores its outputs and ends with a "
    "status") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "raw.h5", "raw");
  test::WriteFile(dir / "out" / "model.pt", "weights");
  Result<Run> run =
      Run::Start(repo, {.stage = "train", .params = {{"lr", 0.01}}});
  REQUIRE(run.ok());
  Result<ArtifactRef> in = run->LogInput(dir / "raw.h5");
  REQUIRE(in.ok());
  CHECK(in->path == "raw.h5");
  CHECK(in->kind == ArtifactKind::kDataset);
  CHECK_FALSE(repo.objects().Has(in->hash));  // inputs are hashed, not stored
  Result<ArtifactRef> out = run->LogOutput(dir / "out" / "model.pt");
  REQUIRE(out.ok());
  CHECK(out->path == "out/model.pt");
  CHECK(out->kind == ArtifactKind::kModel);
  CHECK(repo.objects().Has(out->hash));
  std::vector<MetricPoint> batch = {{0, 1.0}, {1, 0.5}};
  REQUIRE(run->LogMetrics("loss", batch).ok());
  REQUIRE(run->LogMetric("loss", 2, 0.25).ok());
  REQUIRE(run->SetProperty("best_step", std::int64_t{2}).ok());
  REQUIRE(run->Finish(ExecStatus::kOk, 0).ok());

  ExecutionRecord r = repo.store().GetExecution(run->id()).value();
  CHECK(r.pipeline ==
        dir.path().filename().string());  // the workspace folder's name
  CHECK(r.status == ExecStatus::kOk);
  CHECK(r.site == repo.site());
  CHECK(std::get<double>(r.params.at("lr")) == 0.01);
  CHECK(std::get<std::int64_t>(r.properties.at("best_step")) == 2);
  CHECK(repo.store().GetMetrics(run->id()).value().at("loss").size() == 3);
  CHECK_FALSE(r.code.has_value());  // not inside a git repository
}

TEST_CASE("run: the pipeline defaults to config core.pipeline") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  REQUIRE(repo.config().Set("core.pipeline", "ALDKL").ok());
  Run run = Run::Start(repo, {.stage = "s"}).value();
  CHECK(run.pipeline() == "ALDKL");
  CHECK(Run::Start(repo, {}).status().code() == Code::kInvalidArgument);
}

TEST_CASE(
    "run: paths inside .cmf/ are refused; paths outside the workspace stay "
    "absolute") {
  TempDir dir, outside;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(outside / "x.csv", "1,2");
  Run run = Run::Start(repo, {.stage = "s"}).value();
  CHECK(run.LogInput(dir / ".cmf" / "config").status().code() ==
        Code::kInvalidArgument);
  Result<ArtifactRef> far = run.LogInput(outside / "x.csv");
  REQUIRE(far.ok());
  CHECK(far->path == (outside / "x.csv").string());
  CHECK(run.LogInput(dir / "missing").status().code() == Code::kNotFound);
}

TEST_CASE("run: a directory is logged as one artifact of kind directory") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "data" / "a.npy", "a");
  test::WriteFile(dir / "data" / "b.npy", "b");
  Run run = Run::Start(repo, {.stage = "s"}).value();
  Result<ArtifactRef> ref = run.LogOutput(dir / "data");
  REQUIRE(ref.ok());
  CHECK(ref->kind == ArtifactKind::kDirectory);
  CHECK(ref->size == 2);
  CHECK(ref->path == "data");
}

TEST_CASE(
    "code version: HEAD and the dirty flag of the enclosing git repository") {
  TempDir dir;
  test::WriteFile(dir / "train.py", "print(1)\n");
  GitCommit(dir.path(), "train.py");
  fs::create_directories(dir / "sub");
  std::optional<CodeVersion> clean = ReadCodeVersion(dir / "sub");
  REQUIRE(clean.has_value());
  CHECK(clean->commit.size() == 40);
  CHECK_FALSE(clean->dirty);
  CHECK(clean->repo == dir.path().string());
  test::WriteFile(dir / "untracked.txt", "u");
  CHECK_FALSE(
      ReadCodeVersion(dir.path())->dirty);  // untracked files are not dirt
  test::WriteFile(dir / "train.py", "print(2)\n");
  CHECK(ReadCodeVersion(dir.path())->dirty);

  TempDir plain;
  CHECK_FALSE(ReadCodeVersion(plain.path()).has_value());
}

TEST_CASE("run: an execution inside a git work tree records its code version") {
  TempDir dir;
  test::WriteFile(dir / "train.py", "x");
  GitCommit(dir.path(), "train.py");
  Repo repo = Repo::Init(dir.path()).value();
  Run run = Run::Start(repo, {.stage = "s"}).value();
  ExecutionRecord r = repo.store().GetExecution(run.id()).value();
  REQUIRE(r.code.has_value());
  CHECK(r.code->commit.size() == 40);
  CHECK_FALSE(r.code->dirty);  // .cmf/ is ignored by its own .gitignore
}

TEST_CASE("kinds: guessed from the path, case-insensitively") {
  CHECK(GuessKind("a/b/raw.H5", false) == ArtifactKind::kDataset);
  CHECK(GuessKind("x.parquet", false) == ArtifactKind::kDataset);
  CHECK(GuessKind("m.pt", false) == ArtifactKind::kModel);
  CHECK(GuessKind("notes.txt", false) == ArtifactKind::kFile);
  CHECK(GuessKind("anything", true) == ArtifactKind::kDirectory);
}

TEST_CASE("exec: metric lines are SERIES STEP VALUE and nothing else") {
  std::string series;
  MetricPoint p;
  REQUIRE(ParseMetricLine("loss 3 0.25", &series, &p));
  CHECK(series == "loss");
  CHECK(p.step == 3);
  CHECK(p.value == 0.25);
  REQUIRE(ParseMetricLine("  sigma\t10\t-1e-3 ", &series, &p));
  CHECK(p.value == -1e-3);
  CHECK(ParseMetricLine("loss 1 nan", &series, &p));
  CHECK_FALSE(ParseMetricLine("loss 1", &series, &p));
  CHECK_FALSE(ParseMetricLine("loss x 1", &series, &p));
  CHECK_FALSE(ParseMetricLine("loss 1 2 3", &series, &p));
  CHECK_FALSE(ParseMetricLine("loss 1.5 2", &series, &p));
  CHECK_FALSE(ParseMetricLine("loss 1 0.5abc", &series, &p));
}
