// The table of cmf compare: one row per execution, a column per parameter and
// per summarised metric series, written as text, CSV, Markdown or JSON.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
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

// How each series is summarised (by default its last value).
struct MetricChoice {
  std::map<std::string, MetricAggregate> how;  // series name -> aggregate

  MetricAggregate Of(const std::string& name) const;
  // The value of series NAME in R as chosen (absent: R has no such series).
  std::optional<double> Value(const ExecutionRecord& r,
                              const std::string& name) const;
};

// The rows keep only what the table shows (names of parameters and series as
// column numbers, each series as the one value chosen), so that the store's
// records can be dropped a page at a time: kept whole, ten thousand of them
// cost more in first-touched memory than reading them from the store.
class CompareTable {
 public:
  explicit CompareTable(MetricChoice choice) : choice_(std::move(choice)) {}

  // Adds a row for R, or for each record of PAGE, taking their texts (they
  // are to be dropped after).
  void Add(ExecutionRecord&& r);
  void AddPage(std::vector<ExecutionRecord>& page);
  std::size_t size() const { return rows_.size(); }
  // Keeps the first N rows.
  void Truncate(std::size_t n);
  // Orders the rows by KEY (rows without a value last), stably.
  void Sort(const SortKey& key, bool descending);
  // Chooses the columns: every parameter and series of any row, or, with
  // ONLY_CHANGED and two rows or more, those that differ between rows.
  void Columns(bool only_changed);

  // Write the table to FILE as aligned text, CSV, Markdown or JSON.
  void WriteText(std::FILE* file) const;
  void WriteCsv(std::FILE* file) const;
  void WriteMarkdown(std::FILE* file) const;
  void WriteJson(std::FILE* file) const;

 private:
  class Cells;  // what each output writes, cell by cell
  using Column = std::uint32_t;
  struct Row {
    std::string id;
    Column pipeline = 0, stage = 0;  // in texts_
    ExecStatus status = ExecStatus::kRunning;
    std::int64_t started_ms = 0;
    std::optional<std::int64_t> ended_ms;
    std::vector<std::pair<Column, Value>> params;           // in param_names_
    std::vector<std::pair<Column, double>> metrics;         // in metric_names_
    std::vector<std::pair<std::string, std::string>> tags;  // by name
  };
  // Names, each given a number once.
  struct Names {
    std::vector<std::string> names;
    std::unordered_map<std::string, Column> numbers;
    Column Number(const std::string& name);
    std::optional<Column> Find(const std::string& name) const;
  };
  // ROW's value in parameter or series column C (null: none).
  const Value* Param(const Row& r, Column c) const;
  const double* MetricCell(const Row& r, Column c) const;

  MetricChoice choice_;
  std::vector<MetricAggregate> metric_how_;  // by series column
  Names texts_, param_names_, metric_names_;
  std::vector<Row> rows_;
  // The columns shown, in name order.
  std::vector<Column> params_, metrics_;
};

std::string FormatNumber(double v);

}  // namespace cmf::cli
