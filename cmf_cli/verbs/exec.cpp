#include "cmf/exec.h"

#include <fmt/format.h>

#include <csignal>

#include "../verb.h"

namespace cmf::cli {
namespace {

class ExecVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("--pipeline", pipeline_,
                   "Pipeline to record in (default: config core.pipeline, else "
                   "the workspace "
                   "folder's name)");
    app.add_option("--stage", stage_, "Stage this execution runs")->required();
    app.add_option("--in", inputs_, "An input file or directory (repeatable)")
        ->type_name("PATH")
        ->allow_extra_args(false);
    app.add_option("--out", outputs_,
                   "An output file or directory (repeatable)")
        ->type_name("PATH")
        ->allow_extra_args(false);
    app.add_option("-p,--param", params_, "A parameter KEY=VALUE (repeatable)")
        ->type_name("KEY=VALUE")
        ->allow_extra_args(false);
    app.add_flag("-q,--quiet", quiet_, "Do not report the recorded execution");
    app.add_option("command", command_, "The command to run, after --")
        ->required();
    app.footer(
        "Example: cmf exec --stage train --in patches.h5 --out model.pt -p "
        "lr=0.01 -- "
        "./train\n"
        "The command may log step metrics by writing 'SERIES STEP VALUE' lines "
        "to the "
        "file descriptor in $CMF_METRICS_FD.");
  }

  int Run(Context& ctx) override {
    if (stage_.empty()) return UsageError("--stage needs a name");
    ExecOptions options;
    options.run.pipeline = pipeline_;
    options.run.stage = stage_;
    options.run.command = command_;
    for (const std::string& p : params_) {
      auto eq = p.find('=');
      if (eq == std::string::npos || eq == 0) {
        return UsageError(fmt::format("parameter '{}' is not KEY=VALUE", p));
      }
      std::string key = p.substr(0, eq);
      if (options.run.params.count(key)) {
        return UsageError(fmt::format("parameter '{}' given twice", key));
      }
      options.run.params[key] =
          p.substr(eq + 1);  // kept as the text the user wrote
    }
    options.inputs.assign(inputs_.begin(), inputs_.end());
    options.outputs.assign(outputs_.begin(), outputs_.end());

    Result<ExecOutcome> outcome = Exec(*ctx.repo, std::move(options));
    if (!outcome.ok()) return Fail(outcome.status());
    if (outcome->status != ExecStatus::kOk) {
      fmt::print(stderr, "cmf: error: execution {} {}: {}\n", outcome->id,
                 ToString(outcome->status), outcome->message);
    } else if (!quiet_) {
      fmt::print(stderr, "cmf: recorded execution {} (ok)\n", outcome->id);
    }
    if (outcome->signal == SIGINT || outcome->signal == SIGQUIT) {
      // Die of the same signal, so that a calling shell loop stops too.
      std::signal(outcome->signal, SIG_DFL);
      std::raise(outcome->signal);
    }
    if (outcome->status == ExecStatus::kOk) return kExitOk;
    return outcome->exit_code != 0 ? outcome->exit_code : kExitFailure;
  }

 private:
  std::string pipeline_;
  std::string stage_;
  std::vector<std::string> inputs_;
  std::vector<std::string> outputs_;
  std::vector<std::string> params_;
  std::vector<std::string> command_;
  bool quiet_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeExecVerb() { return std::make_unique<ExecVerb>(); }

}  // namespace cmf::cli
