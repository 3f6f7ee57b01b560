#include "tasks.h"

#include <hdf5.h>

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "h5.h"
#include "results.h"

namespace cmf::ml {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

// Targets from pooled spectra (POINTS x GROUPS): normalised over the set by
// one minimum and maximum, then scalarized.
std::vector<double> TargetsOf(const std::vector<double>& pooled, int points,
                              int groups, const std::vector<double>& energy,
                              const Scalarizer& scalarizer) {
  std::vector<int> band = scalarizer.Band(energy);
  Range range = RangeOf(pooled);
  const int outputs = scalarizer.Outputs(groups);
  std::vector<double> y(static_cast<std::size_t>(points) * outputs);
  std::vector<double> norm(groups);
  for (int i = 0; i < points; ++i) {
    for (int g = 0; g < groups; ++g)
      norm[g] =
          range.Normalise(pooled[static_cast<std::size_t>(i) * groups + g]);
    scalarizer.Apply(norm.data(), band, groups,
                     y.data() + static_cast<std::size_t>(i) * outputs);
  }
  return y;
}

}  // namespace

Task LoadTask(const std::filesystem::path& path, const TaskPreparation& prep) {
  QuietHdf5();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    Fail("task '" + path.string() + "' does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    Fail("task '" + path.string() + "' is not an HDF5 file");
  bool has_image = false, has_patches = false, has_spectra = false;
  {
    H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
    if (!f.ok()) Fail("cannot open task '" + path.string() + "'");
    has_image = H5Lexists(f.get(), "image", H5P_DEFAULT) > 0;
    has_patches = H5Lexists(f.get(), "patches", H5P_DEFAULT) > 0;
    has_spectra = H5Lexists(f.get(), "spectra", H5P_DEFAULT) > 0;
  }
  Task task;
  task.name = path.string();
  if (has_image) {
    if (!has_spectra)
      Fail("task '" + path.string() +
           "' has no /spectra: a task needs measured spectra");
    Experiment e = ReadExperiment(path, /*need_spectra=*/true);
    Patches p = MakePatches(e.image, e.height, e.width, prep.window);
    const int groups = e.channels / prep.pool;
    if (groups < 1)
      Fail("task '" + path.string() + "' has " + std::to_string(e.channels) +
           " channels, fewer than --pool");
    std::vector<double> pooled = e.PooledAtCentres(p, prep.pool);
    task.points = p.count;
    task.features = p.features;
    task.outputs = prep.scalarizer.Outputs(groups);
    task.x = std::move(p.values);
    task.y = TargetsOf(pooled, p.count, groups, PoolEnergy(e.energy, prep.pool),
                       prep.scalarizer);
    return task;
  }
  if (!has_patches)
    Fail("task '" + path.string() +
         "' is neither an experiment (/image, /spectra) nor the measured "
         "points of a dkl-al run (/patches, /spectra)");
  MeasuredPoints m = ReadMeasured(path);
  if (m.window != prep.window)
    Fail("task '" + path.string() + "' was measured with a window of " +
         std::to_string(m.window) + " pixels; this run uses " +
         std::to_string(prep.window) + " (--window)");
  if (m.size() < 2)
    Fail("task '" + path.string() + "' has fewer than 2 points");
  const int groups = m.channels / prep.pool;
  if (groups < 1)
    Fail("task '" + path.string() + "' has " + std::to_string(m.channels) +
         " channels, fewer than --pool");
  task.is_slice = true;
  task.points = m.size();
  task.features = m.window * m.window;
  task.outputs = prep.scalarizer.Outputs(groups);
  // Patches: min-max over the task's own points (the image is not there).
  auto [lo, hi] = std::minmax_element(m.patches.begin(), m.patches.end());
  float span = *hi - *lo;
  task.x.resize(m.patches.size());
  for (std::size_t i = 0; i < m.patches.size(); ++i)
    task.x[i] = span > 0 ? (m.patches[i] - *lo) / span : 0.0f;
  std::vector<double> pooled;
  pooled.reserve(static_cast<std::size_t>(m.size()) * groups);
  for (int i = 0; i < m.size(); ++i) {
    std::vector<double> g = PoolSpectrum(
        m.spectra.data() + static_cast<std::size_t>(i) * m.channels, m.channels,
        prep.pool);
    pooled.insert(pooled.end(), g.begin(), g.end());
  }
  task.y = TargetsOf(pooled, m.size(), groups, PoolEnergy(m.energy, prep.pool),
                     prep.scalarizer);
  return task;
}

}  // namespace cmf::ml
