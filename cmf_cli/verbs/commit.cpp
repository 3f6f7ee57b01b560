#include <fmt/format.h>

#include "../json_output.h"
#include "../verb.h"
#include "cmf/sync.h"

namespace cmf::cli {
namespace {

class CommitVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("-m,--message", message_,
                   "What the commit records (default: a count of its facts)");
    app.add_flag("-q,--quiet", quiet_, "Print nothing on success");
    app.add_flag("--json", json_, "Print the commit as JSON");
  }

  int Run(Context& ctx) override {
    Result<CommitReport> report = CommitMetadata(*ctx.repo, message_);
    if (!report.ok()) return Fail(report.status());
    if (json_) {
      fmt::print("{}\n", CommitJson(*report));
      return kExitOk;
    }
    for (const std::string& id : report->interrupted) {
      fmt::print(stderr,
                 "cmf: execution {} recorded as interrupted: its process is "
                 "gone\n",
                 id);
    }
    if (quiet_) {
    } else if (report->commit.empty()) {
      fmt::print("nothing to commit: every fact is committed\n");
    } else {
      fmt::print("[{}] {} fact{} in segment {}\n", report->commit.substr(0, 10),
                 report->facts, report->facts == 1 ? "" : "s",
                 report->segment.substr(0, 12));
    }
    return kExitOk;
  }

 private:
  std::string message_;
  bool json_ = false;
  bool quiet_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeCommitVerb() {
  return std::make_unique<CommitVerb>();
}

}  // namespace cmf::cli
