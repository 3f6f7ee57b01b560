// Lineage and query benchmark at scale: a store of 1,000,000 executions and
// 3,000,000 artifacts shaped like the real work (long chains of
// active-learning steps, each making a data slice, a model and metrics; a
// wide fan-in of Reptile updates over ten task models), logged through the
// store's API, then the user-facing verbs timed as processes:
//   - a lineage walk up from a leaf 50 steps deep,
//   - a walk down from a root with 10,000 descendants,
//   - cmf query executions --stage reptile (1,000 rows),
//   - cmf log -n 20.
// Targets: each under 50 ms, and under 200 MiB of memory.
//
//   cmf_bench_lineage --cmf PATH [--executions N] [--dir D] [--keep]
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "bench_util.h"
#include "cmf/clock.h"
#include "cmf/repo.h"
#include "cmf/store.h"

namespace fs = std::filesystem;
using namespace cmf;
using namespace cmf::bench;

namespace {

void Must(const Status& st, const std::string& what) {
  if (!st.ok()) {
    fmt::print(stderr, "bench: {}: {}\n", what, st.message());
    std::exit(1);
  }
}

std::string Hash(std::uint64_t n) { return fmt::format("{:064x}", n); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::string cmf_bin;
  std::int64_t total = 1000000;
  bool keep = false;
  fs::path root = fs::temp_directory_path() /
                  fmt::format("cmf-bench-lineage-{}", ::getpid());
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--keep")) keep = true;
    if (i + 1 >= argc) continue;
    if (!std::strcmp(argv[i], "--cmf"))
      cmf_bin = fs::absolute(argv[i + 1]).string();
    if (!std::strcmp(argv[i], "--executions")) total = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dir")) root = argv[i + 1];
  }
  if (cmf_bin.empty()) {
    fmt::print(stderr,
               "usage: cmf_bench_lineage --cmf PATH [--executions N]\n");
    return 2;
  }
  fs::remove_all(root);
  fs::create_directories(root);
  Must(Repo::Init(root).status(), "init");
  Must(RunQuiet({cmf_bin, "config", "store.synchronous", "normal"}, root)
                   .exit_code == 0
           ? Status::Ok()
           : Status::IOError("config"),
       "config");

  // The shape: experiments of 50 chains x 50 steps from one raw file each;
  // every step uses the model before it and makes a slice, a model and
  // metrics. 1,000 Reptile updates each take ten models from across chains.
  constexpr int kChains = 50, kSteps = 50, kReptile = 1000, kFanIn = 10;
  const std::int64_t per_experiment = kChains * kSteps;
  const std::int64_t experiments =
      std::max<std::int64_t>(1, (total - kReptile) / per_experiment);
  std::string leaf, first_root;
  std::vector<std::string> some_models;
  auto start = cmf::bench::Clock::now();
  {
    Result<Repo> repo = Repo::Open({.start = root});
    Must(repo.status(), "open");
    Store& store = repo->store();
    std::uint64_t next_hash = 1;
    std::int64_t t = 1700000000000;
    std::int64_t made = 0;
    Must(store.BeginBatch(), "batch");
    auto execution = [&](const std::string& stage, std::int64_t i) -> RowId {
      ExecutionRecord r;
      r.started_ms = ++t;
      r.id = NewUuidV7(r.started_ms);
      r.pipeline = "ALDKL";
      r.stage = stage;
      r.command = {"step", std::to_string(i)};
      r.params = {{"i", std::int64_t{i}}, {"lr", 0.01}};
      r.host = "edge";
      r.user = "sci";
      r.site = "bench";
      Result<RowId> id = store.BeginExecution(r);
      Must(id.status(), "execution");
      if (++made % 20000 == 0) {
        Must(store.EndBatch(true), "commit");
        Must(store.BeginBatch(), "batch");
      }
      return *id;
    };
    auto finish = [&](RowId e) {
      Must(store.SetExecutionState(e, ExecStatus::kOk, 0, t + 1, ""), "state");
    };
    for (std::int64_t x = 0; x < experiments; ++x) {
      ArtifactRef raw{"raw/sample-" + std::to_string(x) + ".h5",
                      Hash(next_hash++), 1 << 30, ArtifactKind::kDataset};
      if (x == 0) first_root = raw.hash;
      for (int c = 0; c < kChains; ++c) {
        ArtifactRef previous = raw;
        for (int s = 0; s < kSteps; ++s) {
          RowId e = execution("al-step", s);
          Must(store.AddEvent(e, Direction::kInput, 0, previous), "input");
          ArtifactRef slice{fmt::format("measured/{}-{}-{}.h5", x, c, s),
                            Hash(next_hash++), 4096, ArtifactKind::kDataslice};
          ArtifactRef model{fmt::format("models/{}-{}-{}.pt", x, c, s),
                            Hash(next_hash++), 1 << 20, ArtifactKind::kModel};
          ArtifactRef metrics{fmt::format("metrics/{}-{}-{}.json", x, c, s),
                              Hash(next_hash++), 512, ArtifactKind::kMetrics};
          Must(store.AddEvent(e, Direction::kOutput, 0, slice), "output");
          Must(store.AddEvent(e, Direction::kOutput, 1, model), "output");
          Must(store.AddEvent(e, Direction::kOutput, 2, metrics), "output");
          finish(e);
          previous = model;
          if (x == 0 && c == 0 && s == kSteps - 1) leaf = model.hash;
          if (s == kSteps - 1 && some_models.size() < 5000)
            some_models.push_back(model.hash);
        }
      }
    }
    for (int r = 0; r < kReptile; ++r) {
      RowId e = execution("reptile", r);
      for (int k = 0; k < kFanIn; ++k) {
        ArtifactRef in{"task-model.pt",
                       some_models[(r * kFanIn + k) % some_models.size()],
                       1 << 20, ArtifactKind::kModel};
        Must(store.AddEvent(e, Direction::kInput, k, in), "fan-in");
      }
      ArtifactRef meta{fmt::format("meta-{}.pt", r), Hash(next_hash++), 1 << 20,
                       ArtifactKind::kModel};
      Must(store.AddEvent(e, Direction::kOutput, 0, meta), "output");
      finish(e);
    }
    Must(store.EndBatch(true), "commit");
    Result<std::int64_t> n = store.CountExecutions();
    fmt::print("cmf lineage and query benchmark\n\n");
    fmt::print("store: {} executions, {} artifacts, logged in {:.0f} s\n", *n,
               next_hash - 1, SecondsSince(start));
  }
  std::error_code ec;
  std::uint64_t bytes = 0;
  for (const char* f : {"metadata.db", "metadata.db-wal"}) {
    bytes += fs::exists(root / ".cmf" / f, ec)
                 ? fs::file_size(root / ".cmf" / f, ec)
                 : 0;
  }
  fmt::print("store size: {:.0f} MiB\n\n", bytes / 1048576.0);

  struct Case {
    std::string what;
    std::vector<std::string> args;
  };
  std::vector<Case> cases = {
      {"lineage up from a leaf 50 steps deep", {"lineage", leaf, "--json"}},
      {"lineage down from a root (10,000 descendants)",
       {"lineage", first_root, "--down", "--json"}},
      {"query executions --stage reptile (1,000 rows)",
       {"query", "executions", "--stage", "reptile", "--json"}},
      {"log -n 20", {"log", "-n", "20"}},
  };
  fmt::print("  {:<48} {:>9} {:>10}   (targets: 50 ms, 200 MiB)\n", "", "time",
             "memory");
  for (const Case& c : cases) {
    std::vector<std::string> argv{cmf_bin};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    // The first run warms the page cache, as a user's second look would, and
    // measures the peak memory (through GNU time); the times are of the
    // binary alone.
    ProcessCost cost = RunQuiet(argv, root);
    Must(cost.exit_code == 0 ? Status::Ok() : Status::IOError(c.what), c.what);
    const long rss = cost.max_rss_kib;
    std::vector<double> times;
    for (int i = 0; i < 5; ++i) {
      times.push_back(SpawnTimed(argv, root));
      Must(times.back() >= 0 ? Status::Ok() : Status::IOError(c.what), c.what);
    }
    fmt::print("  {:<48} {:>7.1f}ms {:>6.1f} MiB\n", c.what,
               Median(times) * 1e3, rss / 1024.0);
  }
  if (!keep) fs::remove_all(root);
  return 0;
}
