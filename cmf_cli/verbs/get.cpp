#include <fmt/format.h>

#include "../format.h"
#include "../json_output.h"
#include "../verb.h"
#include "cmf/sync.h"

namespace cmf::cli {
namespace {

class GetVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("target", target_,
                   "A recorded path, or an artifact hash (or a unique prefix)")
        ->required();
    app.add_option("--from", from_,
                   "The remote to fetch from (default: any that has it)");
    app.add_flag("-q,--quiet", quiet_,
                 "Print nothing on success (no progress line)");
    app.add_flag("--json", json_, "Print what was fetched as JSON");
  }

  int Run(Context& ctx) override {
    std::optional<std::string> from;
    if (!from_.empty()) from = from_;
    Result<GetReport> report =
        Get(*ctx.repo, target_, from, !quiet_ && !json_ && ProgressWanted());
    if (!report.ok()) return Fail(report.status());
    if (json_) {
      fmt::print("{}\n", GetJson(*report));
      return kExitOk;
    }
    if (quiet_) return kExitOk;
    if (report->objects == 0) {
      fmt::print("{}: already here\n", report->hash.substr(0, 12));
    } else {
      fmt::print("{}: {} object{} ({}) from {}\n", report->hash.substr(0, 12),
                 report->objects, report->objects == 1 ? "" : "s",
                 HumanSize(report->bytes), report->from);
    }
    if (!report->placed_at.empty())
      fmt::print("placed at {}\n", report->placed_at);
    return kExitOk;
  }

 private:
  std::string target_;
  std::string from_;
  bool quiet_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeGetVerb() { return std::make_unique<GetVerb>(); }

}  // namespace cmf::cli
