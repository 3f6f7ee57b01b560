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
    app.add_flag("--json", json_,
                 "Print a JSON array (the format of doc/json.md)");
  }

  int Run(Context& ctx) override {
    ExecutionFilter filter;
    filter.limit = limit_;
    filter.pipeline = pipeline_;
    filter.stage = stage_;
    // Printed a page at a time: memory stays flat however many executions there
    // are.
    ExecutionsJsonWriter writer;
    bool first = true;
    if (json_) fmt::print("{}", writer.Begin());
    Status st = ctx.repo->store().ScanExecutions(
        filter, [&](std::vector<ExecutionRecord>& page) {
          std::string out;
          if (json_) {
            out = writer.Add(page);
          } else {
            for (const ExecutionRecord& r : page) {
              if (oneline_) {
                out += ExecutionOneLine(r) + "\n";
              } else {
                out += (first ? "" : "\n") + ExecutionSummary(r);
              }
              first = false;
            }
          }
          fmt::print("{}", out);
          return Status::Ok();
        });
    if (json_) fmt::print("{}\n", writer.End());
    if (!st.ok()) return Fail(st);
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
