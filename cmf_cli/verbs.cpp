#include <fmt/format.h>

#include <array>

#include "verb.h"

namespace cmf::cli {

// One factory per verb, each defined in verbs/<name>.cpp.
std::unique_ptr<Verb> MakeInitVerb();
std::unique_ptr<Verb> MakeExecVerb();
std::unique_ptr<Verb> MakeLogVerb();
std::unique_ptr<Verb> MakeShowVerb();
std::unique_ptr<Verb> MakeMetricsVerb();
std::unique_ptr<Verb> MakeConfigVerb();
std::unique_ptr<Verb> MakeHelpVerb();
std::unique_ptr<Verb> MakeAddVerb();
std::unique_ptr<Verb> MakeStatusVerb();
std::unique_ptr<Verb> MakeCheckoutVerb();
std::unique_ptr<Verb> MakeUnlockVerb();
std::unique_ptr<Verb> MakeFsckVerb();
std::unique_ptr<Verb> MakeGcVerb();
std::unique_ptr<Verb> MakeSliceVerb();
std::unique_ptr<Verb> MakeCommitVerb();
std::unique_ptr<Verb> MakeRemoteVerb();
std::unique_ptr<Verb> MakePushVerb();
std::unique_ptr<Verb> MakePullVerb();
std::unique_ptr<Verb> MakeFetchVerb();
std::unique_ptr<Verb> MakeWhereisVerb();
std::unique_ptr<Verb> MakeGetVerb();
std::unique_ptr<Verb> MakeLineageVerb();
std::unique_ptr<Verb> MakeQueryVerb();
std::unique_ptr<Verb> MakeCompareVerb();
std::unique_ptr<Verb> MakeDiffVerb();
std::unique_ptr<Verb> MakeTagVerb();
std::unique_ptr<Verb> MakeImportVerb();
std::unique_ptr<Verb> MakeExportVerb();
std::unique_ptr<Verb> MakeRunVerb();
std::unique_ptr<Verb> MakePluginsVerb();
std::unique_ptr<Verb> MakeUiVerb();

namespace {

constexpr std::array kVerbs = {
    VerbInfo{"init", "Create an empty cmf repository here or in DIR",
             Needs::kNothing, MakeInitVerb},
    VerbInfo{"exec", "Run a command and record it as an execution of a stage",
             Needs::kRepo, MakeExecVerb},
    VerbInfo{"run",
             "Run a plugin's stage (dkl-al, ...) as a recorded execution",
             Needs::kNothing, MakeRunVerb},
    VerbInfo{"plugins", "List plugins, their stages and parameters",
             Needs::kNothing, MakePluginsVerb},
    VerbInfo{"log", "List executions, newest first", Needs::kRepoToRead,
             MakeLogVerb},
    VerbInfo{"show", "Show one execution in full", Needs::kRepoToRead,
             MakeShowVerb},
    VerbInfo{"metrics", "Print an execution's step metrics", Needs::kRepoToRead,
             MakeMetricsVerb},
    VerbInfo{"lineage", "Walk what an artifact or execution came from, or made",
             Needs::kRepoToRead, MakeLineageVerb},
    VerbInfo{"query", "Find executions or artifacts by their records",
             Needs::kRepoToRead, MakeQueryVerb},
    VerbInfo{"compare",
             "Compare executions: a row each, their params and metrics",
             Needs::kRepoToRead, MakeCompareVerb},
    VerbInfo{"diff",
             "What differs between two executions: params, metrics, "
             "environment",
             Needs::kRepoToRead, MakeDiffVerb},
    VerbInfo{"ui",
             "Serve pages of the executions and their lineage to a browser",
             Needs::kRepoToRead, MakeUiVerb},
    VerbInfo{"tag", "Tag an execution or artifact (NAME=VALUE), or list tags",
             Needs::kRepo, MakeTagVerb},
    VerbInfo{"import", "Import a cmflib (MLMD) store or a cmf export",
             Needs::kRepo, MakeImportVerb},
    VerbInfo{"export", "Write every record as JSON that cmf import reads back",
             Needs::kRepoToRead, MakeExportVerb},
    VerbInfo{"add", "Track files and directories by content", Needs::kRepo,
             MakeAddVerb},
    VerbInfo{"status",
             "Show tracked data that changed, and metadata not committed",
             Needs::kRepo, MakeStatusVerb},
    VerbInfo{"checkout", "Restore tracked data from the cache", Needs::kRepo,
             MakeCheckoutVerb},
    VerbInfo{"unlock", "Make private, writable copies of cached files",
             Needs::kRepo, MakeUnlockVerb},
    VerbInfo{"fsck", "Verify every object and every reference to one",
             Needs::kRepo, MakeFsckVerb},
    VerbInfo{"gc", "Remove cached objects that nothing references",
             Needs::kRepoOrBare, MakeGcVerb},
    VerbInfo{"slice", "Cut a data slice out of an HDF5 file and record it",
             Needs::kRepo, MakeSliceVerb},
    VerbInfo{"commit", "Seal uncommitted metadata into a commit of the log",
             Needs::kRepo, MakeCommitVerb},
    VerbInfo{"remote", "List, add and remove remotes", Needs::kRepo,
             MakeRemoteVerb},
    VerbInfo{"push", "Send commits and the data they need to a remote",
             Needs::kRepo, MakePushVerb},
    VerbInfo{"pull", "Fetch, merge and ingest a remote's commits and data",
             Needs::kRepo, MakePullVerb},
    VerbInfo{"fetch", "Fetch a remote's log without ingesting it", Needs::kRepo,
             MakeFetchVerb},
    VerbInfo{"whereis", "Show which sites and remotes hold an object's bytes",
             Needs::kRepo, MakeWhereisVerb},
    VerbInfo{"get", "Fetch an object's bytes from a remote on demand",
             Needs::kRepo, MakeGetVerb},
    VerbInfo{"config", "Get and set repository options", Needs::kConfig,
             MakeConfigVerb},
    VerbInfo{"help", "Show the manual page of cmf or of a verb",
             Needs::kNothing, MakeHelpVerb},
};

}  // namespace

std::span<const VerbInfo> Verbs() { return kVerbs; }

const VerbInfo* FindVerb(std::string_view name) {
  for (const VerbInfo& v : kVerbs) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

int Fail(const Status& status) {
  fmt::print(stderr, "cmf: error: {}\n", status.message());
  return kExitFailure;
}

int UsageError(std::string_view message) {
  fmt::print(stderr, "cmf: error: {}\n", message);
  return kExitUsage;
}

}  // namespace cmf::cli
