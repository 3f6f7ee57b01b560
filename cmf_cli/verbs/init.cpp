#include <fmt/format.h>

#include <filesystem>

#include "../verb.h"

namespace cmf::cli {
namespace {

class InitVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("directory", directory_,
                   "Where to create .cmf/ (default: here)");
    app.add_flag("-q,--quiet", quiet_, "Print nothing on success");
  }

  int Run(Context&) override {
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
};

}  // namespace

std::unique_ptr<Verb> MakeInitVerb() { return std::make_unique<InitVerb>(); }

}  // namespace cmf::cli
