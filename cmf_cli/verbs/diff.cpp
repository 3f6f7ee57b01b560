#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <variant>

#include "../compare_table.h"
#include "../selection.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/environment.h"
#include "cmf/metalog.h"

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
    app.add_option("a", a_,
                   "The older execution (id or unique prefix), or a commit of "
                   "the metadata log (40 hex digits, or main)")
        ->required();
    app.add_option("b", b_, "The newer execution, or commit")->required();
    app.add_option("--metric", metrics_,
                   "NAME=last|min|max|mean|steps: how the series NAME is "
                   "summarised (default last; repeatable)")
        ->type_name("NAME=HOW");
    app.add_flag("--all", all_, "Show what is equal too");
    app.add_flag("--json", json_,
                 "Print a JSON object (the format of doc/json.md)");
  }

  int Run(Context& ctx) override {
    if (IsCommit(a_) && IsCommit(b_)) return DiffCommits(ctx);
    Store& store = ctx.repo->store();
    MetricChoice choice;
    if (Status st = ParseMetricOptions(metrics_, &choice.how); !st.ok()) {
      return UsageError(st.message());
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
    std::vector<ExecutionRecord> records;
    for (const std::string& id : ids) {
      Result<ExecutionRecord> r = store.GetExecution(id);
      if (!r.ok()) return Fail(r.status());
      r->metric_summaries = Find(*summaries, id).value_or(MetricSummaries{});
      records.push_back(std::move(*r));
    }
    const ExecutionRecord& a = records[0];
    const ExecutionRecord& b = records[1];

    json out = {{"a", a.id},
                {"b", b.id},
                {"params", json::object()},
                {"metrics", json::object()},
                {"tags", json::object()}};
    std::string text;
    // Parameters.
    std::set<std::string> names;
    for (const auto& [n, v] : a.params) names.insert(n);
    for (const auto& [n, v] : b.params) names.insert(n);
    std::string block;
    for (const std::string& n : names) {
      std::optional<Value> old = Find(a.params, n);
      std::optional<Value> now = Find(b.params, n);
      if (old == now && !all_) continue;
      out["params"][n] = {{"old", ValueToJson(old)}, {"new", ValueToJson(now)}};
      block += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(old),
                           Shown(now));
    }
    if (!block.empty()) text += "Params:\n" + block;
    // Metrics, with the change.
    names.clear();
    for (const auto& [n, v] : a.metric_summaries) names.insert(n);
    for (const auto& [n, v] : b.metric_summaries) names.insert(n);
    block.clear();
    for (const std::string& n : names) {
      std::optional<double> old = choice.Value(a, n);
      std::optional<double> now = choice.Value(b, n);
      const bool same =
          old.has_value() == now.has_value() &&
          (!old || *old == *now || (std::isnan(*old) && std::isnan(*now)));
      if (same && !all_) continue;
      json m = {{"old", NumberJson(old)},
                {"new", NumberJson(now)},
                {"summary", std::string(ToString(choice.Of(n)))}};
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
    for (const auto& [n, v] : a.tags) names.insert(n);
    for (const auto& [n, v] : b.tags) names.insert(n);
    block.clear();
    for (const std::string& n : names) {
      std::optional<std::string> old = Find(a.tags, n);
      std::optional<std::string> now = Find(b.tags, n);
      if (old == now && !all_) continue;
      out["tags"][n] = {{"old", old ? json(*old) : json(nullptr)},
                        {"new", now ? json(*now) : json(nullptr)}};
      block += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(old),
                           Shown(now));
    }
    if (!block.empty()) text += "Tags:\n" + block;
    // The software each ran with.
    text += Environment(ctx, a, b, out);
    if (json_) {
      fmt::print("{}\n",
                 out.dump(2, ' ', false, json::error_handler_t::replace));
      return kExitOk;
    }
    fmt::print("a: {} {}/{} {}\nb: {} {}/{} {}\n", a.id,
               EscapeForDisplay(a.pipeline), EscapeForDisplay(a.stage),
               ToString(a.status), b.id, EscapeForDisplay(b.pipeline),
               EscapeForDisplay(b.stage), ToString(b.status));
    fmt::print("{}", text.empty() ? "No differences in params, metrics, tags "
                                    "or environment.\n"
                                  : text);
    return kExitOk;
  }

 private:
  static bool IsCommit(const std::string& text) {
    return text == "main" ||
           (text.size() == 40 &&
            text.find_first_not_of("0123456789abcdef") == std::string::npos);
  }

  // What the records of commit B say that those of commit A do not, and the
  // other way round: the segments each reaches and the other does not, read
  // from the metadata log (they came from any site: every line is checked,
  // and one that does not parse is counted, not trusted).
  int DiffCommits(Context& ctx) {
    Result<MetaLog> log = MetaLog::Open(ctx.repo->cmf_dir() / "log.git");
    if (!log.ok()) return Fail(log.status());
    std::string ids[2] = {a_, b_};
    for (std::string& id : ids) {
      if (id == "main") {
        Result<std::string> tip = log->Tip();
        if (!tip.ok()) return Fail(tip.status());
        if (tip->empty())
          return Fail(Status::NotFound("the metadata log has no commit yet"));
        id = *tip;
      }
      // Walking from it to itself reads nothing, but fails for a commit
      // the log does not hold.
      Status known = log->ForEachNewSegment(
          id, {id},
          [](const std::string&, const std::string&) { return Status::Ok(); });
      if (!known.ok()) {
        return Fail(
            Status::NotFound("no commit " + id + " in the metadata log"));
      }
    }
    json out = {{"a", ids[0]}, {"b", ids[1]}};
    std::string text =
        fmt::format("a: commit {}\nb: commit {}\n", ids[0], ids[1]);
    const char* sides[2] = {"only_in_b", "only_in_a"};
    for (int side = 0; side < 2; ++side) {
      const std::string& tip = side == 0 ? ids[1] : ids[0];
      const std::string& hide = side == 0 ? ids[0] : ids[1];
      json part = {{"segments", 0},           {"facts", 0},
                   {"unreadable", 0},         {"executions", json::array()},
                   {"states", json::array()}, {"properties", json::array()},
                   {"tags", json::array()},   {"metrics", json::array()},
                   {"artifacts", 0},          {"locations", 0}};
      Status st = log->ForEachNewSegment(
          tip, {hide}, [&](const std::string&, const std::string& segment) {
            part["segments"] = part["segments"].get<int>() + 1;
            std::size_t start = segment.find('\n');
            while (start != std::string::npos && start + 1 < segment.size()) {
              std::size_t end = segment.find('\n', start + 1);
              std::string_view line(
                  segment.data() + start + 1,
                  (end == std::string::npos ? segment.size() : end) - start -
                      1);
              start = end;
              if (line.empty()) continue;
              part["facts"] = part["facts"].get<int>() + 1;
              json f = json::parse(line, nullptr, /*allow_exceptions=*/false);
              if (!f.is_object() || !f.contains("t") || !f["t"].is_string()) {
                part["unreadable"] = part["unreadable"].get<int>() + 1;
                continue;
              }
              const std::string t = f["t"];
              auto get = [&](const char* k) {
                return f.contains(k) ? f[k] : json(nullptr);
              };
              if (t == "execution") {
                json params = json::object();
                if (f.contains("params") && f["params"].is_object()) {
                  for (auto& [k, v] : f["params"].items()) {
                    params[k] =
                        v.is_object() && v.contains("value") ? v["value"] : v;
                  }
                }
                part["executions"].push_back({{"id", get("id")},
                                              {"pipeline", get("pipeline")},
                                              {"stage", get("stage")},
                                              {"params", params}});
              } else if (t == "state") {
                part["states"].push_back({{"execution", get("execution")},
                                          {"status", get("status")}});
              } else if (t == "property") {
                part["properties"].push_back({{"target", get("target")},
                                              {"name", get("name")},
                                              {"value", get("value")}});
              } else if (t == "tag") {
                part["tags"].push_back({{"target", get("target")},
                                        {"name", get("name")},
                                        {"value", get("value")}});
              } else if (t == "metrics") {
                part["metrics"].push_back(
                    {{"execution", get("execution")},
                     {"series", get("series")},
                     {"steps", f.contains("steps") && f["steps"].is_array()
                                   ? f["steps"].size()
                                   : 0}});
              } else if (t == "artifact") {
                part["artifacts"] = part["artifacts"].get<int>() + 1;
              } else if (t == "location") {
                part["locations"] = part["locations"].get<int>() + 1;
              }
            }
            return Status::Ok();
          });
      if (!st.ok()) return Fail(st);
      auto shown = [](const json& j) {
        return j.is_string()
                   ? EscapeForDisplay(j.get<std::string>())
                   : j.dump(-1, ' ', false, json::error_handler_t::replace);
      };
      text += fmt::format(
          "{} ({} segments, {} facts{}):\n",
          side == 0 ? "Only in b" : "Only in a", part["segments"].get<int>(),
          part["facts"].get<int>(),
          part["unreadable"].get<int>() > 0
              ? fmt::format(", {} unreadable", part["unreadable"].get<int>())
              : "");
      for (const json& e : part["executions"]) {
        text += fmt::format("  execution {} {}/{}\n", shown(e["id"]),
                            shown(e["pipeline"]), shown(e["stage"]));
      }
      for (const json& e : part["states"]) {
        text += fmt::format("  state {} {}\n", shown(e["execution"]),
                            shown(e["status"]));
      }
      for (const json& e : part["properties"]) {
        text += fmt::format("  property {} {} = {}\n", shown(e["target"]),
                            shown(e["name"]), shown(e["value"]));
      }
      for (const json& e : part["tags"]) {
        text += fmt::format(
            "  tag {} {} = {}\n", shown(e["target"]), shown(e["name"]),
            e["value"].is_null() ? "(removed)" : shown(e["value"]));
      }
      for (const json& e : part["metrics"]) {
        text +=
            fmt::format("  metrics {} {}: {} steps\n", shown(e["execution"]),
                        shown(e["series"]), e["steps"].dump());
      }
      if (part["artifacts"].get<int>() + part["locations"].get<int>() > 0) {
        text += fmt::format("  {} artifacts, {} locations\n",
                            part["artifacts"].get<int>(),
                            part["locations"].get<int>());
      }
      out[sides[side]] = part;
    }
    if (json_) {
      fmt::print("{}\n",
                 out.dump(2, ' ', false, json::error_handler_t::replace));
    } else {
      fmt::print("{}", text);
    }
    return kExitOk;
  }

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
