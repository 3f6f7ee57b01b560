// Lineage and query benchmark at scale: a store of 1,000,000 executions and
// 3,000,000 artifacts shaped like the real work (long chains of
// active-learning steps, each making a data slice, a model and metrics; a
// wide fan-in of Reptile updates over ten task models; one meta-model trained
// over the last models of 2,000 chains), logged through the store's API, then
// the user-facing verbs timed as processes:
//   - a lineage walk up from a leaf 50 steps deep,
//   - a walk down from a root with 10,000 descendants,
//   - the hard walk: up from the meta-model, a fan-in over 2,000 task runs,
//     each leading 50 steps further up to its raw file (200,042 nodes),
//   - cmf query executions --stage reptile (1,001 rows),
//   - cmf log -n 20.
// Targets: every walk and query under 25 ms and under 50 MiB of memory, the
// hard walk included; each line says whether its figures meet them, and
// where its time went (process start, the store's statements, the rest).
//
// Every answer is checked: the nodes and edges of each walk, and the rows of
// each query, must be those the generator built (computed from its shape
// below), or the bench fails and says which differ.
//
//   cmf_bench_lineage --cmf PATH [--executions N] [--dir D] [--keep]
//                     [--reuse]
// --reuse times the store already in D (one this bench built and kept with
// the same --executions) instead of building a new one: building a million
// executions takes minutes, timing them seconds.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

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

// What one answer holds: a walk's nodes and edges (the "nodes" and "edges"
// arrays of cmf lineage --json), the rows of a JSON array (cmf query --json),
// or the executions of cmf log's text (lines that start "execution ").
struct Counts {
  std::int64_t nodes = -1;
  std::int64_t edges = -1;
  std::int64_t rows = -1;
  bool operator==(const Counts&) const = default;
};

std::string Describe(const Counts& c) {
  if (c.rows >= 0) return fmt::format("{} rows", c.rows);
  return fmt::format("{} nodes, {} edges", c.nodes, c.edges);
}

// Counts the objects of a JSON answer without building it in memory (a hard
// walk's answer is tens of MiB): objects in a top-level array are rows,
// objects in the top-level object's "nodes" and "edges" arrays are nodes and
// edges.
class CountingSax {
 public:
  using json = nlohmann::json;
  explicit CountingSax(Counts& counts) : c_(counts) {}
  bool null() { return true; }
  bool boolean(bool) { return true; }
  bool number_integer(json::number_integer_t) { return true; }
  bool number_unsigned(json::number_unsigned_t) { return true; }
  bool number_float(json::number_float_t, const json::string_t&) {
    return true;
  }
  bool string(json::string_t&) { return true; }
  bool binary(json::binary_t&) { return true; }
  bool key(json::string_t& k) {
    if (depth_ == 1) key_ = k;
    return true;
  }
  bool start_object(std::size_t) {
    if (depth_ == 0) {
      c_.nodes = c_.edges = 0;
    } else if (depth_ == 1 && top_array_) {
      ++c_.rows;
    } else if (depth_ == 2 && !top_array_ && key_ == "nodes") {
      ++c_.nodes;
    } else if (depth_ == 2 && !top_array_ && key_ == "edges") {
      ++c_.edges;
    }
    ++depth_;
    return true;
  }
  bool end_object() {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (depth_ == 0) {
      top_array_ = true;
      c_.rows = 0;
    }
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception&) {
    return false;
  }

 private:
  Counts& c_;
  int depth_ = 0;
  bool top_array_ = false;
  std::string key_;
};

// The counts of the answer in FILE, read as JSON or as cmf log's text.
Counts CountAnswer(const fs::path& file, bool json) {
  Counts counts;
  std::ifstream in(file, std::ios::binary);
  if (json) {
    CountingSax sax(counts);
    if (!nlohmann::json::sax_parse(in, &sax)) return Counts{};
    return counts;
  }
  counts.rows = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("execution ", 0) == 0) ++counts.rows;
  }
  return counts;
}

struct Options {
  std::string cmf_bin;
  std::int64_t total = 1000000;
  bool keep = false;
  bool reuse = false;
  fs::path root = fs::temp_directory_path() /
                  fmt::format("cmf-bench-lineage-{}", ::getpid());
};

// Reads --cmf, --executions, --dir, --keep and --reuse; false when --cmf is
// missing.
bool ParseOptions(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--keep")) o->keep = true;
    if (!std::strcmp(argv[i], "--reuse")) o->reuse = o->keep = true;
    if (i + 1 >= argc) continue;
    if (!std::strcmp(argv[i], "--cmf"))
      o->cmf_bin = fs::absolute(argv[i + 1]).string();
    if (!std::strcmp(argv[i], "--executions"))
      o->total = std::atoll(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dir")) o->root = argv[i + 1];
  }
  return !o->cmf_bin.empty();
}

// The shape: experiments of 50 chains x 50 steps from one raw file each;
// every step uses the model before it and makes a slice, a model and
// metrics. The last models of the first 5,000 chains are the task models:
// 1,000 Reptile updates each take ten of them, and one Reptile
// meta-training (the meta-model) takes the first 2,000.
constexpr int kChains = 50, kSteps = 50, kReptile = 1000, kFanIn = 10;
constexpr std::size_t kTaskModels = 5000, kMetaTasks = 2000;
constexpr std::int64_t kPerExperiment = kChains * kSteps;

// What the walks start from, as the generator made it.
struct Built {
  std::string leaf, first_root, meta_model;
  std::vector<std::string> some_models;
  std::uint64_t next_hash = 1;
};

// Logs executions into a store in batches of 20,000, each with a fresh
// start time.
class Generator {
 public:
  explicit Generator(Store& store) : store_(store) {}

  // Begins execution I of STAGE; its row.
  RowId Execution(const std::string& stage, std::int64_t i) {
    ExecutionRecord r;
    r.started_ms = ++t_;
    r.id = NewUuidV7(r.started_ms).value();
    r.pipeline = "ALDKL";
    r.stage = stage;
    r.command = {"step", std::to_string(i)};
    r.params = {{"i", std::int64_t{i}}, {"lr", 0.01}};
    r.host = "edge";
    r.user = "sci";
    r.site = "bench";
    Result<RowId> id = store_.BeginExecution(r);
    Must(id.status(), "execution");
    if (++made_ % 20000 == 0) {
      Must(store_.EndBatch(true), "commit");
      Must(store_.BeginBatch(), "batch");
    }
    return *id;
  }

  // Marks execution E finished, and well.
  void Finish(RowId e) {
    Must(store_.SetExecutionState(e, ExecStatus::kOk, 0, t_ + 1, ""), "state");
  }

  // The store it logs into.
  Store& store() { return store_; }

 private:
  Store& store_;
  std::int64_t t_ = 1700000000000;
  std::int64_t made_ = 0;
};

// The active-learning chains of EXPERIMENTS experiments.
void LogChains(Generator& gen, std::int64_t experiments, Built* b) {
  Store& store = gen.store();
  for (std::int64_t x = 0; x < experiments; ++x) {
    ArtifactRef raw{"raw/sample-" + std::to_string(x) + ".h5",
                    Hash(b->next_hash++), 1 << 30, ArtifactKind::kDataset};
    if (x == 0) b->first_root = raw.hash;
    for (int c = 0; c < kChains; ++c) {
      ArtifactRef previous = raw;
      for (int s = 0; s < kSteps; ++s) {
        RowId e = gen.Execution("al-step", s);
        Must(store.AddEvent(e, Direction::kInput, 0, previous), "input");
        ArtifactRef slice{fmt::format("measured/{}-{}-{}.h5", x, c, s),
                          Hash(b->next_hash++), 4096, ArtifactKind::kDataslice};
        ArtifactRef model{fmt::format("models/{}-{}-{}.pt", x, c, s),
                          Hash(b->next_hash++), 1 << 20, ArtifactKind::kModel};
        ArtifactRef metrics{fmt::format("metrics/{}-{}-{}.json", x, c, s),
                            Hash(b->next_hash++), 512, ArtifactKind::kMetrics};
        Must(store.AddEvent(e, Direction::kOutput, 0, slice), "output");
        Must(store.AddEvent(e, Direction::kOutput, 1, model), "output");
        Must(store.AddEvent(e, Direction::kOutput, 2, metrics), "output");
        gen.Finish(e);
        previous = model;
        if (x == 0 && c == 0 && s == kSteps - 1) b->leaf = model.hash;
        if (s == kSteps - 1 && b->some_models.size() < kTaskModels)
          b->some_models.push_back(model.hash);
      }
    }
  }
}

// The Reptile updates, each over kFanIn task models, and the meta-model.
void LogReptile(Generator& gen, Built* b) {
  Store& store = gen.store();
  const std::vector<std::string>& some_models = b->some_models;
  for (int r = 0; r < kReptile; ++r) {
    RowId e = gen.Execution("reptile", r);
    for (int k = 0; k < kFanIn; ++k) {
      ArtifactRef in{"task-model.pt",
                     some_models[(r * kFanIn + k) % some_models.size()],
                     1 << 20, ArtifactKind::kModel};
      Must(store.AddEvent(e, Direction::kInput, k, in), "fan-in");
    }
    ArtifactRef meta{fmt::format("meta-{}.pt", r), Hash(b->next_hash++),
                     1 << 20, ArtifactKind::kModel};
    Must(store.AddEvent(e, Direction::kOutput, 0, meta), "output");
    gen.Finish(e);
  }
  {
    // The meta-model: one Reptile meta-training over the task models.
    const std::size_t tasks = std::min(kMetaTasks, some_models.size());
    RowId e = gen.Execution("reptile", kReptile);
    for (std::size_t k = 0; k < tasks; ++k) {
      ArtifactRef in{"task-model.pt", some_models[k], 1 << 20,
                     ArtifactKind::kModel};
      Must(store.AddEvent(e, Direction::kInput, static_cast<int>(k), in),
           "meta fan-in");
    }
    ArtifactRef meta{"meta-model.pt", Hash(b->next_hash++), 1 << 20,
                     ArtifactKind::kModel};
    b->meta_model = meta.hash;
    Must(store.AddEvent(e, Direction::kOutput, 0, meta), "output");
    gen.Finish(e);
  }
}

// Logs the whole shape into the repository at ROOT and prints its size and
// how long it took.
Built BuildStore(const fs::path& root, std::int64_t experiments) {
  Built b;
  auto start = cmf::bench::Clock::now();
  Result<Repo> repo = Repo::Open({.start = root});
  Must(repo.status(), "open");
  Store& store = repo->store();
  Must(store.BeginBatch(), "batch");
  Generator gen(store);
  LogChains(gen, experiments, &b);
  LogReptile(gen, &b);
  Must(store.EndBatch(true), "commit");
  Result<std::int64_t> n = store.CountExecutions();
  fmt::print("cmf lineage and query benchmark\n\n");
  fmt::print("store: {} executions, {} artifacts, logged in {:.0f} s\n", *n,
             b.next_hash - 1, SecondsSince(start));
  return b;
}

// What BuildStore made for EXPERIMENTS experiments, without logging it: the
// generator numbers its hashes in order (each experiment's raw file, then
// a slice, a model and metrics per step; the Reptile outputs; the
// meta-model), so a kept store's starting points follow from its size.
Built Rebuilt(std::int64_t experiments) {
  constexpr std::uint64_t kPerRaw = 1 + 3 * kPerExperiment;
  Built b;
  b.first_root = Hash(1);
  b.leaf = Hash(1 + 3 * (kSteps - 1) + 2);
  const std::uint64_t meta = 1 + experiments * kPerRaw + kReptile;
  b.meta_model = Hash(meta);
  b.next_hash = meta + 1;
  fmt::print("cmf lineage and query benchmark\n\n");
  fmt::print("store: kept from an earlier run, {} artifacts\n", meta);
  return b;
}

// Prints the size of the store at ROOT, write-ahead log included.
void PrintStoreSize(const fs::path& root) {
  std::error_code ec;
  std::uint64_t bytes = 0;
  for (const char* f : {"metadata.db", "metadata.db-wal"}) {
    bytes += fs::exists(root / ".cmf" / f, ec)
                 ? fs::file_size(root / ".cmf" / f, ec)
                 : 0;
  }
  fmt::print("store size: {:.0f} MiB\n\n", bytes / 1048576.0);
}

struct Case {
  std::string what;
  std::vector<std::string> args;
  Counts expected;
  bool json = true;
};

// The walks and queries timed, each with the answer the generator's shape
// implies for EXPERIMENTS experiments.
std::vector<Case> MakeCases(const Built& b, std::int64_t experiments) {
  // The answers the generator's shape implies. Task model i is the last model
  // of chain i % kChains of experiment i / kChains.
  const std::int64_t task_models =
      std::min<std::int64_t>(kTaskModels, experiments * kChains);
  const std::int64_t meta_tasks =
      std::min<std::int64_t>(kMetaTasks, task_models);
  // Up from a leaf: its chain's executions and models, and the raw file.
  const Counts leaf_up{.nodes = 2 * kSteps + 1, .edges = 2 * kSteps};
  // Down from the first raw file: every step of its experiment's chains with
  // their three outputs, then each Reptile execution that took one of its
  // chains' last models (task models 0 to kChains - 1) with its output.
  Counts root_down{.nodes = 1 + 4 * kPerExperiment,
                   .edges = 4 * kPerExperiment};
  auto consumer = [&](std::int64_t inputs_from_first) {
    if (inputs_from_first == 0) return;
    root_down.nodes += 2;
    root_down.edges += inputs_from_first + 1;
  };
  for (int r = 0; r < kReptile; ++r) {
    std::int64_t from_first = 0;
    for (int k = 0; k < kFanIn; ++k)
      from_first += (r * kFanIn + k) % task_models < kChains;
    consumer(from_first);
  }
  consumer(std::min<std::int64_t>(meta_tasks, kChains));
  // Up from the meta-model: its execution, then for each task its chain's 50
  // executions and 50 models, and the raw files of the experiments they
  // belong to.
  const Counts meta_up{.nodes = 2 + meta_tasks * 2 * kSteps +
                                (meta_tasks + kChains - 1) / kChains,
                       .edges = 1 + meta_tasks + meta_tasks * 2 * kSteps};

  return {
      {"lineage up from a leaf 50 steps deep",
       {"lineage", b.leaf, "--json"},
       leaf_up},
      {fmt::format("lineage down from a root ({} nodes)", root_down.nodes),
       {"lineage", b.first_root, "--down", "--json"},
       root_down},
      {fmt::format("lineage up from the meta-model ({} tasks, {} nodes)",
                   meta_tasks, meta_up.nodes),
       {"lineage", b.meta_model, "--json"},
       meta_up},
      {fmt::format("query executions --stage reptile ({} rows)", kReptile + 1),
       {"query", "executions", "--stage", "reptile", "--json"},
       {.rows = kReptile + 1}},
      {"log -n 20", {"log", "-n", "20"}, {.rows = 20}, false},
  };
}

constexpr double kTargetMs = 25, kTargetMiB = 50;

// Where one run's time went, from cmf's statement trace (CMF_TRACE_SQL):
// the statements' time and the pages they read, and the slowest of them.
struct SqlTrace {
  double ms = 0, slowest_ms = 0;
  std::int64_t statements = 0, pages = 0;
  std::string slowest;
};

// Reads the trace lines ("cmf: sql: MS ms PAGES pages  TEXT") in FILE.
SqlTrace ReadTrace(const fs::path& file) {
  SqlTrace t;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    double ms = 0;
    long long pages = 0;
    int text_at = 0;
    if (std::sscanf(line.c_str(), "cmf: sql: %lf ms %lld pages %n", &ms, &pages,
                    &text_at) < 2) {
      continue;
    }
    ++t.statements;
    t.ms += ms;
    t.pages += pages;
    if (ms > t.slowest_ms) {
      t.slowest_ms = ms;
      t.slowest = line.substr(static_cast<std::size_t>(text_at), 40);
    }
  }
  return t;
}

// The median wall time of `cmf --version`: what starting the binary costs
// before any verb runs.
double ProcessStart(const std::string& cmf_bin, const fs::path& root) {
  std::vector<double> times;
  for (int i = 0; i < 5; ++i) {
    times.push_back(SpawnTimed({cmf_bin, "--version"}, root));
  }
  return Median(times);
}

// Runs ARGV three more times with its statements traced and prints where
// the MEDIAN seconds went: the store's statements (the run of median SQL
// time), and the rest (starting the process, reading rows into records,
// sorting, writing the answer).
void PrintPhases(const std::vector<std::string>& argv, const fs::path& root,
                 double median) {
  const fs::path out = root / "answer.out", err = root / "trace.err";
  std::vector<SqlTrace> traces;
  for (int i = 0; i < 3; ++i) {
    ::setenv("CMF_TRACE_SQL", "1", 1);
    const bool ran = SpawnToFile(argv, root, out, err);
    ::unsetenv("CMF_TRACE_SQL");
    if (!ran) return;
    traces.push_back(ReadTrace(err));
  }
  fs::remove(err);
  std::sort(traces.begin(), traces.end(),
            [](const SqlTrace& a, const SqlTrace& b) { return a.ms < b.ms; });
  const SqlTrace& t = traces[1];
  fmt::print(
      "      phases: SQL {:.1f} ms ({} statements, {} pages read; slowest "
      "{:.1f} ms: {}...), outside SQL {:.1f} ms\n",
      t.ms, t.statements, t.pages, t.slowest_ms, t.slowest,
      median * 1e3 - t.ms);
}

// Runs each case, checks its answer and prints its time and memory, and
// where the time went; false (and says which) when an answer is not the one
// the generator built.
bool TimeCases(const std::vector<Case>& cases, const std::string& cmf_bin,
               const fs::path& root) {
  fmt::print("  {:<56} {:>9} {:>10}   (targets: {:.0f} ms, {:.0f} MiB)\n", "",
             "time", "memory", kTargetMs, kTargetMiB);
  const fs::path answer = root / "answer.out";
  fmt::print(
      "  (outside SQL: starting the process, {:.1f} ms for cmf --version; "
      "reading rows into records, sorting, writing the answer)\n",
      ProcessStart(cmf_bin, root) * 1e3);
  for (const Case& c : cases) {
    std::vector<std::string> argv{cmf_bin};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    // The first run warms the page cache, as a user's second look would, and
    // measures the peak memory (through GNU time); the second keeps the
    // answer to check it; the times are of the binary alone, spawned
    // directly.
    ProcessCost cost = RunQuiet(argv, root);
    Must(cost.exit_code == 0 ? Status::Ok() : Status::IOError(c.what), c.what);
    const long rss = cost.max_rss_kib;
    Must(SpawnToFile(argv, root, answer) ? Status::Ok()
                                         : Status::IOError(c.what),
         c.what);
    const Counts got = CountAnswer(answer, c.json);
    if (!(got == c.expected)) {
      fmt::print(stderr,
                 "cmf_bench_lineage: wrong answer: {}: cmf {} returned {}; "
                 "the generator built {}\n",
                 c.what, fmt::join(c.args, " "), Describe(got),
                 Describe(c.expected));
      return false;
    }
    std::vector<double> times;
    for (int i = 0; i < 5; ++i) {
      times.push_back(SpawnTimed(argv, root));
      Must(times.back() >= 0 ? Status::Ok() : Status::IOError(c.what), c.what);
    }
    const double ms = Median(times) * 1e3, mib = rss / 1024.0;
    fmt::print("  {:<56} {:>7.1f}ms {:>6.1f} MiB   {} as built; {}\n", c.what,
               ms, mib, Describe(got),
               ms < kTargetMs && mib < kTargetMiB ? "met" : "NOT met");
    PrintPhases(argv, root, Median(times));
  }
  fs::remove(answer);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseOptions(argc, argv, &o)) {
    fmt::print(stderr,
               "usage: cmf_bench_lineage --cmf PATH [--executions N]\n");
    return 2;
  }
  const fs::path& root = o.root;
  const std::int64_t experiments =
      std::max<std::int64_t>(1, (o.total - kReptile - 1) / kPerExperiment);
  std::error_code ec;
  if (o.reuse && !fs::exists(root / ".cmf" / "metadata.db", ec)) {
    fmt::print(stderr, "cmf_bench_lineage: --reuse: no store in {}\n",
               root.string());
    return 2;
  }
  if (!o.reuse) {
    fs::remove_all(root);
    fs::create_directories(root);
    Must(Repo::Init(root).status(), "init");
    Must(RunQuiet({o.cmf_bin, "config", "store.synchronous", "normal"}, root)
                     .exit_code == 0
             ? Status::Ok()
             : Status::IOError("config"),
         "config");
  }
  const Built built =
      o.reuse ? Rebuilt(experiments) : BuildStore(root, experiments);
  PrintStoreSize(root);
  if (!TimeCases(MakeCases(built, experiments), o.cmf_bin, root)) return 1;
  if (!o.keep) fs::remove_all(root);
  return 0;
}
