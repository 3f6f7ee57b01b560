// What a site takes from others, over real stores: every fact of a segment or
// an import is checked, a bad segment is quarantined (once, nothing of it
// applied) while the others go on, and the hybrid logical clock is bounded.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "cmf/clock.h"
#include "cmf/data/hash.h"
#include "cmf/segment.h"
#include "cmf/store.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

class FixedClock : public Clock {
 public:
  explicit FixedClock(std::int64_t ms) : ms_(ms) {}
  std::int64_t NowMs() const override { return ms_; }

 private:
  std::int64_t ms_;
};

constexpr std::int64_t kNow = 1'780'000'000'000;  // in 2026
const std::string kExec = "01900000-0000-7000-8000-000000000001";
const std::string kExec2 = "01900000-0000-7000-8000-000000000002";

std::unique_ptr<Store> OpenStore(const fs::path& path, const std::string& site,
                                 std::int64_t now_ms = kNow) {
  StoreOptions options;
  options.create = true;
  options.site = site;
  options.clock = std::make_shared<FixedClock>(now_ms);
  Result<std::unique_ptr<Store>> store = Store::Open(path, options);
  REQUIRE(store.ok());
  return std::move(store).value();
}

// A segment of SITE with LINES, its header as cmf writes it (or HEADER).
std::string Segment(const std::string& site,
                    const std::vector<std::string>& lines,
                    const std::string& header = "") {
  std::string text =
      (header.empty() ? SegmentHeader{site, 1}.Line() : header) + "\n";
  for (const std::string& l : lines) text += l + "\n";
  return text;
}

// A fact line: BASE with the members of CHANGES put over it (null removes).
std::string Fact(json base, const json& changes) {
  for (const auto& [k, v] : changes.items()) {
    if (v.is_null()) {
      base.erase(k);
    } else {
      base[k] = v;
    }
  }
  return base.dump();
}

std::string Execution(const json& changes = json::object(),
                      const std::string& id = kExec) {
  return Fact({{"t", "execution"},
               {"id", id},
               {"pipeline", "al"},
               {"stage", "train"},
               {"command", {"train", "--lr", "0.1"}},
               {"code", nullptr},
               {"host", "edge"},
               {"user", "sci"},
               {"site", "site-a"},
               {"started_ms", kNow - 1000},
               {"params", {{"lr", {{"type", "real"}, {"value", 0.1}}}}}},
              changes);
}

std::string State(const json& changes = json::object(),
                  const std::string& id = kExec) {
  return Fact({{"t", "state"},
               {"execution", id},
               {"hlc", (kNow - 500) << 16},
               {"site", "site-a"},
               {"status", "ok"},
               {"exit_code", 0},
               {"ended_ms", kNow - 500},
               {"message", ""}},
              changes);
}

std::string Artifact(const json& changes = json::object()) {
  return Fact({{"t", "artifact"},
               {"hash", data::HashBytes("out")},
               {"algorithm", "sha256"},
               {"kind", "model"},
               {"size", 3}},
              changes);
}

std::string Event(const json& changes = json::object()) {
  return Fact({{"t", "event"},
               {"execution", kExec},
               {"direction", "output"},
               {"position", 0},
               {"artifact", data::HashBytes("out")},
               {"path", "model.pt"}},
              changes);
}

std::string Metrics(const json& changes = json::object()) {
  return Fact({{"t", "metrics"},
               {"execution", kExec},
               {"series", "loss"},
               {"steps", {0, 1}},
               {"values", {0.5, nullptr}}},
              changes);
}

std::string Property(const json& changes = json::object()) {
  return Fact({{"t", "property"},
               {"target_type", "execution"},
               {"target", kExec},
               {"name", "note"},
               {"hlc", (kNow - 400) << 16},
               {"site", "site-a"},
               {"type", "string"},
               {"value", "fine"}},
              changes);
}

Store::IngestOutcome Ingest(Store& store, const std::string& text) {
  Result<Store::IngestOutcome> r =
      store.IngestSegment(data::HashBytes(text), text);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return *r;
}

std::int64_t Executions(Store& store) {
  Result<std::int64_t> n = store.CountExecutions();
  REQUIRE(n.ok());
  return *n;
}

void RunSql(const fs::path& path, const std::string& sql,
            const std::vector<std::string>& args) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
  for (std::size_t i = 0; i < args.size(); ++i) {
    sqlite3_bind_text(s, static_cast<int>(i + 1), args[i].c_str(), -1,
                      SQLITE_TRANSIENT);
  }
  CHECK(sqlite3_step(s) == SQLITE_DONE);
  sqlite3_finalize(s);
  sqlite3_close(db);
}

}  // namespace

TEST_CASE(
    "ingest: a bad segment is quarantined once, applies nothing, and the "
    "others go on") {
  TempDir dir;
  auto store = OpenStore(dir / "b.db", "site-b");
  const std::string bad =
      Segment("site-a", {Execution({}, kExec2), "this is not json"});
  Store::IngestOutcome first = Ingest(*store, bad);
  CHECK(first.kind == Store::IngestOutcome::Kind::kQuarantined);
  CHECK(first.first_time);
  CHECK(first.reason == "line 3 is not JSON");
  CHECK(Executions(*store) == 0);  // its good line was rolled back with it
  CHECK_FALSE(*store->HasSegment(data::HashBytes(bad)));

  Store::IngestOutcome again = Ingest(*store, bad);
  CHECK(again.kind == Store::IngestOutcome::Kind::kQuarantined);
  CHECK_FALSE(again.first_time);  // said once

  Result<std::vector<Store::Quarantined>> listed = store->ListQuarantined();
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].site == "site-a");
  CHECK((*listed)[0].hash == data::HashBytes(bad));
  CHECK((*listed)[0].path == SegmentPath("site-a", data::HashBytes(bad)));
  CHECK((*listed)[0].reason == "line 3 is not JSON");

  const std::string good = Segment("site-a", {Execution(), State()});
  CHECK(Ingest(*store, good).kind == Store::IngestOutcome::Kind::kApplied);
  CHECK(Ingest(*store, good).kind == Store::IngestOutcome::Kind::kKnown);
  CHECK(Executions(*store) == 1);
}

TEST_CASE(
    "ingest: every malformed segment or fact is quarantined with its reason, "
    "none escapes as an exception") {
  struct Case {
    const char* what;
    std::vector<std::string> lines;
    std::string fragment;
    std::string header = "";
  };
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::uint64_t max_u64 = std::numeric_limits<std::uint64_t>::max();
  const std::int64_t max_i64 = std::numeric_limits<std::int64_t>::max();
  const std::vector<Case> cases = {
      {"a header whose format is a number",
       {},
       "not a cmf segment",
       R"({"format":1,"seq":1,"site":"site-a","version":1})"},
      {"a header whose version is a string",
       {},
       "not a cmf segment",
       R"({"format":"cmf-segment","seq":1,"site":"site-a","version":"1"})"},
      {"a header naming an invalid site",
       {},
       "'site' is not a site id",
       R"({"format":"cmf-segment","seq":1,"site":"../x","version":1})"},
      {"a value nested 100,000 deep", {deep}, "deeper than 64"},
      {"invalid UTF-8", {Execution({{"host", "caf"}}) + "\xe9"}, "not UTF-8"},
      {"a line that is an array", {"[1, 2]"}, "not a JSON object"},
      {"a kind that is not a string", {R"({"t": 5})"}, "'t' is not a string"},
      {"a parameter without a value",
       {Execution({{"params", {{"lr", {{"type", "real"}}}}}})},
       "no 'value'"},
      {"a parameter of an unknown type",
       {Execution({{"params", {{"lr", {{"type", "x"}, {"value", 1}}}}}})},
       "'type' is not one of"},
      {"metric values that are not numbers",
       {Execution(), Metrics({{"values", {"a", "b"}}})},
       "not a number"},
      {"metric steps that are not integers",
       {Execution(), Metrics({{"steps", {"0", "1"}}})},
       "'steps' is not an integer"},
      {"steps and values of two lengths",
       {Execution(), Metrics({{"steps", {0}}})},
       "one length"},
      {"a size of 2^64-1", {Artifact({{"size", max_u64}})}, "'size' is out"},
      {"a negative size", {Artifact({{"size", -1}})}, "'size' is out"},
      {"a hash that is a path",
       {Artifact({{"hash", "..//../../etc/hostname"}})},
       "'hash' is not a hash"},
      {"an upper-case hash",
       {Artifact({{"hash", "A" + std::string(63, 'a')}})},
       "'hash' is not a hash"},
      {"an unknown kind", {Artifact({{"kind", "weird"}})}, "'kind'"},
      {"an unknown algorithm",
       {Artifact({{"algorithm", "crc"}})},
       "'algorithm' is not one of"},
      {"a numeric command", {Execution({{"command", 5}})}, "'command'"},
      {"a command holding a number",
       {Execution({{"command", {"a", 5}}})},
       "'command' is not a string"},
      {"an execution id that is not a uuid",
       {Execution({{"id", "x"}})},
       "'id' is not an execution id"},
      {"a pipeline name holding a newline",
       {Execution({{"pipeline", "al\nrm -rf"}})},
       "'pipeline' is not a name"},
      {"an empty stage name", {Execution({{"stage", ""}})}, "'stage'"},
      {"an execution's invalid site",
       {Execution({{"site", "a b"}})},
       "'site' is not a site id"},
      {"code that is not an object", {Execution({{"code", 3}})}, "'code'"},
      {"code whose dirty flag is a string",
       {Execution(
           {{"code", {{"commit", "ab"}, {"dirty", "no"}, {"repo", ""}}}})},
       "'dirty'"},
      {"a missing start time",
       {Execution({{"started_ms", nullptr}})},
       "no 'started_ms'"},
      {"an unknown status",
       {Execution(), State({{"status", "done"}})},
       "'status'"},
      {"an exit code beyond an int",
       {Execution(), State({{"exit_code", max_i64}})},
       "'exit_code' is out"},
      {"a negative clock", {Execution(), State({{"hlc", -1}})}, "'hlc' is out"},
      {"a clock of 2^64-1",
       {Execution(), State({{"hlc", max_u64}})},
       "'hlc' is out"},
      {"a clock near the end of time",
       {Execution(), State({{"hlc", max_i64 - 1}})},
       "ahead of this site's"},
      {"a clock two days ahead",
       {Execution(), Property({{"hlc", (kNow + 2 * 86400000) << 16}})},
       "ahead of this site's"},
      {"a state naming an unknown execution",
       {State()},
       "names execution '" + kExec + "', which no ingested segment records"},
      {"an event naming an unknown artifact",
       {Execution(), Event()},
       "names artifact"},
      {"an event's unknown direction",
       {Execution(), Artifact(), Event({{"direction", "sideways"}})},
       "'direction'"},
      {"a property's name holding a control character",
       {Execution(), Property({{"name", "a\tb"}})},
       "'name' is not a name"},
      {"a property's value of another type",
       {Execution(), Property({{"type", "int"}})},
       "cannot be a JSON string"},
      {"a stage target without a pipeline",
       {Property({{"target_type", "stage"}, {"target", "nopipeline"}})},
       "PIPELINE/STAGE"},
      {"a location at an invalid site",
       {Artifact(), Fact({{"t", "location"},
                          {"hash", data::HashBytes("out")},
                          {"at", "../../x"}},
                         json::object())},
       "'at' is not a site id"},
  };
  TempDir dir;
  auto store = OpenStore(dir / "b.db", "site-b");
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const std::string text = Segment("site-a", c.lines, c.header);
    Store::IngestOutcome r = Ingest(*store, text);
    CHECK(r.kind == Store::IngestOutcome::Kind::kQuarantined);
    CHECK(r.first_time);
    INFO(r.reason);
    CHECK(r.reason.find(c.fragment) != std::string::npos);
    CHECK_FALSE(*store->HasSegment(data::HashBytes(text)));
  }
  CHECK(Executions(*store) == 0);
  CHECK(store->ListQuarantined()->size() == cases.size());

  // The same checks refuse the same facts imported, as InvalidArgument.
  for (const Case& c : cases) {
    if (!c.header.empty()) continue;
    CAPTURE(c.what);
    Status st = store->ImportFacts(Segment("import", c.lines));
    CHECK(st.code() == Code::kInvalidArgument);
  }
  CHECK(Executions(*store) == 0);
  CHECK(store->CountPending()->facts == 0);
}

TEST_CASE(
    "ingest: a segment under a name that is not its hash, or another site's "
    "path, is quarantined") {
  TempDir dir;
  auto store = OpenStore(dir / "b.db", "site-b");
  const std::string text = Segment("site-a", {Execution()});
  Result<Store::IngestOutcome> renamed =
      store->IngestSegment(std::string(64, '0'), text);
  REQUIRE(renamed.ok());
  CHECK(renamed->kind == Store::IngestOutcome::Kind::kQuarantined);
  CHECK(renamed->reason == "its name is not the SHA-256 of its text");

  Result<Store::IngestOutcome> forged =
      store->IngestSegment(data::HashBytes(text), text, "site-c");
  REQUIRE(forged.ok());
  CHECK(forged->kind == Store::IngestOutcome::Kind::kQuarantined);
  CHECK(forged->reason.find("names the site 'site-a', not 'site-c'") !=
        std::string::npos);
  CHECK(Executions(*store) == 0);
  // At its own site's path the same text is fine.
  Result<Store::IngestOutcome> right =
      store->IngestSegment(data::HashBytes(text), text, "site-a");
  REQUIRE(right.ok());
  CHECK(right->kind == Store::IngestOutcome::Kind::kApplied);
}

TEST_CASE(
    "ingest: a segment of a newer format waits for a cmf that reads it, and "
    "what depends on it goes in with it") {
  TempDir dir;
  auto store = OpenStore(dir / "b.db", "site-b");
  const std::string newer = Segment(
      "site-a", {Execution()},
      R"({"format":"cmf-segment","seq":1,"site":"site-a","version":3})");
  Store::IngestOutcome skipped = Ingest(*store, newer);
  CHECK(skipped.kind == Store::IngestOutcome::Kind::kQuarantined);
  CHECK(skipped.needs_format == 3);
  CHECK(skipped.reason == "needs cmf segment format 3; this cmf reads up to 2");
  // A later segment naming its execution is held back too, and says why.
  const std::string later = Segment("site-a", {State()});
  Store::IngestOutcome held = Ingest(*store, later);
  CHECK(held.kind == Store::IngestOutcome::Kind::kQuarantined);
  INFO(held.reason);
  CHECK(held.reason.find("only the quarantined segment site-a/" +
                         data::HashBytes(newer).substr(0, 12)) !=
        std::string::npos);
  Result<std::vector<Store::Quarantined>> listed = store->ListQuarantined();
  REQUIRE(listed->size() == 2);
  // This cmf cannot read it yet: a retry changes nothing.
  CHECK(store->RetryQuarantined()->empty());
  CHECK(store->ListQuarantined()->size() == 2);

  // What a cmf that reads format 3 finds: the same segment, readable now
  // (played here by a format 1 text recorded as needing format 1).
  const std::string readable = Segment("site-a", {Execution()});
  RunSql(dir / "b.db",
         "UPDATE quarantine SET text = ?1, hash = ?2, needs_format = 1 "
         "WHERE hash = ?3",
         {readable, data::HashBytes(readable), data::HashBytes(newer)});
  Result<std::vector<Store::Retried>> retried = store->RetryQuarantined();
  REQUIRE(retried.ok());
  CHECK(retried->size() == 2);
  for (const auto& r : *retried) {
    CHECK(r.outcome.kind == Store::IngestOutcome::Kind::kApplied);
  }
  CHECK(store->ListQuarantined()->empty());
  Result<ExecutionRecord> e = store->GetExecution(kExec);
  REQUIRE(e.ok());
  CHECK(e->status == ExecStatus::kOk);
}

TEST_CASE(
    "hlc: a fact from the end of time is refused, and later executions here "
    "still end") {
  TempDir dir;
  auto store = OpenStore(dir / "b.db", "site-b");
  const std::string poisoned =
      Segment("site-a",
              {Execution(),
               State({{"hlc", std::numeric_limits<std::int64_t>::max() - 1}})});
  CHECK(Ingest(*store, poisoned).kind ==
        Store::IngestOutcome::Kind::kQuarantined);
  ExecutionRecord r;
  r.id = NewUuidV7(kNow).value();
  r.pipeline = "al";
  r.stage = "measure";
  r.host = "edge";
  r.user = "sci";
  r.site = "site-b";
  r.started_ms = kNow;
  Result<RowId> row = store->BeginExecution(r);
  REQUIRE(row.ok());
  REQUIRE(store->SetExecutionState(*row, ExecStatus::kOk, 0, kNow, "").ok());
  CHECK(store->GetExecution(r.id)->status == ExecStatus::kOk);
  // A day ahead is the bound: a clock a little fast is fine.
  const std::string fast = Segment(
      "site-a", {Execution(), State({{"hlc", (kNow + 3600000) << 16}})});
  CHECK(Ingest(*store, fast).kind == Store::IngestOutcome::Kind::kApplied);
}

TEST_CASE(
    "hlc: the receive rule makes a site whose clock is behind write after what "
    "it has seen") {
  TempDir dir;
  auto a = OpenStore(dir / "a.db", "site-a", kNow);
  // B's wall clock is an hour behind A's.
  auto b = OpenStore(dir / "b.db", "site-b", kNow - 3600 * 1000);
  ExecutionRecord r;
  r.id = kExec;
  r.pipeline = "al";
  r.stage = "train";
  r.host = "edge";
  r.user = "sci";
  r.site = "site-a";
  r.started_ms = kNow;
  REQUIRE(a->BeginExecution(r).ok());
  REQUIRE(a->SetProperty(RecordType::kExecution, kExec, "note",
                         std::string("from a"))
              .ok());
  auto seal = [](Store& s) {
    Result<Store::Segment> seg =
        s.CommitPending({}, [](const Store::Segment&) { return Status::Ok(); });
    REQUIRE(seg.ok());
    REQUIRE(seg->facts > 0);
    return seg->text;
  };
  const std::string from_a = seal(*a);
  CHECK(Ingest(*b, from_a).kind == Store::IngestOutcome::Kind::kApplied);
  CHECK(ToText(b->GetExecution(kExec)->properties.at("note")) == "from a");

  // B writes after it saw A's value: B's value wins, though B's clock says
  // it is an hour earlier.
  REQUIRE(b->SetProperty(RecordType::kExecution, kExec, "note",
                         std::string("from b"))
              .ok());
  CHECK(ToText(b->GetExecution(kExec)->properties.at("note")) == "from b");
  const std::string from_b = seal(*b);
  CHECK(Ingest(*a, from_b).kind == Store::IngestOutcome::Kind::kApplied);
  CHECK(ToText(a->GetExecution(kExec)->properties.at("note")) == "from b");
}
