// The plugin host: finds plugin modules, loads them, parses a stage's command
// line against its declared parameters, and runs the stage as a recorded
// execution (what `cmf plugins` and `cmf run` do).
//
// Modules are found, in this order (the first module to register a plugin or
// stage name wins; later ones are skipped with a warning):
//   1. CMF_PLUGIN_PATH: a colon-separated list of module files or folders;
//   2. the build tree: <folder of the cmf binary>/../plugins/*/;
//   3. the install tree: <libdir>/cmf/plugins.
// In a folder, files named cmf-*.so (directly in it or one folder down) are
// modules. A module that cannot be loaded, lacks the entry point, returns
// NULL or was built for another ABI version is skipped with a warning that
// names it; it never stops the others from loading. Loaded modules stay
// loaded until the process exits (LibTorch and friends do not survive
// dlclose), so only `cmf plugins` and `cmf run` call LoadPlugins.
//
// A module may ship a file beside it, cmf-NAME.env, of lines NAME=VALUE (and
// # comments): environment defaults that its libraries read when they load,
// such as OpenMP's OMP_WAIT_POLICY for the LibTorch plugins. They are set,
// where the user has not set them, before any module is loaded (the first
// module's libraries read them at once). A malformed line is a warning.
//
// Not thread-safe: load and run from one thread.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cmf/plugin.h"
#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf {

struct PluginParam {
  std::string name;
  cmf_param_type type = CMF_PARAM_STRING;
  std::optional<std::string> default_value;
  std::string help;
  // Allowed values; an entry ending in ':' allows any value with that prefix
  // ("proc:" allows "proc:python3 sim.py").
  std::vector<std::string> allowed;
  bool multiple = false;
  bool required = false;
  char short_name = 0;  // -X, or 0
};

struct PluginStage {
  std::string name;
  std::string summary;
  std::vector<PluginParam> params;
  std::string plugin;          // the plugin's name
  std::string plugin_version;  // the plugin's own version
  std::filesystem::path module;
  cmf_stage_run_fn run = nullptr;
};

struct PluginModule {
  std::string name;
  std::string version;
  std::string summary;
  std::filesystem::path path;
  std::vector<std::string> stages;
};

struct PluginCatalog {
  std::vector<PluginModule> plugins;
  std::vector<PluginStage> stages;
  std::vector<std::string> warnings;  // modules skipped, and why

  // The stage NAME, or nullptr.
  const PluginStage* FindStage(std::string_view name) const;
};

// The folders and files searched for modules, in order (see above); those
// that do not exist are left out.
std::vector<std::filesystem::path> PluginSearchPath();

// Loads every module found on SEARCH_PATH. Never fails: problems are warnings.
PluginCatalog LoadPlugins(std::span<const std::filesystem::path> search_path);

// "int", "real", "bool", "string", "path".
std::string_view ParamTypeName(cmf_param_type type);

// The values of a stage's parameters as the user gave them: name -> values
// (one, or several for a multiple parameter).
using StageArgs = std::map<std::string, std::vector<std::string>>;

// Parses ARGS (--NAME VALUE, --NAME=VALUE, a bare --NAME or --no-NAME for a
// bool, --NAME V1 V2 ... for a multiple parameter) against STAGE's schema.
// InvalidArgument, with a message that names the parameter, for an unknown
// parameter, a value of the wrong type or not among the allowed ones, a
// missing value, a positional argument, or a required parameter left out.
Result<StageArgs> ParseStageArgs(const PluginStage& stage,
                                 std::span<const std::string> args);

// `cmf run STAGE --help`: usage, summary and one line per parameter.
std::string StageHelp(const PluginStage& stage);

struct StageRunOptions {
  std::string pipeline;  // empty: config core.pipeline, else the folder name
  std::vector<std::string> command;  // recorded as the execution's command
  bool quiet = false;                // no progress line, no info messages
};

struct StageOutcome {
  std::string id;
  ExecStatus status = ExecStatus::kFailed;
  int exit_code = 1;  // 0 ok, 1 failed, 130 interrupted
  std::string message;
};

// Records a new execution of STAGE with every parameter (given or default,
// typed as declared), the plugin's name, version and module hash, and the
// code version; runs the stage; records how it ended. While it runs, SIGINT
// and SIGTERM ask the stage to stop (cancelled() becomes nonzero); a second
// SIGINT ends the process at once. Fails without recording anything when the
// execution cannot be started; once the stage has started, its failure is
// returned in the outcome, not as an error.
Result<StageOutcome> RunStage(Repo& repo, const PluginStage& stage,
                              const StageArgs& args,
                              const StageRunOptions& options);

}  // namespace cmf
