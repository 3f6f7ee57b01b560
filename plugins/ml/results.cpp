#include "results.h"

#include "h5.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cmf::ml {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}


void Write(hid_t file, const char* name, hid_t mem_type, hid_t file_type,
           const std::vector<hsize_t>& dims, const void* data,
           const std::string& path) {
  H5 space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
           H5Sclose);
  H5 d(H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                  H5P_DEFAULT),
       H5Dclose);
  if (!d.ok() || H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                          data) < 0)
    Fail("cannot write " + std::string(name) + " to '" + path + "'");
}

void Attribute(hid_t obj, const std::string& name, const std::string& value) {
  H5 type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  H5 space(H5Screate(H5S_SCALAR), H5Sclose);
  H5 a(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                  H5P_DEFAULT),
       H5Aclose);
  const char* text = value.c_str();
  H5Awrite(a.get(), type.get(), &text);
}

void IntAttribute(hid_t obj, const std::string& name, long long value) {
  H5 space(H5Screate(H5S_SCALAR), H5Sclose);
  H5 a(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                  H5P_DEFAULT),
       H5Aclose);
  H5Awrite(a.get(), H5T_NATIVE_LLONG, &value);
}

// Creates PATH.tmp; Commit renames it over PATH.
class NewFile {
 public:
  explicit NewFile(std::filesystem::path path)
      : path_(std::move(path)), tmp_(path_.string() + ".tmp") {
    QuietHdf5();
    id_ = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (id_ < 0) Fail("cannot create '" + tmp_.string() + "'");
  }
  ~NewFile() {
    if (id_ >= 0) {
      H5Fclose(id_);
      std::error_code ec;
      std::filesystem::remove(tmp_, ec);
    }
  }
  hid_t get() const { return id_; }
  const std::string path() const { return path_.string(); }
  void Commit() {
    H5Fflush(id_, H5F_SCOPE_GLOBAL);
    H5Fclose(id_);
    id_ = -1;
    std::filesystem::rename(tmp_, path_);
  }

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  hid_t id_ = -1;
};

template <typename T>
std::vector<T> ReadAll(hid_t file, const char* name, hid_t mem_type,
                       std::vector<hsize_t>* dims, const std::string& path) {
  H5 d(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!d.ok()) Fail("'" + path + "' has no " + name);
  H5 space(H5Dget_space(d.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  dims->assign(rank, 0);
  H5Sget_simple_extent_dims(space.get(), dims->data(), nullptr);
  hsize_t n = 1;
  for (hsize_t v : *dims) n *= v;
  std::vector<T> out(n);
  if (n > 0 && H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                       out.data()) < 0)
    Fail("cannot read " + std::string(name) + " of '" + path + "'");
  return out;
}

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
  Write(f.get(), "measured", H5T_NATIVE_UCHAR, H5T_STD_U8LE,
        {static_cast<hsize_t>(patches.rows), static_cast<hsize_t>(patches.cols)},
        mask.data(), f.path());
  IntAttribute(f.get(), "window", patches.window);
  IntAttribute(f.get(), "first_centre_x", patches.window / 2);
  IntAttribute(f.get(), "first_centre_y", patches.window / 2);
  for (const auto& [k, v] : attributes) Attribute(f.get(), k, v);
  f.Commit();
}

void WriteMeasured(const std::filesystem::path& path,
                   const MeasuredPoints& p,
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
  p.energy = ReadAll<float>(f.get(), "energy", H5T_NATIVE_FLOAT, &dims,
                            path.string());
  p.x = ReadAll<int>(f.get(), "x", H5T_NATIVE_INT, &dims, path.string());
  p.y = ReadAll<int>(f.get(), "y", H5T_NATIVE_INT, &dims, path.string());
  p.step = ReadAll<int>(f.get(), "step", H5T_NATIVE_INT, &dims, path.string());
  if (static_cast<int>(p.energy.size()) != p.channels ||
      p.x.size() != n || p.y.size() != n || p.step.size() != n)
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
