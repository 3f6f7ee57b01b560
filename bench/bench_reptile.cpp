// Benchmark of the reptile plugin, through the real cmf binary.
//
// 1. Speed: 9 iterations of 10 tasks, 16 inner steps, the extractor of
//    --speed-architecture (default small, as the plugins), `cmf run reptile`
//    beside a PyTorch (Python) loop of the same algorithm
//    (bench/reptile_reference.py) given the same threading: OpenBLAS
//    and PyTorch's own operations on one thread, the inner loops of an
//    iteration run side by side. cmf at --threads 1 against the reference in
//    one process, cmf at --threads 2 against the reference on two processes
//    (--workers 2); the median of --speed-repeat runs of each (default 3),
//    with the fastest and slowest; target at least 2x.
// 2. The meta-learning claim, cross-validated (issue 16): a family of
//    generated experiments (cmf-gen-eels) dealt into K folds, each held out
//    once. An edge run (cold `dkl-al`) on every experiment gives the tasks:
//    its measured-points slice, what an edge sends to the datacenter. For
//    each fold and each of several meta-training seeds, `cmf run reptile` on
//    the other folds' slices, and the baseline `reptile --method pretrain`
//    (one model fitted to the slices pooled); then `dkl-al` on each held-out
//    experiment for several seeds: cold, from the pretrained model and from
//    the meta-model. Every tool runs at its defaults unless --dkl-args or
//    --reptile-args say otherwise; dkl-al normalises targets over what it has
//    measured, as a live run. Printed, with 95 % confidence intervals over the
//    held-out experiments: RMSE at steps 1, 5, 10, 20, 30 (and the measurements
//    each stands for, seed points included), the area under the curve, the
//    paired AUC gain, and the first step after which each mean curve stays
//    below the cold curve's step-30 value (spread over meta-training seeds).
//    Then across families: meta-trained on one family, adapted on another.
//
//   cmf_bench_reptile --cmf build-release/cmf_cli/cmf --gen
//   build-release/samples/cmf-gen-eels
//       [--family gold] [--family-size 12] [--folds 4] [--meta-seeds 3]
//       [--seeds 2]
//       [--steps 30] [--edge-steps 40] [--cross-family silver] [--cross-size 3]
//       [--dkl-args '...'] [--reptile-args '...'] [--threads 2] [--speed-only
//       1]
//       [--speed-repeat 3] [--speed-architecture small|large] [--cv-only 1]
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "reptile_report.h"

namespace fs = std::filesystem;
using cmf::bench::Clock;
using cmf::bench::SecondsSince;
using nlohmann::json;

namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Runs COMMAND in DIR; returns its standard output, or exits on failure.
std::string Capture(const std::string& command, const fs::path& dir) {
  std::string full = "cd " + Quote(dir.string()) + " && " + command;
  FILE* p = ::popen(full.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while (p != nullptr && (n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  int status = p ? ::pclose(p) : -1;
  if (status != 0) {
    fmt::print(stderr, "bench: '{}' failed ({})\n", command, status);
    std::exit(1);
  }
  return out;
}

// ---- The meta-learning claim, cross-validated
// --------------------------------

using cmf::bench::Comparison;
using cmf::bench::Curve;
using cmf::bench::MeanOf;
using cmf::bench::Report;
// Runs cmf in one workspace and reads back what the runs logged.
class Lab {
 public:
  Lab(std::string cmf, fs::path dir)
      : cmf_(std::move(cmf)), dir_(std::move(dir)) {}

  // A dkl-al run on DATA from INIT (none: a cold start); its RMSE curve.
  Curve Al(const std::string& data, int steps, int seed,
           const std::string& init, const std::string& out,
           const std::string& extra) {
    Capture(Quote(cmf_) + " run -q dkl-al --data " + Quote(data) + " --steps " +
                std::to_string(steps) + " --seed " + std::to_string(seed) +
                (init.empty() ? "" : " --init " + Quote(init)) + " --out " +
                Quote(out) + " " + extra,
            dir_);
    json e = json::parse(Capture(Quote(cmf_) + " log -n 1 --json", dir_))[0];
    json m = json::parse(Capture(Quote(cmf_) + " metrics " +
                                     e["id"].get<std::string>() +
                                     " --series rmse --json",
                                 dir_));
    Curve curve(steps, std::nan(""));
    for (const json& p : m["series"]["rmse"]) {
      int step = p[0].get<int>();
      if (step >= 1 && step <= steps) curve[step - 1] = p[1].get<double>();
    }
    for (double v : curve)
      if (std::isnan(v)) {
        fmt::print(stderr, "bench: dkl-al on {} logged fewer than {} steps\n",
                   data, steps);
        std::exit(1);
      }
    return curve;
  }

  // Meta-trains on TASKS (or pretrains, METHOD "pretrain") into OUT.
  void Meta(const std::vector<std::string>& tasks, int seed,
            const std::string& method, const std::string& out,
            const std::string& extra) {
    std::string list;
    for (const std::string& t : tasks) list += " " + Quote(t);
    Capture(Quote(cmf_) + " run -q reptile --tasks" + list + " --method " +
                method + " --seed " + std::to_string(seed) + " -o " +
                Quote(out) + " " + extra,
            dir_);
  }

 private:
  std::string cmf_;
  fs::path dir_;
};

using Options = std::map<std::string, std::string>;

// The settings of the cross-validation, read from the options.
struct CvSettings {
  std::string family, cross;
  int size = 0, cross_size = 0;
  int folds = 0, meta_seeds = 0;
  int seeds = 0, steps = 0;
  int edge_steps = 0;
  std::string dkl_extra, meta_extra;
  int seed_points = 0;
};

// Reads the settings from OPT; exits (2) when they cannot make the folds.
CvSettings ReadCvSettings(Options& opt) {
  CvSettings cs;
  cs.family = opt["family"];
  cs.cross = opt["cross-family"];
  cs.size = std::stoi(opt["family-size"]);
  cs.cross_size = std::stoi(opt["cross-size"]);
  cs.folds = std::stoi(opt["folds"]);
  cs.meta_seeds = std::stoi(opt["meta-seeds"]);
  cs.seeds = std::stoi(opt["seeds"]);
  cs.steps = std::stoi(opt["steps"]);
  cs.edge_steps = std::stoi(opt["edge-steps"]);
  cs.dkl_extra = opt["dkl-args"];
  cs.meta_extra = opt["reptile-args"] + " --threads " + opt["threads"];
  cs.seed_points = 2;  // dkl-al's default, which the bench keeps
  if (cs.folds < 2 || cs.size < cs.folds || cs.meta_seeds < 1 || cs.seeds < 1 ||
      cs.steps < 2) {
    fmt::print(
        stderr,
        "bench: needs --folds >= 2, --family-size >= folds, --steps >= 2\n");
    std::exit(2);
  }
  return cs;
}

// The I-th experiment of family F in FOLDER.
std::string Member(const std::string& folder, const std::string& f, int i) {
  return fmt::format("{}/{}-{:02d}.h5", folder, f, i);
}

// The held-out experiments' curves: experiment -> start -> meta-seed -> one
// curve per active-learning seed (a cold start has one meta-seed slot).
using Runs = std::map<std::string,
                      std::map<std::string, std::vector<std::vector<Curve>>>>;

// Runs the edge runs, meta-training and adaptation of the cross-validation
// through LAB, saying on stderr how far it has got since it was made.
class CvRunner {
 public:
  CvRunner(const CvSettings& cs, Lab& lab) : cs_(cs), lab_(lab) {}

  // Says WHAT it is doing now, after how many seconds.
  void Progress(const std::string& what) const {
    fmt::print(stderr, "[{:6.0f} s] {}\n", SecondsSince(start_), what);
  }

  // The seconds since it was made.
  double Seconds() const { return SecondsSince(start_); }

  // What each edge sends: the measured points of a cold run on its experiment.
  std::vector<std::string> EdgeSlices() {
    std::vector<std::string> slice(cs_.size);
    for (int i = 0; i < cs_.size; ++i) {
      Progress(fmt::format("edge run {}/{}", i + 1, cs_.size));
      std::string out = fmt::format("edge-{:02d}", i);
      lab_.Al(Member("cv", cs_.family, i), cs_.edge_steps, 1000 + i, "", out,
              cs_.dkl_extra);
      slice[i] = out + "/measured.h5";
    }
    return slice;
  }

  // Adapts on each experiment of TEST cold, and from the pretrained model and
  // the meta-model of TASKS for each meta-seed; TAG names it in the progress.
  void Evaluate(const std::vector<std::string>& tasks,
                const std::vector<std::string>& test, const std::string& tag,
                Runs* runs) {
    for (const std::string& t : test) {
      (*runs)[t]["cold"].resize(1);
      for (int seed = 0; seed < cs_.seeds; ++seed) {
        Progress(fmt::format("{}: cold start on {}, seed {}", tag, t, seed));
        (*runs)[t]["cold"][0].push_back(
            lab_.Al(t, cs_.steps, seed, "", "al", cs_.dkl_extra));
      }
    }
    ++evaluations_;
    for (int m = 0; m < cs_.meta_seeds; ++m)
      for (const auto& [start_name, method] : methods_) {
        Progress(fmt::format("{}: {} on {} slices, meta-seed {}", tag, method,
                             tasks.size(), m));
        std::string model = fmt::format("{}-{}-{}.pt", method, evaluations_, m);
        lab_.Meta(tasks, m, method, model, cs_.meta_extra);
        for (const std::string& t : test) {
          (*runs)[t][start_name].resize(cs_.meta_seeds);
          for (int seed = 0; seed < cs_.seeds; ++seed)
            (*runs)[t][start_name][m].push_back(
                lab_.Al(t, cs_.steps, seed, model, "al", cs_.dkl_extra));
        }
      }
  }

  // The table's curves: per experiment over every run, per meta-seed over
  // every experiment (a cold start counts in each meta-seed's).
  Comparison Compare(const Runs& runs) const {
    Comparison c{starts_, {}, {}};
    for (const std::string& s : starts_) {
      std::vector<std::vector<Curve>> by_seed(cs_.meta_seeds);
      for (const auto& [experiment, by_start] : runs) {
        const std::vector<std::vector<Curve>>& slots = by_start.at(s);
        std::vector<Curve> all;
        for (const std::vector<Curve>& slot : slots)
          all.insert(all.end(), slot.begin(), slot.end());
        c.per_task[s].push_back(MeanOf(all));
        for (int m = 0; m < cs_.meta_seeds; ++m) {
          const std::vector<Curve>& slot =
              slots[std::min<std::size_t>(m, slots.size() - 1)];
          by_seed[m].insert(by_seed[m].end(), slot.begin(), slot.end());
        }
      }
      for (const std::vector<Curve>& curves : by_seed)
        c.per_seed[s].push_back(MeanOf(curves));
    }
    return c;
  }

 private:
  const CvSettings& cs_;
  Lab& lab_;
  const Clock::time_point start_ = Clock::now();
  int evaluations_ = 0;
  const std::vector<std::string> starts_ = {"cold", "pretrained", "reptile"};
  const std::vector<std::pair<std::string, std::string>> methods_ = {
      {"pretrained", "pretrain"}, {"reptile", "reptile"}};
};

// Folds: experiments dealt round-robin in a fixed shuffled order.
std::vector<int> FoldOrder(int size) {
  std::vector<int> order(size);
  for (int i = 0; i < size; ++i) order[i] = i;
  std::uint64_t state = 0x5eed;
  for (int i = size - 1; i > 0; --i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    std::swap(order[i], order[(state >> 33) % (i + 1)]);
  }
  return order;
}

// Prints what the cross-validation ran, after SECONDS.
void PrintCvHeader(const CvSettings& cs, Options& opt, double seconds) {
  fmt::print("Meta-learning, cross-validated ({:.0f} s)\n", seconds);
  fmt::print(
      "  tasks: the measured points of a {}-step cold dkl-al run on each "
      "experiment (what "
      "an edge sends)\n",
      cs.edge_steps);
  fmt::print(
      "  {}-fold over {} experiments of family '{}' (each held out once), {} "
      "meta-training "
      "seeds, {} active-learning seeds\n",
      cs.folds, cs.size, cs.family, cs.meta_seeds, cs.seeds);
  fmt::print(
      "  cold: no --init; pretrained: reptile --method pretrain (the tasks "
      "pooled); "
      "reptile: cmf run reptile (settings below)\n");
  fmt::print(
      "  dkl-al: --steps {}{}{}; reptile:{}; targets normalised over the "
      "points measured "
      "so far (as a live run)\n\n",
      cs.steps, cs.dkl_extra.empty() ? " and every default" : " ", cs.dkl_extra,
      opt["reptile-args"].empty() ? " every default"
                                  : " " + opt["reptile-args"]);
}

// K-fold cross-validation of Reptile against a cold start and a pretrained
// model, on the measured-point slices that edge runs send to the datacenter,
// and a cross-family test.
void CrossValidate(const std::string& cmf, const std::string& gen,
                   const fs::path& dir, Options& opt) {
  const CvSettings cs = ReadCvSettings(opt);
  Lab lab(cmf, dir);
  Capture(Quote(gen) + " --family " + Quote(cs.family) + " --family-size " +
              std::to_string(cs.size) + " --out-dir cv >/dev/null",
          dir);
  Capture(Quote(gen) + " --family " + Quote(cs.cross) + " --family-size " +
              std::to_string(cs.cross_size) + " --out-dir cross >/dev/null",
          dir);
  CvRunner runner(cs, lab);
  const std::vector<std::string> slice = runner.EdgeSlices();
  const std::vector<int> order = FoldOrder(cs.size);
  Runs cv_runs;
  for (int fold = 0; fold < cs.folds; ++fold) {
    std::vector<std::string> tasks, test;
    for (int k = 0; k < cs.size; ++k)
      (k % cs.folds == fold ? test.push_back(Member("cv", cs.family, order[k]))
                            : tasks.push_back(slice[order[k]]));
    runner.Evaluate(tasks, test, fmt::format("fold {}/{}", fold + 1, cs.folds),
                    &cv_runs);
  }
  const Comparison cv = runner.Compare(cv_runs);
  // Across families: meta-train on every slice of FAMILY, adapt on CROSS.
  std::vector<std::string> cross_test;
  for (int t = 0; t < cs.cross_size; ++t)
    cross_test.push_back(Member("cross", cs.cross, t));
  Runs cross_runs;
  runner.Evaluate(slice, cross_test, cs.family + " -> " + cs.cross,
                  &cross_runs);
  const Comparison x = runner.Compare(cross_runs);

  PrintCvHeader(cs, opt, runner.Seconds());
  Report(cv, cs.seed_points);
  fmt::print(
      "\nAcross families: meta-trained on all {} slices of '{}', adapted on {} "
      "experiments of '{}'\n",
      cs.size, cs.family, cs.cross_size, cs.cross);
  Report(x, cs.seed_points);
}

// ---- Speed, beside the PyTorch reference

// Seconds of meta-training (the iterations' own time, without loading and
// logging) of cmf at THREADS, on the tasks of TRAIN_LIST with settings COMMON.
double TimeCmf(const std::string& cmf, const fs::path& dir,
               const std::string& train_list, const std::string& common,
               int threads) {
  Capture(Quote(cmf) + " run -q reptile --tasks" + train_list + common +
              " --threads " + std::to_string(threads) + " -o speed.pt",
          dir);
  json log = json::parse(Capture(Quote(cmf) + " log -n 1 --json", dir));
  json m = json::parse(Capture(Quote(cmf) + " metrics " +
                                   log[0]["id"].get<std::string>() +
                                   " --series iteration_seconds --json",
                               dir));
  double loop = 0;
  for (const json& p : m["series"]["iteration_seconds"])
    loop += p[1].get<double>();
  return loop;
}

// The same for the reference REFERENCE on WORKERS processes.
double TimeTorch(const std::string& reference, const fs::path& dir,
                 const std::string& train_list, const std::string& common,
                 int workers) {
  std::string out = Capture(
      "OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 " +
          Quote(reference) + " --tasks" + train_list + common +
          " --threads 1 --blas-threads 1 --workers " + std::to_string(workers),
      dir);
  double loop = -1;
  for (std::size_t pos = 0; pos < out.size();) {
    std::size_t nl = out.find('\n', pos);
    json j = json::parse(out.substr(pos, nl - pos), nullptr, false);
    if (j.is_object() && j.contains("total_seconds")) loop = j["total_seconds"];
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (loop < 0) {
    fmt::print(stderr, "bench: the reference printed no total_seconds\n");
    std::exit(1);
  }
  return loop;
}

// The median of V (the mean of the middle two when V is even).
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2]
                      : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// "median s (fastest to slowest)" of V.
std::string Spread(const std::vector<double>& v) {
  return fmt::format("{:6.2f} s ({:.2f} to {:.2f})", Median(v),
                     *std::min_element(v.begin(), v.end()),
                     *std::max_element(v.begin(), v.end()));
}

// Speed: 9 iterations of 10 tasks, 16 inner steps, beside PyTorch, each
// side on one worker and on two, OpenBLAS and PyTorch's own operations on
// one thread on both (cmf's reptile sets that itself; the reference is told).
void MeasureSpeed(const std::string& cmf, const fs::path& dir, Options& opt,
                  const std::string& train_list) {
  // Every setting of the algorithm spelled out, so that a default that
  // changes on one side does not make the two run different algorithms.
  const std::string common =
      " --iterations 9 --tasks-per-iteration 10 --inner-steps 16 --inner-lr "
      "0.01"
      " --inner-extractor-lr 0.001 --batch-size 64 --epsilon 1 "
      "--epsilon-final 0 --seed 0"
      " --architecture " +
      opt["speed-architecture"];
  const int repeat = std::max(1, std::stoi(opt["speed-repeat"]));
  // Interleaved, so that a change in the machine's load hits both sides.
  std::map<int, std::vector<double>> cmf_runs, torch_runs;  // by workers
  for (int r = 0; r < repeat; ++r) {
    for (int workers : {1, 2}) {
      cmf_runs[workers].push_back(
          TimeCmf(cmf, dir, train_list, common, workers));
      torch_runs[workers].push_back(
          TimeTorch(opt["reference"], dir, train_list, common, workers));
    }
  }
  fmt::print(
      "Speed: 9 iterations x 10 tasks x 16 inner steps, --architecture {}; "
      "OpenBLAS and PyTorch's own operations on one thread on both sides; "
      "seconds of meta-training, median of {} (fastest to slowest)\n",
      opt["speed-architecture"], repeat);
  bool met = true;
  for (int workers : {1, 2}) {
    double ratio = Median(torch_runs[workers]) / Median(cmf_runs[workers]);
    met = met && ratio >= 2;
    fmt::print(
        "  {} worker{}: cmf run reptile --threads {}  {}   PyTorch, {} "
        "process{}  {}"
        "   speed-up {:.2f}x\n",
        workers, workers > 1 ? "s" : " ", workers, Spread(cmf_runs[workers]),
        workers, workers > 1 ? "es" : "  ", Spread(torch_runs[workers]), ratio);
  }
  fmt::print("  two workers against one: cmf {:.2f}x, PyTorch {:.2f}x\n",
             Median(cmf_runs[1]) / Median(cmf_runs[2]),
             Median(torch_runs[1]) / Median(torch_runs[2]));
  fmt::print("  target (at least 2x at each): {}\n\n", met ? "met" : "NOT met");
}

// Reads --NAME VALUE pairs into OPT (over its defaults); false (after the
// usage) on a name it does not know.
bool ParseOptions(int argc, char** argv, Options& opt) {
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (!a.starts_with("--") || !opt.contains(a.substr(2))) {
      fmt::print(stderr,
                 "usage: cmf_bench_reptile --cmf CMF --gen CMF_GEN_EELS "
                 "[--OPTION VALUE]...; "
                 "options: {}\n",
                 [&] {
                   std::string names;
                   for (const auto& [k, v] : opt) names += " --" + k;
                   return names;
                 }());
      return false;
    }
    opt[a.substr(2)] = argv[i + 1];
  }
  return true;
}
}  // namespace

int main(int argc, char** argv) {
  Options opt = {{"cmf", ""},
                 {"gen", ""},
                 {"reference", ""},
                 {"threads", "2"},
                 {"speed-only", "0"},
                 {"cv-only", "0"},
                 {"family", "gold"},
                 {"family-size", "12"},
                 {"cross-family", "silver"},
                 {"cross-size", "3"},
                 {"folds", "4"},
                 {"meta-seeds", "3"},
                 {"seeds", "2"},
                 {"steps", "30"},
                 {"edge-steps", "40"},
                 {"dkl-args", ""},
                 {"reptile-args", ""},
                 {"speed-repeat", "3"},
                 {"speed-architecture", "small"}};
  if (!ParseOptions(argc, argv, opt)) return 2;
  if (opt["cmf"].empty() || opt["gen"].empty()) {
    fmt::print(stderr, "bench: --cmf and --gen are needed\n");
    return 2;
  }
  if (opt["reference"].empty())
    opt["reference"] =
        (fs::path(CMF_BENCH_SOURCE_DIR) / "reptile_reference.py").string();
  const std::string cmf = fs::absolute(opt["cmf"]).string();
  const std::string gen = fs::absolute(opt["gen"]).string();
  fs::path dir = fs::temp_directory_path() /
                 fmt::format("cmf-bench-reptile-{}", ::getpid());
  fs::create_directories(dir);
  Capture(Quote(cmf) + " init -q", dir);
  Capture(Quote(gen) +
              " --family gold --family-size 10 --out-dir priors >/dev/null",
          dir);
  std::string train_list;
  for (int i = 0; i < 10; ++i)
    train_list += fmt::format(" priors/gold-{:02d}.h5", i);

  if (opt["cv-only"] != "1") MeasureSpeed(cmf, dir, opt, train_list);
  if (opt["speed-only"] == "1") {
    std::error_code ec;
    fs::remove_all(dir, ec);  // the generated family: a few hundred MB
    return 0;
  }

  CrossValidate(cmf, gen, dir, opt);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
