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

namespace {

const int kSeries = 7, kSteps = 50;
const int kRuns = 7;

struct Options {
  std::string cmf_binary;
  std::string keep;  // --keep DIR: build the store there and leave it
  int executions = 10000;
};

// Reads --cmf, --executions and --keep; false when --cmf is missing.
bool ParseOptions(int argc, char** argv, Options* o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cmf")) o->cmf_binary = argv[i + 1];
    if (!std::strcmp(argv[i], "--executions"))
      o->executions = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--keep")) o->keep = argv[i + 1];
  }
  return !o->cmf_binary.empty();
}

// Writes EXECUTIONS executions of kSeries series of kSteps steps into the
// store at DIR in one batch, and prints how long it took; false on a failure.
bool BuildStore(const fs::path& dir, int executions) {
  auto t0 = WallClock::now();
  StoreOptions options;
  options.site = "bench";
  options.synchronous_full = false;
  auto store = Store::Open(dir / ".cmf" / "metadata.db", options);
  if (!store.ok()) return false;
  Store& s = **store;
  if (!s.BeginBatch().ok()) return false;
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
    if (!row.ok()) return false;
    for (int k = 0; k < kSeries; ++k) {
      std::vector<MetricPoint> points(kSteps);
      for (int i = 0; i < kSteps; ++i) {
        points[i] = {i, std::exp(-0.05 * i) * (1 + 0.01 * ((e + k) % 7))};
      }
      if (!s.LogMetrics(*row, fmt::format("series_{}", k), points).ok())
        return false;
    }
  }
  if (!s.EndBatch(true).ok()) return false;
  fmt::print(
      "store: {} executions, {} series of {} steps each ({} steps), "
      "made in {:.1f} s\n",
      executions, kSeries, kSteps,
      static_cast<long>(executions) * kSeries * kSteps, SecondsSince(t0));
  return true;
}

// The median of V (the upper of the middle two when V is even).
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The median wall time of kRuns runs of ARGS in DIR.
double MedianRun(const std::vector<std::string>& args, const fs::path& dir) {
  SpawnTimed(args, dir);  // a first run, not counted, reads the store in
  std::vector<double> t;
  for (int i = 0; i < kRuns; ++i) t.push_back(SpawnTimed(args, dir));
  return Median(t);
}

// The peer: the last value, minimum, maximum and mean of every series of
// every execution from the steps themselves, in one query. Its kRuns times,
// or false when it read the wrong number of summaries.
bool TimePeer(const fs::path& dir, int executions, std::vector<double>* peer) {
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
    peer->push_back(SecondsSince(t0));
    if (rows != static_cast<long>(executions) * kSeries) {
      fmt::print(stderr, "peer read {} summaries\n", rows);
      return false;
    }
  }
  return true;
}

// The medians of each command timed, and of the peer.
struct Figures {
  double start_s = 0, json_s = 0, text_s = 0, where_s = 0, min_s = 0;
  double peer_s = 0;
};

// Prints the table of FIGURES, in milliseconds.
void PrintFigures(const Figures& f) {
  fmt::print(
      "cmf compare --stage dkl-al --json      {:7.1f} ms (median of {})\n",
      f.json_s * 1e3, kRuns);
  fmt::print("cmf compare --stage dkl-al (table)     {:7.1f} ms\n",
             f.text_s * 1e3);
  fmt::print("cmf compare ... --where (metric, param) {:6.1f} ms\n",
             f.where_s * 1e3);
  fmt::print("cmf compare ... --metric series_0=min --csv {:6.1f} ms\n",
             f.min_s * 1e3);
  fmt::print(
      "peer: SQL aggregate over every step     {:7.1f} ms (in process, "
      "no output)\n",
      f.peer_s * 1e3);
  fmt::print("of each, start and open (cmf log -n 1) {:6.1f} ms\n",
             f.start_s * 1e3);
  fmt::print("target: under 100 ms for the first line\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (!ParseOptions(argc, argv, &opt)) {
    fmt::print(stderr,
               "usage: cmf_bench_compare --cmf PATH [--executions N]\n");
    return 2;
  }
  const std::string& cmf_binary = opt.cmf_binary;
  const fs::path dir =
      !opt.keep.empty() ? fs::path(opt.keep)
                        : fs::temp_directory_path() /
                              fmt::format("cmf-bench-compare-{}", ::getpid());
  fs::create_directories(dir);
  if (SpawnTimed({cmf_binary, "init", "-q"}, dir) < 0) return 1;
  if (!BuildStore(dir, opt.executions)) return 1;
  // The store just written is still going to disk: without a sync, the
  // kernel's write-back runs beside the first command timed.
  ::sync();
  Figures f;
  // The part of every figure that is not the listing: start, open, one row.
  f.start_s = MedianRun({cmf_binary, "log", "-n", "1"}, dir);
  std::vector<std::string> compare = {cmf_binary, "compare", "--stage",
                                      "dkl-al", "--json"};
  f.json_s = MedianRun(compare, dir);
  f.text_s = MedianRun({cmf_binary, "compare", "--stage", "dkl-al"}, dir);
  f.where_s = MedianRun(
      {cmf_binary, "compare", "--stage", "dkl-al", "--where",
       "metrics.series_3 < 0.09 and params.acquisition = 'ei'", "--json"},
      dir);
  f.min_s = MedianRun({cmf_binary, "compare", "--stage", "dkl-al", "--metric",
                       "series_0=min", "--csv"},
                      dir);
  std::vector<double> peer;
  if (!TimePeer(dir, opt.executions, &peer)) return 1;
  f.peer_s = Median(peer);
  PrintFigures(f);
  if (opt.keep.empty()) fs::remove_all(dir);
  return f.json_s > 0 ? 0 : 1;
}
