// Fuzz target: --where expressions (cmf/where.h). The input is an expression.
// It is refused with a message that points inside it, or it parses and then
// evaluates, on a record with parameters, tags and metrics, without fault and
// the same way twice. Seeds: tests/fuzz/corpus/where.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "cmf/store.h"
#include "cmf/where.h"
#include "fuzz_util.h"

using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const std::string text(cmf::fuzz::Bytes(data, size));
  cmf::Result<cmf::WhereExpr> expr = cmf::WhereExpr::Parse(text);
  if (!expr.ok()) {
    Require(expr.status().message().find("at character ") != std::string::npos,
            "a refusal says where the expression fails");
    return 0;
  }
  cmf::ExecutionRecord r;
  r.id = "01a2496a-42bd-7b3a-9f92-71dcb4fb1b7e";
  r.pipeline = "ALDKL";
  r.stage = "dkl-al";
  r.status = cmf::ExecStatus::kOk;
  r.started_ms = 1'700'000'000'000;
  r.params = {{"lr", 0.01},
              {"epochs", std::int64_t{200}},
              {"acquisition", std::string("ei")},
              {"cold", true}};
  r.tags = {{"deployed", "microscope-2"}};
  r.metric_summaries["rmse"] = {50, 49, 0.02, 0.01, 0.3, 0.05};
  r.metric_summaries["loss"] = {3, 2, std::nan(""), 0.1, 0.2, 0.15};
  const bool once = expr->Matches(r, &r.metric_summaries);
  Require(once == expr->Matches(r, &r.metric_summaries),
          "an expression evaluates the same way twice");
  cmf::ExecutionFilter filter;
  expr->Narrow(&filter);
  if (filter.since_ms && filter.until_ms) {
    // Narrowing never drops a record the expression keeps.
    Require(!once || (*filter.since_ms <= r.started_ms &&
                      r.started_ms < *filter.until_ms),
            "the narrowed range holds every match");
  }
  return 0;
}
