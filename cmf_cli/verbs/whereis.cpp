#include <fmt/format.h>

#include "../json_output.h"
#include "../verb.h"
#include "cmf/sync.h"

namespace cmf::cli {
namespace {

class WhereIsVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("target", target_,
                   "A recorded path, or an artifact hash (or a unique prefix)")
        ->required();
    app.add_flag("--json", json_, "Print the locations as JSON");
  }

  int Run(Context& ctx) override {
    Result<Whereabouts> where = WhereIs(*ctx.repo, target_);
    if (!where.ok()) return Fail(where.status());
    if (json_) {
      fmt::print("{}\n", WhereIsJson(*where));
      return kExitOk;
    }
    fmt::print("{}{}\n", where->hash,
               where->path.empty() ? "" : "  " + where->path);
    if (where->places.empty()) {
      fmt::print(
          "  nowhere known: no site or remote has said it holds these bytes\n");
    }
    for (const auto& p : where->places) {
      if (p.this_site) {
        fmt::print("  here (site {})\n", p.id);
      } else if (!p.remote.empty()) {
        fmt::print("  remote {} (store {})\n", p.remote, p.id);
      } else {
        fmt::print("  site {}\n", p.id);
      }
    }
    return kExitOk;
  }

 private:
  std::string target_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeWhereisVerb() {
  return std::make_unique<WhereIsVerb>();
}

}  // namespace cmf::cli
