// The store's listings and lookups of executions (cmf/store.h): one page of
// records read in a fixed number of queries, ids by prefix, metrics, runs
// whose process died, the integrity check.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "cmf/byte_strings.h"
#include "cmf/store.h"
#include "sqlite_util.h"
#include "store_impl.h"

namespace fs = std::filesystem;

namespace cmf {

namespace {

constexpr char kSelectLiveRuns[] =
    "SELECT execution_id, pid, start_ticks, boot_id, host FROM live_run";

// The process of a row of kSelectLiveRuns.
ProcessIdentity LiveRunProcess(sql::Stmt& s) {
  return {s.Int(1), s.Int(2), s.Text(3), s.Text(4)};
}

std::string InterruptedMessage(const ProcessIdentity& p) {
  return fmt::format(
      "its process (pid {} on {}) ended without recording how the run ended "
      "(killed, crashed, or the machine restarted)",
      p.pid, p.host);
}

// The texts of the few rows (stages, series) that many rows refer to, each
// read from the store once: a join would look one up for every row.
class TextsById {
 public:
  // QUERY selects the texts of the row whose id is ?1.
  explicit TextsById(sql::Stmt query) : query_(query) {}

  Result<const std::vector<std::string>*> Get(RowId id) {
    auto it = texts_.find(id);
    if (it != texts_.end()) return &it->second;
    Status st;
    std::vector<std::string> texts;
    query_.Bind(1, id);
    if (query_.Step(&st)) {
      for (int i = 0; i < query_.ColumnCount(); ++i) {
        texts.push_back(query_.Text(i));
      }
    }
    query_.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (texts.empty()) {
      return Status::Corruption("the store refers to a missing row " +
                                std::to_string(id));
    }
    return &texts_.emplace(id, std::move(texts)).first->second;
  }

 private:
  sql::Stmt query_;
  std::unordered_map<RowId, std::vector<std::string>> texts_;
};

}  // namespace

// Loads the executions selected by WHERE (a condition on e, with its
// parameters bound by BIND), newest first, at most LIMIT (-1: all). Everything
// is read in one snapshot with a fixed number of queries, whatever the number
// of executions.
Result<std::vector<ExecutionRecord>> Store::Impl::Load(
    const std::string& where, const std::function<void(sql::Stmt&)>& bind,
    std::int64_t limit, bool events, bool summaries) {
  CMF_ASSIGN_OR_RETURN(auto snapshot, BeginRead());

  std::vector<ExecutionRecord> out;
  // Records are large: growing the vector would move each several times.
  if (limit > 0)
    out.reserve(static_cast<std::size_t>(std::min<std::int64_t>(limit, 4096)));
  std::unordered_map<RowId, std::size_t> index;
  index.reserve(out.capacity());
  RowId lowest = 0, highest = 0;
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        Prepare(std::string("SELECT e.id, e.uuid, e.stage_id, ") +
                (events ? "e.command, " : "NULL, ") +
                "e.code_commit, e.code_dirty, "
                "e.code_repo, e.host, e.user, e.site, e.started_ms "
                "FROM execution e WHERE " +
                where + " ORDER BY e.started_ms DESC, e.uuid DESC LIMIT ?9"));
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt stage_names,
        Prepare("SELECT p.name, s.name FROM stage s JOIN pipeline p ON "
                "p.id = s.pipeline_id WHERE s.id = ?1"));
    TextsById stages(stage_names);
    bind(s);
    s.Bind(9, limit);  // ?9: parameters ?1..?8 belong to WHERE
    Status st;
    while (s.Step(&st)) {
      ExecutionRecord& r = out.emplace_back();  // filled in place: no move
      RowId id = s.Int(0);
      r.id = s.Text(1);
      CMF_ASSIGN_OR_RETURN(const std::vector<std::string>* names,
                           stages.Get(s.Int(2)));
      r.pipeline = (*names)[0];
      r.stage = (*names)[1];
      auto command = events ? nlohmann::json::parse(s.Text(3), nullptr,
                                                    /*allow_exceptions=*/false)
                            : nlohmann::json();
      if (command.is_array()) {
        for (const auto& arg : command) {
          if (auto bytes = DecodeByteString(arg)) r.command.push_back(*bytes);
        }
      }
      if (!s.IsNull(4))
        r.code = CodeVersion{s.Text(4), s.Int(5) != 0, s.Text(6)};
      r.host = s.Text(7);
      r.user = s.Text(8);
      r.site = s.Text(9);
      r.started_ms = s.Int(10);
      lowest = index.empty() ? id : std::min(lowest, id);
      highest = index.empty() ? id : std::max(highest, id);
      index.emplace(id, out.size() - 1);
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  if (out.empty()) return out;

  // Each query below reads the rows of the selected executions. When they
  // are most of the executions between the lowest and highest id (a listing
  // of one stage, or of everything), a walk over that range of the table's
  // key reads them in order, and the few others are skipped. Otherwise the
  // ids go into a temp table that each query walks (CROSS JOIN keeps SQLite
  // from scanning the big table instead), reaching their rows through the
  // keys.
  const bool range = highest - lowest < 2 * static_cast<RowId>(out.size());
  if (!range) {
    CMF_RETURN_IF_ERROR(
        Exec("CREATE TEMP TABLE IF NOT EXISTS selected(id INTEGER PRIMARY "
             "KEY)"));
    CMF_RETURN_IF_ERROR(Exec("DELETE FROM temp.selected"));
    CMF_ASSIGN_OR_RETURN(sql::Stmt keep,
                         Prepare("INSERT INTO temp.selected(id) VALUES(?1)"));
    for (const auto& [id, at] : index) {
      CMF_RETURN_IF_ERROR(keep.Bind(1, id).Run());
    }
  }
  // "FROM TABLE x" and the condition that picks the selected executions' rows
  // by the column KEY (ON is the join's, or the range's WHERE); ORDER BY
  // puts each execution's rows together, in key order.
  auto rows_of = [&](const std::string& table, const std::string& key,
                     const std::string& also = "",
                     const std::string& join = "") {
    return range ? "FROM " + table + " x " + join + " WHERE " + also + "x." +
                       key + " BETWEEN ?1 AND ?2 ORDER BY x." + key
                 : "FROM temp.selected t CROSS JOIN " + table + " x ON " +
                       also + "x." + key + " = t.id " + join + " ORDER BY t.id";
  };
  auto prepare = [&](const std::string& text) -> Result<sql::Stmt> {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, Prepare(text));
    if (range) s.Bind(1, lowest).Bind(2, highest);
    return s;
  };
  // The record of execution ID, or null for one in the range not selected.
  auto record = [&](RowId id) -> ExecutionRecord* {
    auto it = index.find(id);
    return it == index.end() ? nullptr : &out[it->second];
  };
  Status st;
  {  // the newest state fact wins: rows come oldest first, so the last one
     // stays
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        prepare("SELECT x.execution_id, x.status, x.exit_code, x.ended_ms, "
                "x.message " +
                rows_of("execution_state", "execution_id") +
                ", x.hlc, x.site"));
    while (s.Step(&st)) {
      ExecutionRecord* found = record(s.Int(0));
      if (found == nullptr) continue;
      ExecutionRecord& r = *found;
      r.status = ParseExecStatus(s.Text(1)).value_or(ExecStatus::kFailed);
      r.exit_code = s.IsNull(2)
                        ? std::nullopt
                        : std::optional<int>(static_cast<int>(s.Int(2)));
      r.ended_ms =
          s.IsNull(3) ? std::nullopt : std::optional<std::int64_t>(s.Int(3));
      r.message = s.Text(4);
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  {  // a run still "running" whose process is gone shows as interrupted (few
     // rows: only this site's runs in progress)
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, Prepare(kSelectLiveRuns));
    while (s.Step(&st)) {
      auto it = index.find(s.Int(0));
      if (it == index.end()) continue;
      ExecutionRecord& r = out[it->second];
      const ProcessIdentity process = LiveRunProcess(s);
      if (r.status == ExecStatus::kRunning && process.Gone()) {
        r.status = ExecStatus::kInterrupted;
        r.message = InterruptedMessage(process);
      }
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }

  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s, prepare("SELECT x.execution_id, x.name, x.type, "
                             "x.value " +
                             rows_of("param", "execution_id") + ", x.name"));
    while (s.Step(&st)) {
      ExecutionRecord* r = record(s.Int(0));
      if (r == nullptr) continue;
      // In name order: each goes in at the end of the map, without a search.
      r->params.emplace_hint(r->params.end(), s.Text(1),
                             s.ValueAs(3, s.Text(2)));
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s, prepare("SELECT x.target_id, x.name, x.type, x.value " +
                             rows_of("property", "target_id",
                                     "x.target_type = 'execution' AND ") +
                             ", x.name, x.hlc, x.site"));
    while (s.Step(&st)) {
      ExecutionRecord* r = record(s.Int(0));
      if (r != nullptr) r->properties[s.Text(1)] = s.ValueAs(3, s.Text(2));
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  {  // the newest fact of each tag wins; a removal (NULL) takes it away
    CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                         prepare("SELECT x.target_id, x.name, x.value " +
                                 rows_of("tag", "target_id",
                                         "x.target_type = 'execution' AND ") +
                                 ", x.name, x.hlc, x.site"));
    while (s.Step(&st)) {
      ExecutionRecord* r = record(s.Int(0));
      if (r == nullptr) continue;
      auto& tags = r->tags;
      if (s.IsNull(2)) {
        tags.erase(s.Text(1));
      } else {
        tags[s.Text(1)] = s.Text(2);
      }
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  if (summaries) {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        prepare("SELECT x.execution_id, x.series_id, x.steps, x.last_step, "
                "x.last_value, x.min_value, x.max_value, x.sum_value, "
                "x.values_n " +
                rows_of("metric_summary", "execution_id")));
    CMF_ASSIGN_OR_RETURN(sql::Stmt series_names,
                         Prepare("SELECT name FROM series WHERE id = ?1"));
    TextsById series(series_names);
    // Rows come grouped by execution (in the order SQLite walks them, so the
    // ORDER BY costs no sort): each one's series are gathered, then sorted
    // once.
    std::vector<MetricSummaries::value_type> items;
    RowId current = 0;
    std::size_t last_count = 0;  // the next execution likely has as many
    auto flush = [&] {
      if (!items.empty()) {
        last_count = items.size();
        record(current)->metric_summaries.Assign(std::move(items));
      }
      items.clear();
      items.reserve(last_count);
    };
    while (s.Step(&st)) {
      if (s.Int(0) != current) flush();
      current = s.Int(0);
      if (record(current) == nullptr) continue;
      CMF_ASSIGN_OR_RETURN(const std::vector<std::string>* name,
                           series.Get(s.Int(1)));
      items.emplace_back(name->front(), MetricSummaryOfRow(s, 2));
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
    flush();
  }
  if (events) {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        prepare("SELECT x.execution_id, x.direction, x.path, a.hash, "
                "a.size, a.kind " +
                rows_of("event", "execution_id", "",
                        "JOIN artifact a ON a.id = x.artifact_id") +
                ", x.direction, x.position"));
    while (s.Step(&st)) {
      ExecutionRecord* found = record(s.Int(0));
      if (found == nullptr) continue;
      ExecutionRecord& r = *found;
      ArtifactRef a;
      a.path = s.Text(2);
      a.hash = s.Text(3);
      a.size = static_cast<std::uint64_t>(s.Int(4));
      a.kind = ParseArtifactKind(s.Text(5)).value_or(ArtifactKind::kFile);
      (s.Int(1) == 0 ? r.inputs : r.outputs).push_back(std::move(a));
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  return out;
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
            want, filter.events, filter.metric_summaries));
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
  for (char c : prefix) {
    if (c == '-') continue;
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
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT uuid FROM execution WHERE uuid >= ?1 AND uuid < ?2 "
          "ORDER BY uuid LIMIT 4"));
  s.Bind(1, dashed).Bind(
      2, dashed + "g");  // 'g' sorts after every hex digit and '-'
  std::vector<std::string> matches;
  Status st;
  while (s.Step(&st)) matches.push_back(s.Text(0));
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
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
