// --where expressions, metric summaries, tags (and their travel in segments)
// and environment descriptions: what cmf compare, diff and tag stand on.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cmath>

#include "cmf/clock.h"
#include "cmf/data/hash.h"
#include "cmf/environment.h"
#include "cmf/store.h"
#include "cmf/where.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
using cmf::test::WriteFile;
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

ExecutionRecord Run(const std::string& stage, std::int64_t started_ms,
                    std::map<std::string, Value> params) {
  ExecutionRecord r;
  r.id = NewUuidV7(started_ms).value();
  r.pipeline = "ALDKL";
  r.stage = stage;
  r.params = std::move(params);
  r.host = "edge";
  r.user = "sci";
  r.site = "site-a";
  r.started_ms = started_ms;
  return r;
}

bool Holds(const std::string& text, const ExecutionRecord& r,
           const MetricSummaries& m = {},
           const std::map<std::string, MetricAggregate>& how = {}) {
  Result<WhereExpr> e = WhereExpr::Parse(text);
  REQUIRE_MESSAGE(e.ok(), e.status().message());
  return e->Matches(r, &m, how);
}

// The message of a refused expression.
std::string Refusal(const std::string& text) {
  Result<WhereExpr> e = WhereExpr::Parse(text);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().code() == Code::kInvalidArgument);
  return e.status().message();
}

MetricSummary Summary(double last, double min, double max, double mean,
                      std::int64_t steps) {
  MetricSummary s;
  s.last = last;
  s.min = min;
  s.max = max;
  s.mean = mean;
  s.steps = steps;
  s.last_step = steps - 1;
  return s;
}

}  // namespace

TEST_CASE("where: comparisons, numbers as numbers, and/or/not precedence") {
  ExecutionRecord r = Run("dkl-al", 1'700'000'000'000,
                          {{"lr", 0.01},
                           {"epochs", std::int64_t{200}},
                           {"acquisition", std::string("ei")},
                           {"seed_text", std::string("12")},
                           {"cold", true}});
  r.status = ExecStatus::kOk;
  r.tags = {{"deployed", "microscope-2"}};
  MetricSummaries m;
  m["rmse"] = Summary(0.015, 0.01, 0.2, 0.05, 50);

  CHECK(Holds("metrics.rmse < 0.02 and params.acquisition = 'ei'", r, m));
  CHECK_FALSE(Holds("metrics.rmse < 0.01", r, m));
  // The summary a caller chose, or one named by a suffix.
  CHECK(Holds("metrics.rmse < 0.012", r, m, {{"rmse", MetricAggregate::kMin}}));
  CHECK(Holds("metrics.rmse:max >= 0.2 and metrics.rmse:steps = 50", r, m));
  CHECK(Holds("metrics.rmse:mean > 0.049 and metrics.rmse:mean < 0.051", r, m));
  // 200 > 9 as numbers (as text "200" < "9").
  CHECK(Holds("params.epochs > 9", r));
  CHECK(Holds("params.epochs = 200.0", r));
  CHECK(Holds("params.seed_text < 100", r));  // a text that is a number
  CHECK(Holds("params.acquisition != 'ucb'", r));
  CHECK(Holds("params.acquisition = ei", r));  // a bare word
  CHECK(Holds("params.cold = true and not params.cold = false", r));
  CHECK(Holds("tags.deployed = \"microscope-2\"", r));
  CHECK(Holds("status = 'ok' and stage = 'dkl-al' and pipeline = ALDKL", r));
  // not binds tighter than and, and tighter than or.
  CHECK(Holds("status = 'failed' or stage = 'dkl-al' and params.lr < 1", r));
  CHECK_FALSE(
      Holds("(status = 'failed' or stage = 'dkl-al') and params.lr > 1", r));
  CHECK(
      Holds("not status = 'failed' and not (params.lr > 1 or "
            "params.epochs < 100)",
            r));
}

TEST_CASE("where: a value the execution lacks makes every comparison false") {
  ExecutionRecord r = Run("train", 1'700'000'000'000, {{"lr", 0.01}});
  MetricSummaries m;
  m["loss"] = Summary(std::nan(""), 0.1, 0.3, 0.2, 3);
  CHECK_FALSE(Holds("params.missing = 1", r, m));
  CHECK_FALSE(Holds("params.missing != 1", r, m));
  CHECK(Holds("not params.missing = 1", r, m));
  CHECK_FALSE(Holds("metrics.rmse < 10", r, m));  // no such series
  CHECK_FALSE(Holds("metrics.loss < 10", r, m));  // its last step was NaN
  CHECK_FALSE(Holds("metrics.loss >= 10", r, m));
  CHECK(Holds("metrics.loss:min = 0.1", r, m));
  CHECK_FALSE(Holds("ended > 0", r, m));  // still running
  CHECK_FALSE(Holds("tags.deployed = ''", r, m));
}

TEST_CASE("where: started and ended compare with dates") {
  ExecutionRecord r =
      Run("train", ParseDateUtc("2026-12-01T10:00:00Z").value(), {});
  r.ended_ms = r.started_ms + 60'000;
  CHECK(Holds("started >= '2026-12-01' and started < '2026-12-02'", r));
  CHECK(Holds("started = '2026-12-01T10:00:00Z'", r));
  CHECK(Holds("ended > '2026-12-01T10:00:30Z'", r));
  CHECK(Holds("started < " + std::to_string(r.started_ms + 1), r));
  // The store is asked only for the days the expression allows.
  ExecutionFilter filter;
  WhereExpr::Parse(
      "stage = train and started >= '2026-12-01' and started < "
      "'2026-12-02' and params.lr > 0")
      ->Narrow(&filter);
  CHECK(filter.stage == "train");
  CHECK(filter.since_ms == ParseDateUtc("2026-12-01"));
  CHECK(filter.until_ms == ParseDateUtc("2026-12-02"));
  ExecutionFilter open;
  WhereExpr::Parse("stage = train or stage = test")->Narrow(&open);
  CHECK_FALSE(open.stage.has_value());  // not required by the whole
}

TEST_CASE("where: a malformed expression says where it fails") {
  std::string m = Refusal("metrics.rmse < and x");
  CHECK(m.find("expected a value") != std::string::npos);
  CHECK(m.find("at character 16") != std::string::npos);
  // The caret sits under the 16th character.
  CHECK(m.find("\n  metrics.rmse < and x\n  " + std::string(15, ' ') + "^") !=
        std::string::npos);
  CHECK(Refusal("").find("empty") != std::string::npos);
  CHECK(Refusal("(params.lr < 1").find("expected ')'") != std::string::npos);
  CHECK(Refusal("params.lr < 1)").find("at character 14") != std::string::npos);
  CHECK(Refusal("lr = 1").find("unknown field 'lr'") != std::string::npos);
  CHECK(Refusal("params.lr").find("expected an operator") != std::string::npos);
  CHECK(Refusal("params.lr ~ 1").find("at character 11") != std::string::npos);
  CHECK(Refusal("params.lr =< 1").find("expected an operator") !=
        std::string::npos);
  CHECK(Refusal("params.x = 'open").find("not closed") != std::string::npos);
  CHECK(Refusal("status = done").find("running, ok, failed") !=
        std::string::npos);
  CHECK(Refusal("started > yesterday").find("expected a date") !=
        std::string::npos);
  CHECK(Refusal("metrics.rmse:median < 1").find("at character 14") !=
        std::string::npos);
  CHECK(Refusal("params. = 1").find("expected a name") != std::string::npos);
  CHECK(Refusal("params.a = 1 and").find("expected a comparison") !=
        std::string::npos);
  CHECK(Refusal("params.a = 1 params.b = 2").find("expected 'and', 'or'") !=
        std::string::npos);
  CHECK(Refusal(std::string(500, '(') + "params.a = 1" + std::string(500, ')'))
            .find("nested too deeply") != std::string::npos);
}

TEST_CASE("metric summaries follow appends, replaced steps and NaN") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord r = Run("train", 1000, {});
  RowId row = store->BeginExecution(r).value();
  for (int step = 0; step < 5; ++step) {
    MetricPoint p{step, 1.0 + step};
    REQUIRE(store->LogMetrics(row, "loss", {&p, 1}).ok());
  }
  std::vector<std::string> ids = {r.id};
  auto get = [&] {
    return store->SummarizeMetrics(ids).value().at(r.id).at("loss");
  };
  MetricSummary s = get();
  CHECK(s.steps == 5);
  CHECK(s.last_step == 4);
  CHECK(s.last == 5.0);
  CHECK(s.min == 1.0);
  CHECK(s.max == 5.0);
  CHECK(s.mean == doctest::Approx(3.0));
  // A step logged again replaces its value: the summary is made again.
  MetricPoint again{4, -2.0};
  REQUIRE(store->LogMetrics(row, "loss", {&again, 1}).ok());
  s = get();
  CHECK(s.steps == 5);
  CHECK(s.last == -2.0);
  CHECK(s.min == -2.0);
  CHECK(s.max == 4.0);
  // An earlier step logged late: last stays the value of the last step.
  std::vector<MetricPoint> late = {{-1, 100.0}, {7, std::nan("")}};
  REQUIRE(store->LogMetrics(row, "loss", late).ok());
  s = get();
  CHECK(s.steps == 7);
  CHECK(s.last_step == 7);
  CHECK(std::isnan(s.last));
  CHECK(s.max == 100.0);
  CHECK(s.mean == doctest::Approx((1 + 2 + 3 + 4 - 2 + 100) / 6.0));
  // Only NaN: no minimum, maximum or mean.
  MetricPoint nan{0, std::nan("")};
  REQUIRE(store->LogMetrics(row, "empty", {&nan, 1}).ok());
  MetricSummary e = store->SummarizeMetrics(ids).value().at(r.id).at("empty");
  CHECK(e.steps == 1);
  CHECK(std::isnan(e.min));
  CHECK(std::isnan(e.mean));
  // An execution without metrics is left out.
  ExecutionRecord quiet = Run("train", 2000, {});
  REQUIRE(store->BeginExecution(quiet).ok());
  std::vector<std::string> both = {r.id, quiet.id};
  CHECK(store->SummarizeMetrics(both).value().count(quiet.id) == 0);
}

TEST_CASE(
    "metric summaries: a listing reads each execution's series, by name") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  // Series made out of name order, shared by executions over several pages
  // of the scan, and one execution with none.
  std::vector<std::string> ids;
  for (int e = 0; e < 7; ++e) {
    ExecutionRecord r = Run("train", 1000 + e, {});
    RowId row = store->BeginExecution(r).value();
    ids.push_back(r.id);
    if (e == 3) continue;
    for (const char* name : {"zeta", "alpha", "mid"}) {
      MetricPoint p{0, e + (name[0] == 'a' ? 0.5 : 0.0)};
      REQUIRE(store->LogMetrics(row, name, {&p, 1}).ok());
    }
    if (e == 5) {
      MetricPoint p{0, 9.0};
      REQUIRE(store->LogMetrics(row, "beta", {&p, 1}).ok());
    }
  }
  ExecutionFilter filter;
  filter.metric_summaries = true;
  filter.events = false;
  std::map<std::string, MetricSummaries> seen;
  REQUIRE(store
              ->ScanExecutions(
                  filter,
                  [&](std::vector<ExecutionRecord>& page) {
                    for (ExecutionRecord& r : page) {
                      seen[r.id] = r.metric_summaries;
                    }
                    return Status::Ok();
                  },
                  /*page_size=*/2)
              .ok());
  REQUIRE(seen.size() == 7);
  for (int e = 0; e < 7; ++e) {
    const MetricSummaries& m = seen.at(ids[e]);
    if (e == 3) {
      CHECK(m.empty());
      continue;
    }
    std::vector<std::string> names;
    for (const auto& [name, s] : m) names.push_back(name);
    std::vector<std::string> want = {"alpha", "mid", "zeta"};
    if (e == 5) want = {"alpha", "beta", "mid", "zeta"};
    CHECK(names == want);
    CHECK(m.at("alpha").last == e + 0.5);
    CHECK(m.at("zeta").last == e);
  }
  // As SummarizeMetrics says.
  CHECK(store->SummarizeMetrics(ids).value().at(ids[5]).at("beta").last == 9.0);
}

TEST_CASE(
    "listings read the same records whether their ids are dense or sparse") {
  // Three stages interleaved: a listing of one stage has ids three apart
  // (read through a temp table of ids), a listing of all of them has every
  // id (read by a walk over the range); either must give each record whole.
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  const std::vector<std::string> stages = {"a", "b", "c"};
  for (int e = 0; e < 12; ++e) {
    ExecutionRecord r =
        Run(stages[e % 3], 1000 + e, {{"e", std::int64_t{e}}, {"lr", 0.5}});
    RowId row = store->BeginExecution(r).value();
    REQUIRE(store
                ->SetProperty(RecordType::kExecution, r.id, "k",
                              Value{std::int64_t{e * 10}})
                .ok());
    REQUIRE(
        store
            ->SetTag(RecordType::kExecution, r.id, "t", "v" + std::to_string(e))
            .ok());
    MetricPoint p{0, e * 1.5};
    REQUIRE(store->LogMetrics(row, "loss", {&p, 1}).ok());
    ArtifactRef in{"in.h5", std::string(64, 'a'), 10, ArtifactKind::kDataset};
    ArtifactRef out{"out-" + std::to_string(e),
                    std::string(63, 'b') + "0123456789ab"[e], 20,
                    ArtifactKind::kModel};
    REQUIRE(store->AddEvent(row, Direction::kInput, 0, in).ok());
    REQUIRE(store->AddEvent(row, Direction::kOutput, 0, out).ok());
    REQUIRE(
        store->SetExecutionState(row, ExecStatus::kOk, 0, 2000 + e, "").ok());
  }
  auto check = [&](const ExecutionRecord& r) {
    const std::int64_t e = std::get<std::int64_t>(r.params.at("e"));
    INFO("execution ", e);
    CHECK(r.stage == stages[e % 3]);
    CHECK(r.params.size() == 2);
    CHECK(std::get<std::int64_t>(r.properties.at("k")) == e * 10);
    CHECK(r.tags.at("t") == "v" + std::to_string(e));
    CHECK(r.metric_summaries.at("loss").last == e * 1.5);
    CHECK(r.status == ExecStatus::kOk);
    CHECK(r.ended_ms == 2000 + e);
    REQUIRE(r.inputs.size() == 1);
    REQUIRE(r.outputs.size() == 1);
    CHECK(r.outputs[0].path == "out-" + std::to_string(e));
  };
  ExecutionFilter one;
  one.stage = "b";
  one.metric_summaries = true;
  std::vector<ExecutionRecord> b = store->ListExecutions(one).value();
  REQUIRE(b.size() == 4);
  for (const ExecutionRecord& r : b) check(r);
  ExecutionFilter all;
  all.metric_summaries = true;
  std::vector<ExecutionRecord> every = store->ListExecutions(all).value();
  REQUIRE(every.size() == 12);
  for (const ExecutionRecord& r : every) check(r);
  // Newest first, whichever way they were read.
  CHECK(std::get<std::int64_t>(b.front().params.at("e")) == 10);
  CHECK(std::get<std::int64_t>(every.front().params.at("e")) == 11);
}

TEST_CASE("metric summaries: Assign sorts by name and keeps the later of two") {
  MetricSummaries m;
  m.Assign({{"b", Summary(1, 1, 1, 1, 1)},
            {"a", Summary(2, 2, 2, 2, 2)},
            {"b", Summary(3, 3, 3, 3, 3)}});
  REQUIRE(m.size() == 2);
  CHECK(m.begin()->first == "a");
  CHECK(m.at("b").last == 3);
  m.Assign({});
  CHECK(m.empty());
}

TEST_CASE(
    "FormatIsoUtc: milliseconds, before 1970, and years past four digits") {
  CHECK(FormatIsoUtc(0) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatIsoUtc(1'764'979'200'123) == "2025-12-06T00:00:00.123Z");
  CHECK(FormatIsoUtc(-1) == "1969-12-31T23:59:59.999Z");
  CHECK(FormatIsoUtc(951'782'400'000) == "2000-02-29T00:00:00.000Z");
  // Year 10000 and after: the year takes the digits it needs.
  CHECK(FormatIsoUtc(253'402'300'800'000) == "10000-01-01T00:00:00.000Z");
}

TEST_CASE(
    "store: a version 6 store gets tags and the summaries of its metrics") {
  TempDir dir;
  ExecutionRecord r = Run("train", 1000, {});
  {
    auto store = NewStore(dir / "m.db");
    RowId row = store->BeginExecution(r).value();
    std::vector<MetricPoint> points = {{0, 3.0}, {1, 1.0}, {2, 2.0}};
    REQUIRE(store->LogMetrics(row, "loss", points).ok());
  }
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((dir / "m.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db,
                       "DROP TABLE tag; DROP TABLE metric_summary; PRAGMA "
                       "user_version=6;",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  StoreOptions options;
  options.site = "site-a";
  auto store = Store::Open(dir / "m.db", options);
  REQUIRE_MESSAGE(store.ok(), store.status().message());
  std::vector<std::string> ids = {r.id};
  MetricSummary s = (*store)->SummarizeMetrics(ids).value().at(r.id).at("loss");
  CHECK(s.steps == 3);
  CHECK(s.last == 2.0);
  CHECK(s.min == 1.0);
  CHECK(s.max == 3.0);
  CHECK((*store)->SetTag(RecordType::kExecution, r.id, "best", "").ok());
}

TEST_CASE("tags: set, replace, remove; an alias names the newest") {
  TempDir dir;
  auto store = NewStore(dir / "m.db");
  ExecutionRecord r = Run("train", 1000, {});
  RowId row = store->BeginExecution(r).value();
  ArtifactRef m1{"m1.pt", std::string(64, 'a'), 10, ArtifactKind::kModel};
  ArtifactRef m2{"m2.pt", std::string(64, 'b'), 10, ArtifactKind::kModel};
  REQUIRE(store->AddEvent(row, Direction::kOutput, 0, m1).ok());
  REQUIRE(store->AddEvent(row, Direction::kOutput, 1, m2).ok());

  REQUIRE(store->SetTag(RecordType::kExecution, r.id, "best", "").ok());
  REQUIRE(store->SetTag(RecordType::kExecution, r.id, "note", "a").ok());
  REQUIRE(store->SetTag(RecordType::kExecution, r.id, "note", "b").ok());
  CHECK(store->GetExecution(r.id)->tags ==
        std::map<std::string, std::string>{{"best", ""}, {"note", "b"}});
  REQUIRE(
      store->SetTag(RecordType::kExecution, r.id, "best", std::nullopt).ok());
  CHECK(store->GetTags(RecordType::kExecution, r.id).value() ==
        std::map<std::string, std::string>{{"note", "b"}});
  CHECK(store->SetTag(RecordType::kExecution, r.id, "best", std::nullopt)
            .code() == Code::kNotFound);
  CHECK(store->SetTag(RecordType::kArtifact, std::string(64, 'c'), "x", "y")
            .code() == Code::kNotFound);
  CHECK(store->SetTag(RecordType::kPipeline, "ALDKL", "x", "y").code() ==
        Code::kInvalidArgument);
  CHECK(store->SetTag(RecordType::kExecution, r.id, "", "y").code() ==
        Code::kInvalidArgument);
  CHECK(store->SetTag(RecordType::kExecution, r.id, "x", "\xff").code() ==
        Code::kInvalidArgument);

  // The alias moves: tagging m2 after m1 makes m2 the one it names.
  REQUIRE(
      store->SetTag(RecordType::kArtifact, m1.hash, "deployed", "mic-2").ok());
  REQUIRE(
      store->SetTag(RecordType::kArtifact, m2.hash, "deployed", "mic-2").ok());
  auto tagged = store->FindTagged("deployed", std::string("mic-2")).value();
  REQUIRE(tagged.size() == 2);
  CHECK(tagged[0].key == m2.hash);
  CHECK(tagged[0].type == RecordType::kArtifact);
  CHECK(store->FindTagged("deployed", std::string("mic-9"))->empty());
  REQUIRE(
      store->SetTag(RecordType::kArtifact, m2.hash, "deployed", std::nullopt)
          .ok());
  tagged = store->FindTagged("deployed", std::nullopt).value();
  REQUIRE(tagged.size() == 1);
  CHECK(tagged[0].key == m1.hash);
}

TEST_CASE("tags travel in segments; the newest fact wins at every site") {
  TempDir dir;
  auto a = NewStore(dir / "a.db", "site-a");
  auto b = NewStore(dir / "b.db", "site-b");
  ExecutionRecord r = Run("train", 1000, {});
  REQUIRE(a->BeginExecution(r).ok());
  REQUIRE(a->SetTag(RecordType::kExecution, r.id, "deployed", "mic-1").ok());
  auto pass = [](Store& from, Store& to) {
    Result<Store::Segment> seg = from.CommitPending(
        {}, [](const Store::Segment&) { return Status::Ok(); });
    REQUIRE(seg.ok());
    REQUIRE(seg->facts > 0);
    CHECK(seg->text.find("\"t\":\"tag\"") != std::string::npos);
    auto outcome = to.IngestSegment(seg->hash, seg->text);
    REQUIRE(outcome.ok());
    INFO(outcome->reason);
    CHECK(outcome->kind == Store::IngestOutcome::Kind::kApplied);
  };
  pass(*a, *b);
  CHECK(b->GetExecution(r.id)->tags.at("deployed") == "mic-1");
  // B moves it, A removes it later: A's removal is the newer fact.
  REQUIRE(b->SetTag(RecordType::kExecution, r.id, "deployed", "mic-2").ok());
  pass(*b, *a);
  CHECK(a->GetExecution(r.id)->tags.at("deployed") == "mic-2");
  REQUIRE(
      a->SetTag(RecordType::kExecution, r.id, "deployed", std::nullopt).ok());
  pass(*a, *b);
  CHECK(b->GetExecution(r.id)->tags.empty());
  CHECK(a->GetExecution(r.id)->tags.empty());
}

TEST_CASE(
    "tags: a malformed tag fact from another site keeps its segment out") {
  TempDir dir;
  auto a = NewStore(dir / "a.db", "site-a");
  auto b = NewStore(dir / "b.db", "site-b");
  ExecutionRecord r = Run("train", 1000, {});
  REQUIRE(a->BeginExecution(r).ok());
  REQUIRE(a->SetTag(RecordType::kExecution, r.id, "deployed", "mic-1").ok());
  Result<Store::Segment> seg =
      a->CommitPending({}, [](const Store::Segment&) { return Status::Ok(); });
  REQUIRE(seg.ok());
  // The same segment with the tag's value a number, then with a target
  // type tags do not have: each is refused whole (the execution too).
  for (auto [from, to] : {std::pair{"\"value\":\"mic-1\"", "\"value\":7"},
                          std::pair{"\"target_type\":\"execution\",\"value\"",
                                    "\"target_type\":\"stage\",\"value\""}}) {
    std::string text = seg->text;
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, std::string(from).size(), to);
    auto outcome = b->IngestSegment(data::HashBytes(text), text);
    REQUIRE(outcome.ok());
    CHECK(outcome->kind == Store::IngestOutcome::Kind::kQuarantined);
    CHECK(outcome->reason.find("tag") != std::string::npos);
    CHECK(b->GetExecution(r.id).status().code() == Code::kNotFound);
  }
}

TEST_CASE("environment: Debian packages and Python distributions, sorted") {
  TempDir dir;
  WriteFile(dir / "status",
            "Package: libfoo1\nStatus: install ok installed\nVersion: 1.2-3\n\n"
            "Package: gone\nStatus: deinstall ok config-files\nVersion: 9\n\n"
            "Package: bar\nStatus: install ok installed\nArchitecture: all\n"
            "Version: 2:0.5\n");
  fs::create_directories(dir / "py" / "numpy-1.24.2.dist-info");
  fs::create_directories(dir / "py" / "PyYAML-6.0-py3.11.egg-info");
  fs::create_directories(dir / "py" / "Torch_Geo-2.0.dist-info");
  fs::create_directories(dir / "py" / "numpy");  // a package, not metadata
  EnvironmentSources sources;
  sources.dpkg_status = dir / "status";
  sources.python = {dir / "py", dir / "absent"};
  const std::string text = DescribeEnvironment(sources);
  CHECK(text ==
        "deb bar 2:0.5\n"
        "deb libfoo1 1.2-3\n"
        "python numpy 1.24.2\n"
        "python pyyaml 6.0\n"
        "python torch-geo 2.0\n");
  auto packages = ParseEnvironment(text + "junk\n");
  CHECK(packages.size() == 5);
  CHECK(packages.at("deb libfoo1") == "1.2-3");
  CHECK(packages.at("python pyyaml") == "6.0");
  // Nothing to read: an empty description, not an error.
  EnvironmentSources none;
  none.dpkg_status = dir / "no-status";
  none.python = {dir / "absent"};
  CHECK(DescribeEnvironment(none).empty());
}
