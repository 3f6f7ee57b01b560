#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <variant>

#include "../compare_table.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/environment.h"

namespace cmf::cli {
namespace {

using nlohmann::json;

json ValueToJson(const std::optional<Value>& v) {
  if (!v) return nullptr;
  return std::visit([](const auto& x) { return json(x); }, *v);
}

json NumberJson(std::optional<double> v) {
  return v && !std::isnan(*v) ? json(*v) : json(nullptr);
}

template <typename M>
auto Find(const M& m, const std::string& k)
    -> std::optional<typename M::mapped_type> {
  auto it = m.find(k);
  if (it == m.end()) return std::nullopt;
  return it->second;
}

std::string Shown(const std::optional<Value>& v) {
  return v ? EscapeForDisplay(ToText(*v)) : "-";
}
std::string Shown(const std::optional<std::string>& v) {
  return v ? EscapeForDisplay(*v) : "-";
}
std::string Shown(const std::optional<double>& v) {
  return v ? FormatNumber(*v) : "-";
}

class DiffVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("a", a_, "The older execution (id or unique prefix)")
        ->required();
    app.add_option("b", b_, "The newer execution")->required();
    app.add_option("--metric", metrics_,
                   "NAME=last|min|max|mean|steps: how the series NAME is "
                   "summarised (default last; repeatable)")
        ->type_name("NAME=HOW");
    app.add_flag("--all", all_, "Show what is equal too");
    app.add_flag("--json", json_,
                 "Print a JSON object (the format of doc/json.md)");
  }

  int Run(Context& ctx) override {
    Store& store = ctx.repo->store();
    CompareTable table;  // for the summaries' choice and formatting
    for (const std::string& m : metrics_) {
      auto eq = m.find('=');
      std::optional<MetricAggregate> how;
      if (eq != std::string::npos && eq > 0)
        how = ParseMetricAggregate(m.substr(eq + 1));
      if (!how) {
        return UsageError("--metric takes NAME=last|min|max|mean|steps, not '" +
                          m + "'");
      }
      table.aggregates[m.substr(0, eq)] = *how;
    }
    std::vector<std::string> ids;
    for (const std::string* text : {&a_, &b_}) {
      Result<std::string> id = store.ResolveExecution(*text);
      if (!id.ok()) return Fail(id.status());
      ids.push_back(*id);
    }
    Result<std::map<std::string, MetricSummaries>> summaries =
        store.SummarizeMetrics(ids);
    if (!summaries.ok()) return Fail(summaries.status());
    for (const std::string& id : ids) {
      Result<ExecutionRecord> r = store.GetExecution(id);
      if (!r.ok()) return Fail(r.status());
      table.Add(std::move(*r), Find(*summaries, id).value_or(MetricSummaries{}));
    }
    const CompareTable::Row& a = table.rows[0];
    const CompareTable::Row& b = table.rows[1];

    json out = {{"a", a.record.id},
                {"b", b.record.id},
                {"params", json::object()},
                {"metrics", json::object()},
                {"tags", json::object()}};
    std::string text;
    // Parameters.
    std::set<std::string> names;
    for (const auto& [n, v] : a.record.params) names.insert(n);
    for (const auto& [n, v] : b.record.params) names.insert(n);
    std::string block;
    for (const std::string& n : names) {
      std::optional<Value> old = Find(a.record.params, n);
      std::optional<Value> now = Find(b.record.params, n);
      if (old == now && !all_) continue;
      out["params"][n] = {{"old", ValueToJson(old)}, {"new", ValueToJson(now)}};
      block += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(old),
                           Shown(now));
    }
    if (!block.empty()) text += "Params:\n" + block;
    // Metrics, with the change.
    names.clear();
    for (const auto& [n, v] : a.metrics) names.insert(n);
    for (const auto& [n, v] : b.metrics) names.insert(n);
    block.clear();
    for (const std::string& n : names) {
      std::optional<double> old = table.Metric(a, n);
      std::optional<double> now = table.Metric(b, n);
      const bool same = old.has_value() == now.has_value() &&
                        (!old || *old == *now ||
                         (std::isnan(*old) && std::isnan(*now)));
      if (same && !all_) continue;
      json m = {{"old", NumberJson(old)},
                {"new", NumberJson(now)},
                {"summary", std::string(ToString(table.AggregateOf(n)))}};
      std::string change;
      if (old && now && !std::isnan(*old) && !std::isnan(*now)) {
        m["change"] = *now - *old;
        change = fmt::format(" ({}{})", *now - *old >= 0 ? "+" : "",
                             FormatNumber(*now - *old));
      } else {
        m["change"] = nullptr;
      }
      out["metrics"][n] = m;
      block += fmt::format("  {}: {} -> {}{}\n", EscapeForDisplay(n),
                           Shown(old), Shown(now), change);
    }
    if (!block.empty()) text += "Metrics:\n" + block;
    // Tags.
    names.clear();
    for (const auto& [n, v] : a.record.tags) names.insert(n);
    for (const auto& [n, v] : b.record.tags) names.insert(n);
    block.clear();
    for (const std::string& n : names) {
      std::optional<std::string> old = Find(a.record.tags, n);
      std::optional<std::string> now = Find(b.record.tags, n);
      if (old == now && !all_) continue;
      out["tags"][n] = {{"old", old ? json(*old) : json(nullptr)},
                        {"new", now ? json(*now) : json(nullptr)}};
      block += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(old),
                           Shown(now));
    }
    if (!block.empty()) text += "Tags:\n" + block;
    // The software each ran with.
    text += Environment(ctx, a.record, b.record, out);
    if (json_) {
      fmt::print("{}\n",
                 out.dump(2, ' ', false, json::error_handler_t::replace));
      return kExitOk;
    }
    fmt::print("a: {} {}/{} {}\nb: {} {}/{} {}\n", a.record.id,
               EscapeForDisplay(a.record.pipeline),
               EscapeForDisplay(a.record.stage), ToString(a.record.status),
               b.record.id, EscapeForDisplay(b.record.pipeline),
               EscapeForDisplay(b.record.stage), ToString(b.record.status));
    fmt::print("{}", text.empty() ? "No differences in params, metrics, tags "
                                    "or environment.\n"
                                  : text);
    return kExitOk;
  }

 private:
  // The packages that differ between the environments of A and B, into OUT's
  // "environment" and as text.
  std::string Environment(Context& ctx, const ExecutionRecord& a,
                          const ExecutionRecord& b, json& out) {
    auto hash_of = [](const ExecutionRecord& r) -> std::optional<std::string> {
      auto it = r.properties.find("environment");
      if (it == r.properties.end()) return std::nullopt;
      if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
      return std::nullopt;
    };
    std::optional<std::string> old = hash_of(a), now = hash_of(b);
    json env = {{"old", old ? json(*old) : json(nullptr)},
                {"new", now ? json(*now) : json(nullptr)},
                {"packages", json::object()}};
    if (old == now && !all_) {
      out["environment"] = env;
      return "";
    }
    std::string text =
        fmt::format("Environment: {} -> {}\n", old ? old->substr(0, 12) : "-",
                    now ? now->substr(0, 12) : "-");
    if (old == now) {
      out["environment"] = env;
      return text;
    }
    // The descriptions, when this site holds their bytes.
    auto packages = [&](const std::optional<std::string>& hash)
        -> std::optional<std::map<std::string, std::string>> {
      if (!hash) return std::map<std::string, std::string>{};
      Result<std::string> bytes = ReadEnvironment(*ctx.repo, *hash);
      if (!bytes.ok()) return std::nullopt;
      return ParseEnvironment(*bytes);
    };
    auto p_old = packages(old), p_new = packages(now);
    if (!p_old || !p_new) {
      env["complete"] = false;
      text += "  (the description of " +
              (!p_old ? old->substr(0, 12) : now->substr(0, 12)) +
              " is not here: cmf get it, or pull its bytes)\n";
      out["environment"] = env;
      return text;
    }
    env["complete"] = true;
    std::set<std::string> names;
    for (const auto& [n, v] : *p_old) names.insert(n);
    for (const auto& [n, v] : *p_new) names.insert(n);
    for (const std::string& n : names) {
      std::optional<std::string> x = Find(*p_old, n), y = Find(*p_new, n);
      if (x == y) continue;
      env["packages"][n] = {{"old", x ? json(*x) : json(nullptr)},
                            {"new", y ? json(*y) : json(nullptr)}};
      text += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(x),
                          Shown(y));
    }
    out["environment"] = env;
    return text;
  }

  std::string a_, b_;
  std::vector<std::string> metrics_;
  bool all_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeDiffVerb() { return std::make_unique<DiffVerb>(); }

}  // namespace cmf::cli
