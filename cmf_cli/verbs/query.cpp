#include <fmt/format.h>

#include <ctime>
#include <optional>

#include "../format.h"
#include "../verb.h"
#include "cmf/json_output.h"

namespace cmf::cli {
namespace {

// "2026-01-01", "2026-01-01T12:30", "2026-01-01T12:30:05Z" (UTC) to Unix ms.
std::optional<std::int64_t> ParseDate(const std::string& text) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  char tail[8] = {};
  int n = std::sscanf(text.c_str(), "%4d-%2d-%2d%*[T ]%2d:%2d:%2d%7s", &y, &mo,
                      &d, &h, &mi, &s, tail);
  if (n < 3) return std::nullopt;
  if (n == 3 && text.size() != 10) return std::nullopt;
  if (n >= 7 && std::string(tail) != "Z") return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return std::nullopt;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(::timegm(&tm)) * 1000;
}

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
    executions_->add_option(
        "--where", where_,
        "NAME=VALUE: a parameter or property with that value (repeatable)");
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
    ExecutionFilter filter;
    filter.pipeline = pipeline_;
    filter.stage = stage_;
    filter.limit = limit_;
    for (auto [text, out] : {std::pair{&since_, &filter.since_ms},
                             std::pair{&until_, &filter.until_ms}}) {
      if (!text->has_value()) continue;
      std::optional<std::int64_t> ms = ParseDate(**text);
      if (!ms) {
        return UsageError(
            "'" + **text +
            "' is not a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM:SSZ)");
      }
      *out = *ms;
    }
    for (const std::string& w : where_) {
      auto eq = w.find('=');
      if (eq == std::string::npos || eq == 0) {
        return UsageError("--where takes NAME=VALUE, not '" + w + "'");
      }
      filter.where.emplace_back(w.substr(0, eq), w.substr(eq + 1));
    }
    ExecutionsJsonWriter writer;
    if (json_) fmt::print("{}", writer.Begin());
    Status st = ctx.repo->store().ScanExecutions(
        filter, [&](std::vector<ExecutionRecord>& page) {
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
