#include <fmt/format.h>

#include <algorithm>

#include "../format.h"
#include "../json_output.h"
#include "../selection.h"
#include "../verb.h"
#include "cmf/byte_strings.h"

namespace cmf::cli {
namespace {

std::string ArtifactLines(const std::vector<ArtifactRef>& refs) {
  std::string out;
  for (const ArtifactRef& a : refs) {
    out += fmt::format("  {}  {:<9} {:>10}  {}\n", a.hash.substr(0, 12),
                       ToString(a.kind), HumanSize(a.size),
                       EscapeForDisplay(a.path));
  }
  return out;
}

class ShowVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    auto* id =
        app.add_option("id", id_, "Execution id, or any unique prefix of it");
    auto* artifact = app.add_option(
        "--artifact", artifact_,
        "Show an artifact instead (a path, a hash or prefix, or "
        "@NAME=VALUE: the one most recently tagged so) with its lineage");
    id->excludes(artifact);
    app.add_flag("--json", json_,
                 "Print a JSON object (the format of doc/json.md)");
  }

  int Run(Context& ctx) override {
    Store& store = ctx.repo->store();
    if (artifact_) return ShowArtifact(ctx);
    if (id_.empty())
      return UsageError("show needs an execution id or --artifact");
    Result<std::string> id = store.ResolveExecution(id_);
    if (!id.ok()) return Fail(id.status());
    Result<ExecutionRecord> r = store.GetExecution(*id);
    if (!r.ok()) return Fail(r.status());
    if (json_) {
      fmt::print("{}\n", ExecutionJson(*r));
      return kExitOk;
    }
    Result<MetricSeries> metrics = store.GetMetrics(*id);
    if (!metrics.ok()) return Fail(metrics.status());

    std::string out = ExecutionSummary(*r);
    if (r->code) {
      out += fmt::format(
          "Code:     {}{} in {}\n",
          r->code->commit.empty() ? "(no commit yet)" : r->code->commit,
          r->code->dirty ? " (dirty)" : "", r->code->repo);
    } else {
      out += "Code:     not in a git repository\n";
    }
    out +=
        fmt::format("Where:    {}@{} (site {})\n", r->user, r->host, r->site);
    if (!r->params.empty()) {
      out += "Params:\n";
      for (const auto& [name, value] : r->params) {
        out += fmt::format("  {} = {}\n", name, ToText(value));
      }
    }
    if (!r->properties.empty()) {
      out += "Properties:\n";
      for (const auto& [name, value] : r->properties) {
        out += fmt::format("  {} = {}\n", name, ToText(value));
      }
    }
    if (!r->tags.empty()) {
      out += "Tags:\n";
      for (const auto& [name, value] : r->tags) {
        out += fmt::format("  {} = {}\n", EscapeForDisplay(name),
                           EscapeForDisplay(value));
      }
    }
    if (!r->inputs.empty()) out += "Inputs:\n" + ArtifactLines(r->inputs);
    if (!r->outputs.empty()) out += "Outputs:\n" + ArtifactLines(r->outputs);
    if (!metrics->empty()) {
      out += "Metrics:\n";
      for (const auto& [name, points] : *metrics) {
        out +=
            fmt::format("  {}: {} steps, last {} = {}\n", name, points.size(),
                        points.back().step, points.back().value);
      }
    }
    fmt::print("{}", out);
    return kExitOk;
  }

 private:
  // The artifact --artifact names: what it is, its tags, where its bytes
  // are, and the lineage it came from.
  int ShowArtifact(Context& ctx) {
    Store& store = ctx.repo->store();
    Result<LineageTarget> target = ResolveTarget(ctx, *artifact_);
    if (!target.ok()) return Fail(target.status());
    if (target->type != LineageNode::Type::kArtifact) {
      return Fail(Status::InvalidArgument("'" + *artifact_ +
                                          "' names an execution, not an "
                                          "artifact (cmf show ID)"));
    }
    Result<ArtifactRef> a = store.GetArtifact(target->id);
    if (!a.ok()) return Fail(a.status());
    Result<std::map<std::string, std::string>> tags =
        store.GetTags(RecordType::kArtifact, a->hash);
    if (!tags.ok()) return Fail(tags.status());
    Result<std::map<std::string, Value>> properties =
        store.GetProperties(RecordType::kArtifact, a->hash);
    if (!properties.ok()) return Fail(properties.status());
    Result<std::vector<std::string>> locations = store.Locations(a->hash);
    if (!locations.ok()) return Fail(locations.status());
    LineageOptions up;
    Result<LineageGraph> graph = Lineage(store, *target, up);
    if (!graph.ok()) return Fail(graph.status());
    if (json_) {
      fmt::print("{}\n",
                 ArtifactJson(*a, *tags, *properties, *locations, *graph));
      return kExitOk;
    }
    std::string out =
        fmt::format("artifact {}\nKind:     {}\nSize:     {}\n", a->hash,
                    ToString(a->kind), HumanSize(a->size));
    if (!locations->empty()) {
      out += fmt::format("Held by:  {}\n", fmt::join(*locations, ", "));
    }
    if (!properties->empty()) {
      out += "Properties:\n";
      for (const auto& [name, value] : *properties) {
        out += fmt::format("  {} = {}\n", EscapeForDisplay(name),
                           EscapeForDisplay(ToText(value)));
      }
    }
    if (!tags->empty()) {
      out += "Tags:\n";
      for (const auto& [name, value] : *tags) {
        out += fmt::format("  {} = {}\n", EscapeForDisplay(name),
                           EscapeForDisplay(value));
      }
    }
    out += "Lineage:\n" + LineageText(*graph, up);
    fmt::print("{}", out);
    return kExitOk;
  }

  std::optional<std::string> artifact_;
  std::string id_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeShowVerb() { return std::make_unique<ShowVerb>(); }

}  // namespace cmf::cli
