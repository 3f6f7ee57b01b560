#include "selection.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "verb.h"

namespace cmf::cli {

Status Selection::AddWhere(const std::string& text, bool legacy) {
  Result<WhereExpr> expr = WhereExpr::Parse(text);
  if (expr.ok()) {
    where.push_back(std::move(*expr));
    return Status::Ok();
  }
  // NAME=VALUE: one '=', a name with nothing an expression would hold.
  auto eq = text.find('=');
  if (legacy && eq != std::string::npos && eq > 0 &&
      text.find_first_of(" \t()'\"!<>") == std::string::npos &&
      text.find('=', eq + 1) == std::string::npos) {
    filter.where.emplace_back(text.substr(0, eq), text.substr(eq + 1));
    return Status::Ok();
  }
  return expr.status();
}

Status ScanSelection(Store& store, Selection selection,
                     const SelectionSink& sink) {
  for (const WhereExpr& w : selection.where) {
    w.Narrow(&selection.filter);
    selection.metrics = selection.metrics || w.NeedsMetrics();
  }
  // With an expression to check, the store cannot count: the walk stops here
  // once the limit is reached.
  selection.filter.limit =
      selection.where.empty() ? selection.limit : std::nullopt;
  std::int64_t left = selection.limit.value_or(-1);
  if (left == 0) return Status::Ok();
  static const std::string kEnough = "enough rows";
  selection.filter.metric_summaries = selection.metrics;
  Status st = store.ScanExecutions(
      selection.filter, [&](std::vector<ExecutionRecord>& page) -> Status {
        if (!selection.where.empty()) {
          std::erase_if(page, [&](const ExecutionRecord& r) {
            return !std::all_of(selection.where.begin(), selection.where.end(),
                                [&](const WhereExpr& w) {
                                  return w.Matches(r, &r.metric_summaries,
                                                   selection.aggregates);
                                });
          });
        }
        bool last = false;
        if (left >= 0 && static_cast<std::int64_t>(page.size()) >= left) {
          page.resize(static_cast<std::size_t>(left));
          last = true;
        }
        if (left > 0) left -= static_cast<std::int64_t>(page.size());
        if (!page.empty()) CMF_RETURN_IF_ERROR(sink(page));
        return last ? Status::Conflict(kEnough) : Status::Ok();
      });
  if (st.code() == Code::kConflict && st.message() == kEnough) {
    return Status::Ok();
  }
  return st;
}

Status ParseMetricOptions(const std::vector<std::string>& options,
                          std::map<std::string, MetricAggregate>* aggregates) {
  for (const std::string& m : options) {
    auto eq = m.find('=');
    std::optional<MetricAggregate> how;
    if (eq != std::string::npos && eq > 0)
      how = ParseMetricAggregate(m.substr(eq + 1));
    if (!how) {
      return Status::InvalidArgument(
          "--metric takes NAME=last|min|max|mean|steps, not '" + m + "'");
    }
    (*aggregates)[m.substr(0, eq)] = *how;
  }
  return Status::Ok();
}

int WhereError(const Status& status) {
  return UsageError("--where: " + status.message());
}

Result<LineageTarget> ResolveTarget(Context& ctx, const std::string& text) {
  // A path is taken relative to here, then to the workspace.
  std::string relative;
  std::error_code ec;
  std::filesystem::path abs =
      std::filesystem::absolute(text, ec).lexically_normal();
  std::filesystem::path rel = abs.lexically_relative(ctx.repo->workspace());
  if (!ec && !rel.empty() && *rel.begin() != "..") relative = rel.string();
  return ResolveLineageTarget(ctx.repo->store(), relative, text);
}

}  // namespace cmf::cli
