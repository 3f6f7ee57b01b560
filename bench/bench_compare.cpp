// cmf compare over a generated store: 10,000 executions of one stage, each
// with 7 step-metric series of 50 steps (3.5 million steps), beside the same
// table computed the way a store without summaries would (one SQL aggregate
// over every step, in process: no start-up, no JSON).
//
//   cmf_bench_compare --cmf build-release/cmf_cli/cmf [--executions N]
#include <fmt/format.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cmf/clock.h"
#include "cmf/repo.h"
#include "cmf/store.h"

namespace fs = std::filesystem;
using namespace cmf;
using WallClock = cmf::bench::Clock;
using cmf::bench::SecondsSince;
using cmf::bench::SpawnTimed;

int main(int argc, char** argv) {
  std::string cmf_binary;
  std::string keep;  // --keep DIR: build the store there and leave it
  int executions = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cmf")) cmf_binary = argv[i + 1];
    if (!std::strcmp(argv[i], "--executions"))
      executions = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--keep")) keep = argv[i + 1];
  }
  if (cmf_binary.empty()) {
    fmt::print(stderr,
               "usage: cmf_bench_compare --cmf PATH [--executions N]\n");
    return 2;
  }
  const fs::path dir =
      !keep.empty() ? fs::path(keep)
                    : fs::temp_directory_path() /
                          fmt::format("cmf-bench-compare-{}", ::getpid());
  fs::create_directories(dir);
  if (SpawnTimed({cmf_binary, "init", "-q"}, dir) < 0) return 1;
  const int kSeries = 7, kSteps = 50;
  {
    auto t0 = WallClock::now();
    StoreOptions options;
    options.site = "bench";
    options.synchronous_full = false;
    auto store = Store::Open(dir / ".cmf" / "metadata.db", options);
    if (!store.ok()) return 1;
    Store& s = **store;
    if (!s.BeginBatch().ok()) return 1;
    for (int e = 0; e < executions; ++e) {
      ExecutionRecord r;
      r.started_ms = 1'700'000'000'000 + e * 1000;
      r.id = NewUuidV7(r.started_ms).value();
      r.pipeline = "ALDKL";
      r.stage = "dkl-al";
      r.params = {{"lr", 0.001 * (1 + e % 10)},
                  {"acquisition", std::string(e % 3 ? "ei" : "ucb")},
                  {"seed", std::int64_t{e}}};
      r.host = "edge";
      r.user = "sci";
      r.site = "bench";
      Result<RowId> row = s.BeginExecution(r);
      if (!row.ok()) return 1;
      for (int k = 0; k < kSeries; ++k) {
        std::vector<MetricPoint> points(kSteps);
        for (int i = 0; i < kSteps; ++i) {
          points[i] = {i, std::exp(-0.05 * i) * (1 + 0.01 * ((e + k) % 7))};
        }
        if (!s.LogMetrics(*row, fmt::format("series_{}", k), points).ok())
          return 1;
      }
    }
    if (!s.EndBatch(true).ok()) return 1;
    fmt::print(
        "store: {} executions, {} series of {} steps each ({} steps), "
        "made in {:.1f} s\n",
        executions, kSeries, kSteps,
        static_cast<long>(executions) * kSeries * kSteps, SecondsSince(t0));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  // The store just written is still going to disk: without a sync, the
  // kernel's write-back runs beside the first command timed.
  ::sync();
  const int kRuns = 7;
  auto run = [&](const std::vector<std::string>& args) {
    SpawnTimed(args, dir);  // a first run, not counted, reads the store in
    std::vector<double> t;
    for (int i = 0; i < kRuns; ++i) t.push_back(SpawnTimed(args, dir));
    return median(t);
  };
  // The part of every figure that is not the listing: start, open, one row.
  const double start_s = run({cmf_binary, "log", "-n", "1"});
  std::vector<std::string> compare = {cmf_binary, "compare", "--stage",
                                      "dkl-al", "--json"};
  const double json_s = run(compare);
  const double text_s = run({cmf_binary, "compare", "--stage", "dkl-al"});
  const double where_s =
      run({cmf_binary, "compare", "--stage", "dkl-al", "--where",
           "metrics.series_3 < 0.09 and params.acquisition = 'ei'", "--json"});
  const double min_s = run({cmf_binary, "compare", "--stage", "dkl-al",
                            "--metric", "series_0=min", "--csv"});
  // The peer: the last value, minimum, maximum and mean of every series of
  // every execution from the steps themselves, in one query.
  std::vector<double> peer;
  for (int i = 0; i < kRuns; ++i) {
    sqlite3* db = nullptr;
    auto t0 = WallClock::now();
    sqlite3_open_v2((dir / ".cmf" / "metadata.db").c_str(), &db,
                    SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(
        db,
        "SELECT execution_id, series_id, max(step), min(value), max(value), "
        "avg(value) FROM metric GROUP BY execution_id, series_id",
        -1, &st, nullptr);
    long rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) ++rows;
    sqlite3_finalize(st);
    sqlite3_close(db);
    peer.push_back(SecondsSince(t0));
    if (rows != static_cast<long>(executions) * kSeries) {
      fmt::print(stderr, "peer read {} summaries\n", rows);
      return 1;
    }
  }
  fmt::print(
      "cmf compare --stage dkl-al --json      {:7.1f} ms (median of {})\n",
      json_s * 1e3, kRuns);
  fmt::print("cmf compare --stage dkl-al (table)     {:7.1f} ms\n",
             text_s * 1e3);
  fmt::print("cmf compare ... --where (metric, param) {:6.1f} ms\n",
             where_s * 1e3);
  fmt::print("cmf compare ... --metric series_0=min --csv {:6.1f} ms\n",
             min_s * 1e3);
  fmt::print(
      "peer: SQL aggregate over every step     {:7.1f} ms (in process, "
      "no output)\n",
      median(peer) * 1e3);
  fmt::print("of each, start and open (cmf log -n 1) {:6.1f} ms\n",
             start_s * 1e3);
  fmt::print("target: under 100 ms for the first line\n");
  if (keep.empty()) fs::remove_all(dir);
  return json_s > 0 ? 0 : 1;
}
