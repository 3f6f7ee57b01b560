// Reptile meta-learning (Nichol, Achiam and Schulman 2018) of a DKL model over
// tasks: for each iteration, sample tasks; from the current parameters theta
// run an inner loop of Adam over mini-batches of each task's data to get
// phi_i; move theta <- theta + epsilon (mean phi_i - theta), epsilon annealed
// linearly. What is meta-learned is the feature extractor and, unless
// meta_gp is false, the GP's hyperparameters.
//
// The inner loops of one iteration run on THREADS threads, each with its own
// model; every random choice is seeded from (seed, iteration, slot), and the
// phi_i are averaged in slot order, so the result does not depend on the
// number of threads. OpenBLAS runs on one thread meanwhile (its own worker
// threads would compete with the task threads, and its sums differ in the
// last bits with its thread count). Plain C++ over dkl.h; errors throw
// std::runtime_error.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "dkl.h"
#include "tasks.h"

namespace cmf::ml {

// How theta learns from the tasks. kReptile: the algorithm above. kPretrain:
// the baseline Reptile must beat, one model fitted to the tasks pooled (each
// iteration trains theta itself on mini-batches drawn from the union of the
// sampled tasks, for as many Adam steps as Reptile's inner loops take in
// total, and keeps the result: no meta step).
enum class MetaMethod { kReptile, kPretrain };

inline constexpr const char* kMetaMethodChoices[] = {"reptile", "pretrain",
                                                     nullptr};

struct ReptileOptions {
  MetaMethod method = MetaMethod::kReptile;
  int iterations = 50;
  int tasks_per_iteration = 10;
  int inner_steps = 16;
  int batch = 64;          // points per inner step
  double inner_lr = 0.01;  // Adam's, for the GP's hyperparameters
  double inner_extractor_lr =
      0.001;             // Adam's, for the extractor (as dkl-al:
                         // 0.01 kills the default extractor's ReLUs)
  double epsilon = 1.0;  // chosen by cross-validation: doc/meta-learning.md
  double epsilon_final = 0.0;
  bool meta_gp = true;
  int threads = 1;
  std::uint64_t seed = 0;
};

// Theta: what Reptile moves.
struct MetaParameters {
  std::vector<float> extractor;
  GpParams gp;
};

// THETA <- THETA + EPSILON (mean(PHIS) - THETA), element by element, in
// double precision; the GP's part too when META_GP.
void ReptileUpdate(MetaParameters& theta,
                   const std::vector<MetaParameters>& phis, double epsilon,
                   bool meta_gp);

// Epsilon at ITERATION (0-based) of ITERATIONS: FIRST + (LAST - FIRST) *
// ITERATION / ITERATIONS, linear from FIRST towards LAST.
double EpsilonAt(int iteration, int iterations, double first, double last);

struct IterationReport {
  int iteration = 0;
  double epsilon = 0;
  double meta_loss = 0;     // mean over the sampled tasks of theta's loss on
                            // the first inner batch
  double adapted_loss = 0;  // mean of the last inner step's loss
  double seconds = 0;
  std::vector<int> tasks;  // which were sampled
};

// Runs iterations FIRST .. options.iterations - 1 from THETA (updated in
// place), calling AFTER after each one (return false to stop early, e.g. on
// Ctrl-C). CONFIG describes the model; TASKS must all have its features and
// outputs.
void MetaTrain(const DklConfig& config, const std::vector<Task>& tasks,
               const ReptileOptions& options, int first, MetaParameters& theta,
               const std::function<bool(const IterationReport&)>& after);

// The parameters of MODEL, and setting them.
MetaParameters ParametersOf(const DklModel& model);
void SetParameters(DklModel& model, const MetaParameters& theta);

}  // namespace cmf::ml
