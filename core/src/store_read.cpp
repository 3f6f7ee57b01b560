// The store's listings and lookups of executions (cmf/store.h): listings
// page by page, ids by prefix, metrics, runs whose process died, the integrity
// check. A page of records is read by Store::Impl::Load (store_load.cpp).
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <iterator>

#include "cmf/clock.h"
#include "cmf/store.h"
#include "sqlite_util.h"
#include "store_impl.h"

namespace cmf {

ProcessIdentity LiveRunProcess(sql::Stmt& s) {
  return {s.Int(1), s.Int(2), s.Text(3), s.Text(4)};
}

std::string InterruptedMessage(const ProcessIdentity& p) {
  return fmt::format(
      "its process (pid {} on {}) ended without recording how the run ended "
      "(killed, crashed, or the machine restarted)",
      p.pid, p.host);
}

Status Store::ScanExecutions(
    const ExecutionFilter& filter,
    const std::function<Status(std::vector<ExecutionRecord>&)>& sink,
    int page_size) {
  // Keyset pagination: each page continues after the last (started_ms, uuid) of
  // the one before.
  std::optional<std::int64_t> after_started;
  std::optional<std::string> after_id;
  std::int64_t left = filter.limit.value_or(-1);
  // The stages the filter names, as ids: then SQLite walks execution_by_stage
  // in order and stops, instead of walking every execution by start time
  // looking for the few of a rare stage.
  std::string stage_ids;
  if (filter.pipeline || filter.stage) {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt q,
        impl_->Prepare("SELECT s.id FROM stage s JOIN pipeline p ON "
                       "p.id = s.pipeline_id WHERE (?1 IS NULL OR p.name = ?1) "
                       "AND (?2 IS NULL OR s.name = ?2) ORDER BY s.id"));
    q.Bind(1, filter.pipeline).Bind(2, filter.stage);
    Status st;
    while (q.Step(&st)) {
      stage_ids += (stage_ids.empty() ? "" : ", ") + std::to_string(q.Int(0));
    }
    q.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (stage_ids.empty()) return Status::Ok();  // no such stage: nothing
  }
  while (left != 0) {
    std::int64_t want =
        left < 0 ? page_size : std::min<std::int64_t>(left, page_size);
    // Only the conditions in use, so that SQLite walks execution_by_start (or
    // _by_stage) in order and stops after WANT rows.
    std::string where = "1";
    if (!stage_ids.empty()) where += " AND e.stage_id IN (" + stage_ids + ")";
    if (after_started)
      where += " AND e.started_ms <= ?3 AND (e.started_ms < ?3 OR e.uuid < ?4)";
    if (filter.since_ms) where += " AND e.started_ms >= ?5";
    if (filter.until_ms) where += " AND e.started_ms < ?6";
    for (std::size_t i = 0; i < filter.where.size(); ++i) {
      const std::string name = "?" + std::to_string(10 + 2 * i);
      const std::string value = "?" + std::to_string(11 + 2 * i);
      where +=
          " AND (EXISTS (SELECT 1 FROM param x WHERE x.execution_id = e.id "
          "AND x.name = " +
          name + " AND (CAST(x.value AS TEXT) = " + value +
          " OR (x.type = 'bool' AND x.value = (" + value + " = 'true') AND " +
          value +
          " IN ('true', 'false')))) OR (SELECT CASE WHEN y.type = "
          "'bool' THEN CASE y.value WHEN 1 THEN 'true' ELSE 'false' END ELSE "
          "CAST(y.value AS TEXT) END FROM property y WHERE y.target_type = "
          "'execution' AND y.target_id = e.id AND y.name = " +
          name + " ORDER BY y.hlc DESC, y.site DESC LIMIT 1) = " + value + ")";
    }
    CMF_ASSIGN_OR_RETURN(
        std::vector<ExecutionRecord> page,
        impl_->Load(
            where,
            [&](sql::Stmt& s) {
              if (after_started) s.Bind(3, *after_started).Bind(4, *after_id);
              if (filter.since_ms) s.Bind(5, *filter.since_ms);
              if (filter.until_ms) s.Bind(6, *filter.until_ms);
              for (std::size_t i = 0; i < filter.where.size(); ++i) {
                s.Bind(static_cast<int>(10 + 2 * i), filter.where[i].first)
                    .Bind(static_cast<int>(11 + 2 * i), filter.where[i].second);
              }
            },
            want,
            {.command = filter.command,
             .events = filter.events,
             .summaries = filter.metric_summaries}));
    if (page.empty()) break;
    after_started = page.back().started_ms;
    after_id = page.back().id;
    if (left > 0) left -= static_cast<std::int64_t>(page.size());
    bool last = static_cast<std::int64_t>(page.size()) < want;
    CMF_RETURN_IF_ERROR(sink(page));
    if (last) break;
  }
  return Status::Ok();
}

Result<std::vector<ExecutionRecord>> Store::ListExecutions(
    const ExecutionFilter& filter) {
  std::vector<ExecutionRecord> all;
  CMF_RETURN_IF_ERROR(
      ScanExecutions(filter, [&](std::vector<ExecutionRecord>& page) {
        std::move(page.begin(), page.end(), std::back_inserter(all));
        return Status::Ok();
      }));
  return all;
}

Result<std::string> Store::ResolveExecution(const std::string& prefix) {
  std::string hex;
  bool dashed_input = false;
  for (char c : prefix) {
    if (c == '-') {
      dashed_input = true;
      continue;
    }
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Status::InvalidArgument("'" + prefix + "' is not an execution id");
    }
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex.empty() || hex.size() > 32) {
    return Status::InvalidArgument("'" + prefix + "' is not an execution id");
  }
  std::string dashed;  // the prefix in the stored form, 8-4-4-4-12
  for (std::size_t i = 0; i < hex.size(); ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) dashed += '-';
    dashed += hex[i];
  }
  // Ids that start with it, then (for a short form) ids whose last 12 digits
  // do: each a range of an index ('g' sorts after every hex digit and '-').
  // The second names the expression of the index execution_by_short_id.
  std::vector<std::string> matches;
  auto find = [&](const char* text, const std::string& from) -> Status {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, impl_->Prepare(text));
    s.Bind(1, from).Bind(2, from + "g");
    Status st;
    while (s.Step(&st)) {
      std::string id = s.Text(0);
      if (std::find(matches.begin(), matches.end(), id) == matches.end()) {
        matches.push_back(std::move(id));
      }
    }
    s.Reset();
    return st;
  };
  CMF_RETURN_IF_ERROR(
      find("SELECT uuid FROM execution WHERE uuid >= ?1 AND uuid < ?2 "
           "ORDER BY uuid LIMIT 4",
           dashed));
  if (!dashed_input && hex.size() >= kShortIdMinimum &&
      hex.size() <= kShortIdLength && matches.size() < 4) {
    CMF_RETURN_IF_ERROR(
        find("SELECT uuid FROM execution WHERE substr(uuid, 25) >= ?1 AND "
             "substr(uuid, 25) < ?2 ORDER BY substr(uuid, 25) LIMIT 4",
             hex));
  }
  if (matches.empty()) return Status::NotFound("no execution '" + prefix + "'");
  if (matches.size() > 1) {
    std::string names;
    for (std::size_t i = 0; i < matches.size() && i < 3; ++i) {
      names += (i ? ", " : "") + matches[i];
    }
    return Status::InvalidArgument(
        fmt::format("execution id '{}' is ambiguous: {}{}", prefix, names,
                    matches.size() > 3 ? ", ..." : ""));
  }
  return matches.front();
}

Result<ExecutionRecord> Store::GetExecution(const std::string& id) {
  CMF_ASSIGN_OR_RETURN(
      std::vector<ExecutionRecord> found,
      impl_->Load(
          "e.uuid = ?1", [&](sql::Stmt& s) { s.Bind(1, id); }, 1));
  if (found.empty()) return Status::NotFound("no execution '" + id + "'");
  return std::move(found.front());
}

Result<MetricSeries> Store::GetMetrics(
    const std::string& id, const std::optional<std::string>& series) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt e, impl_->Prepare("SELECT id FROM execution WHERE uuid = ?1"));
  Status st;
  bool found = e.Bind(1, id).Step(&st);
  RowId execution = found ? e.Int(0) : 0;
  e.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (!found) return Status::NotFound("no execution '" + id + "'");

  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT n.name, m.step, m.value FROM metric m "
          "JOIN series n ON n.id = m.series_id "
          "WHERE m.execution_id = ?1 AND (?2 IS NULL OR n.name = ?2) "
          "ORDER BY n.name, m.step"));
  s.Bind(1, execution).Bind(2, series);
  MetricSeries out;
  while (s.Step(&st)) out[s.Text(0)].push_back({s.Int(1), s.Real(2)});
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (series && out.empty()) {
    return Status::NotFound("execution '" + id + "' has no metric series '" +
                            *series + "'");
  }
  return out;
}

Result<std::vector<Store::InterruptedRun>> Store::FindInterrupted() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT l.execution_id, l.pid, l.start_ticks, l.boot_id, "
                     "l.host, e.uuid FROM live_run l JOIN execution e ON "
                     "e.id = l.execution_id ORDER BY e.started_ms, e.uuid"));
  std::vector<InterruptedRun> out;
  Status st;
  while (s.Step(&st)) {
    ProcessIdentity process = LiveRunProcess(s);
    if (!process.Gone()) continue;
    std::string message = InterruptedMessage(process);
    out.push_back({s.Text(5), std::move(process), std::move(message)});
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::vector<Store::InterruptedRun>> Store::SealInterrupted() {
  CMF_ASSIGN_OR_RETURN(std::vector<InterruptedRun> runs, FindInterrupted());
  for (const InterruptedRun& run : runs) {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt row,
        impl_->Prepare("SELECT id FROM execution WHERE uuid = ?1"));
    Status st;
    const bool found = row.Bind(1, run.id).Step(&st);
    const RowId id = found ? row.Int(0) : 0;
    row.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (!found) continue;
    CMF_RETURN_IF_ERROR(SetExecutionState(
        id, ExecStatus::kInterrupted, std::nullopt, std::nullopt, run.message));
  }
  return runs;
}

Result<std::vector<std::string>> Store::CheckIntegrity(int max_errors) {
  std::vector<std::string> errors;
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(fmt::format("PRAGMA integrity_check({})", max_errors)));
  Status st;
  while (s.Step(&st)) {
    std::string line = s.Text(0);
    if (line != "ok") errors.push_back(std::move(line));
  }
  s.Reset();
  if (!st.ok()) {
    // A page so damaged that the check itself stops is a finding too.
    if (st.code() == Code::kCorruption || st.code() == Code::kIOError) {
      errors.push_back(st.message());
      return errors;
    }
    return st;
  }
  return errors;
}

Result<std::int64_t> Store::CountExecutions() {
  CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                       impl_->Prepare("SELECT count(*) FROM execution"));
  Status st;
  std::int64_t n = s.Step(&st) ? s.Int(0) : 0;
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return n;
}

}  // namespace cmf
