#include <fmt/format.h>

#include "../format.h"
#include "../json_output.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/workspace.h"

namespace cmf::cli {
namespace {

class AddVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("paths", paths_,
                   "Files or directories of the workspace to track")
        ->required();
    app.add_flag("-q,--quiet", quiet_, "No progress line, no report");
    app.add_flag("--json", json_, "Print what was added as JSON");
  }

  int Run(Context& ctx) override {
    AddOptions options;
    options.progress = !quiet_ && !json_;
    std::vector<std::filesystem::path> paths(paths_.begin(), paths_.end());
    Result<std::vector<AddResult>> added = Add(*ctx.repo, paths, options);
    if (!added.ok()) return Fail(added.status());
    if (json_) {
      fmt::print("{}\n", AddJson(*added));
    } else if (!quiet_) {
      for (const AddResult& r : *added) {
        std::string files = r.artifact.kind == ArtifactKind::kDirectory
                                ? fmt::format("{} files, ", r.files)
                                : "";
        fmt::print(
            "{} {}  {} ({}{}; {} hashed)\n", r.changed ? "added" : "unchanged",
            EscapeForDisplay(r.artifact.path), r.artifact.hash.substr(0, 12),
            files, HumanSize(r.artifact.size), HumanSize(r.hashed_bytes));
      }
    }
    return kExitOk;
  }

 private:
  std::vector<std::string> paths_;
  bool quiet_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeAddVerb() { return std::make_unique<AddVerb>(); }

}  // namespace cmf::cli
