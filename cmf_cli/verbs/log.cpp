#include <fmt/format.h>

#include <optional>

#include "../format.h"
#include "../json_output.h"
#include "../selection.h"
#include "../verb.h"

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
    app.add_option("--where", where_,
                   "Only executions for which EXPR holds, such as "
                   "\"metrics.rmse < 0.02 and params.acquisition = 'ei'\" "
                   "(repeatable: all must hold)")
        ->type_name("EXPR");
    app.add_flag("--oneline", oneline_, "One line per execution");
    app.add_flag("--json", json_,
                 "Print a JSON array (the format of doc/json.md)");
  }

  int Run(Context& ctx) override {
    Selection selection;
    selection.limit = limit_;
    selection.filter.pipeline = pipeline_;
    selection.filter.stage = stage_;
    // The text shows no inputs or outputs: reading them would cost a random
    // read of the artifact table per input (thousands for a meta-training).
    selection.filter.events = json_;
    for (const std::string& w : where_) {
      Status st = selection.AddWhere(w, /*legacy=*/false);
      if (!st.ok()) return WhereError(st);
    }
    // Printed a page at a time: memory stays flat however many executions there
    // are.
    ExecutionsJsonWriter writer;
    bool first = true;
    if (json_) fmt::print("{}", writer.Begin());
    Status st =
        ScanSelection(ctx.repo->store(), std::move(selection),
                      [&](std::vector<ExecutionRecord>& page) {
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
  std::vector<std::string> where_;
  bool oneline_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeLogVerb() { return std::make_unique<LogVerb>(); }

}  // namespace cmf::cli
