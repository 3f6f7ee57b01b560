#include <fmt/format.h>

#include "../json_output.h"
#include "../verb.h"
#include "cmf/sync.h"

namespace cmf::cli {
namespace {

class RemoteVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_flag("-v,--verbose", verbose_, "List remotes with their URLs");
    app.add_flag("--json", json_, "List remotes as JSON");
    app.require_subcommand(0, 1);
    add_ = app.add_subcommand("add", "Add a remote");
    add_->add_option("name", spec_.name, "Its name")->required();
    add_->add_option("url", spec_.url,
                     "A cmf repository: a path, file://, ssh://host/path");
    add_->add_option("--metadata", spec_.metadata,
                     "A git URL for the metadata log, apart from the data");
    add_->add_option("--data", spec_.data,
                     "An object-store URL for the bytes, apart from the log");
    remove_ = app.add_subcommand("remove",
                                 "Remove a remote (nothing remote is touched)");
    remove_->alias("rm");
    remove_->add_option("name", name_, "Its name")->required();
  }

  int Run(Context& ctx) override {
    Config& config = ctx.repo->config();
    if (add_->parsed()) {
      if (spec_.url.empty() && spec_.metadata.empty()) {
        return UsageError(
            "remote add needs a URL, or --metadata URL [--data URL]");
      }
      Status st = AddRemote(config, spec_);
      if (!st.ok()) {
        return st.code() == Code::kInvalidArgument ? UsageError(st.message())
                                                   : Fail(st);
      }
      return kExitOk;
    }
    if (remove_->parsed()) {
      Status st = RemoveRemote(config, name_);
      return st.ok() ? kExitOk : Fail(st);
    }
    Result<std::vector<RemoteSpec>> remotes = ListRemotes(config);
    if (!remotes.ok()) return Fail(remotes.status());
    if (json_) {
      fmt::print("{}\n", RemotesJson(*remotes));
      return kExitOk;
    }
    for (const RemoteSpec& r : *remotes) {
      if (!verbose_) {
        fmt::print("{}\n", r.name);
        continue;
      }
      std::string meta = RedactUrl(r.metadata.empty() ? r.url : r.metadata);
      std::string bytes = RedactUrl(r.data.empty() ? r.url : r.data);
      fmt::print("{}\t{} (metadata)\n", r.name, meta);
      fmt::print("{}\t{} (data)\n", r.name, bytes.empty() ? "-" : bytes);
    }
    return kExitOk;
  }

 private:
  bool verbose_ = false;
  bool json_ = false;
  CLI::App* add_ = nullptr;
  CLI::App* remove_ = nullptr;
  RemoteSpec spec_;
  std::string name_;
};

}  // namespace

std::unique_ptr<Verb> MakeRemoteVerb() {
  return std::make_unique<RemoteVerb>();
}

}  // namespace cmf::cli
