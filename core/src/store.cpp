#include "cmf/store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>
#include <unordered_map>

#include "cmf/byte_strings.h"
#include "sqlite_util.h"
#include "store_impl.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

constexpr char kFormatName[] = "cmf-metadata";

// Schema version 1. doc/metadata-store.md describes every table; change both
// together, and add a migration step in Store::Open when kStoreSchemaVersion
// goes up.
constexpr char kSchemaV1[] = R"sql(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value
) WITHOUT ROWID;

CREATE TABLE pipeline (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

CREATE TABLE stage (
  id          INTEGER PRIMARY KEY,
  pipeline_id INTEGER NOT NULL REFERENCES pipeline(id),
  name        TEXT NOT NULL,
  UNIQUE (pipeline_id, name)
);

CREATE TABLE execution (
  id          INTEGER PRIMARY KEY,
  uuid        TEXT NOT NULL UNIQUE,
  stage_id    INTEGER NOT NULL REFERENCES stage(id),
  command     TEXT NOT NULL,
  code_commit TEXT,
  code_dirty  INTEGER,
  code_repo   TEXT,
  host        TEXT NOT NULL,
  user        TEXT NOT NULL,
  site        TEXT NOT NULL,
  started_ms  INTEGER NOT NULL
);
CREATE INDEX execution_by_start ON execution(started_ms, uuid);
CREATE INDEX execution_by_stage ON execution(stage_id, started_ms, uuid);

CREATE TABLE execution_state (
  execution_id INTEGER NOT NULL REFERENCES execution(id),
  hlc          INTEGER NOT NULL,
  site         TEXT NOT NULL,
  status       TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
  exit_code    INTEGER,
  ended_ms     INTEGER,
  message      TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (execution_id, hlc, site)
) WITHOUT ROWID;

CREATE TABLE param (
  execution_id INTEGER NOT NULL REFERENCES execution(id),
  name         TEXT NOT NULL,
  type         TEXT NOT NULL CHECK (type IN ('int', 'real', 'bool', 'string')),
  value,
  PRIMARY KEY (execution_id, name)
) WITHOUT ROWID;

CREATE TABLE artifact (
  id        INTEGER PRIMARY KEY,
  hash      TEXT NOT NULL UNIQUE,
  algorithm TEXT NOT NULL DEFAULT 'sha256',
  kind      TEXT NOT NULL CHECK (kind IN ('dataset', 'dataslice', 'model', 'metrics', 'file',
                                          'directory')),
  size      INTEGER
);

CREATE TABLE event (
  execution_id INTEGER NOT NULL REFERENCES execution(id),
  direction    INTEGER NOT NULL CHECK (direction IN (0, 1)),
  position     INTEGER NOT NULL,
  artifact_id  INTEGER NOT NULL REFERENCES artifact(id),
  path         TEXT NOT NULL,
  PRIMARY KEY (execution_id, direction, position)
) WITHOUT ROWID;
CREATE INDEX event_by_artifact ON event(artifact_id, direction, execution_id);

CREATE TABLE derived_from (
  artifact_id INTEGER NOT NULL REFERENCES artifact(id),
  parent_id   INTEGER NOT NULL REFERENCES artifact(id),
  PRIMARY KEY (artifact_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX derived_from_by_parent ON derived_from(parent_id, artifact_id);

CREATE TABLE series (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);

CREATE TABLE metric (
  execution_id INTEGER NOT NULL REFERENCES execution(id),
  series_id    INTEGER NOT NULL REFERENCES series(id),
  step         INTEGER NOT NULL,
  value        REAL,
  PRIMARY KEY (execution_id, series_id, step)
) WITHOUT ROWID;

CREATE TABLE property (
  target_type TEXT NOT NULL CHECK (target_type IN ('pipeline', 'stage', 'execution', 'artifact')),
  target_id   INTEGER NOT NULL,
  name        TEXT NOT NULL,
  hlc         INTEGER NOT NULL,
  site        TEXT NOT NULL,
  type        TEXT NOT NULL CHECK (type IN ('int', 'real', 'bool', 'string')),
  value,
  PRIMARY KEY (target_type, target_id, name, hlc, site)
) WITHOUT ROWID;

CREATE TABLE tracked (
  path        TEXT PRIMARY KEY,
  artifact_id INTEGER NOT NULL REFERENCES artifact(id),
  added_ms    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE stat_cache (
  path     TEXT PRIMARY KEY,
  dev      INTEGER NOT NULL,
  ino      INTEGER NOT NULL,
  size     INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  hash     TEXT NOT NULL
) WITHOUT ROWID;
)sql";

}  // namespace

// Schema version 2: federation (doc/federation.md). Every shared fact gets a
// seg column: NULL while it is made here and not yet committed, else the
// segment that holds it (sealed here or ingested from another site). The
// partial indexes make finding the uncommitted facts cost what there is of
// them, not the size of the store.
constexpr char kMigrateV2[] = R"sql(
ALTER TABLE execution ADD COLUMN seg INTEGER;
ALTER TABLE execution_state ADD COLUMN seg INTEGER;
ALTER TABLE artifact ADD COLUMN seg INTEGER;
ALTER TABLE event ADD COLUMN seg INTEGER;
ALTER TABLE derived_from ADD COLUMN seg INTEGER;
ALTER TABLE metric ADD COLUMN seg INTEGER;
ALTER TABLE property ADD COLUMN seg INTEGER;
CREATE INDEX execution_pending ON execution(id) WHERE seg IS NULL;
CREATE INDEX execution_state_pending ON execution_state(execution_id) WHERE seg IS NULL;
CREATE INDEX artifact_pending ON artifact(id) WHERE seg IS NULL;
CREATE INDEX event_pending ON event(execution_id) WHERE seg IS NULL;
CREATE INDEX derived_from_pending ON derived_from(artifact_id) WHERE seg IS NULL;
CREATE INDEX metric_pending ON metric(execution_id, series_id) WHERE seg IS NULL;
CREATE INDEX property_pending ON property(target_type) WHERE seg IS NULL;

CREATE INDEX artifact_by_kind ON artifact(kind, hash);
CREATE INDEX event_by_path ON event(path);

CREATE TABLE location (
  artifact_id INTEGER NOT NULL REFERENCES artifact(id),
  site        TEXT NOT NULL,
  seg         INTEGER,
  PRIMARY KEY (artifact_id, site)
) WITHOUT ROWID;
CREATE INDEX location_pending ON location(artifact_id) WHERE seg IS NULL;

CREATE TABLE wanted (
  artifact_id INTEGER PRIMARY KEY REFERENCES artifact(id)
);

CREATE TABLE segment (
  id          INTEGER PRIMARY KEY,
  hash        TEXT NOT NULL UNIQUE,
  site        TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  local       INTEGER NOT NULL,
  facts       INTEGER NOT NULL,
  recorded_ms INTEGER NOT NULL
);
)sql";

// Schema version 3, for lineage walks: the paths of an artifact's events come
// from event_by_artifact alone (it did not hold the path, so each event cost a
// second lookup), and tracked paths by artifact (without an index every walk
// built one over the workspace's list).
constexpr char kMigrateV3[] = R"sql(
DROP INDEX event_by_artifact;
CREATE INDEX event_by_artifact ON event(artifact_id, direction, execution_id, path);
CREATE INDEX tracked_by_artifact ON tracked(artifact_id);
)sql";

// Version 4: the stat cache is one blob of entries per scanned path instead
// of a row per file (an unchanged add of 2,000 files spent 1.5 ms reading
// their rows back, and more building a map of them).
constexpr char kMigrateV4[] = R"sql(
DROP TABLE IF EXISTS stat_cache;
CREATE TABLE stat_index (
  root    TEXT PRIMARY KEY,
  entries BLOB NOT NULL
);
)sql";

// Version 5: the process running each execution of this site, while it runs
// (never committed), so that one killed without a word shows as interrupted.
constexpr char kMigrateV5[] = R"sql(
CREATE TABLE live_run (
  execution_id INTEGER PRIMARY KEY REFERENCES execution(id),
  pid          INTEGER NOT NULL,
  start_ticks  INTEGER NOT NULL,
  boot_id      TEXT NOT NULL,
  host         TEXT NOT NULL
);
)sql";

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

// Version 6: segments kept out of the store (doc/federation.md, "Quarantine"):
// a bad segment from another site is recorded here instead of stopping every
// pull. PATH is where the log holds it; RETRY says when it is tried again:
// 'format' (its header needs a newer format: by a cmf that reads
// NEEDS_FORMAT), 'depends' (it names a record only a quarantined segment
// holds: when a retried segment goes in), NULL never. TEXT is kept for the
// retries, and to tell which quarantined segment another depends on.
constexpr char kMigrateV6[] = R"sql(
CREATE TABLE quarantine (
  path         TEXT PRIMARY KEY,
  site         TEXT NOT NULL,
  hash         TEXT NOT NULL,
  reason       TEXT NOT NULL,
  retry        TEXT CHECK (retry IN ('format', 'depends')),
  needs_format INTEGER,
  text         BLOB,
  recorded_ms  INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

// Version 7: tags (cmf tag), facts like properties whose value NULL is a
// removal; and the summary of each step-metric series (cmf compare reads one
// row per series instead of every step), kept by every write of a metric and
// filled here from the steps already logged.
constexpr char kMigrateV7[] = R"sql(
CREATE TABLE tag (
  target_type TEXT NOT NULL CHECK (target_type IN ('execution', 'artifact')),
  target_id   INTEGER NOT NULL,
  name        TEXT NOT NULL,
  hlc         INTEGER NOT NULL,
  site        TEXT NOT NULL,
  value       TEXT,
  seg         INTEGER,
  PRIMARY KEY (target_type, target_id, name, hlc, site)
) WITHOUT ROWID;
CREATE INDEX tag_pending ON tag(target_type) WHERE seg IS NULL;
CREATE INDEX tag_by_name ON tag(name, value);

CREATE TABLE metric_summary (
  execution_id INTEGER NOT NULL REFERENCES execution(id),
  series_id    INTEGER NOT NULL REFERENCES series(id),
  steps        INTEGER NOT NULL,
  last_step    INTEGER NOT NULL,
  last_value   REAL,
  min_value    REAL,
  max_value    REAL,
  sum_value    REAL,
  values_n     INTEGER NOT NULL,
  PRIMARY KEY (execution_id, series_id)
) WITHOUT ROWID;
INSERT INTO metric_summary(execution_id, series_id, steps, last_step, min_value, max_value,
                           sum_value, values_n)
  SELECT execution_id, series_id, count(*), max(step), min(value), max(value), sum(value),
         count(value)
  FROM metric GROUP BY execution_id, series_id;
UPDATE metric_summary SET last_value = (SELECT value FROM metric m WHERE
  m.execution_id = metric_summary.execution_id AND m.series_id = metric_summary.series_id
  AND m.step = metric_summary.last_step);
)sql";

std::string_view RecordTypeName(RecordType type) {
  switch (type) {
    case RecordType::kPipeline:
      return "pipeline";
    case RecordType::kStage:
      return "stage";
    case RecordType::kExecution:
      return "execution";
    case RecordType::kArtifact:
      return "artifact";
  }
  return "execution";
}

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Store::~Store() = default;

const fs::path& Store::path() const { return impl_->path; }

Result<std::unique_ptr<Store>> Store::Open(const fs::path& path,
                                           const StoreOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->options = options;
  const std::string where = impl->Where();
  std::error_code ec;
  if (!options.create && !fs::exists(path, ec)) {
    return Status::NotFound("cannot open " + where + ": no such file");
  }
  // A Store is used by one thread at a time (store.h): SQLite need not take
  // its connection mutex on every call (a walk makes some 100,000 of them).
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
              (options.create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &impl->db, flags, nullptr);
  if (rc != SQLITE_OK) return sql::Error(impl->db, rc, "cannot open " + where);
  sqlite3_extended_result_codes(impl->db, 1);
  sqlite3_busy_timeout(impl->db, options.busy_timeout_ms);
  // The write-ahead log and its index stay on disk when the last connection
  // closes (after the usual checkpoint), instead of being deleted and made
  // again by the next command: every command saves creating two files.
  int persist_wal = 1;
  sqlite3_file_control(impl->db, "main", SQLITE_FCNTL_PERSIST_WAL,
                       &persist_wal);

  // Read before anything is written: a file that is not a database, or not
  // ours, is refused untouched.
  int user_version = 0;
  int tables = 0;
  {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, impl->Prepare("PRAGMA user_version"));
    Status st;
    if (s.Step(&st)) user_version = static_cast<int>(s.Int(0));
    s.Reset();
    if (!st.ok()) {
      return Status::Corruption("cannot open " + where + ": " +
                                sqlite3_errmsg(impl->db));
    }
    CMF_ASSIGN_OR_RETURN(sql::Stmt t,
                         impl->Prepare("SELECT count(*) FROM sqlite_master"));
    if (t.Step(&st)) tables = static_cast<int>(t.Int(0));
    t.Reset();
    if (!st.ok()) {
      return Status::Corruption("cannot open " + where + ": " +
                                sqlite3_errmsg(impl->db));
    }
  }
  if (user_version > kStoreSchemaVersion) {
    return Status::InvalidArgument(
        fmt::format("cannot open {}: it has schema version {}, newer than this "
                    "cmf understands ({}); "
                    "upgrade cmf",
                    where, user_version, kStoreSchemaVersion));
  }
  if (user_version == 0) {
    if (!options.create || tables != 0) {
      return Status::Corruption("cannot open " + where +
                                ": not a cmf metadata store");
    }
    // journal_mode cannot change inside a transaction; WAL is a property of the
    // file.
    CMF_RETURN_IF_ERROR(impl->Exec("PRAGMA journal_mode=WAL"));
    CMF_RETURN_IF_ERROR(impl->InWrite([&]() -> Status {
      CMF_RETURN_IF_ERROR(impl->Exec(kSchemaV1));
      CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV2));
      CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV3));
      CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV4));
      CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV5));
      CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV6));
      CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV7));
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt s,
          impl->Prepare("INSERT INTO meta(key, value) VALUES('format', ?1)"));
      CMF_RETURN_IF_ERROR(s.Bind(1, kFormatName).Run());
      return impl->Exec(
          fmt::format("PRAGMA user_version={}", kStoreSchemaVersion).c_str());
    }));
  } else {
    Result<sql::Stmt> s =
        impl->Prepare("SELECT value FROM meta WHERE key='format'");
    Status st;
    bool ours = s.ok() && s->Step(&st) && s->Text(0) == kFormatName;
    if (s.ok()) s->Reset();
    if (!ours)
      return Status::Corruption("cannot open " + where +
                                ": not a cmf metadata store");
    if (user_version < kStoreSchemaVersion) {  // an older store: upgrade it
      CMF_RETURN_IF_ERROR(impl->WriteAnyway([&]() -> Status {
        if (user_version < 2) CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV2));
        if (user_version < 3) CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV3));
        if (user_version < 4) CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV4));
        if (user_version < 5) CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV5));
        if (user_version < 6) CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV6));
        if (user_version < 7) CMF_RETURN_IF_ERROR(impl->Exec(kMigrateV7));
        return impl->Exec(
            fmt::format("PRAGMA user_version={}", kStoreSchemaVersion).c_str());
      }));
    }
  }
  CMF_RETURN_IF_ERROR(impl->Exec("PRAGMA foreign_keys=ON"));
  // With a size limit set, the last connection to close truncates the
  // persistent write-ahead log to nothing after its checkpoint. Without one,
  // the log of the last write stays whole on disk, and every later command
  // reads all of it back at open and checkpoints it again at close (some 300
  // reads, 100 writes and 3 syncs for a read-only `cmf status`).
  CMF_RETURN_IF_ERROR(impl->Exec("PRAGMA journal_size_limit=4194304"));
  // Walks and listings keep their working sets in temp tables: in memory,
  // not in a file made and removed on every command.
  CMF_RETURN_IF_ERROR(impl->Exec("PRAGMA temp_store=MEMORY"));
  CMF_RETURN_IF_ERROR(impl->Exec(options.synchronous_full
                                     ? "PRAGMA synchronous=FULL"
                                     : "PRAGMA synchronous=NORMAL"));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

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
  return m.InWrite([&]() -> Status {
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
    return m.UpdateMetricSummary(execution, series_id, points);
  });
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
  if (limit > 0) out.reserve(static_cast<std::size_t>(std::min<std::int64_t>(limit, 4096)));
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
        sql::Stmt row, impl_->Prepare("SELECT id FROM execution WHERE uuid = ?1"));
    Status st;
    const bool found = row.Bind(1, run.id).Step(&st);
    const RowId id = found ? row.Int(0) : 0;
    row.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (!found) continue;
    CMF_RETURN_IF_ERROR(SetExecutionState(id, ExecStatus::kInterrupted,
                                          std::nullopt, std::nullopt,
                                          run.message));
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

Status Store::Track(const ArtifactRef& ref) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_RETURN_IF_ERROR(m.EnsureArtifact(ref));
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt t,
        m.Prepare("INSERT OR REPLACE INTO tracked(path, artifact_id, added_ms) "
                  "SELECT ?1, id, ?2 FROM artifact WHERE hash = ?3"));
    return t.Bind(1, ref.path)
        .Bind(2, m.options.clock->NowMs())
        .Bind(3, ref.hash)
        .Run();
  });
}

Result<std::vector<ArtifactRef>> Store::ListTracked() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT t.path, a.hash, a.size, a.kind FROM tracked t "
          "JOIN artifact a ON a.id = t.artifact_id ORDER BY t.path"));
  std::vector<ArtifactRef> out;
  Status st;
  while (s.Step(&st)) {
    out.push_back({s.Text(0), s.Text(1), static_cast<std::uint64_t>(s.Int(2)),
                   ParseArtifactKind(s.Text(3)).value_or(ArtifactKind::kFile)});
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::string> Store::ResolveArtifact(const std::string& prefix) {
  std::string hex;
  for (char c : prefix) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Status::InvalidArgument("'" + prefix +
                                     "' is not an artifact hash");
    }
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex.empty()) return Status::InvalidArgument("an empty artifact hash");
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s, impl_->Prepare("SELECT hash FROM artifact WHERE hash >= ?1 "
                                  "AND hash < ?2 ORDER BY hash LIMIT 2"));
  s.Bind(1, hex).Bind(2, hex + "g");
  std::vector<std::string> found;
  Status st;
  while (s.Step(&st)) found.push_back(s.Text(0));
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (found.empty()) return Status::NotFound("no artifact '" + prefix + "'");
  if (found.size() > 1)
    return Status::InvalidArgument("artifact hash '" + prefix +
                                   "' is ambiguous");
  return found.front();
}

Result<ArtifactRef> Store::GetArtifact(const std::string& hash) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT size, kind FROM artifact WHERE hash = ?1"));
  Status st;
  bool found = s.Bind(1, hash).Step(&st);
  ArtifactRef ref;
  if (found) {
    ref = {"", hash, static_cast<std::uint64_t>(s.Int(0)),
           ParseArtifactKind(s.Text(1)).value_or(ArtifactKind::kFile)};
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (!found) return Status::NotFound("no artifact '" + hash + "'");
  return ref;
}

Result<std::vector<Store::ArtifactUse>> Store::ListArtifacts() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          // The environments executions name (cmf/environment.h) are kept
          // and shared like their outputs.
          "WITH env(hash) AS (SELECT value FROM property WHERE target_type = "
          "'execution' AND name = 'environment') "
          "SELECT a.hash, a.kind, "
          "EXISTS(SELECT 1 FROM tracked t WHERE t.artifact_id = a.id) OR "
          "EXISTS(SELECT 1 FROM event e WHERE e.artifact_id = a.id AND "
          "e.direction = 1) OR a.hash IN env, "
          "EXISTS(SELECT 1 FROM tracked t WHERE t.artifact_id = a.id) OR "
          "EXISTS(SELECT 1 FROM event e WHERE e.artifact_id = a.id) OR "
          "a.hash IN env, "
          "COALESCE((SELECT t.path FROM tracked t WHERE t.artifact_id = a.id "
          "LIMIT 1), "
          "(SELECT e.path FROM event e WHERE e.artifact_id = a.id LIMIT 1), "
          "''), "
          "EXISTS(SELECT 1 FROM location l WHERE l.artifact_id = a.id AND "
          "l.site <> ?1) "
          "FROM artifact a ORDER BY a.hash"));
  s.Bind(1, impl_->options.site);
  std::vector<ArtifactUse> out;
  Status st;
  while (s.Step(&st)) {
    out.push_back({s.Text(0),
                   ParseArtifactKind(s.Text(1)).value_or(ArtifactKind::kFile),
                   s.Int(2) != 0, s.Int(3) != 0, s.Text(4), s.Int(5) != 0});
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::vector<Store::ArtifactRow>> Store::QueryArtifacts(
    const std::optional<ArtifactKind>& kind,
    std::optional<std::int64_t> limit) {
  Impl& m = *impl_;
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      m.Prepare(kind
                    ? "SELECT id, hash, size, kind FROM artifact "
                      "WHERE kind = ?1 ORDER BY hash LIMIT ?2"
                    : "SELECT id, hash, size, kind FROM artifact ORDER BY hash "
                      "LIMIT ?2"));
  if (kind) s.Bind(1, ToString(*kind));
  s.Bind(2, limit.value_or(-1));
  std::vector<ArtifactRow> out;
  std::unordered_map<RowId, std::size_t> index;
  Status st;
  while (s.Step(&st)) {
    ArtifactRow row;
    row.ref = {"", s.Text(1), static_cast<std::uint64_t>(s.Int(2)),
               ParseArtifactKind(s.Text(3)).value_or(ArtifactKind::kFile)};
    index.emplace(s.Int(0), out.size());
    out.push_back(std::move(row));
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt p,
      m.Prepare(
          "SELECT DISTINCT x.path FROM event x INDEXED BY event_by_artifact "
          "WHERE x.artifact_id = ?1 UNION SELECT path FROM tracked WHERE "
          "artifact_id = ?1 ORDER BY 1"));
  for (const auto& [id, i] : index) {
    p.Bind(1, id);
    while (p.Step(&st)) out[i].paths.push_back(p.Text(0));
    p.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  return out;
}

Result<std::vector<Store::StatBlob>> Store::LoadStatIndex(
    const std::string& root) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT root, entries FROM stat_index WHERE root = ?1 OR "
          "(root >= ?2 AND root < ?3) OR instr(?4, root || '/') = 1"));
  // Below ROOT: the roots that start with "ROOT/" ('0' follows '/'). Above
  // it: the roots R for which "ROOT/" starts with "R/".
  s.Bind(1, root).Bind(2, root + "/").Bind(3, root + "0").Bind(4, root + "/");
  std::vector<StatBlob> out;
  Status st;
  while (s.Step(&st)) out.push_back({s.Text(0), std::string(s.Blob(1))});
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Status Store::SaveStatIndex(const std::string& root, std::string_view bytes) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt drop,
        m.Prepare("DELETE FROM stat_index WHERE root >= ?1 AND root < ?2"));
    CMF_RETURN_IF_ERROR(drop.Bind(1, root + "/").Bind(2, root + "0").Run());
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt put,
        m.Prepare(
            "INSERT OR REPLACE INTO stat_index(root, entries) VALUES(?1, ?2)"));
    return put.Bind(1, root).BindBlob(2, bytes).Run();
  });
}

Result<std::vector<std::string>> Store::ListStatRoots() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s, impl_->Prepare("SELECT root FROM stat_index ORDER BY root"));
  std::vector<std::string> out;
  Status st;
  while (s.Step(&st)) out.push_back(s.Text(0));
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Status Store::DropStatIndex(std::span<const std::string> roots) {
  if (roots.empty()) return Status::Ok();
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                         m.Prepare("DELETE FROM stat_index WHERE root = ?1"));
    for (const std::string& root : roots)
      CMF_RETURN_IF_ERROR(s.Bind(1, root).Run());
    return Status::Ok();
  });
}

}  // namespace cmf
