#include "aimd_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>

#include "acquisition.h"

namespace cmf::aimd {

Pick ParsePick(const std::string& name) {
  if (name == "lcb") return Pick::kLcb;
  if (name == "mu") return Pick::kMu;
  if (name == "ei") return Pick::kEi;
  if (name == "random") return Pick::kRandom;
  throw std::runtime_error("unknown acquisition '" + name +
                           "' (lcb, mu, ei, random)");
}

std::string ToString(Pick p) {
  switch (p) {
    case Pick::kLcb:
      return "lcb";
    case Pick::kMu:
      return "mu";
    case Pick::kEi:
      return "ei";
    case Pick::kRandom:
      return "random";
  }
  return "?";
}

namespace {

// The model maximises y = -(target - mean) / sd: lcb on the target is ucb on
// y with beta = kappa, and ei on y is expected improvement on -target.
ml::Acquisition AcquisitionOf(Pick p) {
  switch (p) {
    case Pick::kLcb:
      return ml::Acquisition::kUcb;
    case Pick::kMu:
      return ml::Acquisition::kMaxUncertainty;
    case Pick::kEi:
      return ml::Acquisition::kExpectedImprovement;
    case Pick::kRandom:
      return ml::Acquisition::kRandom;
  }
  return ml::Acquisition::kRandom;
}

}  // namespace

std::vector<double> CentredTargets(const LoopResult& r, const LoopOptions& o) {
  if (o.centre_groups.empty()) return r.value;
  std::map<int, std::pair<double, int>> sums;  // group -> (sum, count)
  for (std::size_t k = 0; k < r.order.size(); ++k) {
    auto& [sum, count] = sums[o.centre_groups[r.order[k]]];
    sum += r.value[k];
    ++count;
  }
  std::vector<double> out;
  for (std::size_t k = 0; k < r.order.size(); ++k) {
    const auto& [sum, count] = sums[o.centre_groups[r.order[k]]];
    out.push_back(r.value[k] - sum / count);
  }
  return out;
}

namespace {

// How the loop scales the evaluated targets for the model: y = -(target -
// mean) / sd.
struct TargetScale {
  double mean = 0;
  double sd = 1;
};

// Throws unless POOL and O can run the loop: at least 2 frames, a feature row
// for each, one centring group per frame when any, and fewer seed frames than
// frames.
void CheckLoopInputs(const Pool& pool, const LoopOptions& o) {
  if (pool.count < 2)
    throw std::runtime_error("fewer than 2 frames to choose from");
  if (static_cast<int>(pool.x.size()) != pool.count * pool.features)
    throw std::runtime_error("the feature rows do not match the frame count");
  if (!o.centre_groups.empty() &&
      static_cast<int>(o.centre_groups.size()) != pool.count)
    throw std::runtime_error("one centring group per frame");
  if (o.seed_frames < 1 || o.seed_frames >= pool.count)
    throw std::runtime_error("--seed-frames must be 1 to " +
                             std::to_string(pool.count - 1));
}

// The mean and sample standard deviation of the N evaluated TARGETS (sd 1
// when they do not spread).
TargetScale ScaleOf(const std::vector<double>& target, int n) {
  TargetScale s;
  s.mean = std::accumulate(target.begin(), target.end(), 0.0) / n;
  double var = 0;
  for (double t : target) var += (t - s.mean) * (t - s.mean);
  s.sd = n > 1 ? std::sqrt(var / (n - 1)) : 0;
  if (!(s.sd > 1e-12)) s.sd = 1;
  return s;
}

// The feature rows of the frames R evaluated into TRAIN_X and their scaled
// targets into TRAIN_Y (both cleared first).
void TrainingSet(const Pool& pool, const LoopResult& r, const TargetScale& s,
                 std::vector<float>* train_x, std::vector<double>* train_y) {
  train_x->clear();
  train_y->clear();
  for (std::size_t k = 0; k < r.order.size(); ++k) {
    const float* row =
        pool.x.data() + static_cast<std::size_t>(r.order[k]) * pool.features;
    train_x->insert(train_x->end(), row, row + pool.features);
    train_y->push_back(-(r.target[k] - s.mean) / s.sd);
  }
}

// P, the model's prediction of every frame, back in target units into
// R->predicted and R->uncertainty. Returns the largest uncertainty of the
// frames not MEASURED.
double StorePrediction(const ml::Prediction& p, const TargetScale& s,
                       const std::vector<char>& measured, int count,
                       LoopResult* r) {
  r->predicted.resize(count);
  r->uncertainty.resize(count);
  double max_sd = 0;
  for (int i = 0; i < count; ++i) {
    r->predicted[i] = -p.mean[i] * s.sd + s.mean;
    r->uncertainty[i] = std::sqrt(std::max(0.0, p.variance[i])) * s.sd;
    if (!measured[i]) max_sd = std::max(max_sd, r->uncertainty[i]);
  }
  return max_sd;
}

// LOG's regret against TRUE_MIN and the rmse of R's prediction of the COUNT
// frames against TRUTH.
void ScoreAgainstTruth(const LoopResult& r, const std::vector<double>& truth,
                       double true_min, int count, StepLog* log) {
  log->regret = log->best - true_min;
  double sum = 0;
  for (int i = 0; i < count; ++i) {
    double d = r.predicted[i] - truth[i];
    sum += d * d;
  }
  log->rmse = std::sqrt(sum / count);
}

}  // namespace

LoopResult RunLoop(const Pool& pool, const LoopOptions& o,
                   const std::function<double(int)>& evaluate,
                   const std::vector<double>* truth,
                   const std::function<bool(const StepLog&)>& on_step) {
  CheckLoopInputs(pool, o);
  ml::DklConfig config = o.model;
  config.features = pool.features;
  config.outputs = 1;
  ml::DklModel model(config, o.seed);
  if (!o.init.empty()) {
    model.Load(o.init);
    model.SetInitialToCurrent();
  }
  double true_min = std::numeric_limits<double>::infinity();
  if (truth != nullptr)
    true_min = *std::min_element(truth->begin(), truth->end());

  LoopResult r;
  std::vector<char> measured(pool.count, 0);
  std::uint64_t rng = o.seed * 0x9e3779b97f4a7c15ULL + 7;
  auto evaluate_frame = [&](int i) {
    double v = evaluate(i);
    if (!std::isfinite(v))
      throw std::runtime_error("the energy of frame " + std::to_string(i) +
                               " is not finite");
    measured[i] = 1;
    r.order.push_back(i);
    r.value.push_back(v);
    r.target = CentredTargets(r, o);
  };
  while (static_cast<int>(r.order.size()) < o.seed_frames) {
    int i = ml::UniformIndex(&rng, pool.count);
    if (!measured[i]) evaluate_frame(i);
  }
  ml::AcquisitionParams params;
  params.beta = o.kappa;
  const ml::Acquisition acquisition = AcquisitionOf(o.pick);
  std::vector<float> train_x;
  std::vector<double> train_y;
  for (int step = 1;; ++step) {
    auto start = std::chrono::steady_clock::now();
    // Standardise the evaluated targets; the model maximises their negation.
    const int n = static_cast<int>(r.order.size());
    const TargetScale scale = ScaleOf(r.target, n);
    TrainingSet(pool, r, scale, &train_x, &train_y);
    model.Reset();
    model.Train(train_x, n, train_y, o.epochs);
    ml::Prediction p = model.Predict(pool.x.data(), pool.count);
    double max_sd = StorePrediction(p, scale, measured, pool.count, &r);
    if (step > o.steps || n >= pool.count)
      break;  // the last model is trained; done
    double best_y = *std::max_element(train_y.begin(), train_y.end());
    std::vector<double> values =
        ml::AcquisitionValues(acquisition, p.mean, p.variance, best_y, params);
    int next = ml::Choose(acquisition, values, measured, &rng);
    if (next < 0) break;
    StepLog log;
    log.step = step;
    log.index = next;
    log.predicted = r.predicted[next];
    log.uncertainty = r.uncertainty[next];
    log.max_uncertainty = max_sd;
    log.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    evaluate_frame(next);
    log.target = r.target.back();
    log.best = *std::min_element(r.target.begin(), r.target.end());
    if (truth != nullptr)
      ScoreAgainstTruth(r, *truth, true_min, pool.count, &log);
    if (!on_step(log)) {
      r.stopped = true;
      break;
    }
  }
  return r;
}

}  // namespace cmf::aimd
