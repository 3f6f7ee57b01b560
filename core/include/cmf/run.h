// The logging API: one run of a stage, as plugins and the CLI record it.
//
//   CMF_ASSIGN_OR_RETURN(Run run, Run::Start(repo, {.stage = "train", .params =
//   {{"lr", 0.01}}}));
//   CMF_RETURN_IF_ERROR(run.LogInput("patches.h5").status());
//   for (...) CMF_RETURN_IF_ERROR(run.LogMetric("loss", epoch, loss));
//   CMF_RETURN_IF_ERROR(run.LogOutput("model.pt",
//   ArtifactKind::kModel).status());
//   CMF_RETURN_IF_ERROR(run.Finish(ExecStatus::kOk, 0));
//
// Every call writes its facts to the store before it returns (cmf/store.h says
// how durable that is). A Run borrows its Repo, which must outlive it, and is
// used by one thread at a time. A Run destroyed without Finish is left
// "running" in the store: a crash shows as a run that never ended, with
// everything logged up to it kept.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cmf/data/object_cache.h"
#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf {

struct RunSpec {
  std::string pipeline;  // empty: config core.pipeline, else the workspace
                         // folder's name
  std::string stage;     // required
  std::vector<std::string> command;  // empty: nothing recorded
  std::map<std::string, Value> params;
  std::string id;  // empty: a new UUIDv7 (give one to know it before Start)
  std::optional<std::int64_t> started_ms;  // absent: now
  // Record the Debian and Python packages it could use (cmf/environment.h),
  // unless config core.environment is false.
  bool environment = true;
};

class Run {
 public:
  // Records a new execution, "running", with its code version (the git
  // repository around the workspace), host, user and site. InvalidArgument for
  // an empty stage or pipeline name.
  static Result<Run> Start(Repo& repo, RunSpec spec);

  Run(Run&&) noexcept = default;
  Run& operator=(Run&&) noexcept = default;

  const std::string& id() const { return id_; }
  const std::string& pipeline() const { return pipeline_; }
  const std::string& stage() const { return stage_; }

  // Hashes the file or directory at PATH and records it as an input. KIND
  // defaults to a guess from the path (GuessKind). NotFound when PATH does not
  // exist; InvalidArgument when it lies inside .cmf/; IOError when it cannot be
  // read.
  Result<ArtifactRef> LogInput(const std::filesystem::path& path,
                               std::optional<ArtifactKind> kind = std::nullopt);

  // As LogInput, and also stores the content in the object cache.
  Result<ArtifactRef> LogOutput(
      const std::filesystem::path& path,
      std::optional<ArtifactKind> kind = std::nullopt);

  // Records an artifact that the caller has already hashed (REF.path as
  // EventPath gives it).
  Status LogHashed(Direction direction, const ArtifactRef& ref);

  // Records that the artifact CHILD (a hash already logged) derives from
  // PARENT.
  Status LogDerivedFrom(const std::string& child_hash,
                        const std::string& parent_hash);

  // Records one step of a step-metric series; a step logged again replaces its
  // value.
  Status LogMetric(const std::string& series, std::int64_t step, double value);
  // Records many steps of one series in one transaction: the way to log at high
  // rates.
  Status LogMetrics(const std::string& series,
                    std::span<const MetricPoint> points);

  // Sets a typed property on this execution; a later value of NAME replaces an
  // earlier one.
  Status SetProperty(const std::string& name, const Value& value);

  // Records how the run ended. EXIT_CODE is the process's exit code where there
  // is one.
  Status Finish(ExecStatus status, std::optional<int> exit_code,
                const std::string& message = "");

 private:
  Run() = default;
  Result<ArtifactRef> LogArtifact(const std::filesystem::path& path,
                                  std::optional<ArtifactKind> kind,
                                  Direction direction);

  Repo* repo_ = nullptr;
  RowId row_ = 0;
  std::string id_;
  std::string pipeline_;
  std::string stage_;
  int inputs_ = 0;
  int outputs_ = 0;
};

// The kind a path most likely holds: a directory is kDirectory; HDF5, NetCDF,
// NumPy, CSV, Parquet, TIFF and microscope formats are kDataset; PyTorch, ONNX
// and pickled models are kModel; anything else is kFile.
ArtifactKind GuessKind(const std::filesystem::path& path, bool is_directory);

// The hash of the file or directory at PATH, read through the repository's stat
// cache (an unchanged file is not read again); with STORE, its content is also
// copied (or cloned) into the object cache. Errors as data::Scan.
Result<data::ObjectInfo> HashContent(Repo& repo,
                                     const std::filesystem::path& path,
                                     bool store);

// How PATH is recorded on an event: relative to the workspace when inside it
// (lexically normalised, as "data/raw.h5"), absolute otherwise. InvalidArgument
// when it lies inside .cmf/.
Result<std::string> EventPath(const Repo& repo,
                              const std::filesystem::path& path);

}  // namespace cmf
