#include "cmf/dataslice.h"

#include "cmf/clock.h"
#include "cmf/run.h"

namespace fs = std::filesystem;

namespace cmf {

Result<SliceOutcome> MakeSlice(Repo& repo, const SliceRequest& request) {
  CMF_ASSIGN_OR_RETURN(std::string parent_path, EventPath(repo, request.file));
  // The slice is written only inside the workspace: EventPath resolved '..'
  // and the links of its folder, and gives a path outside as absolute.
  CMF_ASSIGN_OR_RETURN(std::string out_path, EventPath(repo, request.out));
  if (fs::path(out_path).is_absolute()) {
    return Status::InvalidArgument("'" + request.out.string() +
                                   "' is outside the workspace '" +
                                   repo.workspace().string() + "'");
  }
  const std::int64_t started_ms = SystemClock::Get()->NowMs();
  Result<data::ObjectInfo> parent =
      HashContent(repo, request.file, /*store=*/false);
  if (!parent.ok()) {
    if (parent.status().code() == Code::kNotFound) {
      return Status::NotFound("no such file '" + request.file.string() + "'");
    }
    return parent.status();
  }
  if (parent->is_directory) {
    return Status::InvalidArgument("'" + request.file.string() +
                                   "' is a directory");
  }

  SliceOutcome outcome;
  CMF_ASSIGN_OR_RETURN(
      outcome.result,
      data::WriteSlice(request.file, request.dataset, request.selection,
                       request.out, {parent->hash, request.selection}));

  RunSpec spec;
  spec.pipeline = request.pipeline;
  spec.stage = "slice";
  spec.command = request.command;
  spec.params = {{"dataset", request.dataset},
                 {"selection", request.selection}};
  spec.started_ms = started_ms;
  CMF_ASSIGN_OR_RETURN(Run run, Run::Start(repo, spec));
  outcome.execution_id = run.id();
  outcome.parent = {parent_path, parent->hash, parent->size,
                    ArtifactKind::kDataset};
  Status st = run.LogHashed(Direction::kInput, outcome.parent);
  if (st.ok()) {
    Result<ArtifactRef> slice =
        run.LogOutput(request.out, ArtifactKind::kDataslice);
    st = slice.status();
    if (st.ok()) outcome.slice = *slice;
  }
  if (st.ok()) st = run.LogDerivedFrom(outcome.slice.hash, outcome.parent.hash);
  if (!st.ok()) {
    (void)run.Finish(ExecStatus::kFailed, std::nullopt, st.message());
    return st;
  }
  CMF_RETURN_IF_ERROR(run.Finish(ExecStatus::kOk, 0));
  return outcome;
}

}  // namespace cmf
