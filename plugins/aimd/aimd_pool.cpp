#include "aimd_pool.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "frame_features.h"

namespace cmf::aimd {
namespace {

std::vector<std::string> Elements(const md::Trajectory& t) {
  std::vector<std::string> out;
  for (const std::string& e : t.species)
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  return out;
}

}  // namespace

Pool MakePool(const std::vector<const md::Trajectory*>& trajectories,
              const std::string& kind,
              const std::function<bool(int, int)>& progress) {
  if (trajectories.empty()) throw std::runtime_error("no trajectories");
  if (kind != "bonds" && kind != "image")
    throw std::runtime_error("unknown features '" + kind + "'");
  Pool pool;
  for (const md::Trajectory* t : trajectories) pool.count += t->frames();
  md::BondOptions bonds;
  md::RenderOptions render;
  const std::vector<std::string> elements = Elements(*trajectories[0]);
  if (kind == "bonds") {
    // A histogram must mean the same pair of elements in every trajectory.
    for (std::size_t k = 1; k < trajectories.size(); ++k)
      if (Elements(*trajectories[k]) != elements)
        throw std::runtime_error(
            "trajectory " + std::to_string(k) +
            " lists its elements in another order (or others) than the "
            "first: the bond features would not line up");
    pool.features =
        md::BondFeatureCount(static_cast<int>(elements.size()), bonds);
  } else {
    pool.features = kImagePool * kImagePool;
  }
  pool.x.reserve(static_cast<std::size_t>(pool.count) * pool.features);
  int done = 0;
  for (const md::Trajectory* t : trajectories) {
    for (int f = 0; f < t->frames(); ++f) {
      std::vector<float> row =
          kind == "bonds"
              ? md::BondFeatures(*t, f, bonds)
              : md::Pool(md::RenderAdf(*t, f, render), render.size, kImagePool);
      pool.x.insert(pool.x.end(), row.begin(), row.end());
      ++done;
      if (progress && done % 25 == 0 && !progress(done, pool.count))
        throw std::runtime_error("interrupted");
    }
  }
  const std::size_t w = static_cast<std::size_t>(pool.features);
  const std::size_t n = static_cast<std::size_t>(pool.count);
  if (kind == "bonds") {
    for (std::size_t c = 0; c < w; ++c) {
      double sum = 0, sq = 0;
      for (std::size_t i = 0; i < n; ++i) sum += pool.x[i * w + c];
      const double mean = sum / static_cast<double>(n);
      for (std::size_t i = 0; i < n; ++i)
        sq += (pool.x[i * w + c] - mean) * (pool.x[i * w + c] - mean);
      const double sd = std::sqrt(sq / static_cast<double>(n));
      for (std::size_t i = 0; i < n; ++i)
        pool.x[i * w + c] =
            sd > 1e-9 ? static_cast<float>((pool.x[i * w + c] - mean) / sd)
                      : 0.f;
    }
  } else {
    auto [lo, hi] = std::minmax_element(pool.x.begin(), pool.x.end());
    const float a = *lo, span = *hi - *lo;
    for (float& v : pool.x) v = span > 0 ? (v - a) / span : 0.f;
  }
  return pool;
}

std::vector<double> Targets(
    const std::vector<const md::Trajectory*>& trajectories, bool absolute) {
  std::vector<double> out;
  for (const md::Trajectory* t : trajectories) {
    if (t->energy.empty())
      throw std::runtime_error("a trajectory without /energy");
    double mean = 0;
    for (double e : t->energy) mean += e / t->atoms();
    mean /= t->frames();
    for (int f = 0; f < t->frames(); ++f)
      out.push_back(t->energy[f] / t->atoms() - (absolute ? 0.0 : mean));
  }
  return out;
}

}  // namespace cmf::aimd
