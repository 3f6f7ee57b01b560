// The JSON forms of records that `--json` prints. These are a contract for
// scripts: keys may be added, never renamed or removed (doc/json.md lists
// them). Keys are sorted; times are ISO 8601 UTC strings; hashes are 64
// lowercase hex digits. Thread-safe. Every verb's --json goes through these
// (cmf compare's table writes its own, with AppendJsonString and
// AppendJsonValue); they are defined by subject in json_output*.cpp.
#pragma once

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/dataslice.h"
#include "cmf/import.h"
#include "cmf/lineage.h"
#include "cmf/plugin_host.h"
#include "cmf/records.h"
#include "cmf/store.h"
#include "cmf/sync.h"
#include "cmf/workspace.h"
#include "diff_report.h"

namespace cmf {

// Appends V as a JSON string (as ExecutionJson writes strings) or value, for
// writers that build a large document directly.
void AppendJsonString(std::string& out, std::string_view v);
void AppendJsonValue(std::string& out, const Value& v);

// One execution: {"id", "pipeline", "stage", "command", "status", "exit_code",
// "started", "ended", "params", "code", "inputs", "outputs", ...}.
std::string ExecutionJson(const ExecutionRecord& record, int indent = 2);

// A JSON array of executions, in the order given.
std::string ExecutionsJson(const std::vector<ExecutionRecord>& records,
                           int indent = 2);

// Writes a JSON array of executions a part at a time, for listings too large to
// hold at once: Begin(), then Add() for each page, then End(); the text is the
// same as ExecutionsJson's.
class ExecutionsJsonWriter {
 public:
  std::string Begin() const { return "["; }
  // The JSON of RECORDS, each preceded by its separator.
  std::string Add(const std::vector<ExecutionRecord>& records);
  std::string End() const { return count_ ? "\n]" : "]"; }

 private:
  std::size_t count_ = 0;
};

// {"series": {"NAME": [[step, value], ...], ...}}; NaN and infinities are
// written as null.
std::string MetricsJson(const MetricSeries& series, int indent = 2);

// cmf show --artifact: {"hash", "kind", "size", "tags": {NAME: VALUE},
// "locations": [SITE], "lineage": LINEAGE} (LINEAGE as LineageJson writes it,
// its keys sorted).
std::string ArtifactJson(const ArtifactRef& artifact,
                         const std::map<std::string, std::string>& tags,
                         const std::map<std::string, Value>& properties,
                         const std::vector<std::string>& locations,
                         const LineageGraph& lineage, int indent = 2);

// cmf tag --json: {NAME: VALUE}.
std::string TagsJson(const std::map<std::string, std::string>& tags,
                     int indent = 2);

// {"tracked": [ARTIFACT...], "changes": [{"path", "status", "tracked"}],
//  "clean": bool, "uncommitted": {"executions": N}}
std::string StatusJson(const StatusReport& report, int indent = 2);

// [{"path", "hash", "size", "kind", "files", "hashed_files", "hashed_bytes",
//   "changed"}]
std::string AddJson(const std::vector<AddResult>& results, int indent = 2);

// {"ok": bool, "objects": N, "corrupt": [HASH], "missing": [{"hash", "path"}]}
std::string FsckJson(const FsckReport& report, int indent = 2);

// {"unreferenced": [HASH], "bytes": N, "removed": bool}
std::string GcJson(const GcReport& report, int indent = 2);

// cmf commit, push / pull / fetch, remote -v, whereis and get (sync.h).
std::string CommitJson(const CommitReport& report, int indent = 2);
std::string SyncJson(const SyncReport& report, int indent = 2);
std::string RemotesJson(const std::vector<RemoteSpec>& remotes, int indent = 2);
std::string WhereIsJson(const Whereabouts& where, int indent = 2);
std::string GetJson(const GetReport& report, int indent = 2);

// cmf import --json, on one line: {"executions": N, "artifacts": N,
// "events": N, "facts": N} (in this order, not sorted).
std::string ImportReportJson(const ImportReport& report);

// cmf diff A B --json, of two executions: {"a", "b", "params": {NAME: {"old",
// "new"}}, "metrics": {NAME: {"old", "new", "summary", "change"}}, "tags":
// {NAME: {"old", "new"}}, "environment": {"old", "new", "packages",
// "complete"}}; of two commits: {"a", "b", "only_in_a", "only_in_b"}, each
// {"segments", "facts", "unreadable", "executions", "states", "properties",
// "tags", "metrics", "artifacts", "locations"}.
std::string ExecutionDiffJson(const cli::ExecutionDiff& diff, int indent = 2);
std::string CommitDiffJson(const cli::CommitDiff& diff, int indent = 2);

// cmf query artifacts --json: [{"hash", "kind", "size", "paths"}].
std::string ArtifactRowsJson(const std::vector<Store::ArtifactRow>& rows,
                             int indent = 2);

// cmf lineage --format json: {"root", "nodes": [...], "edges": [...]}.
std::string LineageJson(const LineageGraph& graph, int indent = 2);
// The same text, and a newline, written to OUT as it is made (in pieces of
// about 64 KiB: a walk of tens of thousands of nodes is megabytes of JSON).
// False when writing failed.
bool WriteLineageJson(const LineageGraph& graph, std::FILE* out);

// `cmf plugins --json`: the folders searched, every plugin with its stages
// and their parameter schemas, and the warnings of the search.
std::string PluginsJson(const PluginCatalog& catalog,
                        const std::vector<std::filesystem::path>& search,
                        int indent = 2);

// `cmf slice --list --json`: the datasets of an HDF5 file.
std::string DatasetsJson(const std::vector<data::DatasetInfo>& sets,
                         int indent = 2);

}  // namespace cmf
