// A C++ wrapper over the plugin ABI (cmf/plugin.h) for plugins written in C++.
//
//   int Train(cmf::plugin::Context& ctx) {
//     std::string data = ctx.Param("data");
//     std::int64_t steps = ctx.IntParam("steps");
//     std::string hash = ctx.LogInput(data, "dataset");
//     for (std::int64_t s = 0; s < steps && !ctx.Cancelled(); ++s)
//       ctx.LogMetric("loss", s, Loss(s));
//     return 0;
//   }
//   const cmf_stage kStages[] = {{"train", "...", kParams, std::size(kParams),
//                                 &cmf::plugin::Invoke<&Train>}};
//
// A Context borrows the host's table and context for one run. Host failures
// and bad parameter text throw cmf::plugin::Error; Invoke turns any exception
// that escapes the stage into cmf_host.fail and a nonzero return, so no
// exception ever crosses into the host. Header-only: it needs no library.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "cmf/plugin.h"

namespace cmf::plugin {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Context {
 public:
  Context(const cmf_host* host, cmf_context* ctx) : host_(host), ctx_(ctx) {}

  // The parameter's text, or "" when it has no value.
  std::string Param(const char* name) const {
    const char* v = host_->param(ctx_, name);
    return v ? v : "";
  }
  bool HasParam(const char* name) const {
    const char* v = host_->param(ctx_, name);
    return v != nullptr && *v != '\0';
  }
  std::vector<std::string> Params(const char* name) const {
    std::vector<std::string> out;
    std::size_t n = host_->param_count(ctx_, name);
    for (std::size_t i = 0; i < n; ++i)
      out.emplace_back(host_->param_at(ctx_, name, i));
    return out;
  }
  std::int64_t IntParam(const char* name) const {
    std::string v = Param(name);
    char* end = nullptr;
    errno = 0;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0)
      throw Error("parameter '" + std::string(name) + "' is not an integer");
    return x;
  }
  double RealParam(const char* name) const {
    std::string v = Param(name);
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0')
      throw Error("parameter '" + std::string(name) + "' is not a number");
    return x;
  }
  bool BoolParam(const char* name) const { return Param(name) == "true"; }

  std::string ExecutionId() const { return host_->execution_id(ctx_); }
  std::string Workspace() const { return host_->workspace(ctx_); }

  // Records PATH; returns its content hash. KIND may be nullptr (guessed).
  std::string LogInput(const std::string& path, const char* kind = nullptr) {
    char hash[65] = {};
    Check(host_->log_input(ctx_, path.c_str(), kind, hash));
    return hash;
  }
  std::string LogOutput(const std::string& path, const char* kind = nullptr) {
    char hash[65] = {};
    Check(host_->log_output(ctx_, path.c_str(), kind, hash));
    return hash;
  }
  // Records an artifact already in the store (by hash) as an input, seen at
  // PATH ("": the hash stands for the path).
  void LogInputHash(const std::string& hash, const std::string& path = "") {
    Check(host_->log_input_hash(ctx_, hash.c_str(),
                                path.empty() ? nullptr : path.c_str()));
  }
  void LogDerivedFrom(const std::string& child, const std::string& parent) {
    Check(host_->log_derived_from(ctx_, child.c_str(), parent.c_str()));
  }
  void LogMetric(const char* series, std::int64_t step, double value) {
    Check(host_->log_metric(ctx_, series, step, value));
  }
  void SetProperty(const char* name, std::int64_t value) {
    Check(host_->set_property_int(ctx_, name, value));
  }
  void SetProperty(const char* name, double value) {
    Check(host_->set_property_real(ctx_, name, value));
  }
  void SetProperty(const char* name, const std::string& value) {
    Check(host_->set_property_text(ctx_, name, value.c_str()));
  }
  void Progress(double done, double total, const std::string& note) {
    host_->progress(ctx_, done, total, note.c_str());
  }
  void Info(const std::string& text) {
    host_->message(ctx_, CMF_INFO, text.c_str());
  }
  void Warn(const std::string& text) {
    host_->message(ctx_, CMF_WARNING, text.c_str());
  }
  bool Cancelled() const { return host_->cancelled(ctx_) != 0; }

  // A readable file for REF (a path, or an artifact of the store by hash or
  // prefix, fetched when only a remote has it); HASH receives its hash.
  std::string ResolveArtifact(const std::string& ref, std::string* hash) {
    char path[4096] = {};
    char h[65] = {};
    Check(host_->resolve_artifact(ctx_, ref.c_str(), path, sizeof path, h));
    if (hash != nullptr) *hash = h;
    return path;
  }

  struct StageOutput {
    std::string hash;
    std::string path;
    std::string execution;
  };
  // The outputs of KIND (nullptr: any) of every successful execution of
  // STAGE, in PIPELINE ("" for any), oldest first.
  std::vector<StageOutput> StageOutputs(const std::string& stage,
                                        const std::string& pipeline,
                                        const char* kind) {
    std::vector<StageOutput> out;
    auto each = [](void* user, const char* hash, const char* path,
                   const char* execution) {
      static_cast<std::vector<StageOutput>*>(user)->push_back(
          {hash, path, execution});
    };
    Check(host_->stage_outputs(ctx_, stage.c_str(),
                               pipeline.empty() ? nullptr : pipeline.c_str(),
                               kind, each, &out));
    return out;
  }
  void Fail(const std::string& message) { host_->fail(ctx_, message.c_str()); }

 private:
  void Check(int rc) {
    if (rc != CMF_OK) throw Error(host_->last_error(ctx_));
  }

  const cmf_host* host_;
  cmf_context* ctx_;
};

// Adapts `int Fn(Context&)` to cmf_stage_run_fn, turning exceptions into
// cmf_host.fail.
template <int (*Fn)(Context&)>
int Invoke(const cmf_host* host, cmf_context* ctx) noexcept {
  Context context(host, ctx);
  try {
    return Fn(context);
  } catch (const std::exception& e) {
    context.Fail(e.what());
  } catch (...) {
    context.Fail("unknown error");
  }
  return 1;
}

}  // namespace cmf::plugin
