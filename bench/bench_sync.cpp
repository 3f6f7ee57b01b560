// Federation benchmark: what a push or a pull of one new commit costs against
// remotes holding 10 and 10,000 commits (target: at most 2x apart), and how
// fast objects go to a file:// remote, beside `cp -r` of the same objects
// (target: at least 0.7x its speed) and `git annex copy --to` a directory
// special remote.
//
//   cmf_bench_sync --cmf PATH [--commits N] [--mib M] [--dir D] [--keep]
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "bench_util.h"
#include "cmf/run.h"
#include "cmf/sync.h"

namespace fs = std::filesystem;
using namespace cmf;
using namespace cmf::bench;

namespace {

std::string cmf_bin;

void Must(bool ok, const std::string& what) {
  if (!ok) {
    fmt::print(stderr, "bench: {} failed\n", what);
    std::exit(1);
  }
}

void MustRun(const std::vector<std::string>& argv, const fs::path& cwd) {
  Must(Timed(argv, cwd) >= 0,
       fmt::format("'{}' in {}", fmt::join(argv, " "), cwd.string()));
}

// Makes a workspace at DIR that is a site with remote "r" at REMOTE.
void MakeSite(const fs::path& dir, const fs::path& remote) {
  fs::create_directories(dir);
  MustRun({cmf_bin, "init", "-q"}, dir);
  MustRun({cmf_bin, "config", "store.synchronous", "normal"}, dir);
  MustRun({cmf_bin, "remote", "add", "r", remote.string()}, dir);
}

// Logs N executions at DIR, one commit each, through the library (what N
// days of instrument runs would leave).
void Commits(const fs::path& dir, int n) {
  Result<Repo> repo = Repo::Open({.start = dir});
  Must(repo.ok(), "open " + dir.string());
  for (int i = 0; i < n; ++i) {
    RunSpec spec;
    spec.pipeline = "al";
    spec.stage = "step";
    spec.params["i"] = std::int64_t{i};
    Result<Run> run = Run::Start(*repo, spec);
    Must(run.ok(), "start");
    for (int s = 0; s < 10; ++s) {
      Must(run->LogMetric("uncertainty", s, 1.0 / (s + i + 1)).ok(), "metric");
    }
    Must(run->Finish(ExecStatus::kOk, 0, "").ok(), "finish");
    Must(CommitMetadata(*repo, "").ok(), "commit");
  }
}

std::uint64_t TreeBytes(const fs::path& root) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct OneCommit {
  double push = 0, pull = 0;
  std::uint64_t bytes = 0;  // what the remote's log grew by, per push
};

// Times `cmf push` of one new commit from EDGE and `cmf pull` of it at
// READER, ROUNDS times; medians.
OneCommit MeasureOne(const fs::path& edge, const fs::path& reader,
                     const fs::path& remote, int rounds) {
  std::vector<double> push, pull;
  std::uint64_t grew = 0;
  for (int i = 0; i < rounds; ++i) {
    Commits(edge, 1);
    std::uint64_t before = TreeBytes(remote / "log.git");
    push.push_back(Timed({cmf_bin, "push", "-q", "r"}, edge));
    grew += TreeBytes(remote / "log.git") - before;
    pull.push_back(Timed({cmf_bin, "pull", "-q", "r"}, reader));
    Must(push.back() > 0 && pull.back() > 0, "push/pull of one commit");
  }
  return {Median(push), Median(pull),
          grew / static_cast<std::uint64_t>(rounds)};
}

void WriteRandom(const fs::path& path, std::size_t bytes, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> block(1 << 17);  // 1 MiB
  std::FILE* f = std::fopen(path.c_str(), "wb");
  Must(f != nullptr, "write " + path.string());
  for (std::size_t done = 0; done < bytes; done += block.size() * 8) {
    for (auto& x : block) x = rng();
    std::fwrite(block.data(), 8, block.size(), f);
  }
  std::fclose(f);
}

struct Options {
  int big = 10000;
  int mib = 1024;
  bool keep = false;
  fs::path root =
      fs::temp_directory_path() / fmt::format("cmf-bench-sync-{}", ::getpid());
};

// Reads --cmf (into cmf_bin), --commits, --mib, --dir and --keep.
Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--cmf"))
      cmf_bin = fs::absolute(argv[i + 1]).string();
    if (!std::strcmp(argv[i], "--commits")) o.big = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--mib")) o.mib = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dir")) o.root = argv[i + 1];
  }
  for (int i = 1; i < argc; ++i) o.keep |= !std::strcmp(argv[i], "--keep");
  return o;
}

// Builds remote NAME under ROOT with a history of N commits, and an edge and
// a reader that have pulled it; prints what that cost, then times one new
// commit against it.
OneCommit History(const fs::path& root, const std::string& name, int n) {
  fs::path remote = root / (name + ".cmf");
  MustRun({cmf_bin, "init", "--bare", "-q", remote.string()}, root);
  fs::path maker = root / (name + "-maker");
  MakeSite(maker, remote);
  auto start = cmf::bench::Clock::now();
  Commits(maker, n);
  double made = SecondsSince(start);
  double first_push = Timed({cmf_bin, "push", "-q", "r"}, maker);
  fs::path edge = root / (name + "-edge"), reader = root / (name + "-reader");
  MakeSite(edge, remote);
  MakeSite(reader, remote);
  double first_pull = Timed({cmf_bin, "pull", "-q", "r"}, edge);
  MustRun({cmf_bin, "pull", "-q", "r"}, reader);
  fmt::print(
      "  {:>6} commits: made in {:.1f} s, first push {:.2f} s, first pull "
      "{:.2f} s, log {:.1f} MiB\n",
      n, made, first_push, first_pull,
      TreeBytes(remote / "log.git") / 1048576.0);
  return MeasureOne(edge, reader, remote, 5);
}

// Prints the table of one new commit against the small and the big history.
void PrintOneCommit(const OneCommit& small, const OneCommit& large, int big) {
  fmt::print(
      "\nOne new commit (median of 5), {} commits vs 10 in the remote:\n", big);
  fmt::print("  {:<28} {:>10} {:>10} {:>8}\n", "", "10", std::to_string(big),
             "ratio");
  fmt::print("  {:<28} {:>8.1f}ms {:>8.1f}ms {:>7.2f}x   (<= 2x)\n", "cmf push",
             small.push * 1e3, large.push * 1e3, large.push / small.push);
  fmt::print("  {:<28} {:>8.1f}ms {:>8.1f}ms {:>7.2f}x   (<= 2x)\n", "cmf pull",
             small.pull * 1e3, large.pull * 1e3, large.pull / small.pull);
  fmt::print("  {:<28} {:>8}B  {:>8}B  {:>7.2f}x\n",
             "remote log growth per push", small.bytes, large.bytes,
             static_cast<double>(large.bytes) /
                 std::max<std::uint64_t>(1, small.bytes));
}

// A workspace under ROOT with MIB MiB of random files in files of 16 MiB,
// added and committed, whose remote "r" is a new file:// remote.
fs::path MakeDataEdge(const fs::path& root, int mib) {
  fs::path ws = root / "data-edge";
  fs::create_directories(ws / "data");
  for (int i = 0; i < mib / 16; ++i) {
    WriteRandom(ws / "data" / fmt::format("run-{:03}.h5", i), 16 << 20, i + 1);
  }
  fs::path remote = root / "objects.cmf";
  MustRun({cmf_bin, "init", "--bare", "-q", remote.string()}, root);
  MakeSite(ws, "file://" + remote.string());
  MustRun({cmf_bin, "add", "-q", "data"}, ws);
  MustRun({cmf_bin, "commit", "-q", "-m", "data"}, ws);
  return ws;
}

// Times `git annex copy --to` a directory special remote of the data of WS
// and prints it; -1 (and says so) when git-annex is not installed.
double TimeAnnexCopy(const fs::path& root, const fs::path& ws, int mib) {
  double annex = -1;
  if (Have("git-annex")) {
    fs::path g = root / "annex";
    fs::create_directories(g);
    MustRun({"cp", "-r", (ws / "data").string(), (g / "data").string()}, root);
    MustRun({"git", "init", "-q", "."}, g);
    MustRun({"git", "annex", "init", "-q", "bench"}, g);
    MustRun({"git", "annex", "add", "--quiet", "data"}, g);
    fs::create_directories(root / "annex-dir");
    MustRun({"git", "annex", "initremote", "-q", "dir", "type=directory",
             "directory=" + (root / "annex-dir").string(), "encryption=none"},
            g);
    MustRun({"sync"}, root);
    annex =
        Timed({"git", "annex", "copy", "--quiet", "--to", "dir", "data"}, g);
    fmt::print("  {:<40} {:7.2f} s  {:7.0f} MiB/s\n",
               "peer: git annex copy --to directory", annex, mib / annex);
  } else {
    fmt::print("  (git-annex not installed: no git annex copy peer)\n");
  }
  return annex;
}

// Times `cmf push --data all` of MIB MiB to a file:// remote beside `cp -r`
// (with and without a sync) and `git annex copy`, and prints the ratios.
void MeasureObjects(const fs::path& root, int mib) {
  fmt::print(
      "\nPushing {} MiB of objects ({} files of 16 MiB) to a file:// remote:\n",
      mib, mib / 16);
  fs::path ws = MakeDataEdge(root, mib);
  MustRun({"sync"}, root);
  double push = Timed({cmf_bin, "push", "-q", "r", "--data", "all"}, ws);
  Must(push > 0, "cmf push --data all");
  fmt::print("  {:<40} {:7.2f} s  {:7.0f} MiB/s\n",
             "cmf push --data all (flushed to disk)", push, mib / push);
  MustRun({"sync"}, root);
  double cp = Timed({"cp", "-r", (ws / ".cmf/objects/sha256").string(),
                     (root / "cp-copy").string()},
                    root);
  fmt::print("  {:<40} {:7.2f} s  {:7.0f} MiB/s\n", "peer: cp -r (not flushed)",
             cp, mib / cp);
  double cp_sync = Timed(
      {"sh", "-c", "cp -r \"$0\" \"$1\" && sync",
       (ws / ".cmf/objects/sha256").string(), (root / "cp-copy2").string()},
      root);
  fmt::print("  {:<40} {:7.2f} s  {:7.0f} MiB/s\n", "peer: cp -r && sync",
             cp_sync, mib / cp_sync);
  double annex = TimeAnnexCopy(root, ws, mib);
  fmt::print(
      "\n  cmf push speed / cp -r speed:          {:5.2f}x   (>= 0.7x)\n",
      cp / push);
  fmt::print("  cmf push speed / cp -r && sync speed:  {:5.2f}x\n",
             cp_sync / push);
  if (annex > 0) {
    fmt::print("  cmf push speed / git annex copy speed: {:5.2f}x\n",
               annex / push);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseOptions(argc, argv);
  Must(!cmf_bin.empty(), "--cmf PATH");
  fs::remove_all(o.root);
  fs::create_directories(o.root);

  fmt::print(
      "cmf federation benchmark ({} commits in the big remote, {} MiB of "
      "objects)\n\n",
      o.big, o.mib);

  // --- one new commit against a small and a big history ---
  fmt::print("Building the histories:\n");
  OneCommit small = History(o.root, "small", 10);
  OneCommit large = History(o.root, "big", o.big);
  PrintOneCommit(small, large, o.big);

  // --- objects to a file:// remote ---
  MeasureObjects(o.root, o.mib);
  if (!o.keep) fs::remove_all(o.root);
  return 0;
}
