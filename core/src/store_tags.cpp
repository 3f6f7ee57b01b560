// Tags and metric summaries: the records cmf tag, compare and diff read
// (doc/metadata-store.md, version 7).
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "cmf/byte_strings.h"
#include "store_impl.h"

namespace cmf {
namespace {

// The row id of the execution (KEY its full id) or artifact (KEY its hash),
// or NotFound. (Templates, so that they take Store's private state without
// naming it.)
template <typename StoreState>
Result<RowId> TargetRow(StoreState& m, RecordType type,
                        const std::string& key) {
  if (type != RecordType::kExecution && type != RecordType::kArtifact) {
    return Status::InvalidArgument(
        "only executions and artifacts have tags, not a " +
        std::string(RecordTypeName(type)));
  }
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt q, m.Prepare(type == RecordType::kExecution
                                 ? "SELECT id FROM execution WHERE uuid = ?1"
                                 : "SELECT id FROM artifact WHERE hash = ?1"));
  Status st;
  bool found = q.Bind(1, key).Step(&st);
  RowId id = found ? q.Int(0) : 0;
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (!found) {
    return Status::NotFound(
        fmt::format("no {} '{}'", RecordTypeName(type), key));
  }
  return id;
}

// The current value of tag NAME of row TARGET (absent when it has none).
template <typename StoreState>
Result<std::optional<std::string>> CurrentTag(StoreState& m,
                                              std::string_view type,
                                              RowId target,
                                              const std::string& name) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt q,
      m.Prepare("SELECT value FROM tag WHERE target_type = ?1 AND target_id = "
                "?2 AND name = ?3 ORDER BY hlc DESC, site DESC LIMIT 1"));
  Status st;
  std::optional<std::string> value;
  if (q.Bind(1, type).Bind(2, target).Bind(3, name).Step(&st) && !q.IsNull(0)) {
    value = q.Text(0);
  }
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  return value;
}

}  // namespace

MetricSummary MetricSummaryOfRow(sql::Stmt& q, int first) {
  MetricSummary s;
  s.steps = q.Int(first);
  s.last_step = q.Int(first + 1);
  s.last = q.Real(first + 2);  // NULL (a NaN step) reads as NaN
  const std::int64_t n = q.Int(first + 6);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  // With a value counted, minimum, maximum and sum are never NULL.
  s.min = n > 0 ? q.RealNotNull(first + 3) : nan;
  s.max = n > 0 ? q.RealNotNull(first + 4) : nan;
  s.mean = n > 0 ? q.RealNotNull(first + 5) / static_cast<double>(n) : nan;
  return s;
}

Status Store::SetTag(RecordType type, const std::string& key,
                     const std::string& name,
                     const std::optional<std::string>& value) {
  // Names and values are JSON strings in segments, where only UTF-8 stands.
  if (name.empty() || !IsUtf8(name)) {
    return Status::InvalidArgument("a tag name is non-empty UTF-8 text");
  }
  if (value && !IsUtf8(*value)) {
    return Status::InvalidArgument("the value of tag '" + name +
                                   "' is not UTF-8 text");
  }
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(RowId target, TargetRow(m, type, key));
    const std::string_view type_name = RecordTypeName(type);
    if (!value) {
      CMF_ASSIGN_OR_RETURN(std::optional<std::string> now,
                           CurrentTag(m, type_name, target, name));
      if (!now) {
        return Status::NotFound(
            fmt::format("{} {} has no tag '{}'", type_name, key, name));
      }
    }
    CMF_ASSIGN_OR_RETURN(std::int64_t hlc, m.NextHlc());
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s, m.Prepare("INSERT INTO tag(target_type, target_id, name, "
                               "hlc, site, value) VALUES(?1, ?2, ?3, ?4, ?5, "
                               "?6)"));
    return s.Bind(1, type_name)
        .Bind(2, target)
        .Bind(3, name)
        .Bind(4, hlc)
        .Bind(5, m.options.site)
        .Bind(6, value)
        .Run();
  });
}

Status Store::RecordArtifact(const ArtifactRef& ref) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status { return m.EnsureArtifact(ref); });
}

Result<std::map<std::string, std::string>> Store::GetTags(
    RecordType type, const std::string& key) {
  Impl& m = *impl_;
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());
  CMF_ASSIGN_OR_RETURN(RowId target, TargetRow(m, type, key));
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt q,
      m.Prepare("SELECT name, value FROM tag WHERE target_type = ?1 AND "
                "target_id = ?2 ORDER BY name, hlc, site"));
  std::map<std::string, std::string> tags;
  Status st;
  q.Bind(1, RecordTypeName(type)).Bind(2, target);
  while (q.Step(&st)) {
    if (q.IsNull(1)) {
      tags.erase(q.Text(0));
    } else {
      tags[q.Text(0)] = q.Text(1);
    }
  }
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  return tags;
}

Result<std::map<std::string, Value>> Store::GetProperties(
    RecordType type, const std::string& key) {
  Impl& m = *impl_;
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());
  CMF_ASSIGN_OR_RETURN(RowId target, TargetRow(m, type, key));
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt q,
      m.Prepare("SELECT name, type, value FROM property WHERE target_type = "
                "?1 AND target_id = ?2 ORDER BY name, hlc, site"));
  std::map<std::string, Value> properties;
  Status st;
  q.Bind(1, RecordTypeName(type)).Bind(2, target);
  while (q.Step(&st)) properties[q.Text(0)] = q.ValueAs(2, q.Text(1));
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  return properties;
}

Result<std::vector<Store::Tagged>> Store::FindTagged(
    const std::string& name, const std::optional<std::string>& value) {
  Impl& m = *impl_;
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());
  // The newest fact of tag NAME of each record (tag_by_name finds the
  // records that ever had it), kept when it is not a removal and matches.
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt q,
      m.Prepare(
          "SELECT t.target_type, CASE t.target_type WHEN 'execution' THEN "
          "(SELECT uuid FROM execution WHERE id = t.target_id) ELSE (SELECT "
          "hash FROM artifact WHERE id = t.target_id) END, t.value, t.hlc "
          "FROM (SELECT DISTINCT target_type, target_id FROM tag WHERE name = "
          "?1) r JOIN tag t ON t.target_type = r.target_type AND t.target_id = "
          "r.target_id AND t.name = ?1 AND t.hlc = (SELECT max(hlc) FROM tag "
          "WHERE target_type = r.target_type AND target_id = r.target_id AND "
          "name = ?1) ORDER BY t.target_type, t.target_id, t.site DESC"));
  std::vector<Tagged> out;
  Status st;
  q.Bind(1, name);
  while (q.Step(&st)) {
    if (q.IsNull(2)) continue;
    if (value && q.Text(2) != *value) continue;
    Tagged t;
    t.type = q.Text(0) == "execution" ? RecordType::kExecution
                                      : RecordType::kArtifact;
    t.key = q.Text(1);
    t.value = q.Text(2);
    t.hlc = q.Int(3);
    // Two sites that tagged it at the same clock: the greater site wins, as
    // everywhere else; keep one row per record.
    if (!out.empty() && out.back().key == t.key) continue;
    out.push_back(std::move(t));
  }
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  std::stable_sort(
      out.begin(), out.end(),
      [](const Tagged& a, const Tagged& b) { return a.hlc > b.hlc; });
  return out;
}

Result<std::map<std::string, MetricSummaries>> Store::SummarizeMetrics(
    std::span<const std::string> ids) {
  Impl& m = *impl_;
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());
  CMF_RETURN_IF_ERROR(
      m.Exec("CREATE TEMP TABLE IF NOT EXISTS summarize(uuid TEXT PRIMARY KEY) "
             "WITHOUT ROWID"));
  CMF_RETURN_IF_ERROR(m.Exec("DELETE FROM temp.summarize"));
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt ins,
        m.Prepare("INSERT OR IGNORE INTO temp.summarize(uuid) VALUES(?1)"));
    for (const std::string& id : ids)
      CMF_RETURN_IF_ERROR(ins.Bind(1, id).Run());
  }
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt q,
      m.Prepare("SELECT e.uuid, r.name, x.steps, x.last_step, x.last_value, "
                "x.min_value, x.max_value, x.sum_value, x.values_n FROM "
                "temp.summarize t CROSS JOIN execution e ON e.uuid = t.uuid "
                "CROSS JOIN metric_summary x ON x.execution_id = e.id JOIN "
                "series r ON r.id = x.series_id"));
  std::map<std::string, MetricSummaries> out;
  Status st;
  while (q.Step(&st)) out[q.Text(0)][q.Text(1)] = MetricSummaryOfRow(q, 2);
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Status Store::Impl::UpdateMetricSummary(RowId execution, RowId series,
                                        std::span<const MetricPoint> points,
                                        bool pending) {
  if (points.empty()) return Status::Ok();
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt get,
      Prepare("SELECT last_step FROM metric_summary WHERE execution_id = ?1 "
              "AND series_id = ?2"));
  Status st;
  const bool known = get.Bind(1, execution).Bind(2, series).Step(&st);
  const std::int64_t last_step = known ? get.Int(0) : 0;
  get.Reset();
  CMF_RETURN_IF_ERROR(st);
  // Added to the summary only when each point is a new step after the last:
  // one that replaces a step, or comes before one, could change the minimum,
  // the maximum or the last value in a way a running summary cannot undo.
  bool appends = true;
  for (std::size_t i = 0; i < points.size() && appends; ++i) {
    const std::int64_t after = i == 0 ? last_step : points[i - 1].step;
    if ((known || i > 0) && points[i].step <= after) appends = false;
  }
  if (!appends) {
    // pending_from as the steps now stand (a step replaced by an ingested
    // one may leave none of the series pending).
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt redo,
        Prepare("INSERT OR REPLACE INTO metric_summary(execution_id, "
                "series_id, steps, last_step, last_value, min_value, "
                "max_value, sum_value, values_n, pending_from) SELECT ?1, ?2, "
                "count(*), max(step), (SELECT value FROM metric WHERE "
                "execution_id = ?1 AND series_id = ?2 ORDER BY step DESC "
                "LIMIT 1), min(value), max(value), sum(value), count(value), "
                "min(CASE WHEN seg IS NULL THEN step END) FROM metric WHERE "
                "execution_id = ?1 AND series_id = ?2"));
    return redo.Bind(1, execution).Bind(2, series).Run();
  }
  std::int64_t n = 0;
  double lo = 0, hi = 0, sum = 0;
  for (const MetricPoint& p : points) {
    if (std::isnan(p.value)) continue;
    lo = n == 0 ? p.value : std::min(lo, p.value);
    hi = n == 0 ? p.value : std::max(hi, p.value);
    sum += p.value;
    ++n;
  }
  std::optional<double> last;
  if (!std::isnan(points.back().value)) last = points.back().value;
  std::optional<double> min, max, total;
  if (n > 0) min = lo, max = hi, total = sum;
  // min() and max() of SQLite with one NULL argument are NULL: the CASEs keep
  // the side that is not.
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt put,
      Prepare(
          "INSERT INTO metric_summary(execution_id, series_id, steps, "
          "last_step, last_value, min_value, max_value, sum_value, "
          "values_n, pending_from) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
          "?10) ON CONFLICT(execution_id, series_id) DO UPDATE SET steps = "
          "steps + excluded.steps, last_step = excluded.last_step, "
          "last_value = excluded.last_value, min_value = CASE WHEN min_value "
          "IS NULL OR "
          "excluded.min_value < min_value THEN coalesce(excluded.min_value, "
          "min_value) ELSE min_value END, max_value = CASE WHEN max_value "
          "IS NULL OR excluded.max_value > max_value THEN "
          "coalesce(excluded.max_value, max_value) ELSE max_value END, "
          "sum_value = CASE WHEN excluded.sum_value IS NULL THEN sum_value "
          "ELSE coalesce(sum_value, 0) + excluded.sum_value END, values_n "
          "= values_n + excluded.values_n"));
  CMF_RETURN_IF_ERROR(
      put.Bind(1, execution)
          .Bind(2, series)
          .Bind(3, static_cast<std::int64_t>(points.size()))
          .Bind(4, points.back().step)
          .Bind(5, last)
          .Bind(6, min)
          .Bind(7, max)
          .Bind(8, total)
          .Bind(9, n)
          .Bind(10, pending ? std::optional<std::int64_t>(points.front().step)
                            : std::nullopt)
          .Run());
  // The update above leaves pending_from (and so its partial index) alone;
  // it is set here only when it is not set yet (the points all come after
  // it when it is), so that the steps logged one at a time after the first
  // cost no extra page.
  if (!known || !pending) return Status::Ok();
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt flag,
      Prepare("UPDATE metric_summary SET pending_from = ?3 WHERE "
              "execution_id = ?1 AND series_id = ?2 AND pending_from IS NULL"));
  return flag.Bind(1, execution)
      .Bind(2, series)
      .Bind(3, points.front().step)
      .Run();
}

}  // namespace cmf
