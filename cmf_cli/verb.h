// The verb table of the cmf executable. Each verb lives in verbs/<name>.cpp,
// fills its options from the command line, calls one function of core/ or
// dvc_like/, and prints. The dispatcher in main.cpp builds the CLI from kVerbs
// and opens the repository for the verbs that need one.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf::cli {

// Exit codes: only main and the verbs' Run return them.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct Context {
  Repo* repo =
      nullptr;  // opened by the dispatcher when the verb needs a repository
  DiscoverOptions discover;  // where the repository is looked for (-C, CMF_DIR)
  CLI::App* app = nullptr;   // the verb's own subcommand, for help text
  // For Needs::kRepoOrBare, when the current directory (or CMF_DIR) is a bare
  // repository: its folder (and repo stays null).
  std::filesystem::path bare;
};

class Verb {
 public:
  virtual ~Verb() = default;
  // Declares the verb's options and arguments on its subcommand.
  virtual void Setup(CLI::App& app) = 0;
  // Runs the verb; returns the process's exit code.
  virtual int Run(Context& ctx) = 0;
};

// What the dispatcher opens before a verb runs. kRepoOrBare: a repository for
// writing, or, when the current directory (or CMF_DIR) is a bare repository,
// nothing but Context::bare.
enum class Needs { kNothing, kRepoToRead, kRepo, kConfig, kRepoOrBare };

struct VerbInfo {
  std::string_view name;
  std::string_view summary;
  Needs needs;
  std::unique_ptr<Verb> (*make)();
};

// Every verb, in the order `cmf --help` lists them.
std::span<const VerbInfo> Verbs();
const VerbInfo* FindVerb(std::string_view name);

// Prints "cmf: error: MESSAGE" to stderr and returns kExitFailure.
int Fail(const Status& status);
// Prints "cmf: error: MESSAGE" to stderr and returns kExitUsage.
int UsageError(std::string_view message);

}  // namespace cmf::cli
