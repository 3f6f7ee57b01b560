#include "cmf/store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>
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
// together, and add a migration step to Store::Open (CreateSchema and
// Upgrade) when kStoreSchemaVersion goes up.
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

// Version 8: which step metrics are not yet in a segment is kept per series,
// in the summary's pending_from (the smallest step of the series that may be
// uncommitted; NULL: none), instead of an index entry per step
// (metric_pending): a logged step then writes two pages of the store (its
// row and its series' summary) where it wrote three, and a batch one b-tree
// where it wrote two. A commit reads, of each series that has one, the steps
// from pending_from on whose seg is NULL (a range of the primary key: what
// is pending, not the series' whole history), and clears pending_from.
constexpr char kMigrateV8[] = R"sql(
ALTER TABLE metric_summary ADD COLUMN pending_from INTEGER;
UPDATE metric_summary SET pending_from = (SELECT min(m.step) FROM metric m WHERE
  m.execution_id = metric_summary.execution_id AND m.series_id = metric_summary.series_id
  AND m.seg IS NULL);
CREATE INDEX metric_summary_pending ON metric_summary(execution_id, series_id)
  WHERE pending_from IS NOT NULL;
DROP INDEX IF EXISTS metric_pending;
)sql";

// Version 9: execution ids by their short form (clock.h's ShortId, the last
// 12 hex digits, which are random), so that `cmf show 5f227e03` finds its
// run among a million by one seek, where the time-ordered prefix of a UUIDv7
// is shared by every run of the same minute. An index on an expression: the
// lookup in Store::ResolveExecution names the same expression.
constexpr char kMigrateV9[] = R"sql(
CREATE INDEX IF NOT EXISTS execution_by_short_id ON execution(substr(uuid, 25));
)sql";

namespace {

// With CMF_TRACE_SQL set in the environment, each statement a store runs is
// told on standard error when it finishes: its time from its first step, the
// pages it read from the file (SQLite's cache misses) and its text. It is how
// a slow verb is taken apart (doc/performance.md). SQLite's own profile time
// counts whole milliseconds: the start is taken here.
int TraceStatement(unsigned type, void* /*context*/, void* stmt, void*) {
  using Clock = std::chrono::steady_clock;
  thread_local std::unordered_map<void*, Clock::time_point> started;
  if (type == SQLITE_TRACE_STMT) {
    started.try_emplace(stmt, Clock::now());
    return 0;
  }
  if (type != SQLITE_TRACE_PROFILE) return 0;
  auto it = started.find(stmt);
  const double ms =
      it == started.end()
          ? 0.0
          : std::chrono::duration<double, std::milli>(Clock::now() - it->second)
                .count();
  if (it != started.end()) started.erase(it);
  auto* s = static_cast<sqlite3_stmt*>(stmt);
  int misses = 0, high = 0;
  sqlite3_db_status(sqlite3_db_handle(s), SQLITE_DBSTATUS_CACHE_MISS, &misses,
                    &high, /*reset=*/1);
  const char* text = sqlite3_sql(s);
  std::string_view sql = text ? text : "";
  fmt::print(stderr, "cmf: sql: {:9.3f} ms {:7} pages  {}{}\n", ms, misses,
             sql.substr(0, 160), sql.size() > 160 ? " ..." : "");
  return 0;
}

// The steps of Store::Open. The templates take IMPL, the Store::Impl: a type
// private to Store, which they cannot name.

// Opens the database file PATH (named WHERE in errors) as *DB, set up as a
// Store uses it.
Status Connect(const fs::path& path, const StoreOptions& options,
               const std::string& where, sqlite3** db) {
  // A Store is used by one thread at a time (store.h): SQLite need not take
  // its connection mutex on every call (a walk makes some 100,000 of them).
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
              (options.create ? SQLITE_OPEN_CREATE : 0);
  sql::ConfigureOnce();
  int rc = sqlite3_open_v2(path.c_str(), db, flags, nullptr);
  if (rc != SQLITE_OK) return sql::Error(*db, rc, "cannot open " + where);
  sqlite3_extended_result_codes(*db, 1);
  sqlite3_busy_timeout(*db, options.busy_timeout_ms);
  if (const char* trace = std::getenv("CMF_TRACE_SQL"); trace && *trace) {
    sqlite3_trace_v2(*db, SQLITE_TRACE_STMT | SQLITE_TRACE_PROFILE,
                     TraceStatement, nullptr);
  }
  // The write-ahead log and its index stay on disk when the last connection
  // closes (after the usual checkpoint), instead of being deleted and made
  // again by the next command: every command saves creating two files.
  int persist_wal = 1;
  sqlite3_file_control(*db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);
  return Status::Ok();
}

// Reads the file's schema version into *USER_VERSION and its number of tables
// into *TABLES. Corruption for a file that is not a database.
template <typename Impl>
Status ReadVersion(Impl& impl, const std::string& where, int* user_version,
                   int* tables) {
  CMF_ASSIGN_OR_RETURN(sql::Stmt s, impl.Prepare("PRAGMA user_version"));
  Status st;
  if (s.Step(&st)) *user_version = static_cast<int>(s.Int(0));
  s.Reset();
  if (!st.ok()) {
    return Status::Corruption("cannot open " + where + ": " +
                              sqlite3_errmsg(impl.db));
  }
  CMF_ASSIGN_OR_RETURN(sql::Stmt t,
                       impl.Prepare("SELECT count(*) FROM sqlite_master"));
  if (t.Step(&st)) *tables = static_cast<int>(t.Int(0));
  t.Reset();
  if (!st.ok()) {
    return Status::Corruption("cannot open " + where + ": " +
                              sqlite3_errmsg(impl.db));
  }
  return Status::Ok();
}

// Makes the schema of a new store, at kStoreSchemaVersion.
template <typename Impl>
Status CreateSchema(Impl& impl) {
  // journal_mode cannot change inside a transaction; WAL is a property of the
  // file.
  CMF_RETURN_IF_ERROR(impl.Exec("PRAGMA journal_mode=WAL"));
  return impl.InWrite([&]() -> Status {
    CMF_RETURN_IF_ERROR(impl.Exec(kSchemaV1));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV2));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV3));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV4));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV5));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV6));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV7));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV8));
    CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV9));
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        impl.Prepare("INSERT INTO meta(key, value) VALUES('format', ?1)"));
    CMF_RETURN_IF_ERROR(s.Bind(1, kFormatName).Run());
    return impl.Exec(
        fmt::format("PRAGMA user_version={}", kStoreSchemaVersion).c_str());
  });
}

// Corruption unless the store's meta table says it is a cmf metadata store.
template <typename Impl>
Status CheckFormat(Impl& impl, const std::string& where) {
  Result<sql::Stmt> s =
      impl.Prepare("SELECT value FROM meta WHERE key='format'");
  Status st;
  bool ours = s.ok() && s->Step(&st) && s->Text(0) == kFormatName;
  if (s.ok()) s->Reset();
  if (!ours)
    return Status::Corruption("cannot open " + where +
                              ": not a cmf metadata store");
  return Status::Ok();
}

// Brings a store of schema version USER_VERSION up to kStoreSchemaVersion.
template <typename Impl>
Status Upgrade(Impl& impl, int user_version) {
  return impl.WriteAnyway([&]() -> Status {
    if (user_version < 2) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV2));
    if (user_version < 3) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV3));
    if (user_version < 4) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV4));
    if (user_version < 5) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV5));
    if (user_version < 6) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV6));
    if (user_version < 7) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV7));
    if (user_version < 8) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV8));
    if (user_version < 9) CMF_RETURN_IF_ERROR(impl.Exec(kMigrateV9));
    return impl.Exec(
        fmt::format("PRAGMA user_version={}", kStoreSchemaVersion).c_str());
  });
}

// Sets the connection's settings that last until it closes.
template <typename Impl>
Status SetConnectionPragmas(Impl& impl, const StoreOptions& options) {
  CMF_RETURN_IF_ERROR(impl.Exec("PRAGMA foreign_keys=ON"));
  // With a size limit set, the last connection to close truncates the
  // persistent write-ahead log to nothing after its checkpoint. Without one,
  // the log of the last write stays whole on disk, and every later command
  // reads all of it back at open and checkpoints it again at close (some 300
  // reads, 100 writes and 3 syncs for a read-only `cmf status`).
  CMF_RETURN_IF_ERROR(impl.Exec("PRAGMA journal_size_limit=4194304"));
  // Walks and listings keep their working sets in temp tables: in memory,
  // not in a file made and removed on every command.
  CMF_RETURN_IF_ERROR(impl.Exec("PRAGMA temp_store=MEMORY"));
  return impl.Exec(options.synchronous_full ? "PRAGMA synchronous=FULL"
                                            : "PRAGMA synchronous=NORMAL");
}

}  // namespace

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
  CMF_RETURN_IF_ERROR(Connect(path, options, where, &impl->db));

  // Read before anything is written: a file that is not a database, or not
  // ours, is refused untouched.
  int user_version = 0;
  int tables = 0;
  CMF_RETURN_IF_ERROR(ReadVersion(*impl, where, &user_version, &tables));
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
    CMF_RETURN_IF_ERROR(CreateSchema(*impl));
  } else {
    CMF_RETURN_IF_ERROR(CheckFormat(*impl, where));
    if (user_version < kStoreSchemaVersion) {  // an older store: upgrade it
      CMF_RETURN_IF_ERROR(Upgrade(*impl, user_version));
    }
  }
  CMF_RETURN_IF_ERROR(SetConnectionPragmas(*impl, options));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

}  // namespace cmf
