#include "diff_report.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace cmf::cli {
namespace {

using nlohmann::json;

FactValue FactValueOf(const json& j) {
  FactValue v;
  v.is_string = j.is_string();
  v.text = j.is_string()
               ? j.get<std::string>()
               : j.dump(-1, ' ', false, json::error_handler_t::replace);
  return v;
}

// The fact F (an object with a string "t") into SIDE.
void AddFact(json& f, CommitDiffSide* side) {
  const std::string t = f["t"];
  auto get = [&](const char* k) {
    return f.contains(k) ? FactValueOf(f[k]) : FactValue{};
  };
  if (t == "execution") {
    CommitDiffSide::Execution e{get("id"), get("pipeline"), get("stage"), {}};
    if (f.contains("params") && f["params"].is_object()) {
      for (auto& [k, v] : f["params"].items()) {
        e.params[k] =
            FactValueOf(v.is_object() && v.contains("value") ? v["value"] : v);
      }
    }
    side->executions.push_back(std::move(e));
  } else if (t == "state") {
    side->states.push_back({get("execution"), get("status")});
  } else if (t == "property") {
    side->properties.push_back({get("target"), get("name"), get("value")});
  } else if (t == "tag") {
    side->tags.push_back({get("target"), get("name"), get("value")});
  } else if (t == "metrics") {
    side->metrics.push_back(
        {get("execution"), get("series"),
         f.contains("steps") && f["steps"].is_array() ? f["steps"].size() : 0});
  } else if (t == "artifact") {
    ++side->artifacts;
  } else if (t == "location") {
    ++side->locations;
  }
}

}  // namespace

std::optional<double> ExecutionDiff::Metric::Delta() const {
  if (old && now && !std::isnan(*old) && !std::isnan(*now)) return *now - *old;
  return std::nullopt;
}

void AddSegment(std::string_view segment, CommitDiffSide* side) {
  ++side->segments;
  std::size_t start = segment.find('\n');
  while (start != std::string_view::npos && start + 1 < segment.size()) {
    std::size_t end = segment.find('\n', start + 1);
    std::string_view line(
        segment.data() + start + 1,
        (end == std::string_view::npos ? segment.size() : end) - start - 1);
    start = end;
    if (line.empty()) continue;
    ++side->facts;
    json f = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!f.is_object() || !f.contains("t") || !f["t"].is_string()) {
      ++side->unreadable;
      continue;
    }
    AddFact(f, side);
  }
}

}  // namespace cmf::cli
