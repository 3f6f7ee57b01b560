// The metadata model as plain values: what the store records and what queries
// return.
//
// Identity is global so that records from many sites merge without
// coordination: an execution is a UUIDv7, an artifact is its content hash, a
// pipeline or a stage is its name (a stage's name is unique within its
// pipeline). Paths hang off events. These structs own their data and carry no
// behaviour beyond small conversions; they are safe to copy between threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cmf {

enum class ExecStatus { kRunning, kOk, kFailed, kInterrupted };

// "running", "ok", "failed", "interrupted".
std::string_view ToString(ExecStatus status);
std::optional<ExecStatus> ParseExecStatus(std::string_view text);

// What an artifact is. The kinds are fixed; the string forms are part of the
// JSON contract.
enum class ArtifactKind {
  kDataset,
  kDataslice,
  kModel,
  kMetrics,
  kFile,
  kDirectory
};

// "dataset", "dataslice", "model", "metrics", "file", "directory".
std::string_view ToString(ArtifactKind kind);
std::optional<ArtifactKind> ParseArtifactKind(std::string_view text);

// A typed value of a parameter or a property.
using Value = std::variant<std::int64_t, double, bool, std::string>;

// "int", "real", "bool", "string".
std::string_view TypeName(const Value& value);
// The value as a user would write it: 3, 0.01, true, text.
std::string ToText(const Value& value);

enum class Direction { kInput, kOutput };

struct ArtifactRef {
  std::string
      path;  // as given by the user, relative to where they ran the command
  std::string
      hash;  // 64 lowercase hex digits (SHA-256 of the content or the manifest)
  std::uint64_t size = 0;
  ArtifactKind kind = ArtifactKind::kFile;
};

// The enclosing git repository's state when an execution started.
struct CodeVersion {
  std::string
      commit;  // 40 hex digits, or empty for a repository with no commit yet
  bool dirty = false;  // tracked files differ from HEAD
  std::string repo;    // the work tree's path
};

// What a step-metric series comes to, kept by the store as steps are logged.
// NaN steps count in STEPS and can be LAST; MIN, MAX and MEAN are over the
// other steps (NaN when there are none).
struct MetricSummary {
  std::int64_t steps = 0;
  std::int64_t last_step = 0;
  double last = 0;
  double min = 0;
  double max = 0;
  double mean = 0;
};
// Series name -> summary, sorted by name. An execution has a few series: a
// sorted vector costs one allocation where a map costs one per series, which
// a listing of ten thousand executions feels.
class MetricSummaries {
 public:
  using value_type = std::pair<std::string, MetricSummary>;
  using iterator = std::vector<value_type>::iterator;
  using const_iterator = std::vector<value_type>::const_iterator;

  iterator begin() { return items_.begin(); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }
  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }

  const_iterator find(std::string_view name) const {
    auto it = LowerBound(name);
    return it != items_.end() && it->first == name ? it : items_.end();
  }
  std::size_t count(std::string_view name) const {
    return find(name) == items_.end() ? 0 : 1;
  }
  // The summary of NAME, added (zero) when new.
  MetricSummary& operator[](std::string_view name) {
    auto it = items_.begin() + (LowerBound(name) - items_.cbegin());
    if (it == items_.end() || it->first != name) {
      it = items_.insert(it, {std::string(name), MetricSummary{}});
    }
    return it->second;
  }
  // The summary of NAME; std::out_of_range when there is none.
  const MetricSummary& at(std::string_view name) const;
  // Replaces the contents with ITEMS, in any order (one sort, where adding
  // them one by one would move the vector each time); of two items with one
  // name the later stays.
  void Assign(std::vector<value_type> items);

 private:
  const_iterator LowerBound(std::string_view name) const {
    return std::lower_bound(
        items_.begin(), items_.end(), name,
        [](const value_type& a, std::string_view b) { return a.first < b; });
  }
  std::vector<value_type> items_;
};

struct ExecutionRecord {
  std::string id;  // UUIDv7, 36 characters
  std::string pipeline;
  std::string stage;
  std::vector<std::string> command;  // argv
  std::map<std::string, Value> params;
  std::optional<CodeVersion> code;  // absent outside a git repository
  std::string host;
  std::string user;
  std::string site;
  std::int64_t started_ms = 0;  // Unix time in milliseconds
  std::optional<std::int64_t> ended_ms;
  ExecStatus status = ExecStatus::kRunning;
  std::optional<int> exit_code;
  std::string message;  // why it failed, when it did
  std::map<std::string, Value> properties;
  std::map<std::string, std::string> tags;  // cmf tag: name -> value
  std::vector<ArtifactRef> inputs;
  std::vector<ArtifactRef> outputs;
  // The summary of each step-metric series: filled only where a listing
  // asks for it (ExecutionFilter::metric_summaries).
  MetricSummaries metric_summaries;
};

// One step of a step-metric series.
struct MetricPoint {
  std::int64_t step = 0;
  double value = 0;
};

// An execution's step metrics: series name -> points, steps ascending.
using MetricSeries = std::map<std::string, std::vector<MetricPoint>>;

}  // namespace cmf
