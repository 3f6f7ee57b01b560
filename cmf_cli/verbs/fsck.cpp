#include <fmt/format.h>

#include "../format.h"
#include "../json_output.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/workspace.h"

namespace cmf::cli {
namespace {

class FsckVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_flag("-q,--quiet", quiet_, "No progress line");
    app.add_flag("--json", json_, "Print the report as JSON");
  }

  int Run(Context& ctx) override {
    AddOptions options;
    options.progress = !quiet_ && !json_;
    Result<FsckReport> report = Fsck(*ctx.repo, options);
    if (!report.ok()) return Fail(report.status());
    if (json_) {
      fmt::print("{}\n", FsckJson(*report));
    } else {
      std::string out;
      for (const std::string& e : report->store_errors)
        out += fmt::format("damaged metadata store: {}\n", e);
      for (const std::string& id : report->interrupted) {
        out += fmt::format(
            "interrupted execution {} (its process is gone; the next commit "
            "records it)\n",
            id);
      }
      for (const std::string& h : report->corrupt)
        out += fmt::format("corrupt object {}\n", h);
      for (const auto& m : report->missing) {
        out += fmt::format("missing object {} ({})\n", m.hash,
                           EscapeForDisplay(m.path));
      }
      for (const auto& q : report->quarantined) {
        out += fmt::format("quarantined segment {}: {}\n", q.path, q.reason);
      }
      out += fmt::format("checked {} object{}\n", report->objects,
                         report->objects == 1 ? "" : "s");
      if (std::uint64_t t = report->temporaries; t > 0) {
        out += fmt::format(
            "{} temporary file{} ({}) left in .cmf/objects/tmp by interrupted "
            "commands; 'cmf gc --force' removes them\n",
            t, t == 1 ? "" : "s", HumanSize(report->temporary_bytes));
      }
      fmt::print("{}", out);
    }
    if (report->ok()) return kExitOk;
    if (!report->store_errors.empty()) {
      return Fail(Status::Corruption(fmt::format(
          "the metadata store '{}' is damaged ({} finding{} of SQLite's "
          "integrity check); restore it from a backup (committed records can "
          "also be pulled again into a new workspace)",
          ctx.repo->store().path().string(), report->store_errors.size(),
          report->store_errors.size() == 1 ? "" : "s")));
    }
    return Fail(Status::Corruption(fmt::format(
        "fsck found {} corrupt and {} missing object{}", report->corrupt.size(),
        report->missing.size(), report->missing.size() == 1 ? "" : "s")));
  }

 private:
  bool quiet_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeFsckVerb() { return std::make_unique<FsckVerb>(); }

}  // namespace cmf::cli
