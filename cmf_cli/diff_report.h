// What cmf diff finds: between two executions, the parameters, metrics, tags
// and packages that differ; between two commits of the metadata log, the
// facts of the segments each reaches and the other does not. verbs/diff.cpp
// fills these and prints them as text; ExecutionDiffJson and CommitDiffJson
// (json_output.h) print them as JSON. Plain values; thread-compatible.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/records.h"
#include "cmf/where.h"

namespace cmf::cli {

// A named thing in A and in B (absent from a side: nullopt).
template <typename T>
struct OldNew {
  std::optional<T> old, now;
};

// The environments two executions ran in.
struct EnvironmentDiff {
  std::optional<std::string> old, now;  // their hashes
  // When the hashes differ: the one whose description this site does not
  // hold (then `packages` is empty), if either.
  std::optional<std::string> missing;
  std::map<std::string, OldNew<std::string>> packages;  // those that differ
};

struct ExecutionDiff {
  struct Metric {
    std::optional<double> old, now;  // the series summarised as `summary` says
    MetricAggregate summary = MetricAggregate::kLast;
    // NOW - OLD, when both are numbers (not NaN).
    std::optional<double> Delta() const;
  };
  std::string a, b;  // the executions' ids
  // Those that differ (with --all, every one either has), by name.
  std::map<std::string, OldNew<Value>> params;
  std::map<std::string, Metric> metrics;
  std::map<std::string, OldNew<std::string>> tags;
  EnvironmentDiff environment;
};

// A field of a fact as a segment holds it: any JSON value.
struct FactValue {
  bool is_string = false;
  // The string itself, or else the value's JSON on one line ("null" for a
  // field the fact does not have).
  std::string text = "null";

  bool is_null() const { return !is_string && text == "null"; }
};

// What the segments one commit reaches, and another does not, hold.
struct CommitDiffSide {
  struct Execution {
    FactValue id, pipeline, stage;
    std::map<std::string, FactValue> params;  // each parameter's value
  };
  struct State {
    FactValue execution, status;
  };
  struct Property {  // a property or a tag (a null value: removed)
    FactValue target, name, value;
  };
  struct Metrics {
    FactValue execution, series;
    std::size_t steps = 0;
  };
  int segments = 0, facts = 0;
  int unreadable = 0;  // facts that are not a JSON object with a "t"
  std::vector<Execution> executions;
  std::vector<State> states;
  std::vector<Property> properties, tags;
  std::vector<Metrics> metrics;
  int artifacts = 0, locations = 0;  // counted, not listed
};

struct CommitDiff {
  std::string a, b;  // the commits
  CommitDiffSide only_in_b, only_in_a;
};

// Counts SEGMENT (a header line, then one JSON fact a line) in SIDE and reads
// its facts into it. A fact that does not parse is counted as unreadable,
// never trusted (a segment may come from any site).
void AddSegment(std::string_view segment, CommitDiffSide* side);

}  // namespace cmf::cli
