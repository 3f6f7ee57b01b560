#include <fmt/format.h>

#include <cmath>
#include <set>
#include <variant>

#include "../compare_table.h"
#include "../diff_report.h"
#include "../json_output.h"
#include "../selection.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/environment.h"
#include "cmf/metalog.h"

namespace cmf::cli {
namespace {

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
std::string Shown(const FactValue& v) {
  return v.is_string ? EscapeForDisplay(v.text) : v.text;
}

// The names either of A and B has, in order.
template <typename M>
std::set<std::string> NamesOf(const M& a, const M& b) {
  std::set<std::string> names;
  for (const auto& [n, v] : a) names.insert(n);
  for (const auto& [n, v] : b) names.insert(n);
  return names;
}

// The params, metrics and tags that differ between A and B (with ALL, those
// that do not too); not the environment.
ExecutionDiff DiffRecords(const ExecutionRecord& a, const ExecutionRecord& b,
                          const MetricChoice& choice, bool all) {
  ExecutionDiff d;
  d.a = a.id;
  d.b = b.id;
  for (const std::string& n : NamesOf(a.params, b.params)) {
    std::optional<Value> old = Find(a.params, n);
    std::optional<Value> now = Find(b.params, n);
    if (old == now && !all) continue;
    d.params[n] = {old, now};
  }
  for (const std::string& n : NamesOf(a.metric_summaries, b.metric_summaries)) {
    std::optional<double> old = choice.Value(a, n);
    std::optional<double> now = choice.Value(b, n);
    const bool same =
        old.has_value() == now.has_value() &&
        (!old || *old == *now || (std::isnan(*old) && std::isnan(*now)));
    if (same && !all) continue;
    d.metrics[n] = {old, now, choice.Of(n)};
  }
  for (const std::string& n : NamesOf(a.tags, b.tags)) {
    std::optional<std::string> old = Find(a.tags, n);
    std::optional<std::string> now = Find(b.tags, n);
    if (old == now && !all) continue;
    d.tags[n] = {old, now};
  }
  return d;
}

// D's params, metrics (with the change) and tags, a block each.
std::string ChangesText(const ExecutionDiff& d) {
  std::string text;
  // Parameters.
  std::string block;
  for (const auto& [n, c] : d.params) {
    block += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(c.old),
                         Shown(c.now));
  }
  if (!block.empty()) text += "Params:\n" + block;
  // Metrics, with the change.
  block.clear();
  for (const auto& [n, m] : d.metrics) {
    std::string change;
    if (std::optional<double> delta = m.Delta()) {
      change =
          fmt::format(" ({}{})", *delta >= 0 ? "+" : "", FormatNumber(*delta));
    }
    block += fmt::format("  {}: {} -> {}{}\n", EscapeForDisplay(n),
                         Shown(m.old), Shown(m.now), change);
  }
  if (!block.empty()) text += "Metrics:\n" + block;
  // Tags.
  block.clear();
  for (const auto& [n, c] : d.tags) {
    block += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(c.old),
                         Shown(c.now));
  }
  if (!block.empty()) text += "Tags:\n" + block;
  return text;
}

// The environments of ENV as text: nothing when they are the same (unless
// ALL), else their hashes and the packages that differ.
std::string EnvironmentText(const EnvironmentDiff& env, bool all) {
  if (env.old == env.now && !all) return "";
  std::string text = fmt::format("Environment: {} -> {}\n",
                                 env.old ? env.old->substr(0, 12) : "-",
                                 env.now ? env.now->substr(0, 12) : "-");
  if (env.old == env.now) return text;
  if (env.missing) {
    return text + "  (the description of " + env.missing->substr(0, 12) +
           " is not here: cmf get it, or pull its bytes)\n";
  }
  for (const auto& [n, c] : env.packages) {
    text += fmt::format("  {}: {} -> {}\n", EscapeForDisplay(n), Shown(c.old),
                        Shown(c.now));
  }
  return text;
}

// One side of a diff of commits: its counts, then its facts a line each.
std::string SideText(const char* title, const CommitDiffSide& part) {
  std::string text = fmt::format(
      "{} ({} segments, {} facts{}):\n", title, part.segments, part.facts,
      part.unreadable > 0 ? fmt::format(", {} unreadable", part.unreadable)
                          : "");
  for (const auto& e : part.executions) {
    text += fmt::format("  execution {} {}/{}\n", Shown(e.id),
                        Shown(e.pipeline), Shown(e.stage));
  }
  for (const auto& e : part.states) {
    text += fmt::format("  state {} {}\n", Shown(e.execution), Shown(e.status));
  }
  for (const auto& e : part.properties) {
    text += fmt::format("  property {} {} = {}\n", Shown(e.target),
                        Shown(e.name), Shown(e.value));
  }
  for (const auto& e : part.tags) {
    text += fmt::format("  tag {} {} = {}\n", Shown(e.target), Shown(e.name),
                        e.value.is_null() ? "(removed)" : Shown(e.value));
  }
  for (const auto& e : part.metrics) {
    text += fmt::format("  metrics {} {}: {} steps\n", Shown(e.execution),
                        Shown(e.series), e.steps);
  }
  if (part.artifacts + part.locations > 0) {
    text += fmt::format("  {} artifacts, {} locations\n", part.artifacts,
                        part.locations);
  }
  return text;
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
    ExecutionDiff diff = DiffRecords(a, b, choice, all_);
    // The software each ran with.
    diff.environment = DiffEnvironments(ctx, a, b);
    if (json_) {
      fmt::print("{}\n", ExecutionDiffJson(diff));
      return kExitOk;
    }
    const std::string text =
        ChangesText(diff) + EnvironmentText(diff.environment, all_);
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

  // The commit TEXT names (main: the log's tip), checked to be in LOG.
  static Result<std::string> ResolveCommit(MetaLog& log,
                                           const std::string& text) {
    std::string id = text;
    if (id == "main") {
      Result<std::string> tip = log.Tip();
      if (!tip.ok()) return tip.status();
      if (tip->empty())
        return Status::NotFound("the metadata log has no commit yet");
      id = *tip;
    }
    // Walking from it to itself reads nothing, but fails for a commit
    // the log does not hold.
    Status known = log.ForEachNewSegment(
        id, {id},
        [](const std::string&, const std::string&) { return Status::Ok(); });
    if (!known.ok()) {
      return Status::NotFound("no commit " + id + " in the metadata log");
    }
    return id;
  }

  // What the records of commit B say that those of commit A do not, and the
  // other way round: the segments each reaches and the other does not, read
  // from the metadata log (they came from any site: every line is checked,
  // and one that does not parse is counted, not trusted).
  int DiffCommits(Context& ctx) {
    Result<MetaLog> log = MetaLog::Open(ctx.repo->cmf_dir() / "log.git");
    if (!log.ok()) return Fail(log.status());
    CommitDiff diff;
    Result<std::string> a = ResolveCommit(*log, a_);
    if (!a.ok()) return Fail(a.status());
    Result<std::string> b = ResolveCommit(*log, b_);
    if (!b.ok()) return Fail(b.status());
    diff.a = *a;
    diff.b = *b;
    for (int side = 0; side < 2; ++side) {
      const std::string& tip = side == 0 ? diff.b : diff.a;
      const std::string& hide = side == 0 ? diff.a : diff.b;
      CommitDiffSide& part = side == 0 ? diff.only_in_b : diff.only_in_a;
      Status st = log->ForEachNewSegment(
          tip, {hide}, [&](const std::string&, const std::string& segment) {
            AddSegment(segment, &part);
            return Status::Ok();
          });
      if (!st.ok()) return Fail(st);
    }
    if (json_) {
      fmt::print("{}\n", CommitDiffJson(diff));
    } else {
      fmt::print("a: commit {}\nb: commit {}\n{}{}", diff.a, diff.b,
                 SideText("Only in b", diff.only_in_b),
                 SideText("Only in a", diff.only_in_a));
    }
    return kExitOk;
  }

  // The environments A and B ran in, and when they differ, the packages that
  // do (when this site holds both descriptions).
  static EnvironmentDiff DiffEnvironments(Context& ctx,
                                          const ExecutionRecord& a,
                                          const ExecutionRecord& b) {
    auto hash_of = [](const ExecutionRecord& r) -> std::optional<std::string> {
      auto it = r.properties.find("environment");
      if (it == r.properties.end()) return std::nullopt;
      if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
      return std::nullopt;
    };
    EnvironmentDiff env;
    env.old = hash_of(a);
    env.now = hash_of(b);
    if (env.old == env.now) return env;
    // The descriptions, when this site holds their bytes.
    auto packages = [&](const std::optional<std::string>& hash)
        -> std::optional<std::map<std::string, std::string>> {
      if (!hash) return std::map<std::string, std::string>{};
      Result<std::string> bytes = ReadEnvironment(*ctx.repo, *hash);
      if (!bytes.ok()) return std::nullopt;
      return ParseEnvironment(*bytes);
    };
    auto p_old = packages(env.old), p_new = packages(env.now);
    if (!p_old || !p_new) {
      env.missing = !p_old ? env.old : env.now;
      return env;
    }
    for (const std::string& n : NamesOf(*p_old, *p_new)) {
      std::optional<std::string> x = Find(*p_old, n), y = Find(*p_new, n);
      if (x == y) continue;
      env.packages[n] = {x, y};
    }
    return env;
  }

  std::string a_, b_;
  std::vector<std::string> metrics_;
  bool all_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeDiffVerb() { return std::make_unique<DiffVerb>(); }

}  // namespace cmf::cli
