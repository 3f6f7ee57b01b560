// The JSON of cmf diff: of two executions, and of two commits of the
// metadata log.
#include <cmath>

#include "json_output.h"
#include "json_output_impl.h"

namespace cmf {
namespace {

using json_impl::Dump;
using json_impl::json;
using json_impl::ValueJson;

json ValueToJson(const std::optional<Value>& v) {
  if (!v) return nullptr;
  return ValueJson(*v);
}

json NumberJson(std::optional<double> v) {
  return v && !std::isnan(*v) ? json(*v) : json(nullptr);
}

json StringJson(const std::optional<std::string>& v) {
  return v ? json(*v) : json(nullptr);
}

// {"old", "new", "packages", and when the hashes differ "complete"}.
json EnvironmentJson(const cli::EnvironmentDiff& env) {
  json out = {{"old", StringJson(env.old)},
              {"new", StringJson(env.now)},
              {"packages", json::object()}};
  if (env.old == env.now) return out;
  out["complete"] = !env.missing;
  for (const auto& [n, c] : env.packages) {
    out["packages"][n] = {{"old", StringJson(c.old)},
                          {"new", StringJson(c.now)}};
  }
  return out;
}

// A field of a fact, as the fact held it (read back from its one-line JSON,
// which the JSON library writes so that every number reads back exact).
json FactJson(const cli::FactValue& v) {
  return v.is_string ? json(v.text) : json::parse(v.text);
}

json SideJson(const cli::CommitDiffSide& side) {
  json part = {{"segments", side.segments},     {"facts", side.facts},
               {"unreadable", side.unreadable}, {"executions", json::array()},
               {"states", json::array()},       {"properties", json::array()},
               {"tags", json::array()},         {"metrics", json::array()},
               {"artifacts", side.artifacts},   {"locations", side.locations}};
  for (const auto& e : side.executions) {
    json params = json::object();
    for (const auto& [k, v] : e.params) params[k] = FactJson(v);
    part["executions"].push_back({{"id", FactJson(e.id)},
                                  {"pipeline", FactJson(e.pipeline)},
                                  {"stage", FactJson(e.stage)},
                                  {"params", params}});
  }
  for (const auto& e : side.states) {
    part["states"].push_back(
        {{"execution", FactJson(e.execution)}, {"status", FactJson(e.status)}});
  }
  auto properties = [](const std::vector<cli::CommitDiffSide::Property>& list) {
    json out = json::array();
    for (const auto& e : list) {
      out.push_back({{"target", FactJson(e.target)},
                     {"name", FactJson(e.name)},
                     {"value", FactJson(e.value)}});
    }
    return out;
  };
  part["properties"] = properties(side.properties);
  part["tags"] = properties(side.tags);
  for (const auto& e : side.metrics) {
    part["metrics"].push_back({{"execution", FactJson(e.execution)},
                               {"series", FactJson(e.series)},
                               {"steps", e.steps}});
  }
  return part;
}

}  // namespace

std::string ExecutionDiffJson(const cli::ExecutionDiff& diff, int indent) {
  json out = {{"a", diff.a},
              {"b", diff.b},
              {"params", json::object()},
              {"metrics", json::object()},
              {"tags", json::object()}};
  for (const auto& [n, c] : diff.params) {
    out["params"][n] = {{"old", ValueToJson(c.old)},
                        {"new", ValueToJson(c.now)}};
  }
  for (const auto& [n, m] : diff.metrics) {
    const std::optional<double> delta = m.Delta();
    out["metrics"][n] = {{"old", NumberJson(m.old)},
                         {"new", NumberJson(m.now)},
                         {"summary", std::string(ToString(m.summary))},
                         {"change", delta ? json(*delta) : json(nullptr)}};
  }
  for (const auto& [n, c] : diff.tags) {
    out["tags"][n] = {{"old", StringJson(c.old)}, {"new", StringJson(c.now)}};
  }
  out["environment"] = EnvironmentJson(diff.environment);
  return Dump(out, indent);
}

std::string CommitDiffJson(const cli::CommitDiff& diff, int indent) {
  return Dump({{"a", diff.a},
               {"b", diff.b},
               {"only_in_b", SideJson(diff.only_in_b)},
               {"only_in_a", SideJson(diff.only_in_a)}},
              indent);
}

}  // namespace cmf
