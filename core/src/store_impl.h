// Internal: the state behind cmf::Store, shared by the files that implement
// it (store*.cpp: records and reads; segment_export.cpp, segment_ingest.cpp
// and fact_writer.cpp: commit, export and ingest).
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cmf/process.h"
#include "cmf/store.h"
#include "sqlite_util.h"

namespace cmf {

// The summary in columns FIRST.. of Q: steps, last_step, last_value,
// min_value, max_value, sum_value, values_n (store_tags.cpp).
MetricSummary MetricSummaryOfRow(sql::Stmt& q, int first);

// The name a record type has in the property table ("pipeline", ...).
std::string_view RecordTypeName(RecordType type);

// This site's runs in progress (store_read.cpp): the query, the process of one
// of its rows, and what a record says of a run whose process is gone.
inline constexpr char kSelectLiveRuns[] =
    "SELECT execution_id, pid, start_ticks, boot_id, host FROM live_run";
ProcessIdentity LiveRunProcess(sql::Stmt& s);
std::string InterruptedMessage(const ProcessIdentity& p);

// What Store::Impl::Load reads beyond an execution's row, state, parameters,
// properties and tags.
struct LoadParts {
  bool command = true;     // ExecutionRecord::command
  bool events = true;      // inputs and outputs
  bool summaries = false;  // metric_summaries
};

struct Store::Impl {
  sqlite3* db = nullptr;
  std::filesystem::path path;
  StoreOptions options;
  std::unordered_map<std::string, sqlite3_stmt*> statements;
  std::unordered_map<std::string, std::int64_t> series_ids;
  bool in_batch = false;  // between BeginBatch and EndBatch

  ~Impl() {
    for (auto& [sql, stmt] : statements) sqlite3_finalize(stmt);
    if (db) sqlite3_close_v2(db);
  }

  std::string Where() const { return "metadata store '" + path.string() + "'"; }

  Status Exec(const char* sql) {
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return sql::Error(db, rc, Where());
    return Status::Ok();
  }

  // A cached prepared statement, reset and ready to bind. Errors are
  // programming errors in the SQL or a store whose schema does not match; both
  // are reported as the prepare error.
  Result<sql::Stmt> Prepare(const std::string& text) {
    auto it = statements.find(text);
    if (it != statements.end()) {
      sqlite3_reset(it->second);
      sqlite3_clear_bindings(it->second);
      return sql::Stmt(db, it->second);
    }
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db, text.c_str(), static_cast<int>(text.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return sql::Error(db, rc, Where());
    statements.emplace(text, stmt);
    return sql::Stmt(db, stmt);
  }

  // The next hybrid logical clock value: after every value this store has
  // handed out, and at least the wall clock (milliseconds in the high bits, a
  // counter in the low 16). Call inside a write transaction.
  Result<std::int64_t> NextHlc() {
    CMF_ASSIGN_OR_RETURN(sql::Stmt get,
                         Prepare("SELECT value FROM meta WHERE key = 'hlc'"));
    Status st;
    std::int64_t last = get.Step(&st) ? get.Int(0) : 0;
    get.Reset();
    CMF_RETURN_IF_ERROR(st);
    // (A store that took in a value at the end of time before such values
    // were refused stays there rather than wrap around.)
    std::int64_t next = std::max(
        options.clock->NowMs() << 16,
        last < std::numeric_limits<std::int64_t>::max() ? last + 1 : last);
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt put,
        Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('hlc', ?1)"));
    CMF_RETURN_IF_ERROR(put.Bind(1, next).Run());
    return next;
  }

  // Looks up the row id of a named row, inserting it first when new.
  Result<RowId> Ensure(const std::string& insert, const std::string& select,
                       const std::function<void(sql::Stmt&)>& bind) {
    CMF_ASSIGN_OR_RETURN(sql::Stmt ins, Prepare(insert));
    bind(ins);
    CMF_RETURN_IF_ERROR(ins.Run());
    CMF_ASSIGN_OR_RETURN(sql::Stmt sel, Prepare(select));
    bind(sel);
    Status st;
    if (!sel.Step(&st)) {
      return st.ok()
                 ? Status::Corruption(Where() + ": a row vanished after insert")
                 : st;
    }
    RowId id = sel.Int(0);
    sel.Reset();
    return id;
  }

  // Records the artifact A (by hash, kind and size). When it is known under a
  // less specific kind (a file that turns out to be a model), the more specific
  // kind wins, here and at every site that ingests both facts, so that the
  // order facts arrive in does not matter. SEG: the segment the fact comes
  // from (null: made here, to be committed).
  Status EnsureArtifact(const ArtifactRef& a,
                        std::optional<std::int64_t> seg = std::nullopt,
                        std::string_view algorithm = "sha256") {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt ins,
        Prepare("INSERT INTO artifact(hash, kind, size, seg, algorithm) "
                "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(hash) DO UPDATE SET "
                "kind = excluded.kind, seg = excluded.seg WHERE " +
                KindRank("excluded.kind") + " > " + KindRank("artifact.kind")));
    return ins.Bind(1, a.hash)
        .Bind(2, ToString(a.kind))
        .Bind(3, static_cast<std::int64_t>(a.size))
        .Bind(4, seg)
        .Bind(5, algorithm)
        .Run();
  }

  // How specific an artifact kind is, as an SQL expression over COLUMN.
  static std::string KindRank(const std::string& column) {
    return "(CASE " + column +
           " WHEN 'file' THEN 0 WHEN 'directory' THEN 1 WHEN 'dataset' THEN 2 "
           "WHEN 'metrics' THEN 3 WHEN 'model' THEN 4 WHEN 'dataslice' THEN 5 "
           "ELSE -1 END)";
  }

  Result<RowId> EnsureSeries(const std::string& name) {
    auto it = series_ids.find(name);
    if (it != series_ids.end()) return it->second;
    CMF_ASSIGN_OR_RETURN(RowId id,
                         Ensure("INSERT OR IGNORE INTO series(name) VALUES(?1)",
                                "SELECT id FROM series WHERE name = ?1",
                                [&](sql::Stmt& s) { s.Bind(1, name); }));
    series_ids.emplace(name, id);
    return id;
  }

  // Runs BODY in one write transaction (BEGIN IMMEDIATE, so that waiting for
  // another writer happens up front, under the busy timeout); commits when it
  // returns ok, rolls back otherwise.
  template <typename F>
  Status InWrite(F&& body) {
    if (options.read_only) {
      return Status::InvalidArgument(Where() + " was opened for reading only");
    }
    return WriteAnyway(body);
  }

  // InWrite, also for a store opened for reading (a schema upgrade).
  template <typename F>
  Status WriteAnyway(F&& body) {
    if (in_batch || !sqlite3_get_autocommit(db)) {
      // Inside Store::BeginBatch, or inside another write (a seal callback):
      // a savepoint, so that a failed write undoes only itself and the outer
      // transaction goes on or is rolled back by its owner.
      int rc = sqlite3_exec(db, "SAVEPOINT write", nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) return sql::Error(db, rc, Where());
      Status st = body();
      if (!st.ok()) {
        sqlite3_exec(db, "ROLLBACK TO write", nullptr, nullptr, nullptr);
        series_ids.clear();
      }
      sqlite3_exec(db, "RELEASE write", nullptr, nullptr, nullptr);
      return st;
    }
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return sql::Error(db, rc, Where());
    Status st = body();
    if (st.ok()) {
      rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
      if (rc == SQLITE_OK) return st;
      st = sql::Error(db, rc, Where());
    }
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    series_ids.clear();  // ids made in the rolled-back transaction are gone
    return st;
  }

  // A read transaction for the life of the object: every query made while
  // it lives sees one snapshot of the store.
  class ReadSnapshot {
   public:
    explicit ReadSnapshot(sqlite3* db) : db_(db) {}
    ReadSnapshot(const ReadSnapshot&) = delete;
    ReadSnapshot& operator=(const ReadSnapshot&) = delete;
    ~ReadSnapshot() { sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr); }

   private:
    sqlite3* db_;
  };
  Result<std::unique_ptr<ReadSnapshot>> BeginRead() {
    int rc = sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return sql::Error(db, rc, Where());
    return std::make_unique<ReadSnapshot>(db);
  }

  Result<std::vector<ExecutionRecord>> Load(
      const std::string& where, const std::function<void(sql::Stmt&)>& bind,
      std::int64_t limit, LoadParts parts = {});

  // Brings the summary of series SERIES of EXECUTION up to date after POINTS
  // were written to it (store_tags.cpp): added to it when every point lies
  // after its last step, else computed again from the steps. PENDING: the
  // points are made here and not yet in a segment (seg NULL), and the
  // summary's pending flag is set, which is how a commit finds them. Call
  // inside the write transaction that wrote them.
  Status UpdateMetricSummary(RowId execution, RowId series,
                             std::span<const MetricPoint> points, bool pending);
};

}  // namespace cmf
