#include "cmf/import.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "../json_output.h"
#include "../verb.h"

namespace cmf::cli {
namespace {

class ImportVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("format", format_,
                   "cmflib (an MLMD SQLite store) or json (a cmf export)")
        ->required()
        ->check(CLI::IsMember({"cmflib", "json"}));
    app.add_option("file", file_,
                   "The file to read ('-': standard input, for json)")
        ->required();
    app.add_flag("--json", json_, "Print what was imported as JSON");
  }

  int Run(Context& ctx) override {
    Result<ImportReport> report = Status::InvalidArgument("no import");
    if (format_ == "cmflib") {
      report = ImportCmflib(ctx.repo->store(), file_);
    } else {
      std::stringstream text;
      if (file_ == "-") {
        text << std::cin.rdbuf();
      } else {
        std::ifstream in(file_);
        if (!in) return Fail(Status::NotFound("cannot read '" + file_ + "'"));
        text << in.rdbuf();
      }
      report = ImportJson(ctx.repo->store(), text.str());
    }
    if (!report.ok()) return Fail(report.status());
    if (json_) {
      fmt::print("{}\n", ImportReportJson(*report));
    } else {
      fmt::print(
          "imported {} executions, {} artifacts, {} events ({} facts); "
          "'cmf commit' seals them\n",
          report->executions, report->artifacts, report->events, report->facts);
    }
    return kExitOk;
  }

 private:
  std::string format_;
  std::string file_;
  bool json_ = false;
};

class ExportVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("--format", format_, "json (the only form, doc/export.md)")
        ->check(CLI::IsMember({"json"}));
    app.add_option("--pipeline", pipeline_,
                   "Only this pipeline's executions and their artifacts");
    app.add_option("-o,--output", output_,
                   "Write to FILE (default: standard output)");
  }

  int Run(Context& ctx) override {
    if (!output_.empty()) {
      Status written = ExportJsonToFile(ctx.repo->store(), pipeline_, output_);
      return written.ok() ? kExitOk : Fail(written);
    }
    Result<std::string> text = ExportJson(ctx.repo->store(), pipeline_);
    if (!text.ok()) return Fail(text.status());
    fmt::print("{}", *text);
    return kExitOk;
  }

 private:
  std::string format_ = "json";
  std::optional<std::string> pipeline_;
  std::string output_;
};

}  // namespace

std::unique_ptr<Verb> MakeImportVerb() {
  return std::make_unique<ImportVerb>();
}
std::unique_ptr<Verb> MakeExportVerb() {
  return std::make_unique<ExportVerb>();
}

}  // namespace cmf::cli
