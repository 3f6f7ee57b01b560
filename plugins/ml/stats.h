// Summary statistics for the figures the plugins and their benchmarks print:
// the mean of a sample with its 95 % confidence interval (Student's t). Plain
// C++, header only, no LibTorch.
#pragma once

#include <cmath>
#include <vector>

namespace cmf::ml {

struct Stats {
  double mean = 0;
  double sd = 0;    // sample standard deviation (n - 1)
  double half = 0;  // half-width of the 95 % confidence interval of the mean
  int n = 0;
};

// Student's t at 0.975 with DF degrees of freedom (0 for none).
inline double T975(int df) {
  static const double kTable[] = {0,     12.706, 4.303, 3.182, 2.776, 2.571,
                                  2.447, 2.365,  2.306, 2.262, 2.228, 2.201,
                                  2.179, 2.160,  2.145, 2.131, 2.120, 2.110,
                                  2.101, 2.093,  2.086};
  if (df < 1) return 0;
  if (df <= 20) return kTable[df];
  return df <= 40 ? 2.042 : 1.984;
}

inline Stats Summarise(const std::vector<double>& v) {
  Stats s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  for (double x : v) s.mean += x / s.n;
  if (s.n < 2) return s;
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.sd = std::sqrt(ss / (s.n - 1));
  s.half = T975(s.n - 1) * s.sd / std::sqrt(static_cast<double>(s.n));
  return s;
}

}  // namespace cmf::ml
