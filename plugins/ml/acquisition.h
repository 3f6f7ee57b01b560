// Acquisition functions: which unmeasured candidate to measure next, given the
// model's posterior. Plain C++; thread-safe (no state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cmf::ml {

enum class Acquisition { kMaxUncertainty, kExpectedImprovement, kUcb, kRandom };

// "mu", "ei", "ucb", "random"; throws std::runtime_error otherwise.
Acquisition ParseAcquisition(const std::string& text);
std::string ToString(Acquisition a);

struct AcquisitionParams {
  double xi = 0.01;   // ei: the improvement that counts
  double beta = 2.0;  // ucb: mean + beta * sd
};

// The acquisition value of every candidate from one output's posterior MEAN
// and latent VARIANCE; BEST is the highest target measured so far (ei).
// kRandom gives zeros (the choice is made by Choose).
std::vector<double> AcquisitionValues(Acquisition a,
                                      const std::vector<double>& mean,
                                      const std::vector<double>& variance,
                                      double best,
                                      const AcquisitionParams& params);

// The unmeasured candidate with the highest value (the lowest index among
// ties); for kRandom, a uniform draw among the unmeasured from RNG_STATE (a
// splitmix64 state, advanced). -1 when every candidate is measured.
int Choose(Acquisition a, const std::vector<double>& values,
           const std::vector<char>& measured, std::uint64_t* rng_state);

// A uniform integer in [0, n) from a splitmix64 state (advanced): the one
// random source of the active-learning loop, so that runs repeat exactly.
std::uint64_t NextRandom(std::uint64_t* state);
int UniformIndex(std::uint64_t* state, int n);

}  // namespace cmf::ml
