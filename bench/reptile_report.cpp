// The report of bench_reptile's cross-validation (reptile_report.h).
#include "reptile_report.h"

#include <fmt/format.h>

#include <algorithm>

#include "../plugins/ml/stats.h"

namespace cmf::bench {
namespace {

using cmf::ml::Stats;
using cmf::ml::Summarise;

std::string Show(const Stats& s) {
  return s.n < 2 ? fmt::format("{:.4f}", s.mean)
                 : fmt::format("{:.4f} ± {:.4f}", s.mean, s.half);
}

// "-23 % (95 % CI -31 to -15 %)" of relative changes.
std::string ShowChange(const Stats& s) {
  if (s.n < 2) return fmt::format("{:+.0f} %", 100 * s.mean);
  return fmt::format("{:+.0f} % (95 % CI {:+.0f} to {:+.0f} %)", 100 * s.mean,
                     100 * (s.mean - s.half), 100 * (s.mean + s.half));
}

// The first step from which CURVE stays at or below TARGET to its end; the
// curve's length + 1 when its last value is above.
int StaysBelowFrom(const Curve& curve, double target) {
  int from = static_cast<int>(curve.size()) + 1;
  for (int s = static_cast<int>(curve.size()); s >= 1 && curve[s - 1] <= target;
       --s)
    from = s;
  return from;
}

// Area under the curve against the number of measurements (one per step, the
// trapezoidal rule): lower is better.
double Auc(const Curve& curve) {
  double area = 0;
  for (std::size_t i = 1; i < curve.size(); ++i)
    area += (curve[i - 1] + curve[i]) / 2;
  return area;
}

}  // namespace

Curve MeanOf(const std::vector<Curve>& curves) {
  Curve mean(curves.front().size(), 0.0);
  for (const Curve& c : curves)
    for (std::size_t i = 0; i < mean.size(); ++i)
      mean[i] += c[i] / curves.size();
  return mean;
}

void Report(const Comparison& c, int seed_points) {
  const int steps = static_cast<int>(c.per_task.at("cold").front().size());
  fmt::print(
      "  RMSE of the predicted map, mean over {} held-out experiments ± 95 % "
      "CI:\n",
      c.per_task.at("cold").size());
  fmt::print("    {:>5} {:>9}", "step", "measured");
  for (const std::string& s : c.starts) fmt::print("  {:>17}", s);
  fmt::print("\n");
  for (int step : {1, 5, 10, 20, 30, 40, 50}) {
    if (step > steps) continue;
    fmt::print("    {:>5} {:>9}", step, seed_points + step - 1);
    for (const std::string& s : c.starts) {
      std::vector<double> v;
      for (const Curve& curve : c.per_task.at(s)) v.push_back(curve[step - 1]);
      fmt::print("  {:>17}", Show(Summarise(v)));
    }
    fmt::print("\n");
  }
  fmt::print("    {:>15}", "AUC");
  std::map<std::string, std::vector<double>> auc;
  for (const std::string& s : c.starts) {
    for (const Curve& curve : c.per_task.at(s)) auc[s].push_back(Auc(curve));
    fmt::print("  {:>17}", Show(Summarise(auc[s])));
  }
  fmt::print("   (RMSE x measurements, steps 1-{}; lower is better)\n", steps);
  for (const std::string& s : c.starts) {
    if (s == "cold") continue;
    std::vector<double> change;
    for (std::size_t t = 0; t < auc[s].size(); ++t)
      change.push_back(auc[s][t] / auc["cold"][t] - 1);
    fmt::print("  AUC of {} against cold, paired by experiment: {}\n", s,
               ShowChange(Summarise(change)));
  }
  if (c.per_task.contains("pretrained") && c.per_task.contains("reptile")) {
    std::vector<double> change;
    for (std::size_t t = 0; t < auc["reptile"].size(); ++t)
      change.push_back(auc["reptile"][t] / auc["pretrained"][t] - 1);
    fmt::print(
        "  AUC of reptile against pretrained, paired by experiment: {}\n",
        ShowChange(Summarise(change)));
  }
  const Curve cold = MeanOf(c.per_task.at("cold"));
  const int at = std::min(30, steps);
  const double target = cold[at - 1];
  const int cold_step = StaysBelowFrom(cold, target);
  fmt::print(
      "  target: the cold mean curve's RMSE at step {}, {:.4f}; the first step "
      "after "
      "which a mean curve stays at or below it (of {}; {} = never):\n",
      at, target, steps, steps + 1);
  fmt::print("    cold {}\n", cold_step);
  for (const std::string& s : c.starts) {
    if (s == "cold") continue;
    std::vector<double> saved;
    std::string each;
    for (const Curve& curve : c.per_seed.at(s)) {
      int step = StaysBelowFrom(curve, target);
      each += fmt::format(" {}", step);
      saved.push_back(1.0 - static_cast<double>(step) / cold_step);
    }
    const int pooled = StaysBelowFrom(MeanOf(c.per_task.at(s)), target);
    auto [lo, hi] = std::minmax_element(saved.begin(), saved.end());
    fmt::print(
        "    {} {} (each meta-training seed:{}): steps saved {:.0f} % (over "
        "the seeds "
        "{:.0f} to {:.0f} %)\n",
        s, pooled, each, 100 * (1.0 - static_cast<double>(pooled) / cold_step),
        100 * *lo, 100 * *hi);
  }
}

}  // namespace cmf::bench
