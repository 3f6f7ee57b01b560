// Federation in one process, with real repositories: commit, push and pull
// between two edges and a bare remote, in many seeded random orders.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "cmf/data/hash.h"
#include "cmf/metalog.h"
#include "cmf/run.h"
#include "cmf/segment.h"
#include "cmf/sync.h"
#include "json_output.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
using cmf::test::WriteFile;
namespace fs = std::filesystem;

namespace {

// A workspace with a repository, kept open.
struct Site {
  fs::path workspace;
  std::optional<Repo> repo;

  Site(const fs::path& dir, const fs::path& remote) : workspace(dir) {
    fs::create_directories(dir);
    REQUIRE(Repo::Init(dir).ok());
    Result<Repo> r = Repo::Open({.start = dir});
    REQUIRE(r.ok());
    repo.emplace(std::move(r).value());
    if (!remote.empty()) {
      REQUIRE(AddRemote(repo->config(), {"hpc", remote.string(), "", ""}).ok());
    }
  }

  std::string NewExecution(int n) {
    RunSpec spec;
    spec.pipeline = "al";
    spec.stage = n % 2 ? "train" : "measure";
    spec.command = {"step", std::to_string(n)};
    spec.params["n"] = std::int64_t{n};
    Result<Run> run = Run::Start(*repo, spec);
    REQUIRE(run.ok());
    fs::path out = workspace / ("out-" + std::to_string(n) + ".txt");
    WriteFile(out, "result " + std::to_string(n) + " of " + repo->site());
    REQUIRE(run->LogOutput(out).ok());
    REQUIRE(run->LogMetric("loss", 0, 1.0 / (n + 1)).ok());
    REQUIRE(run->LogMetric("loss", 1, 0.5 / (n + 1)).ok());
    REQUIRE(run->Finish(ExecStatus::kOk, 0, "").ok());
    return run->id();
  }

  // Everything a site shows about its executions, as text to compare.
  std::string State() {
    Result<std::vector<ExecutionRecord>> all = repo->store().ListExecutions({});
    REQUIRE(all.ok());
    std::sort(all->begin(), all->end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    std::string out = ExecutionsJson(*all);
    for (const auto& r : *all) {
      Result<MetricSeries> m = repo->store().GetMetrics(r.id);
      REQUIRE(m.ok());
      out += MetricsJson(*m);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("federation: commit seals pending facts once; ingest applies once") {
  TempDir dir;
  Site a(dir / "a", {});
  Site b(dir / "b", {});
  a.NewExecution(1);
  Result<Store::Pending> pending = a.repo->store().CountPending();
  REQUIRE(pending.ok());
  CHECK(pending->executions == 1);
  CHECK(pending->facts > 5);

  Result<CommitReport> first = CommitMetadata(*a.repo, "one");
  REQUIRE(first.ok());
  CHECK(first->facts > 5);
  CHECK(a.repo->store().CountPending()->facts == 0);
  Result<CommitReport> again = CommitMetadata(*a.repo, "");
  REQUIRE(again.ok());
  CHECK(again->commit.empty());
  CHECK(again->facts == 0);

  // The segment is canonical text named by its hash, in the log at a path
  // only site A writes.
  Result<MetaLog> log = MetaLog::Open(a.repo->cmf_dir() / "log.git");
  REQUIRE(log.ok());
  std::string text;
  REQUIRE(log->ForEachNewSegment(
                 first->commit, {},
                 [&](const std::string& hash, const std::string& t) {
                   CHECK(hash == first->segment);
                   text = t;
                   return Status::Ok();
                 })
              .ok());
  CHECK(data::HashBytes(text) == first->segment);
  Result<SegmentHeader> header =
      SegmentHeader::Parse(text.substr(0, text.find('\n')));
  REQUIRE(header.ok());
  CHECK(header->site == a.repo->site());
  CHECK(header->seq == 1);

  Result<Store::IngestOutcome> applied =
      b.repo->store().IngestSegment(first->segment, text);
  REQUIRE_MESSAGE(applied.ok(), applied.status().message());
  CHECK(applied->kind == Store::IngestOutcome::Kind::kApplied);
  CHECK(b.repo->store().IngestSegment(first->segment, text)->kind ==
        Store::IngestOutcome::Kind::kKnown);
  CHECK(a.State() == b.State());
  // Ingested facts are not B's to commit.
  CHECK(b.repo->store().CountPending()->facts == 0);
}

TEST_CASE(
    "federation: a segment that is not one is quarantined, nothing applied") {
  TempDir dir;
  Site b(dir / "b", {});
  std::string bad = SegmentHeader{"aaaa", 1}.Line() +
                    "\n{\"t\":\"state\",\"execution\":\"nope\",\"hlc\":1,"
                    "\"site\":\"aaaa\",\"status\":\"ok\",\"message\":\"\"}\n";
  Result<Store::IngestOutcome> r =
      b.repo->store().IngestSegment(data::HashBytes(bad), bad);
  REQUIRE(r.ok());
  CHECK(r->kind == Store::IngestOutcome::Kind::kQuarantined);
  CHECK_FALSE(*b.repo->store().HasSegment(data::HashBytes(bad)));
  Result<Store::IngestOutcome> junk =
      b.repo->store().IngestSegment("00", "not a segment\n");
  REQUIRE(junk.ok());
  CHECK(junk->kind == Store::IngestOutcome::Kind::kQuarantined);
  CHECK(b.State() == Site(dir / "c", {}).State());
}

TEST_CASE("federation: a property set at two sites resolves the same at both") {
  TempDir dir;
  REQUIRE(InitBare(dir / "hpc").ok());
  Site a(dir / "a", dir / "hpc");
  Site b(dir / "b", dir / "hpc");
  std::string id = a.NewExecution(1);
  REQUIRE(CommitMetadata(*a.repo, "").ok());
  REQUIRE(Push(*a.repo, "hpc", {}).ok());
  Result<SyncReport> pulled = Pull(*b.repo, "hpc", {});
  REQUIRE_MESSAGE(pulled.ok(), pulled.status().message());
  // Both set it, neither has seen the other's.
  REQUIRE(a.repo->store()
              .SetProperty(RecordType::kExecution, id, "verdict",
                           Value(std::string("good")))
              .ok());
  REQUIRE(b.repo->store()
              .SetProperty(RecordType::kExecution, id, "verdict",
                           Value(std::string("bad")))
              .ok());
  for (Site* s : {&a, &b}) {
    REQUIRE(CommitMetadata(*s->repo, "").ok());
    Result<SyncReport> pushed = Push(*s->repo, "hpc", {});
    REQUIRE_MESSAGE(pushed.ok(), pushed.status().message());
  }
  REQUIRE(Pull(*a.repo, "hpc", {}).ok());
  REQUIRE(Pull(*b.repo, "hpc", {}).ok());
  Result<ExecutionRecord> ra = a.repo->store().GetExecution(id);
  Result<ExecutionRecord> rb = b.repo->store().GetExecution(id);
  REQUIRE(ra.ok());
  REQUIRE(rb.ok());
  CHECK(ra->properties.at("verdict") == rb->properties.at("verdict"));
  CHECK(a.State() == b.State());
}

TEST_CASE("federation: three sites converge in many random orders") {
  int unions = 0;  // the orders must include logs that diverged and merged
  for (unsigned seed : {1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u}) {
    CAPTURE(seed);
    TempDir dir;
    REQUIRE(InitBare(dir / "hpc").ok());
    Site a(dir / "a", dir / "hpc");
    Site b(dir / "b", dir / "hpc");
    std::vector<Site*> sites{&a, &b};
    std::vector<std::vector<std::string>> known(2);
    std::mt19937 rng(seed);
    int made = 0;
    for (int step = 0; step < 30; ++step) {
      int s = static_cast<int>(rng() % 2);
      Site& site = *sites[s];
      switch (rng() % 6) {
        case 0:
        case 1:
          known[s].push_back(site.NewExecution(made++));
          break;
        case 2:
          if (!known[s].empty()) {
            const std::string& id = known[s][rng() % known[s].size()];
            REQUIRE(site.repo->store()
                        .SetProperty(RecordType::kExecution, id, "note",
                                     Value(std::int64_t(rng() % 100)))
                        .ok());
          }
          break;
        case 3:
          REQUIRE(CommitMetadata(*site.repo, "").ok());
          break;
        case 4: {
          Result<SyncReport> r = Push(*site.repo, "hpc", {});
          REQUIRE_MESSAGE(r.ok(), r.status().message());
          unions += r->merge == "union";
          break;
        }
        case 5: {
          Result<SyncReport> r = Pull(*site.repo, "hpc", {});
          REQUIRE_MESSAGE(r.ok(), r.status().message());
          unions += r->merge == "union";
          // What it pulled, it now knows and may annotate.
          Result<std::vector<ExecutionRecord>> all =
              site.repo->store().ListExecutions({});
          REQUIRE(all.ok());
          known[s].clear();
          for (const auto& e : *all) known[s].push_back(e.id);
          break;
        }
      }
    }
    for (Site* s : sites) {
      REQUIRE(CommitMetadata(*s->repo, "").ok());
      REQUIRE(Push(*s->repo, "hpc", {}).ok());
    }
    for (Site* s : sites) REQUIRE(Pull(*s->repo, "hpc", {}).ok());
    Site c(dir / "c", dir / "hpc");  // what the datacenter holds
    REQUIRE(Pull(*c.repo, "hpc", {}).ok());
    std::string state = a.State();
    CHECK(made == static_cast<int>(a.repo->store().CountExecutions().value()));
    CHECK(state == b.State());
    CHECK(state == c.State());
  }
  CHECK(unions > 0);
}

TEST_CASE("federation: a long history travels as one pack and arrives whole") {
  TempDir dir;
  REQUIRE(InitBare(dir / "hpc").ok());
  Site a(dir / "a", dir / "hpc");
  Site b(dir / "b", dir / "hpc");
  for (int i = 0; i < 30; ++i) {
    a.NewExecution(i);
    REQUIRE(CommitMetadata(*a.repo, "").ok());
  }
  Result<SyncReport> pushed = Push(*a.repo, "hpc", {});
  REQUIRE_MESSAGE(pushed.ok(), pushed.status().message());
  CHECK(pushed->commits_sent == 31);  // and one that says where the bytes went
  std::size_t packs = 0;
  for (const auto& e :
       fs::directory_iterator(dir / "hpc/log.git/objects/pack")) {
    packs += e.path().extension() == ".pack";
  }
  CHECK(packs == 1);
  Result<SyncReport> pulled = Pull(*b.repo, "hpc", {});
  REQUIRE_MESSAGE(pulled.ok(), pulled.status().message());
  CHECK(pulled->segments_ingested == 31);
  CHECK(a.State() == b.State());
  // Then one more commit goes loose, and only it.
  a.NewExecution(30);
  REQUIRE(CommitMetadata(*a.repo, "").ok());
  pushed = Push(*a.repo, "hpc", {});
  REQUIRE(pushed.ok());
  CHECK(pushed->commits_sent == 2);
  CHECK(pushed->metadata_bytes_sent < 20000);
  REQUIRE(Pull(*b.repo, "hpc", {}).ok());
  CHECK(a.State() == b.State());
}
