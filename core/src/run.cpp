#include "cmf/run.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <system_error>

#include "cmf/clock.h"
#include "cmf/code_version.h"
#include "cmf/data/object_cache.h"
#include "cmf/data/scan.h"
#include "cmf/environment.h"
#include "cmf/process.h"
#include "cmf/store_stat_cache.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

std::string UserName() {
  if (const char* user = std::getenv("USER"); user && *user) return user;
  if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_name)
    return pw->pw_name;
  return std::to_string(::geteuid());
}

}  // namespace

ArtifactKind GuessKind(const fs::path& path, bool is_directory) {
  if (is_directory) return ArtifactKind::kDirectory;
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  static constexpr std::array<std::string_view, 14> kDatasets = {
      ".h5",  ".hdf5",    ".hdf", ".nc",   ".npy", ".npz", ".csv",
      ".tsv", ".parquet", ".tif", ".tiff", ".dm3", ".dm4", ".emd"};
  static constexpr std::array<std::string_view, 7> kModels = {
      ".pt", ".pth", ".ckpt", ".onnx", ".safetensors", ".pkl", ".joblib"};
  if (std::find(kDatasets.begin(), kDatasets.end(), ext) != kDatasets.end()) {
    return ArtifactKind::kDataset;
  }
  if (std::find(kModels.begin(), kModels.end(), ext) != kModels.end()) {
    return ArtifactKind::kModel;
  }
  return ArtifactKind::kFile;
}

Result<std::string> EventPath(const Repo& repo, const fs::path& path) {
  std::error_code ec;
  // The folder is made canonical (the workspace is), the last name is kept as
  // given: a symbolic link to a file is recorded by its own name.
  fs::path absolute = fs::absolute(path, ec).lexically_normal();
  if (!ec && absolute.has_parent_path() && absolute != absolute.root_path()) {
    fs::path name = absolute.filename();
    if (name.empty() || name == ".") {
      absolute = fs::weakly_canonical(absolute, ec);
    } else {
      absolute = fs::weakly_canonical(absolute.parent_path(), ec) / name;
    }
  }
  if (ec)
    return Status::IOError("cannot resolve '" + path.string() +
                           "': " + ec.message());
  fs::path relative = absolute.lexically_relative(repo.workspace());
  bool inside = !relative.empty() && *relative.begin() != "..";
  if (!inside) return absolute.string();
  if (*relative.begin() == ".cmf") {
    return Status::InvalidArgument("'" + path.string() +
                                   "' is inside the repository's .cmf/");
  }
  std::string text = relative.generic_string();
  if (!text.empty() && text.back() == '/') text.pop_back();
  return text;
}

Result<data::ObjectInfo> HashContent(Repo& repo, const fs::path& path,
                                     bool store) {
  StoreStatCache stat_cache(repo.store());
  data::ScanOptions scan;
  scan.stat_cache = &stat_cache;
  scan.store = store;
  // Outputs are copied (or cloned), never linked: the command that wrote one
  // may write it again.
  scan.link_order = {data::LinkMode::kReflink, data::LinkMode::kCopy};
  CMF_ASSIGN_OR_RETURN(data::ScanResult result,
                       data::Scan(repo.objects(), path, scan));
  return result.info;
}

Result<Run> Run::Start(Repo& repo, RunSpec spec) {
  if (spec.stage.empty())
    return Status::InvalidArgument("a run needs a stage name");
  if (spec.pipeline.empty()) {
    spec.pipeline = repo.config().GetOr("core.pipeline",
                                        repo.workspace().filename().string());
  }
  if (spec.pipeline.empty())
    return Status::InvalidArgument("a run needs a pipeline name");

  ExecutionRecord record;
  record.started_ms = spec.started_ms.value_or(SystemClock::Get()->NowMs());
  if (spec.id.empty()) {
    CMF_ASSIGN_OR_RETURN(record.id, NewUuidV7(record.started_ms));
  } else {
    record.id = spec.id;
  }
  record.pipeline = spec.pipeline;
  record.stage = spec.stage;
  record.command = std::move(spec.command);
  record.params = std::move(spec.params);
  record.code = ReadCodeVersion(repo.workspace());
  record.host = HostName();
  record.user = UserName();
  record.site = repo.site();

  Run run;
  // Who runs it, so that a later command can tell when this process died
  // without recording how the run ended.
  const ProcessIdentity self = ProcessIdentity::Self();
  CMF_ASSIGN_OR_RETURN(run.row_, repo.store().BeginExecution(record, &self));
  // The software it runs with, so that cmf diff can say what changed
  // between two runs (config core.environment=false: not recorded).
  if (spec.environment &&
      repo.config().GetOr("core.environment", "true") != "false") {
    CMF_RETURN_IF_ERROR(RecordEnvironment(repo, record.id).status());
  }
  run.repo_ = &repo;
  run.id_ = record.id;
  run.pipeline_ = record.pipeline;
  run.stage_ = record.stage;
  return run;
}

Result<ArtifactRef> Run::LogArtifact(const fs::path& path,
                                     std::optional<ArtifactKind> kind,
                                     Direction direction) {
  CMF_ASSIGN_OR_RETURN(std::string event_path, EventPath(*repo_, path));
  std::optional<CacheLock> lock;  // an output is named before it is recorded
  if (direction == Direction::kOutput) {
    CMF_ASSIGN_OR_RETURN(CacheLock held,
                         CacheLock::Acquire(*repo_, /*exclusive=*/false));
    lock.emplace(std::move(held));
  }
  CMF_ASSIGN_OR_RETURN(
      data::ObjectInfo info,
      HashContent(*repo_, path, direction == Direction::kOutput));
  ArtifactRef ref;
  ref.path = std::move(event_path);
  ref.hash = info.hash;
  ref.size = info.size;
  ref.kind = kind.value_or(GuessKind(path, info.is_directory));
  CMF_RETURN_IF_ERROR(LogHashed(direction, ref));
  return ref;
}

Status Run::LogHashed(Direction direction, const ArtifactRef& ref) {
  int& position = direction == Direction::kInput ? inputs_ : outputs_;
  CMF_RETURN_IF_ERROR(repo_->store().AddEvent(row_, direction, position, ref));
  ++position;
  return Status::Ok();
}

Result<ArtifactRef> Run::LogInput(const fs::path& path,
                                  std::optional<ArtifactKind> kind) {
  return LogArtifact(path, kind, Direction::kInput);
}

Result<ArtifactRef> Run::LogOutput(const fs::path& path,
                                   std::optional<ArtifactKind> kind) {
  return LogArtifact(path, kind, Direction::kOutput);
}

Status Run::LogDerivedFrom(const std::string& child_hash,
                           const std::string& parent_hash) {
  return repo_->store().AddDerivedFrom(child_hash, parent_hash);
}

Status Run::LogMetric(const std::string& series, std::int64_t step,
                      double value) {
  MetricPoint point{step, value};
  return repo_->store().LogMetrics(row_, series,
                                   std::span<const MetricPoint>(&point, 1));
}

Status Run::LogMetrics(const std::string& series,
                       std::span<const MetricPoint> points) {
  return repo_->store().LogMetrics(row_, series, points);
}

Status Run::SetProperty(const std::string& name, const Value& value) {
  return repo_->store().SetProperty(RecordType::kExecution, id_, name, value);
}

Status Run::Finish(ExecStatus status, std::optional<int> exit_code,
                   const std::string& message) {
  return repo_->store().SetExecutionState(row_, status, exit_code,
                                          SystemClock::Get()->NowMs(), message);
}

}  // namespace cmf
