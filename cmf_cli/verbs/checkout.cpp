#include <fmt/format.h>

#include <optional>

#include "../verb.h"
#include "cmf/workspace.h"

namespace cmf::cli {
namespace {

class CheckoutVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("path", path_,
                   "A tracked path, or a path inside a tracked directory")
        ->required();
    app.add_option("--rev", rev_,
                   "Restore this content (an artifact hash or unique prefix) "
                   "instead, and "
                   "track it at PATH")
        ->type_name("OBJECT");
    app.add_flag("-f,--force", force_,
                 "Overwrite files with local changes (they are lost)");
    app.add_flag("-q,--quiet", quiet_, "Print nothing on success");
  }

  int Run(Context& ctx) override {
    Result<CheckoutResult> r = Checkout(*ctx.repo, path_, rev_, force_);
    if (!r.ok()) return Fail(r.status());
    if (!quiet_) {
      fmt::print("restored {} file{} of {} ({})\n", r->restored_files,
                 r->restored_files == 1 ? "" : "s", r->path,
                 r->hash.substr(0, 12));
    }
    return kExitOk;
  }

 private:
  std::string path_;
  std::optional<std::string> rev_;
  bool force_ = false;
  bool quiet_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeCheckoutVerb() {
  return std::make_unique<CheckoutVerb>();
}

}  // namespace cmf::cli
