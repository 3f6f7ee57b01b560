// Benchmark of one DKL active-learning step (issue: plugin host and dkl): the
// seconds per step of cmf's model (plugins/ml, LibTorch) at 10, 50 and 200
// measured points, side by side with a PyTorch (Python) implementation of the
// same data preparation, model and step (bench/dkl_reference.py), on a 62x75
// generated experiment with dkl-al's default architecture (small: 256-64-64-2;
// --architecture large: 256-1000-500-50-2) and 20 epochs per step.
//
//   cmf_bench_dkl --gen build/samples/cmf-gen-eels [--reference
//   bench/dkl_reference.py]
//                 [--points 10,50,200] [--repeat 3] [--epochs 20]
//                 [--warm-epochs 5] [--torch-threads 1,2]
//                 [--blas-threads 1,CORES] [--architecture small|large]
//
// A step is what dkl-al does between two measurements: training on the
// measured points, the posterior over all 2,820 candidates, the acquisition
// (mu) and the RMSE of the predicted map. Two of cmf's steps are timed: the
// reference's (a fresh model, EPOCHS full-batch Adam steps: the same work),
// and dkl-al's default (on from the model the step before trained, WARM
// Adam steps; the model before is trained on the first N - 1 points, not
// timed). The target is judged on the second: it does less work for the
// same outcome, which bench/dkl_outcome.py measures over seeds and
// generated families (RMSE by step, the step the top 1 % is first found).
//
// Every threading set-up is tried for both sides: PyTorch's own (OpenMP)
// threads (cmf's dkl-al --threads; the reference's torch.set_num_threads) at
// each of --torch-threads (default 1,2), OpenBLAS on each of --blas-threads
// (default 1 and every core; OPENBLAS_NUM_THREADS), and OMP_WAIT_POLICY unset
// and PASSIVE; and each with glibc's heap as it comes and kept as the cmf
// binary keeps it (cmf_cli/main.cpp, TuneAllocator: freed memory stays in
// the heap up to 512 MiB and no block is mapped on its own below 256 MiB;
// here through glibc's MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_ and
// MALLOC_TOP_PAD_). With glibc's defaults every tensor over 128 KiB (the
// candidates' features, 2.9 MB; their activations) is mapped afresh and
// faulted in at every step: some 700 page faults and 6 ms of a 16 ms step at
// 50 points here. `cmf run dkl-al` runs with the heap kept, so that set-up is
// what a user gets; the reference is offered the same. Each set-up runs in its
// own process (--worker for cmf), because OpenMP and OpenBLAS read their
// environment once, when they start; cmf's and the reference's set-ups
// alternate, so that a change in the machine's load hits both. The figure is
// the median of REPEAT steps, with the RMSE beside it so that equal work is
// compared; "best against best" takes, size by size, each side's fastest set-up
// and says which it was.
#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "acquisition.h"
#include "data.h"
#include "dkl.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t comma = text.find(',', pos);
    out.push_back(std::stoi(text.substr(pos, comma - pos)));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

// OpenBLAS's thread count in this process (it reads OPENBLAS_NUM_THREADS when
// it loads), or -1 when the BLAS LibTorch loaded is not OpenBLAS.
int OpenBlasThreads() {
  for (const char* name : {"libopenblas.so.0", "libblas.so.3"}) {
    void* handle = ::dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
    if (handle == nullptr) continue;
    auto get = reinterpret_cast<int (*)()>(
        ::dlsym(handle, "openblas_get_num_threads"));
    int threads = get != nullptr ? get() : -1;
    ::dlclose(handle);  // only drops the reference dlopen took
    if (threads > 0) return threads;
  }
  return -1;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The median seconds of REPEAT steps (and of their training and prediction),
// and the RMSE of the last step's map.
struct Timed {
  double seconds = 0, train = 0, predict = 0, rmse = 0;
  json Json(const std::string& prefix) const {
    return {{prefix + "seconds_per_step", seconds},
            {prefix + "train_seconds", train},
            {prefix + "predict_seconds", predict},
            {prefix + "rmse", rmse}};
  }
};

// Times REPEAT steps on the N points (X, Y) of MODEL: with WARM 0, each a
// fresh model trained EPOCHS Adam steps; otherwise each continues, for WARM
// Adam steps, from a model trained afresh for EPOCHS on the first N - 1
// points (not timed), as dkl-al's steps do with --warm-epochs. A step is the
// training, the prediction of every candidate, the acquisition and the RMSE.
Timed TimeSteps(cmf::ml::DklModel& model, const std::vector<float>& x,
                const std::vector<double>& y, int n, int epochs, int warm,
                const cmf::ml::Patches& patches,
                const std::vector<double>& truth,
                const std::vector<char>& measured, int repeat) {
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  std::vector<double> seconds, train_seconds, predict_seconds;
  Timed t;
  for (int r = 0; r < repeat; ++r) {
    model.Reset();
    if (warm > 0 && n > 1) {
      const std::vector<float> before(
          x.begin(),
          x.begin() + static_cast<std::ptrdiff_t>((n - 1) * patches.features));
      const std::vector<double> before_y(y.begin(), y.end() - 1);
      model.Train(before, n - 1, before_y, epochs);
    }
    auto start = Clock::now();
    model.Train(x, n, y, warm > 0 ? warm : epochs);
    auto trained = Clock::now();
    cmf::ml::Prediction p = model.Predict(patches.values.data(), patches.count);
    auto predicted = Clock::now();
    std::vector<double> values = cmf::ml::AcquisitionValues(
        cmf::ml::Acquisition::kMaxUncertainty, p.mean, p.variance, 0, {});
    std::uint64_t state = 1;
    int next = cmf::ml::Choose(cmf::ml::Acquisition::kMaxUncertainty, values,
                               measured, &state);
    (void)next;
    double sum = 0;
    for (int i = 0; i < patches.count; ++i)
      sum += (p.mean[i] - truth[i]) * (p.mean[i] - truth[i]);
    t.rmse = std::sqrt(sum / patches.count);
    seconds.push_back(since(start, Clock::now()));
    train_seconds.push_back(since(start, trained));
    predict_seconds.push_back(since(trained, predicted));
  }
  t.seconds = Median(seconds);
  t.train = Median(train_seconds);
  t.predict = Median(predict_seconds);
  return t;
}

// One configuration: prints one JSON line per size.
int Worker(const std::map<std::string, std::string>& opt) {
  const fs::path data = opt.at("data");
  const int window = 16, pool = 32;
  const int epochs = std::stoi(opt.at("epochs"));
  const int warm = std::stoi(opt.at("warm-epochs"));
  const int repeat = std::stoi(opt.at("repeat"));
  const int threads = std::stoi(opt.at("threads"));
  cmf::ml::SetTorchThreads(threads);
  auto t0 = std::chrono::steady_clock::now();
  cmf::ml::Experiment e = cmf::ml::ReadExperiment(data, true);
  cmf::ml::Patches patches =
      cmf::ml::MakePatches(e.image, e.height, e.width, window);
  const int groups = e.channels / pool;
  std::vector<double> pooled = e.PooledAtCentres(patches, pool);
  cmf::ml::Range range = cmf::ml::RangeOf(pooled);
  cmf::ml::Scalarizer scalarizer =
      cmf::ml::Scalarizer::Parse("band-peak:0.85:0.95");
  std::vector<int> band = scalarizer.Band(cmf::ml::PoolEnergy(e.energy, pool));
  std::vector<double> truth(patches.count), norm(groups);
  for (int i = 0; i < patches.count; ++i) {
    for (int g = 0; g < groups; ++g)
      norm[g] = range.Normalise(pooled[i * groups + g]);
    scalarizer.Apply(norm.data(), band, groups, &truth[i]);
  }
  double prepare =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  fmt::print("{}\n", json{{"impl", "cmf"},
                          {"prepare_seconds", prepare},
                          {"candidates", patches.count},
                          {"threads", threads},
                          {"blas_threads", OpenBlasThreads()}}
                         .dump());
  cmf::ml::DklConfig config;
  config.features = patches.features;
  config.hidden = cmf::ml::DklConfig::Architecture(opt.at("architecture"));
  cmf::ml::DklModel model(config, 0);
  std::mt19937_64 rng(0);
  for (int n : ParseList(opt.at("points"))) {
    std::vector<int> all(patches.count);
    for (int i = 0; i < patches.count; ++i) all[i] = i;
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int> idx(all.begin(), all.begin() + n);
    std::vector<float> x;
    std::vector<double> y;
    std::vector<char> measured(patches.count, 0);
    for (int i : idx) {
      x.insert(x.end(), patches.values.begin() + i * patches.features,
               patches.values.begin() + (i + 1) * patches.features);
      y.push_back(truth[i]);
      measured[i] = 1;
    }
    json line{{"impl", "cmf"}, {"points", n}, {"threads", threads}};
    // The same work as the reference: a fresh model, EPOCHS Adam steps.
    Timed fresh =
        TimeSteps(model, x, y, n, epochs, 0, patches, truth, measured, repeat);
    line.update(fresh.Json(""));
    // dkl-al's default step: on from the model of the step before (trained
    // afresh on the first N - 1 points, not timed), WARM Adam steps.
    if (warm > 0) {
      line.update(TimeSteps(model, x, y, n, epochs, warm, patches, truth,
                            measured, repeat)
                      .Json("warm_"));
    }
    fmt::print("{}\n", line.dump());
    std::fflush(stdout);
  }
  return 0;
}

// Runs COMMAND and returns its JSON lines by "points", and under 0 the line
// that opens its output (the set-up it ran with).
std::map<int, json> Collect(const std::string& command) {
  std::map<int, json> out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char line[4096];
  while (std::fgets(line, sizeof line, p) != nullptr) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    if (j.contains("points"))
      out[j["points"].get<int>()] = j;
    else if (j.contains("prepare_seconds"))
      out[0] = j;
  }
  int status = ::pclose(p);
  if (status != 0)
    fmt::print(stderr, "bench: '{}' failed ({})\n", command, status);
  return out;
}

using Options = std::map<std::string, std::string>;

// Reads --worker and --NAME VALUE pairs into OPT (over its defaults); false
// (after the usage) on anything else.
bool ParseOptions(int argc, char** argv, Options* opt, bool* worker) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--worker") {
      *worker = true;
    } else if (a.starts_with("--") && i + 1 < argc) {
      (*opt)[a.substr(2)] = argv[++i];
    } else {
      fmt::print(stderr,
                 "usage: cmf_bench_dkl --gen CMF_GEN_EELS [--reference "
                 "dkl_reference.py] [--points 10,50,200] [--repeat 3] "
                 "[--warm-epochs 5] [--torch-threads 1,2] "
                 "[--blas-threads 1,CORES] "
                 "[--architecture small|large]\n");
      return false;
    }
  }
  return true;
}

// The experiment at DIR/sample.h5, made by --gen, or --data when given;
// empty (after saying so) when it cannot be made.
fs::path PrepareData(Options& opt, const fs::path& dir) {
  fs::path data = dir / "sample.h5";
  if (opt["data"].empty()) {
    std::string gen = fmt::format("'{}' -o '{}' --seed 0 >/dev/null",
                                  opt["gen"], data.string());
    if (std::system(gen.c_str()) != 0) {
      fmt::print(stderr, "bench: cannot generate the experiment\n");
      return {};
    }
  } else {
    data = opt["data"];
  }
  return data;
}

// One threading set-up of one side, and what it printed by size.
struct Config {
  bool cmf;
  int torch_threads;
  int blas_threads;
  bool passive;
  bool heap_kept;  // glibc's heap kept as the cmf binary keeps it
  std::map<int, json> result;
  std::string Setup() const {
    return fmt::format("torch {}, OpenBLAS {}, {}, {}", torch_threads,
                       blas_threads, passive ? "OMP PASSIVE" : "OMP default",
                       heap_kept ? "heap kept" : "glibc heap");
  }
  std::string Name() const {
    return fmt::format("{:<8}{}", cmf ? "cmf" : "pytorch", Setup());
  }
  std::string Command(const std::string& self, const std::string& reference,
                      const std::string& common,
                      const std::string& cmf_only) const {
    // env -u: an OMP_WAIT_POLICY, OMP_NUM_THREADS or malloc setting of the
    // caller's must not leak into a set-up that is meant to run without it.
    std::string env = fmt::format(
        "env -u OMP_WAIT_POLICY -u OMP_NUM_THREADS -u MALLOC_MMAP_THRESHOLD_ "
        "-u MALLOC_TRIM_THRESHOLD_ -u MALLOC_TOP_PAD_ "
        "OPENBLAS_NUM_THREADS={}{}{}",
        blas_threads, passive ? " OMP_WAIT_POLICY=PASSIVE" : "",
        heap_kept ? " MALLOC_MMAP_THRESHOLD_=268435456 "
                    "MALLOC_TRIM_THRESHOLD_=536870912 MALLOC_TOP_PAD_=8388608"
                  : "");
    return cmf ? fmt::format("{} '{}' --worker {} {} --threads {}", env, self,
                             common, cmf_only, torch_threads)
               : fmt::format("{} /usr/bin/python3 '{}' {} --threads {}", env,
                             reference, common, torch_threads);
  }
};

// Every set-up of --torch-threads and --blas-threads, OMP_WAIT_POLICY unset
// and PASSIVE, cmf's and the reference's alternating.
std::vector<Config> MakeConfigs(Options& opt) {
  std::vector<Config> configs;
  for (int torch_threads : ParseList(opt["torch-threads"]))
    for (int blas_threads : ParseList(opt["blas-threads"]))
      for (bool passive : {false, true})
        for (bool heap_kept : {false, true})
          for (bool cmf : {true, false})
            configs.push_back(
                {cmf, torch_threads, blas_threads, passive, heap_kept, {}});
  return configs;
}

// Runs every set-up in turn, each in its own process, and keeps its figures.
void RunConfigs(std::vector<Config>& configs, const fs::path& self,
                Options& opt, const std::string& common) {
  const std::string cmf_only = "--warm-epochs " + opt["warm-epochs"];
  for (Config& c : configs) {
    c.result =
        Collect(c.Command(self.string(), opt["reference"], common, cmf_only));
    // A set-up that did not take (an OpenBLAS that ignores the variable, a
    // BLAS that is not OpenBLAS) is said, not silently mislabelled.
    const json& head = c.result[0];
    if (head.contains("blas_threads") &&
        head["blas_threads"].is_number_integer() &&
        head["blas_threads"].get<int>() != c.blas_threads)
      fmt::print("note: {} ran OpenBLAS on {} threads\n", c.Name(),
                 head["blas_threads"].get<int>());
    if (head.contains("threads") &&
        head["threads"].get<int>() != c.torch_threads)
      fmt::print("note: {} ran {} torch threads\n", c.Name(),
                 head["threads"].get<int>());
    c.result.erase(0);
  }
}

// The table: a row per set-up, cmf's first, a column per size.
void PrintTable(const std::vector<Config>& configs,
                const std::vector<int>& points) {
  fmt::print("{:<56}", "seconds per step (rmse)");
  for (int n : points) fmt::print("{:>18}", fmt::format("n = {}", n));
  fmt::print("\n");
  for (bool cmf : {true, false}) {
    for (const Config& c : configs) {
      if (c.cmf != cmf) continue;
      fmt::print("{:<56}", c.Name());
      for (int n : points) {
        auto it = c.result.find(n);
        if (it == c.result.end()) {
          fmt::print("{:>18}", "failed");
          continue;
        }
        fmt::print("{:>18}",
                   fmt::format("{:.3f} ({:.3f})",
                               it->second["seconds_per_step"].get<double>(),
                               it->second["rmse"].get<double>()));
      }
      fmt::print("\n");
    }
  }
}

// Each side's fastest set-up against the other's, size by size: cmf's step
// read from its worker's figures under PREFIX ("" for a fresh model, "warm_"
// for dkl-al's step on from the last), the reference's fresh step. True when
// cmf's is at least twice as fast at every size.
bool PrintBestAgainstBest(const std::vector<Config>& configs,
                          const std::vector<int>& points,
                          const std::string& prefix, const std::string& what) {
  fmt::print("\nbest against best, {} (each side's fastest set-up):\n", what);
  bool met = true;
  for (int n : points) {
    const Config* best[2] = {nullptr, nullptr};  // pytorch, cmf
    auto figure = [n, &prefix](const Config* c, const std::string& name) {
      const json& r = c->result.at(n);
      const std::string key = (c->cmf ? prefix : "") + name;
      return r.contains(key) ? r[key].get<double>() : -1.0;
    };
    auto seconds = [&figure](const Config* c) {
      return figure(c, "seconds_per_step");
    };
    for (const Config& c : configs) {
      if (!c.result.contains(n) || seconds(&c) < 0) continue;
      const Config*& b = best[c.cmf ? 1 : 0];
      if (b == nullptr || seconds(&c) < seconds(b)) b = &c;
    }
    if (best[0] == nullptr || best[1] == nullptr) {
      met = false;
      fmt::print("  n = {:<4} n/a (a side failed every set-up)\n", n);
      continue;
    }
    double ratio = seconds(best[0]) / seconds(best[1]);
    met = met && ratio >= 2;
    // Where each side's step went: training, prediction over every
    // candidate, and the rest (acquisition, RMSE).
    auto phases = [&](const Config* c) {
      const double train = figure(c, "train_seconds"),
                   predict = figure(c, "predict_seconds");
      if (train < 0 || predict < 0) return std::string("no phases");
      return fmt::format(
          "train {:.4f}, predict {:.4f}, rest {:.4f}; rmse {:.3f}", train,
          predict, std::max(0.0, seconds(c) - train - predict),
          figure(c, "rmse"));
    };
    fmt::print(
        "  n = {:<4} speed-up {:.2f}x\n"
        "      cmf     {:.4f} s ({}; {})\n"
        "      pytorch {:.4f} s ({}; {})\n",
        n, ratio, seconds(best[1]), best[1]->Setup(), phases(best[1]),
        seconds(best[0]), best[0]->Setup(), phases(best[0]));
  }
  return met;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = {{"points", "10,50,200"},
                 {"repeat", "3"},
                 {"epochs", "20"},
                 {"warm-epochs", "5"},
                 {"architecture", "small"},
                 {"threads", "1"},
                 {"torch-threads", "1,2"},
                 {"blas-threads", ""},
                 {"reference", ""},
                 {"gen", ""},
                 {"data", ""}};
  bool worker = false;
  if (!ParseOptions(argc, argv, &opt, &worker)) return 2;
  std::vector<int> hidden;
  try {
    hidden = cmf::ml::DklConfig::Architecture(opt["architecture"]);
  } catch (const std::exception& e) {
    fmt::print(stderr, "bench: --architecture: {}\n", e.what());
    return 2;
  }
  if (worker) return Worker(opt);

  fs::path self = fs::canonical("/proc/self/exe");
  if (opt["reference"].empty())
    opt["reference"] =
        (fs::path(CMF_BENCH_SOURCE_DIR) / "dkl_reference.py").string();
  if (opt["gen"].empty()) {
    fmt::print(stderr, "bench: --gen (the cmf-gen-eels binary) is needed\n");
    return 2;
  }
  fs::path dir =
      fs::temp_directory_path() / fmt::format("cmf-bench-dkl-{}", ::getpid());
  fs::create_directories(dir);
  const fs::path data = PrepareData(opt, dir);
  if (data.empty()) return 1;
  std::string common = fmt::format(
      "--data '{}' --points {} --repeat {} --epochs {} --architecture {}",
      data.string(), opt["points"], opt["repeat"], opt["epochs"],
      opt["architecture"]);
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  if (opt["blas-threads"].empty())
    opt["blas-threads"] = cores > 1 ? fmt::format("1,{}", cores) : "1";
  std::vector<Config> configs = MakeConfigs(opt);
  fmt::print(
      "DKL active-learning step: 62x75 generated experiment (cmf-gen-eels "
      "--seed 0), "
      "window 16, pool 32, --architecture {} (256-{}-2), {} epochs, median of "
      "{} "
      "steps, {} cores\n\n",
      opt["architecture"], fmt::join(hidden, "-"), opt["epochs"], opt["repeat"],
      cores);
  RunConfigs(configs, self, opt, common);
  const std::vector<int> points = ParseList(opt["points"]);
  PrintTable(configs, points);
  PrintBestAgainstBest(
      configs, points, "",
      fmt::format("the same work (a fresh model, {} epochs)", opt["epochs"]));
  bool met = false;
  if (std::stoi(opt["warm-epochs"]) > 0) {
    met = PrintBestAgainstBest(
        configs, points, "warm_",
        fmt::format("dkl-al's default step (on from the last step's model, "
                    "--warm-epochs {}) against the reference's fresh {} "
                    "epochs; bench/dkl_outcome.py compares their outcome",
                    opt["warm-epochs"], opt["epochs"]));
  }
  fmt::print("\ntarget (dkl-al's default step at least 2x at every size): {}\n",
             met ? "met" : "NOT met");
  std::error_code ec;
  if (opt["data"].empty()) fs::remove_all(dir, ec);
  return 0;
}
