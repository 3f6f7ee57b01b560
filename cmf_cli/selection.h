// Which executions a listing verb shows: its --pipeline, --stage and --where
// options, and the walk over the store that applies them (cmf log, query
// executions, compare).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cmf/lineage.h"
#include "cmf/status.h"
#include "cmf/store.h"
#include "cmf/where.h"
#include "verb.h"

namespace cmf::cli {

struct Selection {
  ExecutionFilter filter;        // what the store selects by index
  std::vector<WhereExpr> where;  // what each row must also meet (all of them)
  std::optional<std::int64_t> limit;
  // How a metric named without a suffix in WHERE is summarised.
  std::map<std::string, MetricAggregate> aggregates;
  bool metrics = false;  // the sink wants the summaries of every row

  // Adds a --where text: an expression (cmf/where.h), or, for query
  // executions' older form, NAME=VALUE (a parameter or property with that
  // value) when LEGACY and TEXT is not an expression. InvalidArgument (a usage
  // error) with the parser's message otherwise.
  Status AddWhere(const std::string& text, bool legacy);
};

// The rows of one page (with their metric_summaries when Selection::metrics
// or an expression names a metric).
using SelectionSink = std::function<Status(std::vector<ExecutionRecord>& rows)>;

// Walks the executions SELECTION picks, newest first, a page at a time, and
// stops after its limit.
Status ScanSelection(Store& store, Selection selection,
                     const SelectionSink& sink);

// Reads --metric NAME=last|min|max|mean|steps options into AGGREGATES.
// InvalidArgument (a usage error) for one that is not.
Status ParseMetricOptions(const std::vector<std::string>& options,
                          std::map<std::string, MetricAggregate>* aggregates);

// Prints "cmf: error: --where: MESSAGE" and returns the usage exit code.
int WhereError(const Status& status);

// An execution or artifact named on the command line as cmf lineage takes it
// (a path relative to here, an id or hash prefix, @NAME=VALUE).
Result<LineageTarget> ResolveTarget(Context& ctx, const std::string& text);

}  // namespace cmf::cli
