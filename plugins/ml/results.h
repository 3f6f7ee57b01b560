// What an active-learning run writes: the predicted maps and the measured
// points (a data slice of the experiment). HDF5 files written to a temporary
// name and renamed. Plain C++; errors throw std::runtime_error.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data.h"

namespace cmf::ml {

// /mean and /uncertainty (posterior standard deviation) float32 [rows, cols]
// (or [rows, cols, outputs]) over the candidates' centres, /measured uint8
// [rows, cols], with the attributes given plus window and the pixel offset of
// the first centre.
void WriteMaps(const std::filesystem::path& path, const Patches& patches,
               int outputs, const std::vector<double>& mean,
               const std::vector<double>& variance,
               const std::vector<char>& measured,
               const std::map<std::string, std::string>& attributes);

// The measured points of a run: where, in which order, the raw image patch
// and the raw spectrum there.
struct MeasuredPoints {
  int window = 0;
  int channels = 0;
  std::vector<float> energy;   // E
  std::vector<int> x, y;       // pixel of each point (the patch centre)
  std::vector<int> step;       // 0 for seed points, else the AL step
  std::vector<float> patches;  // n * window * window, raw image values
  std::vector<float> spectra;  // n * E, as measured
  int size() const { return static_cast<int>(x.size()); }
};

// Writes POINTS as a data slice: /patches [n, w, w], /spectra [n, E],
// /energy [E], /x, /y, /step [n]; attributes parent_sha256, parent_path,
// dataset ("/spectra"), selection (how the points were chosen), window, and
// those given.
void WriteMeasured(const std::filesystem::path& path,
                   const MeasuredPoints& points,
                   const std::map<std::string, std::string>& attributes);

// Reads a file written by WriteMeasured.
MeasuredPoints ReadMeasured(const std::filesystem::path& path);

// The raw w x w patch of IMAGE (H x W) centred at (x, y) (top-left
// (x - w/2, y - w/2)).
std::vector<float> RawPatch(const std::vector<float>& image, int width,
                            int window, int x, int y);

}  // namespace cmf::ml
