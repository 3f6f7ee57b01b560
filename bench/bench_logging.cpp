// Benchmarks of the foundation, each beside a peer measured in the same run:
//
//  1. the cost of logging one step metric through the logging API
//  (store.synchronous full and
//     normal), against the floor (one raw SQLite INSERT + COMMIT with the same
//     settings) and against the pattern cmflib's users complain of, a process
//     spawned per log call (the sqlite3 CLI, spawned directly like every
//     timed process here: posix_spawn of the program, no shell in between);
//  2. `cmf log` over a store of 100,000 executions, against `git log` over a
//  repository of
//     100,000 commits (when git is installed).
//
// Usage: cmf_bench [--executions N] [--cmf PATH] [--keep]   (build with
// --buildtype=release)
// --keep leaves the workspaces it built under /tmp/cmf-bench-PID for a closer
// look. Prints figures only; it asserts nothing (these machines are shared and
// noisy).
#include <fmt/format.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "cmf/run.h"

namespace fs = std::filesystem;
using cmf::bench::Clock;
using cmf::bench::ProcessCost;
using cmf::bench::RunQuiet;
using cmf::bench::SecondsSince;
using cmf::bench::SpawnTimed;
namespace bench = cmf::bench;

namespace {

// The median wall time of REPEAT runs of ARGV spawned directly (posix_spawn
// of the program, no shell or GNU time in between, as both sides of every
// comparison here are), and its peak memory, read by GNU time in one more run
// before them (which also warms the page cache). exit_code is -1 when a run
// failed.
ProcessCost Median(const std::vector<std::string>& argv, const fs::path& cwd,
                   int repeat) {
  ProcessCost m = RunQuiet(argv, cwd);
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) times.push_back(SpawnTimed(argv, cwd));
  std::sort(times.begin(), times.end());
  if (times.front() < 0) m.exit_code = -1;
  m.seconds = times[times.size() / 2];
  return m;
}

void Die(const cmf::Status& st) {
  fmt::print(stderr, "cmf_bench: {}\n", st.message());
  std::exit(1);
}

// Microseconds per LogMetric call, one transaction each.
double MetricCostUs(const fs::path& workspace, const std::string& synchronous,
                    int calls) {
  fs::remove_all(workspace);
  fs::create_directories(workspace);
  {
    auto repo = cmf::Repo::Init(workspace);
    if (!repo.ok()) Die(repo.status());
    if (auto st = repo->config().Set("store.synchronous", synchronous);
        !st.ok())
      Die(st);
  }
  auto repo = cmf::Repo::Open({.start = workspace});
  if (!repo.ok()) Die(repo.status());
  auto run = cmf::Run::Start(*repo, {.stage = "al"});
  if (!run.ok()) Die(run.status());
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) {
    if (auto st = run->LogMetric("sigma", i, 0.5 / (i + 1)); !st.ok()) Die(st);
  }
  return SecondsSince(start) / calls * 1e6;
}

double BatchCostUs(const fs::path& workspace, int points) {
  auto repo = cmf::Repo::Open({.start = workspace});
  if (!repo.ok()) Die(repo.status());
  auto run = cmf::Run::Start(*repo, {.stage = "train"});
  if (!run.ok()) Die(run.status());
  std::vector<cmf::MetricPoint> batch;
  for (int i = 0; i < points; ++i) batch.push_back({i, 1.0 / (i + 1)});
  auto start = Clock::now();
  if (auto st = run->LogMetrics("loss", batch); !st.ok()) Die(st);
  return SecondsSince(start) / points * 1e6;
}

// The floor: one INSERT and one COMMIT per value through the SQLite C API, same
// pragmas.
double RawSqliteCostUs(const fs::path& path, const std::string& synchronous,
                       int calls) {
  fs::remove(path);
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
  sqlite3_exec(db, ("PRAGMA synchronous=" + synchronous).c_str(), nullptr,
               nullptr, nullptr);
  sqlite3_exec(db,
               "CREATE TABLE m(e INTEGER, s INTEGER, step INTEGER, v REAL, "
               "PRIMARY KEY(e, s, step)) WITHOUT ROWID",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* ins = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO m VALUES(1, 1, ?1, ?2)", -1, &ins,
                     nullptr);
  auto start = Clock::now();
  for (int i = 0; i < calls; ++i) {
    sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    sqlite3_bind_int64(ins, 1, i);
    sqlite3_bind_double(ins, 2, 0.5 / (i + 1));
    sqlite3_step(ins);
    sqlite3_reset(ins);
    sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  }
  double us = SecondsSince(start) / calls * 1e6;
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return us;
}

// Builds a store of N executions through the logging API: chains of
// active-learning steps, each with an input, an output and a few step metrics.
void BuildStore(const fs::path& workspace, int executions) {
  fs::remove_all(workspace);
  fs::create_directories(workspace);
  {
    auto repo = cmf::Repo::Init(workspace);
    if (!repo.ok()) Die(repo.status());
    if (auto st = repo->config().Set("store.synchronous", "normal"); !st.ok())
      Die(st);
    if (auto st = repo->config().Set("core.pipeline", "ALDKL"); !st.ok())
      Die(st);
  }
  auto repo = cmf::Repo::Open({.start = workspace});
  if (!repo.ok()) Die(repo.status());
  auto start = Clock::now();
  std::string previous = std::string(64, '0');
  for (int i = 0; i < executions; ++i) {
    auto run = cmf::Run::Start(
        *repo,
        {.stage = i % 10 == 0 ? "train" : "al-step",
         .command = {"cmf", "run", "dkl-al", "--step", std::to_string(i)},
         .params = {{"step", std::int64_t{i}}, {"lr", 0.01}}});
    if (!run.ok()) Die(run.status());
    std::string next = fmt::format("{:064x}", i + 1);
    cmf::ArtifactRef in{"al/state.h5", previous, 4096,
                        cmf::ArtifactKind::kDataslice};
    cmf::ArtifactRef out{"al/state.h5", next, 4096,
                         cmf::ArtifactKind::kDataslice};
    if (auto st = run->LogHashed(cmf::Direction::kInput, in); !st.ok()) Die(st);
    if (auto st = run->LogHashed(cmf::Direction::kOutput, out); !st.ok())
      Die(st);
    std::vector<cmf::MetricPoint> sigma = {{0, 0.3}, {1, 0.2}, {2, 0.1}};
    if (auto st = run->LogMetrics("sigma", sigma); !st.ok()) Die(st);
    if (auto st = run->Finish(cmf::ExecStatus::kOk, 0); !st.ok()) Die(st);
    previous = next;
    if ((i + 1) % 20000 == 0) {
      fmt::print(stderr, "  built {} executions in {:.1f} s\n", i + 1,
                 SecondsSince(start));
    }
  }
}

// A git repository with N commits, made with git fast-import.
bool BuildGitPeer(const fs::path& dir, int commits) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  if (RunQuiet({"git", "init", "-q", "."}, dir).exit_code != 0) return false;
  fs::path stream = dir / "import.txt";
  {
    std::ofstream out(stream);
    for (int i = 0; i < commits; ++i) {
      std::string msg =
          fmt::format("al-step {}: cmf run dkl-al --step {}", i, i);
      out << "commit refs/heads/main\nmark :" << i + 1 << "\n"
          << "committer Bench <bench@example.org> " << 1700000000 + i
          << " +0000\n"
          << "data " << msg.size() << "\n"
          << msg << "\n";
      if (i > 0) out << "from :" << i << "\n";
      out << "M 644 inline state.txt\ndata " << std::to_string(i).size() << "\n"
          << i << "\n\n";
    }
  }
  std::string cmd =
      "git fast-import --quiet < import.txt && git symbolic-ref HEAD "
      "refs/heads/main";
  return RunQuiet({"sh", "-c", cmd}, dir).exit_code == 0;
}

struct Options {
  int executions = 100000;
  std::string cmf_binary;
  bool keep = false;
};

// Reads --executions, --cmf and --keep; cmf is found beside the bench by
// default.
Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--keep") o.keep = true;
    if (i + 1 >= argc) continue;
    if (flag == "--executions") o.executions = std::atoi(argv[++i]);
    if (flag == "--cmf") o.cmf_binary = fs::absolute(argv[++i]).string();
  }
  if (o.cmf_binary.empty()) {
    o.cmf_binary =
        (fs::path(argv[0]).parent_path().parent_path() / "cmf_cli" / "cmf")
            .string();
  }
  o.cmf_binary = fs::absolute(o.cmf_binary).string();
  return o;
}

// The process-per-call peer: the mean cost of spawning the sqlite3 CLI (or
// true) once per value, printed as a row of the logging table.
void MeasureProcessPerCall(const fs::path& root) {
  // The process-per-call peer, spawned directly (posix_spawn of the
  // program, no shell), as the timed processes below are.
  constexpr int kSpawns = 100;
  bool have_sqlite_cli = bench::Have("sqlite3");
  double seconds = 0;
  bool failed = false;
  for (int i = 0; i < kSpawns; ++i) {
    std::vector<std::string> argv = {"true"};
    if (have_sqlite_cli) {
      argv = {"sqlite3", (root / "raw-normal.db").string(),
              fmt::format("INSERT OR REPLACE INTO m VALUES(2, 1, {}, 0.5)", i)};
    }
    double s = SpawnTimed(argv, root);
    if (s < 0) failed = true;
    seconds += s;
  }
  std::string what =
      have_sqlite_cli ? "  peer: a process per log call (sqlite3 CLI insert)"
                      : "  peer: a process per log call (spawn of true only)";
  if (failed) {
    fmt::print("{:<58} {:>10}\n", what, "failed");
  } else {
    fmt::print("{:<58} {:>10.1f}\n", what, seconds / kSpawns * 1e6);
  }
  fmt::print(
      "  (the peer's {} calls: each spawned directly, posix_spawn of "
      "the program, no shell)\n",
      kSpawns);
}

// Part 1: the cost of one step metric through the logging API, beside raw
// SQLite and a process per call.
void MeasureLogging(const fs::path& root) {
  fmt::print("## Logging one step metric (one transaction per call)\n");
  constexpr int kCalls = 2000;
  double full = MetricCostUs(root / "ws-full", "full", kCalls);
  double raw_full = RawSqliteCostUs(root / "raw-full.db", "FULL", kCalls);
  double normal = MetricCostUs(root / "ws-normal", "normal", kCalls);
  double raw_normal = RawSqliteCostUs(root / "raw-normal.db", "NORMAL", kCalls);
  double batch = BatchCostUs(root / "ws-normal", 100000);
  fmt::print("{:<58} {:>10}\n", "what (cmf and SQLite: in process)",
             "us/metric");
  fmt::print("{:<58} {:>10.1f}\n",
             "cmf Run::LogMetric, store.synchronous=full (default)", full);
  fmt::print("{:<58} {:>10.1f}\n",
             "  peer: raw SQLite INSERT+COMMIT, synchronous=FULL", raw_full);
  fmt::print("{:<58} {:>10.1f}\n",
             "cmf Run::LogMetric, store.synchronous=normal", normal);
  fmt::print("{:<58} {:>10.1f}\n",
             "  peer: raw SQLite INSERT+COMMIT, synchronous=NORMAL",
             raw_normal);
  fmt::print("{:<58} {:>10.2f}\n", "cmf Run::LogMetrics, batch of 100,000",
             batch);
  MeasureProcessPerCall(root);
}

// Builds the store of EXECUTIONS executions at ROOT/ws-log and prints what
// that took and how big it is.
void BuildLogStore(const fs::path& root, int executions) {
  auto build_start = Clock::now();
  BuildStore(root / "ws-log", executions);
  double build_s = SecondsSince(build_start);
  std::uintmax_t db_size =
      fs::file_size(root / "ws-log" / ".cmf" / "metadata.db");
  std::error_code ec;
  std::uintmax_t wal =
      fs::file_size(root / "ws-log" / ".cmf" / "metadata.db-wal", ec);
  fmt::print(
      "built through the logging API in {:.1f} s ({:.0f} us per execution with "
      "one input, "
      "one output, 3 metrics); store {:.1f} MiB\n",
      build_s, build_s / executions * 1e6,
      (db_size + (ec ? 0 : wal)) / 1048576.0);
}

// One row of the cmf log table: milliseconds and peak memory of C.
void Show(const std::string& what, const ProcessCost& c) {
  if (c.exit_code != 0) {
    fmt::print("{:<44} {:>10}\n", what, "failed");
  } else if (c.max_rss_kib > 0) {
    fmt::print("{:<44} {:>10.1f} {:>12.1f}\n", what, c.seconds * 1e3,
               c.max_rss_kib / 1024.0);
  } else {
    fmt::print("{:<44} {:>10.1f} {:>12}\n", what, c.seconds * 1e3, "(no time)");
  }
}

// Part 2: `cmf log` over a store of EXECUTIONS executions, beside `git log`
// over as many commits.
void MeasureLog(const fs::path& root, const std::string& cmf_binary,
                int executions) {
  fmt::print("\n## cmf log over {} executions\n", executions);
  BuildLogStore(root, executions);
  fmt::print(
      "(each side spawned directly, posix_spawn of the program, no shell: ms "
      "is the median of 7 runs, 3 for the whole history; peak memory from "
      "one more run under GNU time)\n");
  fmt::print("{:<44} {:>10} {:>12}\n", "command", "ms", "peak MiB");
  fs::path ws = root / "ws-log";
  Show("cmf log -n 20", Median({cmf_binary, "log", "-n", "20"}, ws, 7));
  Show("cmf log -n 20 --json",
       Median({cmf_binary, "log", "-n", "20", "--json"}, ws, 7));
  Show("cmf log --oneline (all)",
       Median({cmf_binary, "log", "--oneline"}, ws, 3));
  Show("cmf log --json (all)", Median({cmf_binary, "log", "--json"}, ws, 3));
  if (bench::Have("git") && BuildGitPeer(root / "git-peer", executions)) {
    fs::path g = root / "git-peer";
    Show("  peer: git log -n 20", Median({"git", "log", "-n", "20"}, g, 7));
    Show("  peer: git log --oneline (all)",
         Median({"git", "log", "--oneline"}, g, 3));
  } else {
    fmt::print("  (git not installed: no git log peer)\n");
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseOptions(argc, argv);
  fs::path root =
      fs::temp_directory_path() / fmt::format("cmf-bench-{}", ::getpid());
  fs::create_directories(root);

  fmt::print(
      "# cmf benchmarks (figures vary with the machine and its load)\n\n");
  MeasureLogging(root);
  MeasureLog(root, o.cmf_binary, o.executions);
  if (o.keep) {
    fmt::print("\nworkspaces kept under {}\n", root.string());
  } else {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  return 0;
}
