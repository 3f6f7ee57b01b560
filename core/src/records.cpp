#include "cmf/records.h"

#include <fmt/format.h>

#include <array>
#include <stdexcept>
#include <utility>

namespace cmf {
namespace {

constexpr std::array<std::pair<ExecStatus, std::string_view>, 4> kStatuses{{
    {ExecStatus::kRunning, "running"},
    {ExecStatus::kOk, "ok"},
    {ExecStatus::kFailed, "failed"},
    {ExecStatus::kInterrupted, "interrupted"},
}};

constexpr std::array<std::pair<ArtifactKind, std::string_view>, 6> kKinds{{
    {ArtifactKind::kDataset, "dataset"},
    {ArtifactKind::kDataslice, "dataslice"},
    {ArtifactKind::kModel, "model"},
    {ArtifactKind::kMetrics, "metrics"},
    {ArtifactKind::kFile, "file"},
    {ArtifactKind::kDirectory, "directory"},
}};

}  // namespace

std::string_view ToString(ExecStatus status) {
  for (const auto& [value, name] : kStatuses) {
    if (value == status) return name;
  }
  return "failed";
}

std::optional<ExecStatus> ParseExecStatus(std::string_view text) {
  for (const auto& [value, name] : kStatuses) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string_view ToString(ArtifactKind kind) {
  for (const auto& [value, name] : kKinds) {
    if (value == kind) return name;
  }
  return "file";
}

std::optional<ArtifactKind> ParseArtifactKind(std::string_view text) {
  for (const auto& [value, name] : kKinds) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string_view TypeName(const Value& value) {
  switch (value.index()) {
    case 0:
      return "int";
    case 1:
      return "real";
    case 2:
      return "bool";
    default:
      return "string";
  }
}

std::string ToText(const Value& value) {
  if (auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&value)) return fmt::format("{}", *d);
  if (auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  return std::get<std::string>(value);
}

const MetricSummary& MetricSummaries::at(std::string_view name) const {
  auto it = find(name);
  if (it == end()) {
    throw std::out_of_range("no metric series '" + std::string(name) + "'");
  }
  return it->second;
}

void MetricSummaries::Assign(std::vector<value_type> items) {
  auto by_name = [](const value_type& a, const value_type& b) {
    return a.first < b.first;
  };
  // Often in order already (a store reads them by series id, and series are
  // often made in name order): then no sort, and no buffer for one.
  if (!std::is_sorted(items.begin(), items.end(), by_name)) {
    std::stable_sort(items.begin(), items.end(), by_name);
  }
  // Of a run of equal names, the last one stays.
  auto out = items.begin();
  for (auto it = items.begin(); it != items.end(); ++it) {
    auto next = std::next(it);
    if (next != items.end() && next->first == it->first) continue;
    if (out != it) *out = std::move(*it);
    ++out;
  }
  items.erase(out, items.end());
  items_ = std::move(items);
}

}  // namespace cmf
