// Store::Impl::Load: one page of execution records, read in one snapshot with
// a fixed number of queries, whatever the number of executions (every
// listing of cmf/store.h reads through it).
#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "cmf/byte_strings.h"
#include "cmf/store.h"
#include "sqlite_util.h"
#include "store_impl.h"

namespace cmf {
namespace {

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

// The executions one Load reads, and how its later queries reach their rows.
struct Page {
  std::vector<ExecutionRecord> records;
  std::unordered_map<RowId, std::size_t> index;  // row id: place in records
  RowId lowest = 0, highest = 0;  // the least and greatest row id
  bool range = false;  // the queries walk lowest..highest, not temp.selected

  // The record of execution ID, or null for one in the range not selected.
  ExecutionRecord* Record(RowId id) {
    auto it = index.find(id);
    return it == index.end() ? nullptr : &records[it->second];
  }

  // "FROM TABLE x" and the condition that picks the selected executions' rows
  // by the column KEY (ON is the join's, or the range's WHERE); ORDER BY
  // puts each execution's rows together, in key order.
  std::string RowsOf(const std::string& table, const std::string& key,
                     const std::string& also = "",
                     const std::string& join = "") const {
    return range ? "FROM " + table + " x " + join + " WHERE " + also + "x." +
                       key + " BETWEEN ?1 AND ?2 ORDER BY x." + key
                 : "FROM temp.selected t CROSS JOIN " + table + " x ON " +
                       also + "x." + key + " = t.id " + join + " ORDER BY t.id";
  }

  // IMPL's statement TEXT (which reads rows of RowsOf), with the range bound
  // when the query walks one.
  template <typename Impl>
  Result<sql::Stmt> PrepareRows(Impl& impl, const std::string& text) const {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, impl.Prepare(text));
    if (range) s.Bind(1, lowest).Bind(2, highest);
    return s;
  }
};

// The steps of Store::Impl::Load, each one query. They are templates over
// IMPL, the Store::Impl: a type private to Store, which they cannot name.

// Reads the executions selected by WHERE (a condition on e, with its
// parameters bound by BIND), newest first, at most LIMIT (-1: all), into
// PAGE; their commands only with COMMAND.
template <typename Impl>
Status ReadExecutions(Impl& impl, const std::string& where,
                      const std::function<void(sql::Stmt&)>& bind,
                      std::int64_t limit, bool command, Page& page) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl.Prepare(std::string("SELECT e.id, e.uuid, e.stage_id, ") +
                   (command ? "e.command, " : "NULL, ") +
                   "e.code_commit, e.code_dirty, "
                   "e.code_repo, e.host, e.user, e.site, e.started_ms "
                   "FROM execution e WHERE " +
                   where +
                   " ORDER BY e.started_ms DESC, e.uuid DESC LIMIT ?9"));
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt stage_names,
      impl.Prepare("SELECT p.name, s.name FROM stage s JOIN pipeline p ON "
                   "p.id = s.pipeline_id WHERE s.id = ?1"));
  TextsById stages(stage_names);
  bind(s);
  s.Bind(9, limit);  // ?9: parameters ?1..?8 belong to WHERE
  Status st;
  while (s.Step(&st)) {
    // filled in place: no move
    ExecutionRecord& r = page.records.emplace_back();
    RowId id = s.Int(0);
    r.id = s.Text(1);
    CMF_ASSIGN_OR_RETURN(const std::vector<std::string>* names,
                         stages.Get(s.Int(2)));
    r.pipeline = (*names)[0];
    r.stage = (*names)[1];
    auto argv = command ? nlohmann::json::parse(s.Text(3), nullptr,
                                                /*allow_exceptions=*/false)
                        : nlohmann::json();
    if (argv.is_array()) {
      for (const auto& arg : argv) {
        if (auto bytes = DecodeByteString(arg)) r.command.push_back(*bytes);
      }
    }
    if (!s.IsNull(4)) r.code = CodeVersion{s.Text(4), s.Int(5) != 0, s.Text(6)};
    r.host = s.Text(7);
    r.user = s.Text(8);
    r.site = s.Text(9);
    r.started_ms = s.Int(10);
    page.lowest = page.index.empty() ? id : std::min(page.lowest, id);
    page.highest = page.index.empty() ? id : std::max(page.highest, id);
    page.index.emplace(id, page.records.size() - 1);
  }
  s.Reset();
  return st;
}

// Puts the ids of PAGE's executions in temp.selected, for queries that reach
// their rows through the keys.
template <typename Impl>
Status SelectIds(Impl& impl, const Page& page) {
  CMF_RETURN_IF_ERROR(
      impl.Exec("CREATE TEMP TABLE IF NOT EXISTS selected(id INTEGER PRIMARY "
                "KEY)"));
  CMF_RETURN_IF_ERROR(impl.Exec("DELETE FROM temp.selected"));
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt keep, impl.Prepare("INSERT INTO temp.selected(id) VALUES(?1)"));
  for (const auto& [id, at] : page.index) {
    CMF_RETURN_IF_ERROR(keep.Bind(1, id).Run());
  }
  return Status::Ok();
}

// Reads the state of PAGE's executions. The newest state fact wins: rows come
// oldest first, so the last one stays.
template <typename Impl>
Status ReadStates(Impl& impl, Page& page) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      page.PrepareRows(impl,
                       "SELECT x.execution_id, x.status, x.exit_code, "
                       "x.ended_ms, x.message " +
                           page.RowsOf("execution_state", "execution_id") +
                           ", x.hlc, x.site"));
  Status st;
  while (s.Step(&st)) {
    ExecutionRecord* found = page.Record(s.Int(0));
    if (found == nullptr) continue;
    ExecutionRecord& r = *found;
    r.status = ParseExecStatus(s.Text(1)).value_or(ExecStatus::kFailed);
    r.exit_code = s.IsNull(2) ? std::nullopt
                              : std::optional<int>(static_cast<int>(s.Int(2)));
    r.ended_ms =
        s.IsNull(3) ? std::nullopt : std::optional<std::int64_t>(s.Int(3));
    r.message = s.Text(4);
  }
  s.Reset();
  return st;
}

// A run still "running" whose process is gone shows as interrupted (few
// rows: only this site's runs in progress).
template <typename Impl>
Status MarkInterrupted(Impl& impl, Page& page) {
  CMF_ASSIGN_OR_RETURN(sql::Stmt s, impl.Prepare(kSelectLiveRuns));
  Status st;
  while (s.Step(&st)) {
    auto it = page.index.find(s.Int(0));
    if (it == page.index.end()) continue;
    ExecutionRecord& r = page.records[it->second];
    const ProcessIdentity process = LiveRunProcess(s);
    if (r.status == ExecStatus::kRunning && process.Gone()) {
      r.status = ExecStatus::kInterrupted;
      r.message = InterruptedMessage(process);
    }
  }
  s.Reset();
  return st;
}

// Reads the parameters of PAGE's executions.
template <typename Impl>
Status ReadParams(Impl& impl, Page& page) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      page.PrepareRows(impl, "SELECT x.execution_id, x.name, x.type, x.value " +
                                 page.RowsOf("param", "execution_id") +
                                 ", x.name"));
  Status st;
  while (s.Step(&st)) {
    ExecutionRecord* r = page.Record(s.Int(0));
    if (r == nullptr) continue;
    // In name order: each goes in at the end of the map, without a search.
    r->params.emplace_hint(r->params.end(), s.Text(1), s.ValueAs(3, s.Text(2)));
  }
  s.Reset();
  return st;
}

// Reads the properties of PAGE's executions: of each, the newest fact comes
// last and wins.
template <typename Impl>
Status ReadProperties(Impl& impl, Page& page) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      page.PrepareRows(impl,
                       "SELECT x.target_id, x.name, x.type, x.value " +
                           page.RowsOf("property", "target_id",
                                       "x.target_type = 'execution' AND ") +
                           ", x.name, x.hlc, x.site"));
  Status st;
  while (s.Step(&st)) {
    ExecutionRecord* r = page.Record(s.Int(0));
    if (r != nullptr) r->properties[s.Text(1)] = s.ValueAs(3, s.Text(2));
  }
  s.Reset();
  return st;
}

// Reads the tags of PAGE's executions. The newest fact of each tag wins; a
// removal (NULL) takes it away.
template <typename Impl>
Status ReadTags(Impl& impl, Page& page) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      page.PrepareRows(impl,
                       "SELECT x.target_id, x.name, x.value " +
                           page.RowsOf("tag", "target_id",
                                       "x.target_type = 'execution' AND ") +
                           ", x.name, x.hlc, x.site"));
  Status st;
  while (s.Step(&st)) {
    ExecutionRecord* r = page.Record(s.Int(0));
    if (r == nullptr) continue;
    auto& tags = r->tags;
    if (s.IsNull(2)) {
      tags.erase(s.Text(1));
    } else {
      tags[s.Text(1)] = s.Text(2);
    }
  }
  s.Reset();
  return st;
}

// Reads the summary of each metric series of PAGE's executions.
template <typename Impl>
Status ReadSummaries(Impl& impl, Page& page) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      page.PrepareRows(
          impl,
          "SELECT x.execution_id, x.series_id, x.steps, x.last_step, "
          "x.last_value, x.min_value, x.max_value, x.sum_value, "
          "x.values_n " +
              page.RowsOf("metric_summary", "execution_id")));
  CMF_ASSIGN_OR_RETURN(sql::Stmt series_names,
                       impl.Prepare("SELECT name FROM series WHERE id = ?1"));
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
      page.Record(current)->metric_summaries.Assign(std::move(items));
    }
    items.clear();
    items.reserve(last_count);
  };
  Status st;
  while (s.Step(&st)) {
    if (s.Int(0) != current) flush();
    current = s.Int(0);
    if (page.Record(current) == nullptr) continue;
    CMF_ASSIGN_OR_RETURN(const std::vector<std::string>* name,
                         series.Get(s.Int(1)));
    items.emplace_back(name->front(), MetricSummaryOfRow(s, 2));
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  flush();
  return Status::Ok();
}

// Reads the inputs and outputs of PAGE's executions.
template <typename Impl>
Status ReadEvents(Impl& impl, Page& page) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      page.PrepareRows(
          impl,
          "SELECT x.execution_id, x.direction, x.path, a.hash, "
          "a.size, a.kind " +
              page.RowsOf("event", "execution_id", "",
                          "JOIN artifact a ON a.id = x.artifact_id") +
              ", x.direction, x.position"));
  Status st;
  while (s.Step(&st)) {
    ExecutionRecord* found = page.Record(s.Int(0));
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
  return st;
}

}  // namespace

// Loads the executions selected by WHERE (a condition on e, with its
// parameters bound by BIND), newest first, at most LIMIT (-1: all). Everything
// is read in one snapshot with a fixed number of queries, whatever the number
// of executions.
Result<std::vector<ExecutionRecord>> Store::Impl::Load(
    const std::string& where, const std::function<void(sql::Stmt&)>& bind,
    std::int64_t limit, LoadParts parts) {
  CMF_ASSIGN_OR_RETURN(auto snapshot, BeginRead());

  Page page;
  // Records are large: growing the vector would move each several times.
  if (limit > 0) {
    page.records.reserve(
        static_cast<std::size_t>(std::min<std::int64_t>(limit, 4096)));
  }
  page.index.reserve(page.records.capacity());
  CMF_RETURN_IF_ERROR(
      ReadExecutions(*this, where, bind, limit, parts.command, page));
  if (page.records.empty()) return std::move(page.records);

  // Each query below reads the rows of the selected executions. When they
  // are most of the executions between the lowest and highest id (a listing
  // of one stage, or of everything), a walk over that range of the table's
  // key reads them in order, and the few others are skipped. Otherwise the
  // ids go into a temp table that each query walks (CROSS JOIN keeps SQLite
  // from scanning the big table instead), reaching their rows through the
  // keys.
  page.range =
      page.highest - page.lowest < 2 * static_cast<RowId>(page.records.size());
  if (!page.range) {
    CMF_RETURN_IF_ERROR(SelectIds(*this, page));
  }
  CMF_RETURN_IF_ERROR(ReadStates(*this, page));
  CMF_RETURN_IF_ERROR(MarkInterrupted(*this, page));
  CMF_RETURN_IF_ERROR(ReadParams(*this, page));
  CMF_RETURN_IF_ERROR(ReadProperties(*this, page));
  CMF_RETURN_IF_ERROR(ReadTags(*this, page));
  if (parts.summaries) {
    CMF_RETURN_IF_ERROR(ReadSummaries(*this, page));
  }
  if (parts.events) {
    CMF_RETURN_IF_ERROR(ReadEvents(*this, page));
  }
  return std::move(page.records);
}

}  // namespace cmf
