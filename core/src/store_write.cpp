// The store's writes of this site's records (cmf/store.h): executions, their
// states, events, lineage, metrics and properties; and batches of writes.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cmf/byte_strings.h"
#include "cmf/store.h"
#include "sqlite_util.h"
#include "store_impl.h"

namespace fs = std::filesystem;

namespace cmf {

Result<RowId> Store::BeginExecution(const ExecutionRecord& r,
                                    const ProcessIdentity* process) {
  Impl& m = *impl_;
  for (const auto& [name, value] : r.params) {
    // A name is a JSON key in segments, where only UTF-8 can stand.
    if (!IsUtf8(name)) {
      return Status::InvalidArgument("the parameter name " +
                                     EscapeForDisplay(name) +
                                     " is not UTF-8 text");
    }
  }
  RowId execution = 0;
  Status st = m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        RowId pipeline,
        m.Ensure("INSERT OR IGNORE INTO pipeline(name) VALUES(?1)",
                 "SELECT id FROM pipeline WHERE name = ?1",
                 [&](sql::Stmt& s) { s.Bind(1, r.pipeline); }));
    CMF_ASSIGN_OR_RETURN(
        RowId stage,
        m.Ensure(
            "INSERT OR IGNORE INTO stage(pipeline_id, name) VALUES(?1, ?2)",
            "SELECT id FROM stage WHERE pipeline_id = ?1 AND name = ?2",
            [&](sql::Stmt& s) { s.Bind(1, pipeline).Bind(2, r.stage); }));
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt ins,
        m.Prepare("INSERT INTO execution(uuid, stage_id, command, code_commit, "
                  "code_dirty, "
                  "code_repo, host, user, site, started_ms) "
                  "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
    nlohmann::json command(r.command);
    EncodeByteStrings(command);  // arguments are bytes, as paths are
    ins.Bind(1, r.id).Bind(2, stage).Bind(3, command.dump());
    if (r.code) {
      ins.Bind(4, r.code->commit)
          .Bind(5, static_cast<std::int64_t>(r.code->dirty))
          .Bind(6, r.code->repo);
    }
    ins.Bind(7, r.host).Bind(8, r.user).Bind(9, r.site).Bind(10, r.started_ms);
    Status run = ins.Run();
    if (run.code() == Code::kAlreadyExists) {
      return Status::AlreadyExists("execution '" + r.id + "' already exists");
    }
    CMF_RETURN_IF_ERROR(run);
    execution = sqlite3_last_insert_rowid(m.db);
    CMF_ASSIGN_OR_RETURN(sql::Stmt param,
                         m.Prepare("INSERT INTO param(execution_id, name, "
                                   "type, value) VALUES(?1, ?2, ?3, ?4)"));
    for (const auto& [name, value] : r.params) {
      param.Bind(1, execution)
          .Bind(2, name)
          .Bind(3, TypeName(value))
          .BindValue(4, value);
      CMF_RETURN_IF_ERROR(param.Run());
    }
    CMF_ASSIGN_OR_RETURN(std::int64_t hlc, m.NextHlc());
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt state,
        m.Prepare(
            "INSERT INTO execution_state(execution_id, hlc, site, status) "
            "VALUES(?1, ?2, ?3, 'running')"));
    CMF_RETURN_IF_ERROR(
        state.Bind(1, execution).Bind(2, hlc).Bind(3, m.options.site).Run());
    if (!process) return Status::Ok();
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt live,
        m.Prepare("INSERT INTO live_run(execution_id, pid, start_ticks, "
                  "boot_id, host) VALUES(?1, ?2, ?3, ?4, ?5)"));
    return live.Bind(1, execution)
        .Bind(2, process->pid)
        .Bind(3, process->start_ticks)
        .Bind(4, process->boot_id)
        .Bind(5, process->host)
        .Run();
  });
  if (!st.ok()) return st;
  return execution;
}

Status Store::SetExecutionState(RowId execution, ExecStatus status,
                                std::optional<int> exit_code,
                                std::optional<std::int64_t> ended_ms,
                                const std::string& message) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(std::int64_t hlc, m.NextHlc());
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare("INSERT INTO execution_state(execution_id, hlc, site, "
                  "status, exit_code, "
                  "ended_ms, message) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    s.Bind(1, execution)
        .Bind(2, hlc)
        .Bind(3, m.options.site)
        .Bind(4, ToString(status));
    s.Bind(5, exit_code).Bind(6, ended_ms).Bind(7, message);
    CMF_RETURN_IF_ERROR(s.Run());
    if (status == ExecStatus::kRunning) return Status::Ok();
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt gone,
        m.Prepare("DELETE FROM live_run WHERE execution_id = ?1"));
    return gone.Bind(1, execution).Run();
  });
}

Status Store::AddEvent(RowId execution, Direction direction, int position,
                       const ArtifactRef& a) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_RETURN_IF_ERROR(m.EnsureArtifact(a));
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt ev,
        m.Prepare("INSERT INTO event(execution_id, direction, position, "
                  "artifact_id, path) "
                  "SELECT ?1, ?2, ?3, id, ?4 FROM artifact WHERE hash = ?5"));
    ev.Bind(1, execution)
        .Bind(2, direction == Direction::kInput ? 0 : 1)
        .Bind(3, position);
    return ev.Bind(4, a.path).Bind(5, a.hash).Run();
  });
}

Status Store::AddDerivedFrom(const std::string& child_hash,
                             const std::string& parent_hash) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare("INSERT OR IGNORE INTO derived_from(artifact_id, parent_id) "
                  "SELECT c.id, p.id FROM artifact c, artifact p "
                  "WHERE c.hash = ?1 AND p.hash = ?2"));
    CMF_RETURN_IF_ERROR(s.Bind(1, child_hash).Bind(2, parent_hash).Run());
    if (sqlite3_changes(m.db) == 0) {
      CMF_ASSIGN_OR_RETURN(sql::Stmt q,
                           m.Prepare("SELECT count(*) FROM artifact "
                                     "WHERE hash IN (?1, ?2)"));
      Status st;
      std::int64_t found =
          q.Bind(1, child_hash).Bind(2, parent_hash).Step(&st) ? q.Int(0) : 0;
      q.Reset();
      CMF_RETURN_IF_ERROR(st);
      if (found < (child_hash == parent_hash ? 1 : 2)) {
        return Status::NotFound("no artifact '" + child_hash + "' or '" +
                                parent_hash + "'");
      }
    }
    return Status::Ok();
  });
}

Status Store::LogMetrics(RowId execution, const std::string& series,
                         std::span<const MetricPoint> points) {
  Impl& m = *impl_;
  // A large batch in a transaction of its own goes without SQLite's foreign
  // key checks (two lookups a step, a third of the batch's time): the two rows
  // each step references are checked once, in the transaction, instead.
  // The pragma cannot change inside a transaction, so a batch inside another
  // write keeps the checks.
  const bool unchecked = points.size() >= 64 && !m.in_batch &&
                         sqlite3_get_autocommit(m.db) && !m.options.read_only;
  if (unchecked) CMF_RETURN_IF_ERROR(m.Exec("PRAGMA foreign_keys=OFF"));
  Status done = m.InWrite([&]() -> Status {
    if (unchecked) {
      CMF_ASSIGN_OR_RETURN(sql::Stmt exists,
                           m.Prepare("SELECT 1 FROM execution WHERE id = ?1"));
      Status st;
      const bool found = exists.Bind(1, execution).Step(&st);
      exists.Reset();
      CMF_RETURN_IF_ERROR(st);
      if (!found) {
        return Status::NotFound(
            fmt::format("no execution with row id {}", execution));
      }
    }
    // EnsureSeries finds the series or makes it, in this transaction.
    CMF_ASSIGN_OR_RETURN(RowId series_id, m.EnsureSeries(series));
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s, m.Prepare("INSERT OR REPLACE INTO metric(execution_id, "
                               "series_id, step, value) "
                               "VALUES(?1, ?2, ?3, ?4)"));
    for (const MetricPoint& p : points) {
      CMF_RETURN_IF_ERROR(s.Bind(1, execution)
                              .Bind(2, series_id)
                              .Bind(3, p.step)
                              .Bind(4, p.value)
                              .Run());
    }
    return m.UpdateMetricSummary(execution, series_id, points,
                                 /*pending=*/true);
  });
  if (unchecked) {
    Status on = m.Exec("PRAGMA foreign_keys=ON");
    if (done.ok()) done = on;
  }
  return done;
}

Status Store::SetProperty(RecordType type, const std::string& key,
                          const std::string& name, const Value& value) {
  Impl& m = *impl_;
  std::string lookup;
  std::string subject = key;
  std::string
      second;  // the stage's name when TYPE is kStage ("pipeline/stage")
  switch (type) {
    case RecordType::kPipeline:
      lookup = "SELECT id FROM pipeline WHERE name = ?1";
      break;
    case RecordType::kStage: {
      auto slash = key.rfind('/');
      if (slash == std::string::npos) {
        return Status::InvalidArgument(
            "a stage is named 'PIPELINE/STAGE', not '" + key + "'");
      }
      subject = key.substr(0, slash);
      second = key.substr(slash + 1);
      lookup =
          "SELECT s.id FROM stage s JOIN pipeline p ON p.id = s.pipeline_id "
          "WHERE p.name = ?1 AND s.name = ?2";
      break;
    }
    case RecordType::kExecution:
      lookup = "SELECT id FROM execution WHERE uuid = ?1";
      break;
    case RecordType::kArtifact:
      lookup = "SELECT id FROM artifact WHERE hash = ?1";
      break;
  }
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(sql::Stmt q, m.Prepare(lookup));
    q.Bind(1, subject);
    if (type == RecordType::kStage) q.Bind(2, second);
    Status st;
    bool found = q.Step(&st);
    RowId target = found ? q.Int(0) : 0;
    q.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (!found) {
      return Status::NotFound(
          fmt::format("no {} '{}'", RecordTypeName(type), key));
    }
    CMF_ASSIGN_OR_RETURN(std::int64_t hlc, m.NextHlc());
    CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                         m.Prepare("INSERT INTO property(target_type, "
                                   "target_id, name, hlc, site, type, value) "
                                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
    s.Bind(1, RecordTypeName(type)).Bind(2, target).Bind(3, name).Bind(4, hlc);
    return s.Bind(5, m.options.site)
        .Bind(6, TypeName(value))
        .BindValue(7, value)
        .Run();
  });
}

Status Store::BeginBatch() {
  Impl& m = *impl_;
  if (m.options.read_only) {
    return Status::InvalidArgument(m.Where() + " was opened for reading only");
  }
  if (m.in_batch) return Status::InvalidArgument("a batch is open already");
  int rc = sqlite3_exec(m.db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sql::Error(m.db, rc, m.Where());
  m.in_batch = true;
  return Status::Ok();
}

Status Store::EndBatch(bool commit) {
  Impl& m = *impl_;
  if (!m.in_batch) return Status::Ok();
  m.in_batch = false;
  if (commit) {
    int rc = sqlite3_exec(m.db, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return Status::Ok();
    Status st = sql::Error(m.db, rc, m.Where());
    sqlite3_exec(m.db, "ROLLBACK", nullptr, nullptr, nullptr);
    m.series_ids.clear();
    return st;
  }
  sqlite3_exec(m.db, "ROLLBACK", nullptr, nullptr, nullptr);
  m.series_ids.clear();
  return Status::Ok();
}

}  // namespace cmf
