#include <fmt/format.h>

#include <optional>

#include "../format.h"
#include "../verb.h"
#include "cmf/json_output.h"

namespace cmf::cli {
namespace {

class LogVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("-n,--max-count", limit_, "Show at most N executions")
        ->type_name("N")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--pipeline", pipeline_, "Only executions of this pipeline");
    app.add_option("--stage", stage_, "Only executions of this stage");
    app.add_flag("--oneline", oneline_, "One line per execution");
    app.add_flag("--json", json_, "Print a JSON array (the format of doc/json.md)");
  }

  int Run(Context& ctx) override {
    ExecutionFilter filter;
    filter.limit = limit_;
    filter.pipeline = pipeline_;
    filter.stage = stage_;
    Result<std::vector<ExecutionRecord>> list = ctx.repo->store().ListExecutions(filter);
    if (!list.ok()) return Fail(list.status());
    if (json_) {
      fmt::print("{}\n", ExecutionsJson(*list));
      return kExitOk;
    }
    std::string out;
    for (std::size_t i = 0; i < list->size(); ++i) {
      const ExecutionRecord& r = (*list)[i];
      if (oneline_) {
        out += ExecutionOneLine(r) + "\n";
      } else {
        out += (i ? "\n" : "") + ExecutionSummary(r);
      }
    }
    fmt::print("{}", out);
    return kExitOk;
  }

 private:
  std::optional<std::int64_t> limit_;
  std::optional<std::string> pipeline_;
  std::optional<std::string> stage_;
  bool oneline_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeLogVerb() { return std::make_unique<LogVerb>(); }

}  // namespace cmf::cli
