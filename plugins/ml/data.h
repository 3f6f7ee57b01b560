// Experiment files and the data preparation every model plugin shares: image
// patches as features, pooled and normalised spectra reduced by a scalarizer
// as targets. Plain C++ (HDF5 for files); no LibTorch.
//
// Candidates are the centres of full w x w patches, ordered row-major over the
// patches' top-left corners: candidate i has top-left (i / cols, i % cols) and
// centre (x, y) = (i % cols + w/2, i / cols + w/2) in image pixels, where
// cols = W - w + 1. Errors throw std::runtime_error with a message for the
// user; nothing here keeps state between calls, so it is thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cmf::ml {

// An experiment file in the layout of DESIGN.md: /image [H, W], /spectra
// [H, W, E] (absent when the instrument is live), /energy [E].
struct Experiment {
  int height = 0;
  int width = 0;
  int channels = 0;           // E; 0 when the file has no /energy
  std::vector<float> image;   // H * W, row-major
  std::vector<float> energy;  // E, eV
  bool has_spectra = false;

  // The recorded spectrum at pixel (x, y): E values. Reads the file on each
  // call (spectra are not held in memory).
  std::vector<float> Spectrum(int x, int y) const;
  // The pooled recorded spectrum (E / POOL values) at every candidate's
  // centre of P, candidate-major, reading the file one image row at a time.
  std::vector<double> PooledAtCentres(const struct Patches& p, int pool) const;

  std::filesystem::path path;
};

// Reads PATH. NEED_SPECTRA: /spectra must be there and match the image.
Experiment ReadExperiment(const std::filesystem::path& path, bool need_spectra);

// Features of every candidate: patches of WINDOW x WINDOW pixels, min-max
// normalised over the whole set to [0, 1].
struct Patches {
  int window = 0;
  int rows = 0;               // H - w + 1
  int cols = 0;               // W - w + 1
  int count = 0;              // rows * cols
  int features = 0;           // w * w
  std::vector<float> values;  // count * features

  int CentreX(int i) const { return i % cols + window / 2; }
  int CentreY(int i) const { return i / cols + window / 2; }
  // The candidate whose centre is (x, y), or -1.
  int IndexOf(int x, int y) const;
};

Patches MakePatches(const std::vector<float>& image, int height, int width,
                    int window);

// Average pooling of a spectrum by POOL channels: E / POOL groups (the
// remainder is dropped).
std::vector<double> PoolSpectrum(const float* spectrum, int channels, int pool);
std::vector<double> PoolEnergy(const std::vector<float>& energy, int pool);

// What the experiment steers by: the mean or the peak of the pooled,
// normalised spectrum over an energy band, or every pooled channel.
struct Scalarizer {
  enum class Kind { kBandMean, kBandPeak, kVector };
  Kind kind = Kind::kBandPeak;
  double lo = 0;
  double hi = 0;

  // "band-mean:LO:HI", "band-peak:LO:HI" (eV, LO <= HI) or "vector".
  static Scalarizer Parse(const std::string& text);
  std::string ToString() const;
  // Outputs per candidate: 1, or the number of groups for kVector.
  int Outputs(int groups) const { return kind == Kind::kVector ? groups : 1; }
  // The groups whose energy lies in the band; throws when none does.
  std::vector<int> Band(const std::vector<double>& group_energy) const;
  // Reduces one normalised pooled spectrum to Outputs() values.
  void Apply(const double* pooled, const std::vector<int>& band, int groups,
             double* out) const;
};

// What Scalarizer::Parse takes, as a plugin parameter's allowed values (an
// entry ending in ':' is a prefix).
inline constexpr const char* kScalarizerChoices[] = {
    "band-mean:", "band-peak:", "vector", nullptr};

// Min-max normalisation constants over a set of pooled spectra.
struct Range {
  double min = 0;
  double max = 1;
  double Normalise(double v) const {
    return max > min ? (v - min) / (max - min) : 0.0;
  }
};
Range RangeOf(const std::vector<double>& values);

// Reads a NumPy .npy file of float32 or float64 values (C or Fortran order)
// into row-major doubles; SHAPE receives its shape.
std::vector<double> ReadNpy(const std::filesystem::path& path,
                            std::vector<std::int64_t>* shape);

}  // namespace cmf::ml
