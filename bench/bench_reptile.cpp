// Benchmark of the reptile plugin (issue: the reptile plugin), through the
// real cmf binary:
//
// 1. The headline: on a generated family (cmf-gen-eels, 13 experiments: 10 to
//    meta-train on, 3 held out), meta-train with `cmf run reptile`, then run
//    `cmf run dkl-al --acquisition mu` on each held-out experiment for several
//    seeds, cold and seeded (--init meta.pt). Take the value the cold start's
//    mean RMSE curve reaches at step 30; print the first step at which the
//    cold mean curve reaches it, the first at which the seeded one does, and
//    the reduction 1 - seeded/cold (target: at least 30 %). Also the step at
//    which `ei` first measures a top-1 % location, seeded and cold.
// 2. Speed: 9 iterations of 10 tasks, 16 inner steps, the 256-1000-500-50-2
//    extractor, `cmf run reptile` beside a plain PyTorch (Python) loop of the
//    same algorithm (bench/reptile_reference.py); target at least 2x.
//
//   cmf_bench_reptile --cmf build-release/cmf_cli/cmf --gen build-release/samples/cmf-gen-eels
//       [--seeds 3] [--steps 40] [--iterations 50] [--epsilon 1] [--architecture default]
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using cmf::bench::Clock;
using cmf::bench::SecondsSince;

namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// Runs COMMAND in DIR; returns its standard output, or exits on failure.
std::string Capture(const std::string& command, const fs::path& dir) {
  std::string full = "cd " + Quote(dir.string()) + " && " + command;
  FILE* p = ::popen(full.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while (p != nullptr && (n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = p ? ::pclose(p) : -1;
  if (status != 0) {
    fmt::print(stderr, "bench: '{}' failed ({})\n", command, status);
    std::exit(1);
  }
  return out;
}

std::string Opt(const std::map<std::string, std::string>& o, const std::string& k) {
  return o.at(k);
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opt = {
      {"cmf", ""},        {"gen", ""},          {"reference", ""},
      {"seeds", "3"},     {"steps", "40"},      {"iterations", "50"},
      {"epsilon", "1"},   {"epsilon-final", "0"}, {"architecture", "default"},
      {"inner-steps", "16"}, {"threads", "2"},  {"speed-only", "0"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (!a.starts_with("--") || !opt.contains(a.substr(2))) {
      fmt::print(stderr, "usage: cmf_bench_reptile --cmf CMF --gen CMF_GEN_EELS [--seeds N] "
                         "[--steps N] [--iterations N] [--epsilon E] [--architecture A]\n");
      return 2;
    }
    opt[a.substr(2)] = argv[i + 1];
  }
  if (opt["cmf"].empty() || opt["gen"].empty()) {
    fmt::print(stderr, "bench: --cmf and --gen are needed\n");
    return 2;
  }
  if (opt["reference"].empty())
    opt["reference"] = (fs::path(CMF_BENCH_SOURCE_DIR) / "reptile_reference.py").string();
  const std::string cmf = fs::absolute(opt["cmf"]).string();
  const std::string gen = fs::absolute(opt["gen"]).string();
  fs::path dir = fs::temp_directory_path() / fmt::format("cmf-bench-reptile-{}", ::getpid());
  fs::create_directories(dir);
  Capture(Quote(cmf) + " init -q", dir);
  Capture(Quote(gen) + " --family gold --family-size 13 --out-dir priors >/dev/null", dir);
  std::vector<std::string> train, held;
  for (int i = 0; i < 13; ++i)
    (i < 10 ? train : held).push_back(fmt::format("priors/gold-{:02d}.h5", i));
  std::string train_list;
  for (const std::string& t : train) train_list += " " + t;
  const std::string arch = " --architecture " + opt["architecture"];

  fmt::print("Reptile on a generated family (cmf-gen-eels --family gold: 10 experiments to "
             "meta-train on, 3 held out, 62x75x1496 each), {} extractor\n\n",
             opt["architecture"]);

  // Speed: 9 iterations of 10 tasks, 16 inner steps, beside PyTorch.
  {
    std::string common = fmt::format(
        " --iterations 9 --tasks-per-iteration 10 --inner-steps 16 --inner-lr 0.01");
    auto start = Clock::now();
    Capture(Quote(cmf) + " run -q reptile --tasks" + train_list + common +
                " --architecture default --threads " + opt["threads"] + " -o speed.pt",
            dir);
    double cmf_seconds = SecondsSince(start);
    json log = json::parse(Capture(Quote(cmf) + " log -n 1 --json", dir));
    json m = json::parse(Capture(Quote(cmf) + " metrics " + log[0]["id"].get<std::string>() +
                                     " --series iteration_seconds --json",
                                 dir));
    double cmf_loop = 0;
    for (const json& p : m["series"]["iteration_seconds"]) cmf_loop += p[1].get<double>();
    std::string out = Capture("OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 " +
                                  Quote(opt["reference"]) + " --tasks" + train_list + common,
                              dir);
    double torch_loop = -1;
    for (std::size_t pos = 0; pos < out.size();) {
      std::size_t nl = out.find('\n', pos);
      json j = json::parse(out.substr(pos, nl - pos), nullptr, false);
      if (j.is_object() && j.contains("total_seconds")) torch_loop = j["total_seconds"];
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
    fmt::print("Speed: 9 iterations x 10 tasks x 16 inner steps, 256-1000-500-50-2\n");
    fmt::print("  cmf run reptile (--threads {})   {:7.2f} s meta-training, {:.2f} s with "
               "loading and logging\n",
               opt["threads"], cmf_loop, cmf_seconds);
    fmt::print("  PyTorch reference               {:7.2f} s meta-training\n", torch_loop);
    fmt::print("  speed-up {:.2f}x (target at least 2x: {})\n\n", torch_loop / cmf_loop,
               torch_loop / cmf_loop >= 2 ? "met" : "NOT met");
  }
  if (opt["speed-only"] == "1") return 0;

  // Headline.
  auto start = Clock::now();
  Capture(Quote(cmf) + " run -q reptile --tasks" + train_list + arch +
              " --iterations " + opt["iterations"] + " --tasks-per-iteration 10 --inner-steps " +
              opt["inner-steps"] + " --epsilon " + opt["epsilon"] + " --epsilon-final " +
              opt["epsilon-final"] + " --threads " + opt["threads"] + " -o meta.pt",
          dir);
  double meta_seconds = SecondsSince(start);
  const int steps = std::stoi(opt["steps"]);
  const int seeds = std::stoi(opt["seeds"]);
  std::map<std::string, std::vector<double>> curve;  // "cold"/"seeded" -> mean rmse per step
  std::map<std::string, std::vector<double>> top1;   // first top-1 % step (ei)
  for (const std::string& mode : {"cold", "seeded"}) {
    curve[mode].assign(steps, 0.0);
    int runs = 0;
    for (const std::string& h : held) {
      for (int seed = 0; seed < seeds; ++seed) {
        for (const std::string& acq : {"mu", "ei"}) {
          std::string init = mode == "seeded" ? " --init meta.pt" : "";
          Capture(Quote(cmf) + " run -q dkl-al --data " + h + arch + " --acquisition " + acq +
                      " --steps " + std::to_string(steps) + " --seed " +
                      std::to_string(seed) + init + " --out al-" + mode + "-" + acq,
                  dir);
          json e = json::parse(Capture(Quote(cmf) + " log -n 1 --json", dir))[0];
          if (acq == "ei") {
            std::int64_t first = e["properties"]["first_top1_step"];
            top1[mode].push_back(first < 0 ? steps + 1 : first);
            continue;
          }
          json m = json::parse(Capture(Quote(cmf) + " metrics " + e["id"].get<std::string>() +
                                           " --series rmse --json",
                                       dir));
          for (const json& p : m["series"]["rmse"])
            curve[mode][p[0].get<int>() - 1] += p[1].get<double>();
          ++runs;
        }
      }
    }
    for (double& v : curve[mode]) v /= runs;
  }
  const int at = std::min(30, steps);
  const double target = curve["cold"][at - 1];
  auto first_reaching = [&](const std::vector<double>& c) {
    for (int s = 0; s < static_cast<int>(c.size()); ++s)
      if (c[s] <= target) return s + 1;
    return static_cast<int>(c.size()) + 1;
  };
  int cold_step = first_reaching(curve["cold"]);
  int seeded_step = first_reaching(curve["seeded"]);
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / v.size();
  };
  fmt::print("Headline: meta-training {} iterations, epsilon {} -> {}, {} inner steps: {:.1f} s\n",
             opt["iterations"], opt["epsilon"], opt["epsilon-final"], opt["inner-steps"],
             meta_seconds);
  fmt::print("  mean RMSE over 3 held-out experiments x {} seeds (mu), step: cold / seeded\n", seeds);
  for (int s : {1, 2, 5, 10, 20, 30, 40, 50})
    if (s <= steps)
      fmt::print("    {:3d}: {:.4f} / {:.4f}\n", s, curve["cold"][s - 1], curve["seeded"][s - 1]);
  fmt::print("  the cold curve's value at step {}: {:.4f}\n", at, target);
  fmt::print("  first step reaching it: cold {}, seeded {}{}\n", cold_step, seeded_step,
             seeded_step > steps ? " (not within the steps run)" : "");
  double reduction = 1.0 - static_cast<double>(seeded_step) / cold_step;
  fmt::print("  steps saved: {:.0f} % (target at least 30 %: {})\n", 100 * reduction,
             reduction >= 0.3 ? "met" : "NOT met");
  fmt::print("  ei, first step measuring a top-1 % location (mean; not found counts as {}): "
             "cold {:.1f}, seeded {:.1f}\n",
             steps + 1, mean(top1["cold"]), mean(top1["seeded"]));
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}
