// cmf run STAGE [--PARAM VALUE]...: runs a plugin's stage as a recorded
// execution. The stage's parameters are parsed here, against the schema the
// plugin declares, so this verb opens the repository itself once it knows the
// command line is sound: `cmf run STAGE --help` works outside a repository.
#include <fmt/format.h>

#include <cstdlib>

#include "../verb.h"
#include "cmf/plugin_host.h"

namespace cmf::cli {
namespace {

class RunVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("--pipeline", pipeline_,
                   "Pipeline to record in (default: config core.pipeline, "
                   "else the workspace folder's name)");
    app.add_flag("-q,--quiet", quiet_, "No progress line or notes");
    app.add_option("stage", stage_, "The stage to run (see 'cmf plugins')");
    app.prefix_command();  // everything after STAGE belongs to the stage
    // --help after STAGE is the stage's help, generated from its schema; CLI11
    // would answer it with this verb's, so the verb handles both.
    app.set_help_flag();
    app.add_flag("-h,--help", help_, "Print this help message and exit");
    app.footer(
        "Run 'cmf run STAGE --help' for a stage's parameters and 'cmf plugins' "
        "for the stages there are.");
  }

  int Run(Context& ctx) override {
    if (stage_.empty()) {
      fmt::print("{}", ctx.app->help("cmf"));
      return stage_.empty() && !help_ ? kExitUsage : kExitOk;
    }
    std::vector<std::string> args = ctx.app->remaining();
    bool help = help_;
    std::erase_if(args, [&](const std::string& a) {
      if (a == "--help" || a == "-h") return help = true;
      return false;
    });
    std::vector<std::filesystem::path> search = PluginSearchPath();
    PluginCatalog catalog = LoadPlugins(search);
    const PluginStage* stage = catalog.FindStage(stage_);
    if (stage == nullptr) {
      std::string known;
      for (const PluginStage& s : catalog.stages)
        known += (known.empty() ? "" : ", ") + s.name;
      int code = UsageError(fmt::format(
          "no plugin has a stage '{}' ({}; see 'cmf plugins')", stage_,
          known.empty() ? "no plugin was found" : "there are: " + known));
      // The stage may live in a module that was skipped: say which were.
      for (const std::string& w : catalog.warnings)
        fmt::print(stderr, "cmf: warning: {}\n", w);
      return code;
    }
    if (help) {
      fmt::print("{}", StageHelp(*stage));
      return kExitOk;
    }
    Result<StageArgs> parsed = ParseStageArgs(*stage, args);
    if (!parsed.ok()) {
      return UsageError(fmt::format("{} (see 'cmf run {} --help')",
                                    parsed.status().message(), stage_));
    }
    Result<Repo> repo = Repo::Open(ctx.discover, OpenMode::kReadWrite);
    if (!repo.ok()) return Fail(repo.status());

    StageRunOptions options;
    options.pipeline = pipeline_;
    options.quiet = quiet_;
    options.command = {"cmf", "run", stage_};
    options.command.insert(options.command.end(), args.begin(), args.end());
    Result<StageOutcome> outcome = RunStage(*repo, *stage, *parsed, options);
    if (!outcome.ok()) return Fail(outcome.status());
    std::string short_id = outcome->id.substr(0, 13);
    if (outcome->status == ExecStatus::kOk) {
      if (!quiet_)
        fmt::print(stderr, "cmf: recorded {} ({} ok); see 'cmf show {}'\n",
                   short_id, stage_, short_id);
      return kExitOk;
    }
    fmt::print(stderr, "cmf: error: {}: {}\n", stage_, outcome->message);
    fmt::print(stderr, "cmf: recorded {} as {}; see 'cmf show {}'\n", short_id,
               ToString(outcome->status), short_id);
    return outcome->exit_code;
  }

 private:
  std::string pipeline_;
  std::string stage_;
  bool quiet_ = false;
  bool help_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeRunVerb() { return std::make_unique<RunVerb>(); }

}  // namespace cmf::cli
