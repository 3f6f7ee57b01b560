// --where expressions: which executions a listing keeps (cmf compare, log,
// query executions), as in MLflow's search_runs.
//
//   metrics.rmse < 0.02 and params.acquisition = 'ei'
//   not (status = 'failed' or tags.deployed = 'microscope-2')
//   started >= '2026-12-01' and metrics.max_uncertainty:max > 0.5
//
// A comparison is FIELD OP LITERAL, joined by and, or, not and parentheses
// (not binds tightest, then and, then or). FIELD is params.NAME,
// properties.NAME, tags.NAME, metrics.NAME (the summary the caller chose for
// NAME, by default its last value; metrics.NAME:min, :max, :mean, :last or
// :steps ask for one), or one of id, pipeline, stage, status, site, host,
// user, started, ended. OP is = (or ==), != (or <>), <, <=, >, >=. LITERAL is
// a number, 'text' or "text", true, false, or a bare word. Numbers compare as
// numbers (a text value that is a number counts as one); started and ended
// compare with a date ('2026-12-01', '2026-12-01T10:00:00Z') or Unix
// milliseconds. A comparison with a value the execution does not have (no
// such parameter, a run not ended, a NaN metric) is false, whatever OP.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/records.h"
#include "cmf/status.h"

namespace cmf {

struct ExecutionFilter;

// How a metric series is summarised where an expression or a table names it.
enum class MetricAggregate { kLast, kMin, kMax, kMean, kSteps };
std::optional<MetricAggregate> ParseMetricAggregate(std::string_view text);
std::string_view ToString(MetricAggregate aggregate);
// The summary's value for AGGREGATE (NaN when it has none).
double Summarise(const MetricSummary& summary, MetricAggregate aggregate);

class WhereExpr {
 public:
  // InvalidArgument when TEXT is not an expression: the message says what was
  // expected and shows TEXT with a caret under the character where it fails.
  static Result<WhereExpr> Parse(std::string_view text);

  WhereExpr(WhereExpr&&) noexcept;
  WhereExpr& operator=(WhereExpr&&) noexcept;
  ~WhereExpr();

  // Whether RECORD (with METRICS, the summaries of its series) matches.
  // AGGREGATES says how a series named without a suffix is summarised
  // (absent: its last value).
  bool Matches(
      const ExecutionRecord& record, const MetricSummaries* metrics,
      const std::map<std::string, MetricAggregate>& aggregates = {}) const;

  // True when it names a metric (the caller must then pass summaries).
  bool NeedsMetrics() const;

  // Puts into FILTER what every match must meet and the store can select by
  // index (the stage, the pipeline and the start time of a comparison that
  // the whole expression requires), where FILTER leaves them open. The
  // expression is still to be checked on each row.
  void Narrow(ExecutionFilter* filter) const;

  struct Node;

 private:
  explicit WhereExpr(std::unique_ptr<Node> root);
  std::unique_ptr<Node> root_;
};

}  // namespace cmf
