#include "acquisition.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace cmf::ml {

Acquisition ParseAcquisition(const std::string& text) {
  if (text == "mu") return Acquisition::kMaxUncertainty;
  if (text == "ei") return Acquisition::kExpectedImprovement;
  if (text == "ucb") return Acquisition::kUcb;
  if (text == "random") return Acquisition::kRandom;
  throw std::runtime_error("unknown acquisition '" + text +
                           "' (mu, ei, ucb or random)");
}

std::string ToString(Acquisition a) {
  switch (a) {
    case Acquisition::kMaxUncertainty:
      return "mu";
    case Acquisition::kExpectedImprovement:
      return "ei";
    case Acquisition::kUcb:
      return "ucb";
    case Acquisition::kRandom:
      return "random";
  }
  return "?";
}

std::vector<double> AcquisitionValues(Acquisition a,
                                      const std::vector<double>& mean,
                                      const std::vector<double>& variance,
                                      double best,
                                      const AcquisitionParams& params) {
  std::vector<double> out(mean.size(), 0.0);
  for (std::size_t i = 0; i < mean.size(); ++i) {
    double sd = std::sqrt(std::max(variance[i], 1e-12));
    switch (a) {
      case Acquisition::kMaxUncertainty:
        out[i] = variance[i];
        break;
      case Acquisition::kExpectedImprovement: {
        double gain = mean[i] - best - params.xi;
        double z = gain / sd;
        double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
        double pdf = std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI);
        out[i] = gain * cdf + sd * pdf;
        break;
      }
      case Acquisition::kUcb:
        out[i] = mean[i] + params.beta * sd;
        break;
      case Acquisition::kRandom:
        break;
    }
  }
  return out;
}

std::uint64_t NextRandom(std::uint64_t* state) {
  std::uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

int UniformIndex(std::uint64_t* state, int n) {
  return static_cast<int>(NextRandom(state) % static_cast<std::uint64_t>(n));
}

int Choose(Acquisition a, const std::vector<double>& values,
           const std::vector<char>& measured, std::uint64_t* rng_state) {
  int open = 0;
  for (char m : measured) open += m ? 0 : 1;
  if (open == 0) return -1;
  if (a == Acquisition::kRandom) {
    int k = UniformIndex(rng_state, open);
    for (int i = 0; i < static_cast<int>(measured.size()); ++i) {
      if (measured[i]) continue;
      if (k-- == 0) return i;
    }
    return -1;
  }
  int best = -1;
  double best_value = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < static_cast<int>(values.size()); ++i) {
    if (measured[i]) continue;
    if (best < 0 || values[i] > best_value) {
      best = i;
      best_value = values[i];
    }
  }
  return best;
}

}  // namespace cmf::ml
