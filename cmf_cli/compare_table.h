// The table of cmf compare: one row per execution, a column per parameter and
// per summarised metric series, written as text, CSV, Markdown or JSON.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cmf/records.h"
#include "cmf/status.h"
#include "cmf/where.h"

namespace cmf::cli {

struct SortKey {
  enum class Field { kParam, kMetric, kTag, kStarted, kStage, kStatus, kId };
  Field field = Field::kStarted;
  std::string name;
};
// "params.lr", "metrics.rmse", "tags.deployed", "started", "stage", "status",
// "id". InvalidArgument for anything else.
Result<SortKey> ParseSortKey(const std::string& text);

struct CompareTable {
  struct Row {
    const ExecutionRecord* record;  // with its metric_summaries
  };
  std::vector<Row> rows;
  std::map<std::string, MetricAggregate> aggregates;  // default: last
  std::vector<std::string> params;   // the parameter columns, by name
  std::vector<std::string> metrics;  // the metric columns, by series name

  void Add(ExecutionRecord record);
  // Adds a page of rows, kept whole (no record is moved again).
  void AddPage(std::vector<ExecutionRecord> page);
  // Orders the rows by KEY (rows without a value last), stably.
  void Sort(const SortKey& key, bool descending);
  // Chooses the columns: every parameter and series of any row, or, with
  // ONLY_CHANGED and two rows or more, those that differ between rows.
  void Columns(bool only_changed);

  // How series NAME is summarised, and its value in ROW (absent: no such
  // series).
  MetricAggregate AggregateOf(const std::string& name) const;
  std::optional<double> Metric(const ExecutionRecord& row,
                               const std::string& name) const;

  std::string Text() const;
  std::string Csv() const;
  std::string Markdown() const;
  std::string Json() const;

 private:
  std::vector<std::unique_ptr<std::vector<ExecutionRecord>>> pages_;
};

// A number as tables show it: up to 6 significant digits, "nan".
std::string FormatNumber(double v);

}  // namespace cmf::cli
