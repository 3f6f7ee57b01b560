#include <fmt/format.h>

#include <ctime>
#include <optional>

#include "../format.h"
#include "../json_output.h"
#include "../selection.h"
#include "../verb.h"
#include "cmf/clock.h"

namespace cmf::cli {
namespace {

class QueryVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.require_subcommand(1, 1);
    executions_ =
        app.add_subcommand("executions", "Executions that match, newest first");
    executions_->add_option("--pipeline", pipeline_, "Of this pipeline");
    executions_->add_option("--stage", stage_, "Of this stage");
    executions_->add_option(
        "--since", since_,
        "Started on or after DATE (UTC, YYYY-MM-DD[THH:MM[:SS]Z])");
    executions_->add_option("--until", until_, "Started before DATE");
    executions_
        ->add_option(
            "--where", where_,
            "EXPR: only executions for which it holds, such as \"metrics.rmse "
            "< "
            "0.02 and params.acquisition = 'ei'\" (cmf-log(1)); or NAME=VALUE, "
            "a "
            "parameter or property with that value (repeatable: all must hold)")
        ->type_name("EXPR");
    executions_->add_option("-n,--max-count", limit_, "At most N")
        ->check(CLI::NonNegativeNumber);
    executions_->add_flag("--json", json_, "A JSON array, as cmf log --json");
    artifacts_ =
        app.add_subcommand("artifacts", "Artifacts that match, by hash");
    artifacts_->add_option("--kind", kind_, "Of this kind")
        ->check(CLI::IsMember(
            {"dataset", "dataslice", "model", "metrics", "file", "directory"}));
    artifacts_->add_option("-n,--max-count", limit_, "At most N")
        ->check(CLI::NonNegativeNumber);
    artifacts_->add_flag("--json", json_, "A JSON array");
  }

  int Run(Context& ctx) override {
    if (artifacts_->parsed()) {
      std::optional<ArtifactKind> kind;
      if (!kind_.empty()) kind = ParseArtifactKind(kind_);
      Result<std::vector<Store::ArtifactRow>> rows =
          ctx.repo->store().QueryArtifacts(kind, limit_);
      if (!rows.ok()) return Fail(rows.status());
      if (json_) {
        fmt::print("{}\n", ArtifactRowsJson(*rows));
        return kExitOk;
      }
      for (const auto& r : *rows) {
        fmt::print("{}  {:<9} {:>10}  {}\n", r.ref.hash, ToString(r.ref.kind),
                   HumanSize(r.ref.size), fmt::join(r.paths, ", "));
      }
      return kExitOk;
    }
    Selection selection;
    ExecutionFilter& filter = selection.filter;
    filter.pipeline = pipeline_;
    filter.stage = stage_;
    filter.events = json_;  // the one-line text shows no inputs or outputs
    selection.limit = limit_;
    for (auto [text, out] : {std::pair{&since_, &filter.since_ms},
                             std::pair{&until_, &filter.until_ms}}) {
      if (!text->has_value()) continue;
      std::optional<std::int64_t> ms = ParseDateUtc(**text);
      if (!ms) {
        return UsageError(
            "'" + **text +
            "' is not a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SSZ)");
      }
      *out = *ms;
    }
    for (const std::string& w : where_) {
      Status st = selection.AddWhere(w, /*legacy=*/true);
      if (!st.ok()) return WhereError(st);
    }
    ExecutionsJsonWriter writer;
    if (json_) fmt::print("{}", writer.Begin());
    Status st = ScanSelection(ctx.repo->store(), std::move(selection),
                              [&](std::vector<ExecutionRecord>& page) {
                                std::string out;
                                if (json_) {
                                  out = writer.Add(page);
                                } else {
                                  for (const ExecutionRecord& r : page)
                                    out += ExecutionOneLine(r) + "\n";
                                }
                                fmt::print("{}", out);
                                return Status::Ok();
                              });
    if (json_) fmt::print("{}\n", writer.End());
    if (!st.ok()) return Fail(st);
    return kExitOk;
  }

 private:
  CLI::App* executions_ = nullptr;
  CLI::App* artifacts_ = nullptr;
  std::optional<std::string> pipeline_, stage_, since_, until_;
  std::vector<std::string> where_;
  std::optional<std::int64_t> limit_;
  std::string kind_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeQueryVerb() { return std::make_unique<QueryVerb>(); }

}  // namespace cmf::cli
