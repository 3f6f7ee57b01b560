#include <fmt/format.h>

#include "../format.h"
#include "../json_output.h"
#include "../verb.h"
#include "cmf/workspace.h"

namespace cmf::cli {
namespace {

class GcVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_flag("-f,--force", force_,
                 "Remove the objects (without it: only list them)");
    app.add_flag("--json", json_, "Print the report as JSON");
  }

  int Run(Context& ctx) override {
    Result<GcReport> report =
        ctx.repo != nullptr ? CollectGarbage(*ctx.repo, /*dry_run=*/!force_)
                            : CollectBareGarbage(ctx.bare, /*dry_run=*/!force_);
    if (!report.ok()) return Fail(report.status());
    if (json_) {
      fmt::print("{}\n", GcJson(*report));
      return kExitOk;
    }
    std::string out;
    for (const std::string& h : report->unreferenced) out += h + "\n";
    for (const std::string& t : report->temporaries) out += t + "\n";
    std::size_t n = report->unreferenced.size();
    if (ctx.repo == nullptr) {
      // a bare repository: no store says what is referenced
    } else if (report->removed) {
      out += fmt::format("removed {} unreferenced object{} ({})\n", n,
                         n == 1 ? "" : "s", HumanSize(report->bytes));
    } else {
      out += fmt::format(
          "{} unreferenced object{} ({}) would be removed; run 'cmf gc "
          "--force' "
          "to remove {}\n",
          n, n == 1 ? "" : "s", HumanSize(report->bytes),
          n == 1 ? "it" : "them");
    }
    if (std::size_t k = report->stale_stat_blobs; k > 0) {
      out +=
          fmt::format("{} the stat cache of {} path{} that exist{} no more\n",
                      report->removed ? "dropped" : "would drop", k,
                      k == 1 ? "" : "s", k == 1 ? "s" : "");
    }
    if (std::size_t t = report->temporaries.size(); t > 0) {
      out += fmt::format(
          "{} {} temporary file{} ({}) left by interrupted commands{}\n",
          report->removed ? "removed" : "would remove", t, t == 1 ? "" : "s",
          HumanSize(report->temporary_bytes),
          report->removed ? "" : "; run 'cmf gc --force' to remove them");
    } else if (ctx.repo == nullptr) {
      out += "no temporary files left by interrupted commands\n";
    }
    fmt::print("{}", out);
    return kExitOk;
  }

 private:
  bool force_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeGcVerb() { return std::make_unique<GcVerb>(); }

}  // namespace cmf::cli
