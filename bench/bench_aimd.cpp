// Benchmark of aimd-al (issue: the aimd-al plugin): how soon active learning
// over MD frames evaluates the lowest-energy frame, for each acquisition and
// each kind of features, over SEEDS seeds, beside random choice.
//
//   cmf_bench_aimd --cmf build/cmf_cli/cmf          (makes the trajectories of
//                                                    samples/simulate.sh with
//                                                    md-mos2)
//   cmf_bench_aimd --trajectories a.h5 b.h5 c.h5    (or reads these)
//                  [--seeds 10] [--budget 150] [--seed-frames 5] [--epochs 20]
//                  [--features bonds,image] [--acquisitions lcb,mu]
//                  [--init meta.pt]   (image features also seeded by a reptile
//                  meta-model)
//                  [--reference bench/aimd_reference.py] [--speed-steps 30]
//   cmf_bench_aimd --render FILE    (the image features' renderer on a perfect
//                                    monolayer, for bench/adf_check.py)
//
// It prints, per features and acquisition, the fraction of runs that have
// evaluated the true minimum after n evaluations (seed frames included), and
// the median number of evaluations to it, with the targets: the median
// run within 10 % of the frames, and at least 3 times sooner than random.
// Random is a uniform draw without replacement, as `--acquisition random`
// makes it; its order does not depend on the model, so it is drawn here without
// training one (the same distribution: its median is about half the frames).
// Figures are of the same loop the stage runs (plugins/aimd/aimd_loop.h) on
// the same features (aimd_pool.h), with the stage's defaults.
//
// Then the time per step beside a PyTorch (Python) reference of the same loop
// (bench/aimd_reference.py, on bench/dkl_reference.py's model code):
// SPEED_STEPS steps of lcb on the bond features, both sides at 1 and at 2
// threads of PyTorch's own (torch.set_num_threads; cmf's ml::SetTorchThreads),
// BLAS as the environment sets it (run with OPENBLAS_NUM_THREADS=1
// OMP_WAIT_POLICY=PASSIVE, as the README does: both sides inherit them); the
// median step of each.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "acquisition.h"
#include "aimd_loop.h"
#include "aimd_pool.h"
#include "bench_util.h"
#include "frame_features.h"
#include "mos2.h"
#include "trajectory.h"

namespace fs = std::filesystem;
using cmf::aimd::LoopOptions;

namespace {

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    out.push_back(text.substr(pos, comma - pos));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// The median of VALUES, where a run that never found the minimum counts as
// infinitely late (printed "> budget").
double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

std::string Show(double median, int budget) {
  return std::isinf(median) ? fmt::format("> {}", budget)
                            : fmt::format("{:.1f}", median);
}

struct Options {
  std::string cmf, init;
  std::string reference =
      std::string(CMF_BENCH_SOURCE_DIR) + "/aimd_reference.py";
  int speed_steps = 30;
  std::vector<std::string> paths;
  int seeds = 10, budget = 150, seed_frames = 5, epochs = 20;
  std::vector<std::string> features = {"bonds", "image"},
                           acquisitions = {"lcb", "mu"};
};

// A perfect 6 x 6 monolayer as the image features see it, at 512 x 512
// pixels, float32, for bench/adf_check.py.
std::vector<float> RenderMonolayer() {
  cmf::md::Mos2Options mo;
  mo.displacement = 0;
  cmf::md::Structure s = cmf::md::BuildMos2(mo);
  cmf::md::Trajectory t;
  t.species = s.species;
  t.cell.assign(s.cell, s.cell + 9);
  t.positions.assign(s.positions.begin(), s.positions.end());
  t.step = {0};
  cmf::md::RenderOptions r;
  r.size = 512;
  return cmf::md::RenderAdf(t, 0, r);
}

// Reads the options into OPT; -1 to go on, or the exit code to end with
// (--render writes its image and ends here).
int ParseOptions(int argc, char** argv, Options* opt) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cmf")
      opt->cmf = next();
    else if (a == "--trajectories") {
      while (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
        opt->paths.push_back(argv[++i]);
    } else if (a == "--seeds")
      opt->seeds = std::stoi(next());
    else if (a == "--budget")
      opt->budget = std::stoi(next());
    else if (a == "--seed-frames")
      opt->seed_frames = std::stoi(next());
    else if (a == "--epochs")
      opt->epochs = std::stoi(next());
    else if (a == "--features")
      opt->features = Split(next());
    else if (a == "--acquisitions")
      opt->acquisitions = Split(next());
    else if (a == "--init")
      opt->init = next();
    else if (a == "--reference")
      opt->reference = next();
    else if (a == "--speed-steps")
      opt->speed_steps = std::stoi(next());
    else if (a == "--render") {
      std::vector<float> image = RenderMonolayer();
      std::FILE* f = std::fopen(next().c_str(), "wb");
      if (f == nullptr || std::fwrite(image.data(), sizeof(float), image.size(),
                                      f) != image.size())
        return 1;
      std::fclose(f);
      return 0;
    } else {
      fmt::print(
          stderr,
          "usage: cmf_bench_aimd (--cmf CMF | --trajectories F...) [--seeds N] "
          "[--budget N] [--seed-frames N] [--epochs N] [--features "
          "bonds,image] "
          "[--acquisitions lcb,mu,ei]\n");
      return 2;
    }
  }
  return -1;
}

// Makes samples/simulate.sh's three trajectories with md-mos2 in a new
// folder WORK, and adds them to PATHS; -1, or the exit code on a failure.
int MakeTrajectories(const std::string& cmf, fs::path* work,
                     std::vector<std::string>* paths) {
  if (cmf.empty()) {
    fmt::print(
        stderr,
        "give --cmf (to make trajectories with md-mos2) or --trajectories\n");
    return 2;
  }
  *work =
      fs::temp_directory_path() / fmt::format("cmf-bench-aimd-{}", ::getpid());
  fs::create_directories(*work);
  if (cmf::bench::RunQuiet({cmf, "init", "-q"}, *work).exit_code != 0) return 1;
  for (int k = 0; k < 3; ++k) {
    std::string out = fmt::format("traj-v{}.h5", k);
    auto c = cmf::bench::RunQuiet(
        {cmf, "run", "-q", "md-mos2", "--supercell", "6", "--vacancies",
         std::to_string(k), "--seed", std::to_string(k), "-o", out},
        *work);
    if (c.exit_code != 0) {
      fmt::print(stderr, "cmf run md-mos2 failed (is LAMMPS installed?)\n");
      return 1;
    }
    paths->push_back((*work / out).string());
  }
  fmt::print(
      "trajectories: samples/simulate.sh's (md-mos2 --supercell 6 "
      "--vacancies 0/1/2 "
      "--seed 0/1/2), in {}\n",
      work->string());
  return -1;
}

// The frames of every trajectory, their targets, and the frame of the lowest.
struct Frames {
  std::vector<const cmf::md::Trajectory*> trajectories;
  std::vector<double> truth;
  int frames = 0;
  int true_min = 0;
};

// Random: the evaluation at which a uniform draw without replacement meets
// the minimum, for each of SEEDS seeds.
std::vector<double> RandomFound(int seeds, const Frames& fr) {
  const int frames = fr.frames, true_min = fr.true_min;
  std::vector<double> random_found;
  for (int s = 0; s < seeds; ++s) {
    std::uint64_t rng =
        static_cast<std::uint64_t>(s) * 0x9e3779b97f4a7c15ULL + 7;
    std::vector<char> seen(frames, 0);
    int k = 0;
    while (true) {
      int i = cmf::ml::UniformIndex(&rng, frames);
      if (seen[i]) continue;
      seen[i] = 1;
      ++k;
      if (i == true_min) break;
    }
    random_found.push_back(k);
  }
  return random_found;
}

// The columns of the table: the evaluations it gives the fraction at, the
// last evaluation a run may make, and random's median.
struct Table {
  std::vector<int> marks;
  int limit = 0;  // seed frames + budget
  double random_median = 0;
};

// Prints the table's header.
void PrintHeader(const Table& t) {
  std::string header = fmt::format("{:<8} {:<8}", "features", "acq.");
  for (int m : t.marks) header += fmt::format(" {:>6}", fmt::format("@{}", m));
  header +=
      fmt::format(" {:>10} {:>10} {:>9}", "median", "vs random", "s/step");
  fmt::print(
      "fraction of runs that have evaluated the minimum after n "
      "evaluations\n{}\n",
      header);
}

// Prints the row of features F and acquisition A from the evaluations at
// which each run FOUND the minimum and the median SECONDS per step; returns
// the median of FOUND.
double PrintRow(const Table& t, const std::string& f, const std::string& a,
                const std::vector<double>& found, double seconds) {
  std::string line = fmt::format("{:<8} {:<8}", f, a);
  for (int m : t.marks) {
    int hits = 0;
    for (double v : found) hits += v <= m;
    line += fmt::format(" {:>6.2f}", static_cast<double>(hits) / found.size());
  }
  const double median = Median(found);
  line += fmt::format(" {:>10} {:>10} {:>9}", Show(median, t.limit),
                      std::isinf(median)
                          ? "-"
                          : fmt::format("{:.1f}x", t.random_median / median),
                      seconds > 0 ? fmt::format("{:.3f}", seconds) : "-");
  fmt::print("{}\n", line);
  return median;
}

// Runs the stage's loop on POOL with acquisition A from model START (none:
// cold) for each seed; the evaluation at which each found the minimum
// (infinity: never), and the seconds of every step in STEP_SECONDS.
std::vector<double> RunSeeds(const cmf::aimd::Pool& pool, const Options& opt,
                             const Frames& fr, const std::string& a,
                             const std::string& start,
                             std::vector<double>* step_seconds) {
  std::vector<double> found;
  for (int s = 0; s < opt.seeds; ++s) {
    LoopOptions o;
    o.steps = opt.budget;
    o.seed_frames = opt.seed_frames;
    o.pick = cmf::aimd::ParsePick(a);
    o.epochs = opt.epochs;
    o.seed = static_cast<std::uint64_t>(s);
    o.model.hidden = cmf::ml::DklConfig::Architecture("small");
    o.init = start;
    int evaluations = 0, at = -1;
    auto evaluate = [&](int i) {
      ++evaluations;
      if (i == fr.true_min && at < 0) at = evaluations;
      return fr.truth[i];
    };
    cmf::aimd::RunLoop(pool, o, evaluate, nullptr,
                       [&](const cmf::aimd::StepLog& log) {
                         step_seconds->push_back(log.seconds);
                         return at < 0;  // stop once the minimum is found
                       });
    found.push_back(at < 0 ? std::numeric_limits<double>::infinity() : at);
  }
  return found;
}

// A row for each features, acquisition and start; the best median of each
// features.
std::map<std::string, double> RunFeatures(const Options& opt, const Frames& fr,
                                          const Table& table) {
  std::map<std::string, double> best_median;
  for (const std::string& f : opt.features) {
    auto start = std::chrono::steady_clock::now();
    cmf::aimd::Pool pool = cmf::aimd::MakePool(fr.trajectories, f, {});
    double feature_seconds = cmf::bench::SecondsSince(start);
    for (const std::string& a : opt.acquisitions) {
      // Image features read 16 x 16 patches, the input of a meta-model trained
      // on microscope experiments: with --init, each run again seeded by it.
      std::vector<std::string> starts = {""};
      if (f == "image" && !opt.init.empty()) starts.push_back(opt.init);
      for (const std::string& start : starts) {
        std::vector<double> step_seconds;
        std::vector<double> found =
            RunSeeds(pool, opt, fr, a, start, &step_seconds);
        double m = PrintRow(table, start.empty() ? f : f + "+init", a, found,
                            Median(step_seconds));
        if (!best_median.count(f) || m < best_median[f]) best_median[f] = m;
      }
    }
    fmt::print("  ({} features: {} wide, {:.1f} s for all frames)\n", f,
               pool.features, feature_seconds);
  }
  return best_median;
}

// Prints the verdict of each features' best median against the targets.
void PrintTargets(const std::map<std::string, double>& best_median,
                  const Frames& fr, const Table& table) {
  const int frames = fr.frames;
  const double random_median = table.random_median;
  // Over few seeds random's median is noisy; its expectation is (frames + 1)
  // / 2. The verdict takes whichever of the two is less flattering.
  const double random_expected = (frames + 1) / 2.0;
  const double random_ref = std::min(random_median, random_expected);
  fmt::print(
      "\ntargets: the median run within 10 % of the frames ({} evaluations) "
      "and 3x sooner "
      "than random (median over these seeds {:.1f}, expectation {:.1f}: {:.1f} "
      "taken)\n",
      frames / 10, random_median, random_expected, random_ref);
  for (const auto& [f, m] : best_median)  // (empty with --seeds 0)
    fmt::print("  {:<6} best median {}: {} and {}\n", f, Show(m, table.limit),
               m <= frames / 10 ? "within 10 %" : "NOT within 10 %",
               m * 3 <= random_ref
                   ? fmt::format("{:.1f}x sooner than random", random_ref / m)
                   : "NOT 3x sooner than random");
}

// Writes the features of POOL and the targets TRUTH where the reference
// reads them, into a new scratch folder; the folder.
fs::path WriteReferenceInputs(const cmf::aimd::Pool& pool,
                              const std::vector<double>& truth) {
  fs::path scratch = fs::temp_directory_path() /
                     fmt::format("cmf-bench-aimd-ref-{}", ::getpid());
  fs::create_directories(scratch);
  {
    std::FILE* f = std::fopen((scratch / "x.f32").c_str(), "wb");
    std::fwrite(pool.x.data(), sizeof(float), pool.x.size(), f);
    std::fclose(f);
    f = std::fopen((scratch / "t.f64").c_str(), "wb");
    std::fwrite(truth.data(), sizeof(double), truth.size(), f);
    std::fclose(f);
  }
  return scratch;
}

// The median step of cmf's loop on POOL at THREADS torch threads.
double CmfStepSeconds(const cmf::aimd::Pool& pool, const Options& opt,
                      const std::vector<double>& truth, int threads) {
  cmf::ml::SetTorchThreads(threads);
  LoopOptions o;
  o.steps = opt.speed_steps;
  o.seed_frames = opt.seed_frames;
  o.epochs = opt.epochs;
  o.model.hidden = cmf::ml::DklConfig::Architecture("small");
  std::vector<double> seconds;
  cmf::aimd::RunLoop(
      pool, o, [&](int i) { return truth[i]; }, nullptr,
      [&](const cmf::aimd::StepLog& log) {
        seconds.push_back(log.seconds);
        return true;
      });
  return Median(seconds);
}

// The median step the reference run by COMMAND printed; NaN when it printed
// none.
double ReferenceStepSeconds(const std::string& command) {
  std::string out;
  if (std::FILE* p = ::popen(command.c_str(), "r")) {
    char buf[4096];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  double theirs = std::nan("");
  std::size_t at = out.find("\"step_seconds\": ");
  if (at != std::string::npos) theirs = std::stod(out.substr(at + 16));
  return theirs;
}

// Speed beside the PyTorch reference, on the bond features.
void CompareSpeed(const Options& opt, const Frames& fr) {
  const int speed_steps = opt.speed_steps, seed_frames = opt.seed_frames,
            epochs = opt.epochs, frames = fr.frames;
  cmf::aimd::Pool pool = cmf::aimd::MakePool(fr.trajectories, "bonds", {});
  const fs::path scratch = WriteReferenceInputs(pool, fr.truth);
  fmt::print(
      "\ntime per step, {} steps of lcb on the bond features ({} frames), "
      "median:\n",
      speed_steps, frames);
  fmt::print("{:<8} {:>12} {:>12} {:>8}\n", "threads", "cmf (ms)",
             "PyTorch (ms)", "ratio");
  double best_cmf = 1e30, best_ref = 1e30;
  for (int threads : {1, 2}) {
    const double ours = CmfStepSeconds(pool, opt, fr.truth, threads);
    std::string command = fmt::format(
        "/usr/bin/python3 '{}' --features '{}' --width {} --targets '{}' "
        "--steps {} "
        "--seed-frames {} --epochs {} --threads {}",
        opt.reference, (scratch / "x.f32").string(), pool.features,
        (scratch / "t.f64").string(), speed_steps, seed_frames, epochs,
        threads);
    double theirs = ReferenceStepSeconds(command);
    best_cmf = std::min(best_cmf, ours);
    if (theirs == theirs) best_ref = std::min(best_ref, theirs);
    fmt::print("{:<8} {:>12.2f} {:>12.2f} {:>7.2f}x\n", threads, 1e3 * ours,
               1e3 * theirs, theirs / ours);
  }
  fmt::print("best against best: cmf {:.2f} ms, PyTorch {:.2f} ms: {:.2f}x\n",
             1e3 * best_cmf, 1e3 * best_ref, best_ref / best_cmf);
  fs::remove_all(scratch);
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (int rc = ParseOptions(argc, argv, &opt); rc >= 0) return rc;
  fs::path work;
  if (opt.paths.empty()) {
    if (int rc = MakeTrajectories(opt.cmf, &work, &opt.paths); rc >= 0)
      return rc;
  }
  std::vector<cmf::md::Trajectory> owned;
  for (const std::string& p : opt.paths)
    owned.push_back(cmf::md::ReadTrajectory(p));
  Frames fr;
  for (const auto& t : owned) fr.trajectories.push_back(&t);
  fr.truth = cmf::aimd::Targets(fr.trajectories, false);
  fr.frames = static_cast<int>(fr.truth.size());
  fr.true_min = static_cast<int>(
      std::min_element(fr.truth.begin(), fr.truth.end()) - fr.truth.begin());
  const int frames = fr.frames;
  opt.budget = std::min(opt.budget, frames - opt.seed_frames);
  Table table;
  table.marks = {10, 25, 50, frames / 10, 100, opt.seed_frames + opt.budget};
  table.limit = opt.seed_frames + opt.budget;
  fmt::print(
      "{} frames in {} trajectories; the lowest (centred) energy per atom is "
      "frame {}; "
      "{} seeds, {} seed frames, budget {} evaluations after them, {} "
      "epochs\n\n",
      frames, fr.trajectories.size(), fr.true_min, opt.seeds, opt.seed_frames,
      opt.budget, opt.epochs);
  if (opt.seeds < 1)
    opt.features.clear();  // --seeds 0: the speed comparison only
  PrintHeader(table);

  std::vector<double> random_found = RandomFound(opt.seeds, fr);
  table.random_median = opt.seeds > 0 ? Median(random_found) : 0;
  if (opt.seeds > 0) PrintRow(table, "-", "random", random_found, 0);

  const std::map<std::string, double> best_median = RunFeatures(opt, fr, table);
  PrintTargets(best_median, fr, table);

  if (opt.speed_steps > 0) CompareSpeed(opt, fr);
  if (!work.empty()) fs::remove_all(work);
  return 0;
}
