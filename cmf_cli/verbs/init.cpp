#include <fmt/format.h>

#include <filesystem>

#include "../verb.h"
#include "cmf/sync.h"

namespace cmf::cli {
namespace {

class InitVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("directory", directory_,
                   "Where to create .cmf/ (default: here)");
    app.add_flag("--bare", bare_,
                 "Create a bare repository at DIRECTORY to push to (no "
                 "workspace, no metadata.db)");
    app.add_flag("-q,--quiet", quiet_, "Print nothing on success");
  }

  int Run(Context&) override {
    if (bare_) {
      if (directory_.empty())
        return UsageError("init --bare needs a DIRECTORY");
      Status st = InitBare(directory_);
      if (!st.ok()) return Fail(st);
      if (!quiet_)
        fmt::print("Initialized bare cmf repository in {}/\n", directory_);
      return kExitOk;
    }
    Result<Repo> repo = Repo::Init(
        std::filesystem::path(directory_.empty() ? "." : directory_));
    if (!repo.ok()) return Fail(repo.status());
    if (!quiet_) {
      fmt::print("Initialized empty cmf repository in {}/ (site {})\n",
                 repo->cmf_dir().string(), repo->site());
    }
    return kExitOk;
  }

 private:
  std::string directory_;
  bool quiet_ = false;
  bool bare_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeInitVerb() { return std::make_unique<InitVerb>(); }

}  // namespace cmf::cli
