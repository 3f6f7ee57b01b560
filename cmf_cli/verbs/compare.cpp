#include <algorithm>

#include "../compare_table.h"
#include "../selection.h"
#include "../verb.h"

namespace cmf::cli {
namespace {

class CompareVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("executions", ids_,
                   "Executions to compare (ids or unique prefixes); none: "
                   "every execution the options select");
    app.add_option("--pipeline", pipeline_, "Only executions of this pipeline");
    app.add_option("--stage", stage_, "Only executions of this stage");
    app.add_option("--where", where_,
                   "Only executions for which EXPR holds (cmf-log(1); "
                   "repeatable: all must hold)")
        ->type_name("EXPR");
    app.add_option("--sort-by", sort_by_,
                   "Order rows by KEY (params.NAME, metrics.NAME, tags.NAME, "
                   "started, stage, status, id) instead of newest first")
        ->type_name("KEY");
    app.add_option("--sort-order", sort_order_, "asc or desc (default asc)")
        ->check(CLI::IsMember({"asc", "desc"}));
    app.add_flag("--only-changed", only_changed_,
                 "Leave out parameter and metric columns equal in every row");
    app.add_option("--metric", metrics_,
                   "NAME=last|min|max|mean|steps: how the series NAME is "
                   "summarised (default last; repeatable)")
        ->type_name("NAME=HOW");
    app.add_option("-n,--max-count", limit_, "At most N rows")
        ->check(CLI::NonNegativeNumber);
    auto* csv = app.add_flag("--csv", csv_, "Print CSV");
    auto* md = app.add_flag("--md", md_, "Print a Markdown table");
    auto* js = app.add_flag("--json", json_,
                            "Print a JSON array (the format of doc/json.md)");
    csv->excludes(md)->excludes(js);
    md->excludes(js);
  }

  int Run(Context& ctx) override {
    Store& store = ctx.repo->store();
    Selection selection;
    selection.filter.pipeline = pipeline_;
    selection.filter.stage = stage_;
    selection.filter.events = false;
    selection.filter.command = false;
    selection.metrics = true;
    if (Status st = ParseMetricOptions(metrics_, &selection.aggregates);
        !st.ok()) {
      return UsageError(st.message());
    }
    for (const std::string& w : where_) {
      Status st = selection.AddWhere(w, /*legacy=*/false);
      if (!st.ok()) return WhereError(st);
    }
    std::optional<SortKey> sort;
    if (sort_by_) {
      Result<SortKey> key = ParseSortKey(*sort_by_);
      if (!key.ok()) return UsageError(key.status().message());
      sort = *key;
    }

    CompareTable table(MetricChoice{selection.aggregates});
    if (!ids_.empty()) {
      // The executions named, in the order named, kept when they match.
      std::vector<ExecutionRecord> rows;
      std::vector<std::string> full;
      for (const std::string& id : ids_) {
        Result<std::string> resolved = store.ResolveExecution(id);
        if (!resolved.ok()) return Fail(resolved.status());
        Result<ExecutionRecord> r = store.GetExecution(*resolved);
        if (!r.ok()) return Fail(r.status());
        full.push_back(*resolved);
        rows.push_back(std::move(*r));
      }
      Result<std::map<std::string, MetricSummaries>> metrics =
          store.SummarizeMetrics(full);
      if (!metrics.ok()) return Fail(metrics.status());
      for (ExecutionRecord& r : rows) {
        auto it = metrics->find(r.id);
        if (it != metrics->end()) r.metric_summaries = std::move(it->second);
        bool keep = std::all_of(selection.where.begin(), selection.where.end(),
                                [&](const WhereExpr& w) {
                                  return w.Matches(r, &r.metric_summaries,
                                                   selection.aggregates);
                                });
        if (keep) table.Add(std::move(r));
      }
    } else {
      // Sorted, the first N are known only once every row is read.
      if (!sort) selection.limit = limit_;
      Status st = ScanSelection(store, std::move(selection),
                                [&](std::vector<ExecutionRecord>& page) {
                                  table.AddPage(page);
                                  return Status::Ok();
                                });
      if (!st.ok()) return Fail(st);
    }
    if (sort) table.Sort(*sort, sort_order_ == "desc");
    if (limit_) table.Truncate(static_cast<std::size_t>(*limit_));
    table.Columns(only_changed_);
    if (json_) {
      table.WriteJson(stdout);
    } else if (csv_) {
      table.WriteCsv(stdout);
    } else if (md_) {
      table.WriteMarkdown(stdout);
    } else {
      table.WriteText(stdout);
    }
    return kExitOk;
  }

 private:
  std::vector<std::string> ids_;
  std::optional<std::string> pipeline_, stage_, sort_by_;
  std::string sort_order_ = "asc";
  std::vector<std::string> where_, metrics_;
  std::optional<std::int64_t> limit_;
  bool only_changed_ = false, csv_ = false, md_ = false, json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeCompareVerb() {
  return std::make_unique<CompareVerb>();
}

}  // namespace cmf::cli
