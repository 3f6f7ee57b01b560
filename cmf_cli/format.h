// Human-readable forms of records, shared by the verbs that print them. Unlike
// --json, this output is for people and may change.
#pragma once

#include <string>
#include <vector>

#include "cmf/records.h"

namespace cmf::cli {

// ARGV as a shell would need it typed: arguments with blanks or quotes are
// single-quoted.
std::string ShellJoin(const std::vector<std::string>& argv);

// The execution's header block, as `cmf log` prints it.
std::string ExecutionSummary(const ExecutionRecord& r);

// One line: id, status, pipeline/stage, start time, command.
std::string ExecutionOneLine(const ExecutionRecord& r);

// A byte count for people: "812 B", "4.2 MiB".
std::string HumanSize(std::uint64_t bytes);

}  // namespace cmf::cli
