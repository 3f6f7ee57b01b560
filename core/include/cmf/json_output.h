// The JSON forms of records that `--json` prints. These are a contract for scripts: keys may be
// added, never renamed or removed (doc/json.md lists them). Keys are sorted; times are ISO 8601
// UTC strings; hashes are 64 lowercase hex digits. Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "cmf/records.h"

namespace cmf {

// One execution: {"id", "pipeline", "stage", "command", "status", "exit_code", "started",
// "ended", "params", "code", "inputs", "outputs", ...}.
std::string ExecutionJson(const ExecutionRecord& record, int indent = 2);

// A JSON array of executions, in the order given.
std::string ExecutionsJson(const std::vector<ExecutionRecord>& records, int indent = 2);

// {"series": {"NAME": [[step, value], ...], ...}}; NaN and infinities are written as null.
std::string MetricsJson(const MetricSeries& series, int indent = 2);

}  // namespace cmf
