// Running a stage (cmf/plugin_host.h): the host table a plugin calls, the
// signals that cancel it, and the execution it is recorded as. Finding the
// modules is plugin_discovery.cpp; the parameters, plugin_args.cpp.
#include "cmf/plugin_host.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "cmf/byte_strings.h"
#include "cmf/data/executable.h"
#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "cmf/run.h"
#include "cmf/store.h"
#include "cmf/sync.h"
#include "cmf_config.h"

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// Running a stage

struct cmf_context {
  cmf::Repo* repo = nullptr;
  cmf::Run* run = nullptr;
  const cmf::PluginStage* stage = nullptr;
  std::map<std::string, std::vector<std::string>> values;  // with defaults
  std::string id;
  std::string workspace;
  std::string error;         // the last host call's failure
  std::string fail_message;  // the stage's own reason
  bool quiet = false;
  bool progress_drawn = false;
  std::chrono::steady_clock::time_point last_draw{};
};

namespace cmf {
namespace {

std::atomic<int> g_cancel_signal{0};

void OnCancel(int sig) {
  if (g_cancel_signal.load() != 0 && sig == SIGINT) {
    // A second Ctrl-C: the stage did not stop; end the process now.
    ::signal(SIGINT, SIG_DFL);
    ::raise(SIGINT);
    return;
  }
  g_cancel_signal.store(sig);
}

// Catches SIGINT and SIGTERM while a stage runs; restores them afterwards.
class CancelScope {
 public:
  CancelScope() {
    g_cancel_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = OnCancel;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~CancelScope() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

int Report(cmf_context* ctx, const Status& status) {
  if (status.ok()) return CMF_OK;
  ctx->error = status.message();
  return CMF_ERROR;
}

void ClearProgress(cmf_context* ctx) {
  if (ctx->progress_drawn) {
    std::fputs("\r\033[K", stderr);
    ctx->progress_drawn = false;
  }
}

const char* HostParam(cmf_context* ctx, const char* name) {
  auto it = ctx->values.find(name ? name : "");
  return it == ctx->values.end() || it->second.empty()
             ? nullptr
             : it->second.front().c_str();
}

std::size_t HostParamCount(cmf_context* ctx, const char* name) {
  auto it = ctx->values.find(name ? name : "");
  return it == ctx->values.end() ? 0 : it->second.size();
}

const char* HostParamAt(cmf_context* ctx, const char* name, std::size_t i) {
  auto it = ctx->values.find(name ? name : "");
  return it == ctx->values.end() || i >= it->second.size()
             ? nullptr
             : it->second[i].c_str();
}

const char* HostExecutionId(cmf_context* ctx) { return ctx->id.c_str(); }
const char* HostWorkspace(cmf_context* ctx) { return ctx->workspace.c_str(); }

// KIND as an artifact kind into *OUT (left empty for NULL).
Status ParseKind(const char* kind, std::optional<ArtifactKind>* out) {
  if (kind == nullptr) return Status::Ok();
  *out = ParseArtifactKind(kind);
  if (!*out)
    return Status::InvalidArgument(
        fmt::format("unknown artifact kind '{}'", kind));
  return Status::Ok();
}

int HostLog(cmf_context* ctx, const char* path, const char* kind,
            char hash_out[65], bool output) {
  if (path == nullptr || *path == '\0')
    return Report(ctx, Status::InvalidArgument("empty path"));
  std::optional<ArtifactKind> k;
  if (Status parsed = ParseKind(kind, &k); !parsed.ok())
    return Report(ctx, parsed);
  Result<ArtifactRef> ref =
      output ? ctx->run->LogOutput(path, k) : ctx->run->LogInput(path, k);
  if (!ref.ok()) return Report(ctx, ref.status());
  if (hash_out != nullptr) {
    std::memcpy(hash_out, ref->hash.c_str(),
                std::min<std::size_t>(ref->hash.size(), 64));
    hash_out[std::min<std::size_t>(ref->hash.size(), 64)] = '\0';
  }
  return CMF_OK;
}

int HostLogInput(cmf_context* ctx, const char* path, const char* kind,
                 char hash_out[65]) {
  return HostLog(ctx, path, kind, hash_out, false);
}
int HostLogOutput(cmf_context* ctx, const char* path, const char* kind,
                  char hash_out[65]) {
  return HostLog(ctx, path, kind, hash_out, true);
}
int HostLogDerivedFrom(cmf_context* ctx, const char* child,
                       const char* parent) {
  if (child == nullptr || parent == nullptr)
    return Report(ctx, Status::InvalidArgument("null hash"));
  return Report(ctx, ctx->run->LogDerivedFrom(child, parent));
}
int HostLogMetric(cmf_context* ctx, const char* series, std::int64_t step,
                  double value) {
  if (series == nullptr || *series == '\0')
    return Report(ctx, Status::InvalidArgument("empty series name"));
  return Report(ctx, ctx->run->LogMetric(series, step, value));
}
int HostSetInt(cmf_context* ctx, const char* name, std::int64_t v) {
  if (name == nullptr || *name == '\0')
    return Report(ctx, Status::InvalidArgument("empty property name"));
  return Report(ctx, ctx->run->SetProperty(name, Value(v)));
}
int HostSetReal(cmf_context* ctx, const char* name, double v) {
  if (name == nullptr || *name == '\0')
    return Report(ctx, Status::InvalidArgument("empty property name"));
  return Report(ctx, ctx->run->SetProperty(name, Value(v)));
}
int HostSetText(cmf_context* ctx, const char* name, const char* v) {
  if (name == nullptr || *name == '\0' || v == nullptr)
    return Report(ctx, Status::InvalidArgument("empty property"));
  return Report(ctx, ctx->run->SetProperty(name, Value(std::string(v))));
}

void HostProgress(cmf_context* ctx, double done, double total,
                  const char* note) {
  if (ctx->quiet || !::isatty(STDERR_FILENO)) return;
  auto now = std::chrono::steady_clock::now();
  if (ctx->progress_drawn &&
      now - ctx->last_draw < std::chrono::milliseconds(100))
    return;
  ctx->last_draw = now;
  std::string line = fmt::format("{}: ", ctx->stage->name);
  if (total > 0)
    line +=
        fmt::format("{:3.0f}% ", 100.0 * std::clamp(done / total, 0.0, 1.0));
  if (note != nullptr) line += note;
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  ctx->progress_drawn = true;
}

void HostMessage(cmf_context* ctx, int level, const char* text) {
  if (text == nullptr) return;
  if (level == CMF_INFO && ctx->quiet) return;
  ClearProgress(ctx);
  std::fprintf(stderr, "cmf: %s%s: %s\n",
               level == CMF_WARNING ? "warning: " : "",
               ctx->stage->name.c_str(), text);
}

int HostCancelled(cmf_context*) { return g_cancel_signal.load() != 0; }

void HostFail(cmf_context* ctx, const char* message) {
  ctx->fail_message = message ? message : "";
}

const char* HostLastError(cmf_context* ctx) { return ctx->error.c_str(); }

int HostResolveArtifact(cmf_context* ctx, const char* ref, char* path_out,
                        std::size_t path_size, char hash_out[65]) {
  if (ref == nullptr || *ref == '\0' || path_out == nullptr)
    return Report(ctx, Status::InvalidArgument("empty artifact reference"));
  std::error_code ec;
  std::string path;
  std::string hash;
  if (fs::is_regular_file(ref, ec)) {
    Result<data::ObjectInfo> info = HashContent(*ctx->repo, ref, false);
    if (!info.ok()) return Report(ctx, info.status());
    path = ref;
    hash = info->hash;
  } else if (fs::exists(ref, ec)) {
    return Report(ctx, Status::InvalidArgument(
                           fmt::format("'{}' is not a regular file", ref)));
  } else {
    Result<std::string> resolved = ctx->repo->store().ResolveArtifact(ref);
    if (!resolved.ok()) {
      return Report(ctx, Status::NotFound(fmt::format(
                             "'{}' is neither a file nor an artifact of the "
                             "store ({})",
                             ref, resolved.status().message())));
    }
    hash = *resolved;
    if (!ctx->repo->objects().Has(hash)) {
      Result<GetReport> got = Get(*ctx->repo, hash, std::nullopt, false);
      if (!got.ok()) return Report(ctx, got.status());
    }
    path = ctx->repo->objects().PathOf(hash).string();
    if (!fs::is_regular_file(path, ec))
      return Report(ctx, Status::InvalidArgument(fmt::format(
                             "artifact {} is not a file", hash.substr(0, 12))));
  }
  if (path.size() + 1 > path_size)
    return Report(ctx, Status::InvalidArgument("path buffer too small"));
  std::memcpy(path_out, path.c_str(), path.size() + 1);
  if (hash_out != nullptr) {
    std::memcpy(hash_out, hash.c_str(), std::min<std::size_t>(hash.size(), 64));
    hash_out[std::min<std::size_t>(hash.size(), 64)] = '\0';
  }
  return CMF_OK;
}

int HostLogInputHash(cmf_context* ctx, const char* hash, const char* path) {
  if (hash == nullptr || *hash == '\0')
    return Report(ctx, Status::InvalidArgument("empty hash"));
  Result<ArtifactRef> ref = ctx->repo->store().GetArtifact(hash);
  if (!ref.ok()) return Report(ctx, ref.status());
  ref->path = path != nullptr && *path != '\0' ? std::string(path) : ref->hash;
  return Report(ctx, ctx->run->LogHashed(Direction::kInput, *ref));
}

int HostStageOutputs(cmf_context* ctx, const char* stage, const char* pipeline,
                     const char* kind,
                     void (*each)(void*, const char*, const char*, const char*),
                     void* user) {
  if (stage == nullptr || *stage == '\0' || each == nullptr)
    return Report(ctx, Status::InvalidArgument("no stage named"));
  std::optional<ArtifactKind> k;
  if (Status parsed = ParseKind(kind, &k); !parsed.ok())
    return Report(ctx, parsed);
  ExecutionFilter filter;
  filter.stage = stage;
  if (pipeline != nullptr && *pipeline != '\0') filter.pipeline = pipeline;
  std::vector<ExecutionRecord> found;
  Status scanned = ctx->repo->store().ScanExecutions(
      filter, [&](std::vector<ExecutionRecord>& page) {
        for (ExecutionRecord& e : page)
          if (e.status == ExecStatus::kOk) found.push_back(std::move(e));
        return Status::Ok();
      });
  if (!scanned.ok()) return Report(ctx, scanned);
  for (auto e = found.rbegin(); e != found.rend(); ++e) {
    for (const ArtifactRef& out : e->outputs) {
      if (k && out.kind != *k) continue;
      each(user, out.hash.c_str(), out.path.c_str(), e->id.c_str());
    }
  }
  return CMF_OK;
}

constexpr cmf_host kHost = {
    CMF_PLUGIN_ABI_VERSION,
    sizeof(cmf_host),
    HostParam,
    HostParamCount,
    HostParamAt,
    HostExecutionId,
    HostWorkspace,
    HostLogInput,
    HostLogOutput,
    HostLogDerivedFrom,
    HostLogMetric,
    HostSetInt,
    HostSetReal,
    HostSetText,
    HostProgress,
    HostMessage,
    HostCancelled,
    HostFail,
    HostLastError,
    HostResolveArtifact,
    HostStageOutputs,
    HostLogInputHash,
};

// A parameter's values as recorded on the execution: typed as declared; a
// multiple parameter as a JSON array of its values' text (a value that is not
// UTF-8, such as a path, as {"hex": …}: cmf/byte_strings.h).
Value Recorded(const PluginParam& p, const std::vector<std::string>& values) {
  if (p.multiple) {
    nlohmann::json array(values);
    EncodeByteStrings(array);
    return array.dump();
  }
  const std::string& v = values.front();
  switch (p.type) {
    case CMF_PARAM_INT:
      return static_cast<std::int64_t>(std::strtoll(v.c_str(), nullptr, 10));
    case CMF_PARAM_REAL:
      return std::strtod(v.c_str(), nullptr);
    case CMF_PARAM_BOOL:
      return v == "true";
    default:
      return v;
  }
}

}  // namespace

Result<StageOutcome> RunStage(Repo& repo, const PluginStage& stage,
                              const StageArgs& args,
                              const StageRunOptions& options) {
  cmf_context ctx;
  ctx.repo = &repo;
  ctx.stage = &stage;
  ctx.quiet = options.quiet;
  ctx.workspace = repo.workspace().string();
  RunSpec spec;
  spec.pipeline = options.pipeline;
  spec.stage = stage.name;
  spec.command = options.command;
  for (const PluginParam& p : stage.params) {
    auto given = args.find(p.name);
    if (given != args.end()) {
      ctx.values[p.name] = given->second;
    } else if (p.default_value) {
      ctx.values[p.name] = {*p.default_value};
    } else {
      continue;  // optional without a default: absent, not recorded
    }
    spec.params[p.name] = Recorded(p, ctx.values[p.name]);
  }

  // The module's hash pins the code that ran, beside the workspace's git
  // commit that Run::Start records.
  Result<std::string> module_hash = data::HashFile(stage.module);

  CMF_ASSIGN_OR_RETURN(Run run, Run::Start(repo, std::move(spec)));
  ctx.run = &run;
  ctx.id = run.id();
  CMF_RETURN_IF_ERROR(run.SetProperty("plugin", Value(stage.plugin)));
  CMF_RETURN_IF_ERROR(
      run.SetProperty("plugin_version", Value(stage.plugin_version)));
  if (module_hash.ok())
    CMF_RETURN_IF_ERROR(run.SetProperty("plugin_sha256", Value(*module_hash)));
  data::CrashPoint("run:started");

  int rc = 1;
  {
    CancelScope cancel;
    try {
      rc = stage.run(&kHost, &ctx);
    } catch (const std::exception& e) {
      ctx.fail_message = e.what();
      rc = 1;
    } catch (...) {
      ctx.fail_message = "the stage threw an unknown exception";
      rc = 1;
    }
    ClearProgress(&ctx);
  }

  StageOutcome outcome;
  outcome.id = run.id();
  if (int sig = g_cancel_signal.load(); sig != 0) {
    outcome.status = ExecStatus::kInterrupted;
    outcome.exit_code = 128 + sig;
    outcome.message = fmt::format(
        "interrupted by {}", sig == SIGINT ? "SIGINT (Ctrl-C)" : "SIGTERM");
  } else if (rc != 0) {
    outcome.status = ExecStatus::kFailed;
    outcome.exit_code = 1;
    outcome.message =
        ctx.fail_message.empty()
            ? fmt::format("stage '{}' failed (it returned {})", stage.name, rc)
            : ctx.fail_message;
  } else {
    outcome.status = ExecStatus::kOk;
    outcome.exit_code = 0;
  }
  CMF_RETURN_IF_ERROR(
      run.Finish(outcome.status, outcome.exit_code, outcome.message));
  return outcome;
}

}  // namespace cmf
