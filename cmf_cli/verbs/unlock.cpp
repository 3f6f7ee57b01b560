#include <fmt/format.h>

#include "../verb.h"
#include "cmf/workspace.h"

namespace cmf::cli {
namespace {

class UnlockVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("paths", paths_,
                   "Files or directories to make private, writable copies of")
        ->required();
  }

  int Run(Context& ctx) override {
    for (const std::string& p : paths_) {
      Result<std::uint64_t> n = Unlock(*ctx.repo, p);
      if (!n.ok()) return Fail(n.status());
      fmt::print("unlocked {} file{} in {}\n", *n, *n == 1 ? "" : "s", p);
    }
    return kExitOk;
  }

 private:
  std::vector<std::string> paths_;
};

}  // namespace

std::unique_ptr<Verb> MakeUnlockVerb() {
  return std::make_unique<UnlockVerb>();
}

}  // namespace cmf::cli
