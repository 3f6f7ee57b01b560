// The report of bench_reptile's cross-validation: the RMSE curves of the
// held-out experiments by start (cold, pretrained, reptile), with 95 %
// confidence intervals, the area under each curve and the steps each start
// saves against a cold one.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace cmf::bench {

using Curve = std::vector<double>;  // RMSE of the predicted map at steps 1..S

// The mean of CURVES (at least one, all of one length), step by step.
Curve MeanOf(const std::vector<Curve>& curves);

// The table of one comparison: per-experiment curves of each start (already
// averaged over active-learning seeds and meta-training seeds), and the mean
// curves of each meta-training seed.
struct Comparison {
  std::vector<std::string> starts;  // "cold", "pretrained", "reptile"
  std::map<std::string, std::vector<Curve>>
      per_task;  // start -> one curve per experiment
  std::map<std::string, std::vector<Curve>>
      per_seed;  // start -> one mean curve per meta-seed
};

// Prints C: SEED_POINTS were measured before step 1.
void Report(const Comparison& c, int seed_points);

}  // namespace cmf::bench
