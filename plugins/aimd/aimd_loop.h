// The active-learning loop of aimd-al: which frames of a set of trajectories to
// evaluate (ask the energy of), one at a time, to find the lowest energy with
// few evaluations. Deep kernel learning (plugins/ml's DklModel, retrained on
// every frame evaluated so far at every step) predicts the target of every
// frame with an uncertainty; an acquisition function picks the next frame.
// LibTorch stays inside ml/: this header is plain C++. Errors throw
// std::runtime_error.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "dkl.h"

namespace cmf::aimd {

// lcb: the lowest mean - kappa * sd (the standard for a minimum search);
// mu: the highest uncertainty (as published); ei: expected improvement on
// -target; random: uniform.
enum class Pick { kLcb, kMu, kEi, kRandom };
Pick ParsePick(const std::string& name);  // throws on an unknown name
std::string ToString(Pick p);
inline constexpr const char* kPickChoices[] = {"lcb", "mu", "ei", "random",
                                               nullptr};

struct LoopOptions {
  int steps = 30;       // evaluations after the seed frames
  int seed_frames = 5;  // frames evaluated at random first
  Pick pick = Pick::kLcb;
  double kappa = 2.0;  // lcb's weight of the uncertainty
  int epochs = 20;     // Adam steps per retraining
  std::uint64_t seed = 0;
  ml::DklConfig model;  // model.features: the width of a feature row
  std::string init;  // a DKL checkpoint to start every retraining from, or ""
  // When set (one entry per frame), a frame's target is what EVALUATE gave
  // minus the mean of what it gave for the frames of the same group evaluated
  // so far, recomputed at every step: centring per trajectory when only the
  // evaluated energies are known (an energy driver).
  std::vector<int> centre_groups;
};

// The candidates: one row of features per frame.
struct Pool {
  std::vector<float> x;  // count x features, row-major
  int count = 0;
  int features = 0;
};

// One evaluation after the seed frames, as the loop logs it. Target units:
// whatever EVALUATE returns (aimd-al: eV per atom, centred per trajectory).
struct StepLog {
  int step = 0;          // 1, 2, ...
  int index = -1;        // the frame chosen, in the pool
  double predicted = 0;  // the model's mean at that frame before evaluating it
  double uncertainty = 0;  // and its standard deviation
  double target = 0;       // what the evaluation gave
  double best = 0;         // the lowest target evaluated so far
  double max_uncertainty =
      0;  // over the frames not evaluated, before the choice
  double regret =
      std::numeric_limits<double>::quiet_NaN();  // best - true minimum
  double rmse = std::numeric_limits<double>::quiet_NaN();  // of the prediction
                                                           // over all frames
  double seconds = 0;  // training, prediction and choice
};

struct LoopResult {
  std::vector<int> order;      // frames evaluated, in order (seed frames first)
  std::vector<double> value;   // what EVALUATE gave for each
  std::vector<double> target;  // their targets (value, centred when asked)
  std::vector<double> predicted;    // the last model's mean of every frame
  std::vector<double> uncertainty;  // and its standard deviation
  bool stopped = false;             // ON_STEP asked to stop
};

// Runs the loop over POOL. EVALUATE gives the value of a frame (the target
// itself, or what is centred into it); when it throws, the exception leaves
// the loop, and ON_EVALUATED has seen every value before it. TRUTH, when given
// (replay), is the target of every frame: for regret and rmse. ON_STEP is
// called after every step and returns false to stop.
LoopResult RunLoop(const Pool& pool, const LoopOptions& options,
                   const std::function<double(int)>& evaluate,
                   const std::vector<double>* truth,
                   const std::function<bool(const StepLog&)>& on_step);

// The targets of LOOP's evaluations under OPTIONS (centred when asked).
std::vector<double> CentredTargets(const LoopResult& loop,
                                   const LoopOptions& options);

}  // namespace cmf::aimd
