#include "cmf/store.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cmf/clock.h"
#include "cmf/lineage.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Store> NewStore(const fs::path& path,
                                const std::string& site = "site-a") {
  StoreOptions options;
  options.create = true;
  options.site = site;
  Result<std::unique_ptr<Store>> store = Store::Open(path, options);
  REQUIRE(store.ok());
  return std::move(store).value();
}

ExecutionRecord Record(const std::string& stage, std::int64_t started_ms) {
  ExecutionRecord r;
  r.id = NewUuidV7(started_ms).value();
  r.pipeline = "ALDKL";
  r.stage = stage;
  r.command = {"./train", "--epochs", "3"};
  r.params = {{"lr", 0.01},
              {"epochs", std::int64_t{3}},
              {"name", std::string("x")},
              {"cold", true}};
  r.host = "edge";
  r.user = "sci";
  r.site = "site-a";
  r.started_ms = started_ms;
  return r;
}

int UserVersion(const fs::path& path) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, nullptr);
  int v = sqlite3_step(s) == SQLITE_ROW ? sqlite3_column_int(s, 0) : -1;
  sqlite3_finalize(s);
  sqlite3_close(db);
  return v;
}

void RunSql(const fs::path& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
}

}  // namespace

TEST_CASE("store: a new store has the current schema version and uses WAL") {
  TempDir dir;
  { auto store = NewStore(dir / "m.db"); }
  CHECK(UserVersion(dir / "m.db") == kStoreSchemaVersion);
  sqlite3* db = nullptr;
  sqlite3_open((dir / "m.db").c_str(), &db);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, nullptr);
  REQUIRE(sqlite3_step(s) == SQLITE_ROW);
  CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(s, 0))) ==
        "wal");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_CASE(
    "store: the write-ahead log is left empty when the store closes, so the "
    "next command has nothing to replay") {
  TempDir dir;
  {
    auto store = NewStore(dir / "m.db");
    for (int i = 0; i < 50; ++i)
      REQUIRE(store->BeginExecution(Record("train", 1000 + i)).ok());
  }
  const fs::path wal = dir / "m.db-wal";
  REQUIRE(fs::exists(wal));  // kept, not made again by every command
  CHECK(fs::file_size(wal) == 0);
  // A store opened and closed without a write leaves it empty too, and the
  // executions are in the database file itself.
  {
    auto store = Store::Open(dir / "m.db", StoreOptions{});
    REQUIRE(store.ok());
  }
  CHECK(fs::file_size(wal) == 0);
  fs::remove(wal);
  fs::remove(dir / "m.db-shm");
  auto store = Store::Open(dir / "m.db", StoreOptions{});
  REQUIRE(store.ok());
  Result<std::vector<ExecutionRecord>> all = (*store)->ListExecutions({});
  REQUIRE(all.ok());
  CHECK(all->size() == 50);
}

TEST_CASE(
    "store: a store written by a newer cmf is refused, and left as it was") {
  TempDir dir;
  { auto store = NewStore(dir / "m.db"); }
  RunSql(dir / "m.db", "PRAGMA user_version=99");
  std::string before = test::ReadFile(dir / "m.db");
  Result<std::unique_ptr<Store>> store =
      Store::Open(dir / "m.db", StoreOptions{});
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == Code::kInvalidArgument);
  CHECK(store.status().message().find("newer") != std::string::npos);
  CHECK(test::ReadFile(dir / "m.db") == before);
}

TEST_CASE("store: a file that is not a database is refused untouched") {
  TempDir dir;
  std::string junk(5000, 'j');
  test::WriteFile(dir / "m.db", junk);
  Result<std::unique_ptr<Store>> store =
      Store::Open(dir / "m.db", StoreOptions{});
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == Code::kCorruption);
  CHECK(store.status().message().find("file is not a database") !=
        std::string::npos);
  CHECK(test::ReadFile(dir / "m.db") == junk);
}

TEST_CASE(
    "store: another program's SQLite database is refused as not a cmf store") {
  TempDir dir;
  RunSql(dir / "m.db", "CREATE TABLE Artifact(id INTEGER PRIMARY KEY)");
  std::string before = test::ReadFile(dir / "m.db");
  for (bool create : {false, true}) {
    StoreOptions options;
    options.create = create;
    Result<std::unique_ptr<Store>> store = Store::Open(dir / "m.db", options);
    REQUIRE_FALSE(store.ok());
    CHECK(store.status().message().find("not a cmf metadata store") !=
          std::string::npos);
  }
  CHECK(test::ReadFile(dir / "m.db") == before);
}

TEST_CASE("store: a missing store is NotFound unless asked to create it") {
  TempDir dir;
  CHECK(Store::Open(dir / "m.db", StoreOptions{}).status().code() ==
        Code::kNotFound);
  CHECK_FALSE(fs::exists(dir / "m.db"));
}

TEST_CASE(
    "store: an execution reads back with its parameters, state and events") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord r = Record("train", 1'700'000'000'000);
  r.code = CodeVersion{std::string(40, 'a'), true, "/src"};
  Result<RowId> row = store->BeginExecution(r);
  REQUIRE(row.ok());
  ArtifactRef in{"data/raw.h5", std::string(64, '1'), 100,
                 ArtifactKind::kDataset};
  ArtifactRef out{"model.pt", std::string(64, '2'), 7, ArtifactKind::kModel};
  REQUIRE(store->AddEvent(*row, Direction::kInput, 0, in).ok());
  REQUIRE(store->AddEvent(*row, Direction::kOutput, 0, out).ok());

  Result<ExecutionRecord> got = store->GetExecution(r.id);
  REQUIRE(got.ok());
  CHECK(got->status == ExecStatus::kRunning);
  CHECK_FALSE(got->exit_code.has_value());
  CHECK(got->command == r.command);
  CHECK(got->params == r.params);
  REQUIRE(got->code.has_value());
  CHECK(got->code->commit == std::string(40, 'a'));
  CHECK(got->code->dirty);
  REQUIRE(got->inputs.size() == 1);
  CHECK(got->inputs[0].path == "data/raw.h5");
  CHECK(got->inputs[0].kind == ArtifactKind::kDataset);
  REQUIRE(got->outputs.size() == 1);
  CHECK(got->outputs[0].hash == std::string(64, '2'));

  REQUIRE(
      store->SetExecutionState(*row, ExecStatus::kOk, 0, r.started_ms + 5, "")
          .ok());
  got = store->GetExecution(r.id);
  REQUIRE(got.ok());
  CHECK(got->status == ExecStatus::kOk);
  CHECK(got->exit_code == 0);
  CHECK(got->ended_ms == r.started_ms + 5);
}

TEST_CASE("store: the same execution id cannot be recorded twice") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord r = Record("train", 1'700'000'000'000);
  REQUIRE(store->BeginExecution(r).ok());
  CHECK(store->BeginExecution(r).status().code() == Code::kAlreadyExists);
}

TEST_CASE(
    "store: executions list newest first, filtered by stage and limited") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  for (int i = 0; i < 5; ++i) {
    REQUIRE(store->BeginExecution(Record(i % 2 ? "train" : "prepare", 1000 + i))
                .ok());
  }
  Result<std::vector<ExecutionRecord>> all = store->ListExecutions({});
  REQUIRE(all.ok());
  REQUIRE(all->size() == 5);
  for (std::size_t i = 1; i < all->size(); ++i) {
    CHECK((*all)[i - 1].started_ms > (*all)[i].started_ms);
  }
  ExecutionFilter filter;
  filter.stage = "train";
  Result<std::vector<ExecutionRecord>> train = store->ListExecutions(filter);
  REQUIRE(train.ok());
  CHECK(train->size() == 2);
  filter.limit = 1;
  train = store->ListExecutions(filter);
  REQUIRE(train.ok());
  REQUIRE(train->size() == 1);
  CHECK(train->front().started_ms == 1003);
  CHECK(store->CountExecutions().value() == 5);
}

TEST_CASE(
    "store: id prefixes resolve when unique and are refused when ambiguous or "
    "unknown") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord a = Record("s", 1000), b = Record("s", 1000);
  a.id = "01a21c9f-88c9-7f7f-b3ab-7fa20183429a";
  b.id = "01a21c9f-88e0-76ac-b9cb-6c21ce121031";
  REQUIRE(store->BeginExecution(a).ok());
  REQUIRE(store->BeginExecution(b).ok());
  CHECK(store->ResolveExecution("01a21c9f-88c").value() == a.id);
  CHECK(store->ResolveExecution("01A21C9F88E0").value() ==
        b.id);  // no dashes, any case
  CHECK(store->ResolveExecution(b.id).value() == b.id);
  Result<std::string> ambiguous = store->ResolveExecution("01a21c9f");
  CHECK(ambiguous.status().code() == Code::kInvalidArgument);
  CHECK(ambiguous.status().message().find("ambiguous") != std::string::npos);
  CHECK(store->ResolveExecution("ffff").status().code() == Code::kNotFound);
  CHECK(store->ResolveExecution("xyz").status().code() ==
        Code::kInvalidArgument);
  CHECK(store->ResolveExecution("").status().code() == Code::kInvalidArgument);
}

TEST_CASE(
    "store: an execution's short form (its last 12 digits) and leading parts "
    "of it resolve, where the time-ordered prefix of two runs of one minute "
    "is ambiguous") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord a = Record("s", 1000), b = Record("s", 1000),
                  c = Record("s", 1000), d = Record("s", 1000);
  a.id = "01a21c9f-88c9-7f7f-b3ab-7fa20183429a";
  b.id = "01a21c9f-88e0-76ac-b9cb-6c21ce121031";
  c.id = "01a21c9f-88e1-7000-8000-7fa2ffffffff";  // a's short form's 4 digits
  d.id = "01b00000-0000-7000-8000-01a21c9f88e0";  // ends as b starts
  for (const ExecutionRecord* r : {&a, &b, &c, &d}) {
    REQUIRE(store->BeginExecution(*r).ok());
  }
  CHECK(ShortId(a.id) == "7fa20183429a");
  CHECK(ShortId("not-an-id") == "not-an-id");
  CHECK(store->ResolveExecution(ShortId(a.id)).value() == a.id);
  CHECK(store->ResolveExecution("7FA20183").value() == a.id);  // any case
  CHECK(store->ResolveExecution("6c21").value() == b.id);
  CHECK(store->ResolveExecution("7fa2f").value() == c.id);
  Result<std::string> both = store->ResolveExecution("7fa2");
  CHECK(both.status().code() == Code::kInvalidArgument);
  CHECK(both.status().message().find(a.id) != std::string::npos);
  CHECK(both.status().message().find(c.id) != std::string::npos);
  // Three digits are too few for a short form; a dash means the long form.
  CHECK(store->ResolveExecution("6c2").status().code() == Code::kNotFound);
  CHECK(store->ResolveExecution("6c21-ce12").status().code() ==
        Code::kNotFound);
  // One run's id starts with what ends another's: ambiguous, both named.
  Result<std::string> mixed = store->ResolveExecution("01a21c9f88e0");
  CHECK(mixed.status().code() == Code::kInvalidArgument);
  CHECK(mixed.status().message().find(b.id) != std::string::npos);
  CHECK(mixed.status().message().find(d.id) != std::string::npos);
  CHECK(store->ResolveExecution("01a21c9f-88e0").value() == b.id);
}

TEST_CASE("store: a version 8 store gets the index of short ids on upgrade") {
  TempDir dir;
  ExecutionRecord a = Record("s", 1000);
  a.id = "01a21c9f-88c9-7f7f-b3ab-7fa20183429a";
  {
    auto store = NewStore(dir / "m.db");
    REQUIRE(store->BeginExecution(a).ok());
  }
  RunSql(dir / "m.db",
         "DROP INDEX execution_by_short_id; PRAGMA user_version=8;");
  StoreOptions options;
  options.site = "site-a";
  Result<std::unique_ptr<Store>> store = Store::Open(dir / "m.db", options);
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  CHECK(UserVersion(dir / "m.db") == kStoreSchemaVersion);
  CHECK((*store)->ResolveExecution("7fa201").value() == a.id);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir / "m.db").c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(db,
                     "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
                     "AND name = 'execution_by_short_id'",
                     -1, &s, nullptr);
  CHECK((sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 1));
  sqlite3_finalize(s);
  sqlite3_close(db);
}

TEST_CASE(
    "store: step metrics come back by series, steps ascending; NaN survives") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord r = Record("train", 1000);
  RowId row = store->BeginExecution(r).value();
  std::vector<MetricPoint> loss = {{2, 0.5}, {0, 1.5}, {1, NAN}};
  REQUIRE(store->LogMetrics(row, "loss", loss).ok());
  std::vector<MetricPoint> sigma = {{0, 0.25}};
  REQUIRE(store->LogMetrics(row, "sigma", sigma).ok());
  std::vector<MetricPoint> again = {
      {2, 0.4}};  // a step logged again replaces its value
  REQUIRE(store->LogMetrics(row, "loss", again).ok());

  Result<MetricSeries> all = store->GetMetrics(r.id);
  REQUIRE(all.ok());
  REQUIRE(all->count("loss") == 1);
  const auto& l = all->at("loss");
  REQUIRE(l.size() == 3);
  CHECK(l[0].step == 0);
  CHECK(l[0].value == 1.5);
  CHECK(std::isnan(l[1].value));
  CHECK(l[2].value == 0.4);
  CHECK(all->at("sigma").size() == 1);

  Result<MetricSeries> one = store->GetMetrics(r.id, std::string("sigma"));
  REQUIRE(one.ok());
  CHECK(one->size() == 1);
  CHECK(store->GetMetrics(r.id, std::string("nope")).status().code() ==
        Code::kNotFound);
  CHECK(store->GetMetrics(NewUuidV7(1).value()).status().code() ==
        Code::kNotFound);
}

TEST_CASE("store: the newest property value wins") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord r = Record("train", 1000);
  REQUIRE(store->BeginExecution(r).ok());
  REQUIRE(store
              ->SetProperty(RecordType::kExecution, r.id, "note",
                            std::string("first"))
              .ok());
  REQUIRE(store
              ->SetProperty(RecordType::kExecution, r.id, "note",
                            std::string("second"))
              .ok());
  REQUIRE(store->SetProperty(RecordType::kExecution, r.id, "best", 0.25).ok());
  REQUIRE(store
              ->SetProperty(RecordType::kStage, "ALDKL/train", "owner",
                            std::string("me"))
              .ok());
  CHECK(
      store->SetProperty(RecordType::kStage, "ALDKL/none", "x", true).code() ==
      Code::kNotFound);
  CHECK(
      store->SetProperty(RecordType::kArtifact, std::string(64, '0'), "x", true)
          .code() == Code::kNotFound);
  ExecutionRecord got = store->GetExecution(r.id).value();
  CHECK(std::get<std::string>(got.properties.at("note")) == "second");
  CHECK(std::get<double>(got.properties.at("best")) == 0.25);
}

TEST_CASE(
    "store: derived_from links two recorded artifacts and refuses unknown "
    "ones") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  RowId row = store->BeginExecution(Record("slice", 1000)).value();
  std::string parent(64, 'a'), child(64, 'b');
  REQUIRE(store
              ->AddEvent(row, Direction::kInput, 0,
                         {"raw.h5", parent, 10, ArtifactKind::kDataset})
              .ok());
  REQUIRE(store
              ->AddEvent(row, Direction::kOutput, 0,
                         {"s.h5", child, 1, ArtifactKind::kDataslice})
              .ok());
  CHECK(store->AddDerivedFrom(child, parent).ok());
  CHECK(store->AddDerivedFrom(child, parent)
            .ok());  // recording it again changes nothing
  CHECK(store->AddDerivedFrom(child, std::string(64, 'c')).code() ==
        Code::kNotFound);
}

TEST_CASE(
    "store: a fact is visible to another connection as soon as the call "
    "returns") {
  TempDir dir;
  auto writer = NewStore(dir / "m.db");
  ExecutionRecord r = Record("train", 1000);
  RowId row = writer->BeginExecution(r).value();
  std::vector<MetricPoint> p = {{7, 0.5}};
  REQUIRE(writer->LogMetrics(row, "loss", p).ok());
  auto reader = Store::Open(dir / "m.db", StoreOptions{});
  REQUIRE(reader.ok());
  CHECK((*reader)->GetMetrics(r.id).value().at("loss").at(0).step == 7);
}

TEST_CASE("store: two connections logging at once lose nothing") {
  TempDir dir;
  { auto init = NewStore(dir / "m.db"); }
  constexpr int kPerThread = 200;
  auto work = [&](std::string site) {
    StoreOptions options;
    options.site = site;
    options.synchronous_full = false;
    auto store = Store::Open(dir / "m.db", options);
    REQUIRE(store.ok());
    ExecutionRecord r = Record("al-" + site, 1000);
    RowId row = (*store)->BeginExecution(r).value();
    for (int i = 0; i < kPerThread; ++i) {
      MetricPoint point{i, i * 0.5};
      REQUIRE((*store)
                  ->LogMetrics(row, "sigma",
                               std::span<const MetricPoint>(&point, 1))
                  .ok());
    }
  };
  std::thread a(work, "a"), b(work, "b");
  a.join();
  b.join();
  auto store = Store::Open(dir / "m.db", StoreOptions{});
  REQUIRE(store.ok());
  auto list = (*store)->ListExecutions({}).value();
  REQUIRE(list.size() == 2);
  for (const auto& r : list) {
    CHECK((*store)->GetMetrics(r.id).value().at("sigma").size() == kPerThread);
  }
}

TEST_CASE(
    "store: a scan in small pages sees every execution once, in order, ties "
    "included") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  for (int i = 0; i < 7; ++i)
    REQUIRE(store->BeginExecution(Record("s", 1000 + i / 3)).ok());
  std::vector<std::string> seen;
  std::vector<std::size_t> pages;
  REQUIRE(store
              ->ScanExecutions(
                  {},
                  [&](std::vector<ExecutionRecord>& page) {
                    pages.push_back(page.size());
                    for (const auto& r : page) seen.push_back(r.id);
                    return Status::Ok();
                  },
                  /*page_size=*/2)
              .ok());
  CHECK(pages == std::vector<std::size_t>{2, 2, 2, 1});
  std::vector<std::string> all;
  for (const auto& r : store->ListExecutions({}).value()) all.push_back(r.id);
  CHECK(seen == all);
  std::vector<std::string> sorted = seen;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  CHECK(seen == sorted);  // UUIDv7 order is start order

  ExecutionFilter three;
  three.limit = 3;
  std::size_t n = 0;
  REQUIRE(store
              ->ScanExecutions(
                  three,
                  [&](std::vector<ExecutionRecord>& page) {
                    n += page.size();
                    return Status::Ok();
                  },
                  2)
              .ok());
  CHECK(n == 3);
  Status stop = store->ScanExecutions({}, [](std::vector<ExecutionRecord>&) {
    return Status::IOError("sink failed");
  });
  CHECK(stop.message() == "sink failed");
}

TEST_CASE(
    "store: a version 1 store is upgraded in place, its facts uncommitted") {
  TempDir dir;
  {
    auto store = NewStore(dir / "m.db");
    REQUIRE(store->BeginExecution(Record("train", 1000)).ok());
  }
  // Take it back to what version 1 wrote: no seg columns, no federation
  // tables.
  RunSql(dir / "m.db",
         "DROP TABLE location; DROP TABLE segment; DROP TABLE wanted;"
         "DROP INDEX execution_pending; DROP INDEX execution_state_pending;"
         "DROP INDEX artifact_pending; DROP INDEX event_pending;"
         "DROP INDEX derived_from_pending;"
         "DROP INDEX property_pending; DROP INDEX artifact_by_kind;"
         "DROP INDEX event_by_path; DROP INDEX tracked_by_artifact;"
         "ALTER TABLE execution DROP COLUMN seg;"
         "ALTER TABLE execution_state DROP COLUMN seg;"
         "ALTER TABLE artifact DROP COLUMN seg;"
         "ALTER TABLE event DROP COLUMN seg;"
         "ALTER TABLE derived_from DROP COLUMN seg;"
         "ALTER TABLE metric DROP COLUMN seg;"
         "ALTER TABLE property DROP COLUMN seg;"
         "DROP TABLE stat_index; DROP TABLE live_run; DROP TABLE quarantine;"
         "DROP TABLE tag; DROP TABLE metric_summary;"
         "CREATE TABLE stat_cache (path TEXT PRIMARY KEY, dev INTEGER NOT "
         "NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER "
         "NOT NULL, hash TEXT NOT NULL) WITHOUT ROWID;"
         "PRAGMA user_version=1;");
  REQUIRE(UserVersion(dir / "m.db") == 1);
  StoreOptions options;
  options.site = "site-a";
  Result<std::unique_ptr<Store>> store = Store::Open(dir / "m.db", options);
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  CHECK(UserVersion(dir / "m.db") == kStoreSchemaVersion);
  CHECK((*store)->CountExecutions().value() == 1);
  // The per-file stat cache became the per-path stat index.
  CHECK((*store)->SaveStatIndex("/data", "cmf-stat 1\n").ok());
  CHECK((*store)->LoadStatIndex("/data").value().size() == 1);
  Result<Store::Pending> pending = (*store)->CountPending();
  REQUIRE(pending.ok());
  CHECK(pending->executions == 1);  // the first commit will seal the history
}

TEST_CASE("store: the most specific kind of an artifact wins, in any order") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  Result<RowId> e = store->BeginExecution(Record("train", 1000));
  REQUIRE(e.ok());
  ArtifactRef file{"model.bin", std::string(64, 'a'), 10, ArtifactKind::kFile};
  ArtifactRef model = file;
  model.kind = ArtifactKind::kModel;
  REQUIRE(store->AddEvent(*e, Direction::kOutput, 0, model).ok());
  REQUIRE(store->AddEvent(*e, Direction::kOutput, 1, file).ok());
  CHECK(store->GetArtifact(file.hash)->kind == ArtifactKind::kModel);
  ArtifactRef other{"x.bin", std::string(64, 'b'), 10, ArtifactKind::kFile};
  REQUIRE(store->AddEvent(*e, Direction::kInput, 0, other).ok());
  other.kind = ArtifactKind::kDataslice;
  REQUIRE(store->AddEvent(*e, Direction::kInput, 1, other).ok());
  CHECK(store->GetArtifact(other.hash)->kind == ArtifactKind::kDataslice);
}

TEST_CASE("store: a lineage walk ends on a cycle, with or without a depth") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  Result<RowId> e = store->BeginExecution(Record("train", 1000));
  REQUIRE(e.ok());
  ArtifactRef a{"a.h5", std::string(64, 'a'), 1, ArtifactKind::kDataset};
  ArtifactRef b{"b.h5", std::string(64, 'b'), 1, ArtifactKind::kDataslice};
  REQUIRE(store->AddEvent(*e, Direction::kInput, 0, a).ok());
  REQUIRE(store->AddEvent(*e, Direction::kOutput, 0, b).ok());
  // An import can bring a loop: b from a, and a from b.
  REQUIRE(store->AddDerivedFrom(b.hash, a.hash).ok());
  REQUIRE(store->AddDerivedFrom(a.hash, b.hash).ok());
  LineageTarget target{LineageNode::Type::kArtifact, b.hash};
  for (std::optional<int> depth :
       {std::optional<int>(), std::optional<int>(50)}) {
    for (bool both : {false, true}) {
      LineageOptions options;
      options.depth = depth;
      options.down = both;
      Result<LineageGraph> g = store->WalkLineage(target, options);
      REQUIRE(g.ok());
      CHECK(g->nodes.size() == 3);  // a, b and the execution, once each
      CHECK(g->root == b.hash);
      std::size_t derived = 0;
      for (const auto& edge : g->edges) {
        derived += edge.type == LineageEdge::Type::kDerivedFrom;
      }
      CHECK(derived == 2);
    }
  }
}

TEST_CASE(
    "lineage: an SVG is refused for a graph past kLineageSvgMaxNodes, before "
    "any layout") {
  LineageGraph g;
  for (std::size_t i = 0; i <= kLineageSvgMaxNodes; ++i) {
    LineageNode n;
    n.id = std::to_string(i);
    g.nodes.push_back(n);
  }
  g.root = "0";
  Result<std::string> svg = LineageSvg(g);
  CHECK(svg.status().code() == Code::kInvalidArgument);
  CHECK(svg.status().message().find("2001 nodes") != std::string::npos);
  CHECK(svg.status().message().find("--depth") != std::string::npos);
}

namespace {

// A graph of a raw file -> RUN executions of stage "step", each using the
// model the one before made -> a final "report" execution; nodes are named
// e0.., m0.. (the model e<k> made), raw and report.
LineageGraph StepChain(int run) {
  LineageGraph g;
  auto add = [&](LineageNode::Type type, const std::string& id,
                 const std::string& stage) {
    LineageNode n;
    n.type = type;
    n.id = id;
    n.pipeline = "p";
    n.stage = stage;
    g.nodes.push_back(n);
    return g.nodes.size() - 1;
  };
  auto edge = [&](std::size_t from, std::size_t to, LineageEdge::Type t) {
    g.edges.push_back({from, to, t});
  };
  const std::size_t raw = add(LineageNode::Type::kArtifact, "raw", "");
  std::size_t before = raw;
  for (int k = 0; k < run; ++k) {
    const std::size_t e =
        add(LineageNode::Type::kExecution, "e" + std::to_string(k), "step");
    edge(before, e, LineageEdge::Type::kInput);
    if (k > 0) edge(raw, e, LineageEdge::Type::kInput);  // every step reads it
    before = add(LineageNode::Type::kArtifact, "m" + std::to_string(k), "");
    edge(e, before, LineageEdge::Type::kOutput);
  }
  const std::size_t report =
      add(LineageNode::Type::kExecution, "report", "report");
  edge(before, report, LineageEdge::Type::kInput);
  g.root = "report";
  return g;
}

}  // namespace

TEST_CASE(
    "lineage: a run of executions of one stage, each using what the one "
    "before made, collapses into one node that can be expanded") {
  const LineageGraph g = StepChain(50);
  REQUIRE(g.nodes.size() == 102);
  const LineageGraph c = CollapseRuns(g, 4);
  // raw, the run's node, the last model (used by report), report.
  REQUIRE(c.nodes.size() == 4);
  const LineageNode* run = nullptr;
  for (const LineageNode& n : c.nodes) {
    if (n.collapsed.size() > 1) run = &n;
  }
  REQUIRE(run != nullptr);
  CHECK(run->id == "e0");
  CHECK(run->collapsed.size() == 50);
  CHECK(run->collapsed.back() == "e49");
  // Edges: raw -> run (once, though 50 executions read it), run -> m49,
  // m49 -> report.
  CHECK(c.edges.size() == 3);
  std::set<std::pair<std::string, std::string>> ends;
  for (const LineageEdge& e : c.edges) {
    ends.insert({c.nodes[e.from].id, c.nodes[e.to].id});
  }
  CHECK(ends == std::set<std::pair<std::string, std::string>>{
                    {"raw", "e0"}, {"e0", "m49"}, {"m49", "report"}});
  CHECK(c.root == "report");
  CHECK(LineageDot(c).find("50 runs") != std::string::npos);
  // Expanded, or shorter than the minimum: as it was.
  CHECK(CollapseRuns(g, 4, {"e0"}).nodes.size() == 102);
  CHECK(CollapseRuns(StepChain(3), 4).nodes.size() == 8);
  // A model used by two executions breaks the run there.
  LineageGraph forked = StepChain(10);
  std::size_t m4 = 0, e9 = 0;
  for (std::size_t i = 0; i < forked.nodes.size(); ++i) {
    if (forked.nodes[i].id == "m4") m4 = i;
    if (forked.nodes[i].id == "e9") e9 = i;
  }
  forked.edges.push_back({m4, e9, LineageEdge::Type::kInput});
  const LineageGraph fc = CollapseRuns(forked, 4);
  std::size_t runs = 0;
  for (const LineageNode& n : fc.nodes) runs += n.collapsed.size() > 1;
  CHECK(runs == 2);  // e0..e4 and e5..e9
}

namespace {

// The metrics lines of the segment that commits what STORE has pending.
std::vector<std::string> CommitMetricLines(Store& store) {
  std::vector<std::string> lines;
  Result<Store::Segment> seg = store.CommitPending(
      {}, [](const Store::Segment&) { return Status::Ok(); });
  REQUIRE_MESSAGE(seg.ok(), seg.status().message());
  std::istringstream in(seg->text);
  for (std::string line; std::getline(in, line);) {
    if (line.find("\"t\":\"metrics\"") != std::string::npos)
      lines.push_back(line);
  }
  return lines;
}

}  // namespace

TEST_CASE(
    "store: a commit seals the steps logged since the last one, and only "
    "those") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  RowId row = store->BeginExecution(Record("train", 1000)).value();
  std::vector<MetricPoint> first = {{0, 3.0}, {1, 1.0}};
  REQUIRE(store->LogMetrics(row, "loss", first).ok());
  REQUIRE(store->LogMetrics(row, "acc", first).ok());
  CHECK(store->CountPending()->facts > 4);  // the execution, its state, steps
  CHECK(CommitMetricLines(*store).size() == 2);
  CHECK(store->CountPending()->facts == 0);

  // One step more to one series, one step logged again to the other (out of
  // order: its summary is made again from the steps), and a batch large
  // enough to go without the foreign key checks.
  std::vector<MetricPoint> more = {{2, 0.5}};
  REQUIRE(store->LogMetrics(row, "loss", more).ok());
  std::vector<MetricPoint> again = {{0, 9.0}};
  REQUIRE(store->LogMetrics(row, "acc", again).ok());
  std::vector<MetricPoint> big;
  for (int i = 0; i < 100; ++i) big.push_back({i, i * 0.5});
  REQUIRE(store->LogMetrics(row, "mll", big).ok());
  CHECK(store->CountPending()->facts == 102);
  std::vector<std::string> lines = CommitMetricLines(*store);
  REQUIRE(lines.size() == 3);
  std::sort(lines.begin(), lines.end());
  CHECK(lines[0].find("\"series\":\"acc\",\"steps\":[0],\"t\":\"metrics\","
                      "\"values\":[9.0]") != std::string::npos);
  CHECK(lines[1].find("\"series\":\"loss\",\"steps\":[2],") !=
        std::string::npos);
  CHECK(lines[2].find("\"series\":\"mll\",\"steps\":[0,1,2,") !=
        std::string::npos);
  CHECK(store->CountPending()->facts == 0);
  MetricSeries all =
      store->GetMetrics(store->ListExecutions({})->at(0).id).value();
  CHECK(all.at("loss").size() == 3);
  CHECK(all.at("acc").at(0).value == 9.0);
  CHECK(all.at("mll").size() == 100);

  // A batch for an execution that is not there is refused, checks or not.
  CHECK(store->LogMetrics(row + 100, "mll", big).code() == Code::kNotFound);
  std::vector<MetricPoint> one = {{0, 1.0}};
  CHECK(!store->LogMetrics(row + 100, "mll", one).ok());
}

TEST_CASE(
    "store: a version 7 store keeps its uncommitted steps pending after the "
    "upgrade") {
  TempDir dir;
  {
    auto store = NewStore(dir / "m.db");
    RowId row = store->BeginExecution(Record("train", 1000)).value();
    std::vector<MetricPoint> first = {{0, 3.0}, {1, 1.0}};
    REQUIRE(store->LogMetrics(row, "sealed", first).ok());
    CommitMetricLines(*store);
    REQUIRE(store->LogMetrics(row, "loss", first).ok());
  }
  // Back to version 7: pending steps found by an index, not by a flag.
  RunSql(dir / "m.db",
         "DROP INDEX metric_summary_pending;"
         "ALTER TABLE metric_summary DROP COLUMN pending_from;"
         "CREATE INDEX metric_pending ON metric(execution_id, series_id) "
         "WHERE seg IS NULL;"
         "PRAGMA user_version=7;");
  StoreOptions options;
  options.site = "site-a";
  Result<std::unique_ptr<Store>> store = Store::Open(dir / "m.db", options);
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  CHECK(UserVersion(dir / "m.db") == kStoreSchemaVersion);
  CHECK((*store)->CountPending()->facts == 2);
  std::vector<std::string> lines = CommitMetricLines(**store);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("\"series\":\"loss\"") != std::string::npos);
  CHECK((*store)->CountPending()->facts == 0);
}
