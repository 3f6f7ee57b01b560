#include <fmt/format.h>

#include "../json_output.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/workspace.h"

namespace cmf::cli {
namespace {

class StatusVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_flag("-q,--quiet", quiet_, "No progress line");
    app.add_flag("--json", json_, "Print the report as JSON");
  }

  int Run(Context& ctx) override {
    AddOptions options;
    options.progress = !quiet_ && !json_;
    Result<StatusReport> report = WorkspaceStatus(*ctx.repo, options);
    if (!report.ok()) return Fail(report.status());
    if (json_) {
      fmt::print("{}\n", StatusJson(*report));
      return kExitOk;
    }
    std::string out;
    if (report->tracked.empty()) {
      out += "No tracked data (track some with 'cmf add PATH').\n";
    } else if (report->changes.empty()) {
      out += fmt::format("Tracked data: {} path{}, all as recorded.\n",
                         report->tracked.size(),
                         report->tracked.size() == 1 ? "" : "s");
    } else {
      out +=
          "Changes to tracked data (use 'cmf add PATH' to record them, 'cmf "
          "checkout --force PATH' to discard them):\n";
      bool damaged = false;
      for (const Change& c : report->changes) {
        out +=
            fmt::format("  {:<10}{}{}\n", std::string(ToString(c.kind)) + ":",
                        EscapeForDisplay(c.path),
                        c.cache_damaged ? "  (cached copy damaged)" : "");
        damaged = damaged || c.cache_damaged;
      }
      if (damaged) {
        out +=
            "A file marked 'cached copy damaged' was written in place while "
            "it was a hard link into the cache (root can write read-only "
            "files), so the cache lost the recorded version. 'cmf fsck' lists "
            "the damaged objects; 'cmf unlock PATH' before editing avoids "
            "this.\n";
      }
    }
    if (report->uncommitted_facts > 0) {
      out += fmt::format(
          "Metadata: {} fact{} not committed ({} execution{}); 'cmf commit' "
          "seals them.\n",
          report->uncommitted_facts, report->uncommitted_facts == 1 ? "" : "s",
          report->uncommitted_executions,
          report->uncommitted_executions == 1 ? "" : "s");
    }
    for (const std::string& id : report->interrupted) {
      out += fmt::format(
          "Interrupted: execution {} is recorded as running, but its process "
          "is gone; 'cmf commit' records it as interrupted.\n",
          id);
    }
    fmt::print("{}", out);
    return kExitOk;
  }

 private:
  bool quiet_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeStatusVerb() {
  return std::make_unique<StatusVerb>();
}

}  // namespace cmf::cli
