#include "results.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "h5.h"

namespace cmf::ml {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

using h5::Attribute;
using h5::IntAttribute;
using h5::NewFile;
using h5::ReadAll;
using h5::Write;

}  // namespace

void WriteMaps(const std::filesystem::path& path, const Patches& patches,
               int outputs, const std::vector<double>& mean,
               const std::vector<double>& variance,
               const std::vector<char>& measured,
               const std::map<std::string, std::string>& attributes) {
  NewFile f(path);
  std::vector<float> m(mean.begin(), mean.end());
  std::vector<float> sd(variance.size());
  for (std::size_t i = 0; i < variance.size(); ++i)
    sd[i] = static_cast<float>(std::sqrt(std::max(variance[i], 0.0)));
  std::vector<hsize_t> dims = {static_cast<hsize_t>(patches.rows),
                               static_cast<hsize_t>(patches.cols)};
  if (outputs > 1) dims.push_back(static_cast<hsize_t>(outputs));
  Write(f.get(), "mean", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, dims, m.data(),
        f.path());
  Write(f.get(), "uncertainty", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, dims,
        sd.data(), f.path());
  std::vector<unsigned char> mask(measured.begin(), measured.end());
  Write(
      f.get(), "measured", H5T_NATIVE_UCHAR, H5T_STD_U8LE,
      {static_cast<hsize_t>(patches.rows), static_cast<hsize_t>(patches.cols)},
      mask.data(), f.path());
  IntAttribute(f.get(), "window", patches.window);
  IntAttribute(f.get(), "first_centre_x", patches.window / 2);
  IntAttribute(f.get(), "first_centre_y", patches.window / 2);
  for (const auto& [k, v] : attributes) Attribute(f.get(), k, v);
  f.Commit();
}

void WriteMeasured(const std::filesystem::path& path, const MeasuredPoints& p,
                   const std::map<std::string, std::string>& attributes) {
  NewFile f(path);
  const hsize_t n = static_cast<hsize_t>(p.size());
  const hsize_t w = static_cast<hsize_t>(p.window);
  Write(f.get(), "patches", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, {n, w, w},
        p.patches.data(), f.path());
  Write(f.get(), "spectra", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE,
        {n, static_cast<hsize_t>(p.channels)}, p.spectra.data(), f.path());
  Write(f.get(), "energy", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE,
        {static_cast<hsize_t>(p.channels)}, p.energy.data(), f.path());
  Write(f.get(), "x", H5T_NATIVE_INT, H5T_STD_I32LE, {n}, p.x.data(), f.path());
  Write(f.get(), "y", H5T_NATIVE_INT, H5T_STD_I32LE, {n}, p.y.data(), f.path());
  Write(f.get(), "step", H5T_NATIVE_INT, H5T_STD_I32LE, {n}, p.step.data(),
        f.path());
  IntAttribute(f.get(), "window", p.window);
  Attribute(f.get(), "dataset", "/spectra");
  Attribute(f.get(), "selection",
            "points: the pixels (/x, /y), in the order of /step");
  for (const auto& [k, v] : attributes) Attribute(f.get(), k, v);
  f.Commit();
}

MeasuredPoints ReadMeasured(const std::filesystem::path& path) {
  QuietHdf5();
  if (H5Fis_hdf5(path.c_str()) <= 0)
    Fail("'" + path.string() + "' is not an HDF5 file");
  H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) Fail("cannot open '" + path.string() + "'");
  MeasuredPoints p;
  std::vector<hsize_t> dims;
  p.patches = ReadAll<float>(f.get(), "patches", H5T_NATIVE_FLOAT, &dims,
                             path.string());
  if (dims.size() != 3 || dims[1] != dims[2])
    Fail("'" + path.string() + "': /patches is not [n, w, w]");
  p.window = static_cast<int>(dims[1]);
  const hsize_t n = dims[0];
  p.spectra = ReadAll<float>(f.get(), "spectra", H5T_NATIVE_FLOAT, &dims,
                             path.string());
  if (dims.size() != 2 || dims[0] != n)
    Fail("'" + path.string() + "': /spectra is not [n, E]");
  p.channels = static_cast<int>(dims[1]);
  p.energy =
      ReadAll<float>(f.get(), "energy", H5T_NATIVE_FLOAT, &dims, path.string());
  p.x = ReadAll<int>(f.get(), "x", H5T_NATIVE_INT, &dims, path.string());
  p.y = ReadAll<int>(f.get(), "y", H5T_NATIVE_INT, &dims, path.string());
  p.step = ReadAll<int>(f.get(), "step", H5T_NATIVE_INT, &dims, path.string());
  if (static_cast<int>(p.energy.size()) != p.channels || p.x.size() != n ||
      p.y.size() != n || p.step.size() != n)
    Fail("'" + path.string() + "': datasets of inconsistent sizes");
  return p;
}

std::vector<float> RawPatch(const std::vector<float>& image, int width,
                            int window, int x, int y) {
  std::vector<float> out(static_cast<std::size_t>(window) * window);
  int r0 = y - window / 2;
  int c0 = x - window / 2;
  for (int i = 0; i < window; ++i)
    for (int j = 0; j < window; ++j)
      out[i * window + j] =
          image[static_cast<std::size_t>(r0 + i) * width + (c0 + j)];
  return out;
}

}  // namespace cmf::ml
