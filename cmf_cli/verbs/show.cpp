#include <fmt/format.h>

#include <algorithm>

#include "../format.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/json_output.h"

namespace cmf::cli {
namespace {

std::string ArtifactLines(const std::vector<ArtifactRef>& refs) {
  std::string out;
  for (const ArtifactRef& a : refs) {
    out += fmt::format("  {}  {:<9} {:>10}  {}\n", a.hash.substr(0, 12),
                       ToString(a.kind), HumanSize(a.size), EscapeForDisplay(a.path));
  }
  return out;
}

class ShowVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("id", id_, "Execution id, or any unique prefix of it")
        ->required();
    app.add_flag("--json", json_,
                 "Print a JSON object (the format of doc/json.md)");
  }

  int Run(Context& ctx) override {
    Store& store = ctx.repo->store();
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
  std::string id_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeShowVerb() { return std::make_unique<ShowVerb>(); }

}  // namespace cmf::cli
