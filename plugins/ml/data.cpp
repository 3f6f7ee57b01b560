#include "data.h"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "h5.h"

namespace cmf::ml {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

std::vector<hsize_t> Shape(hid_t dataset) {
  H5 space(H5Dget_space(dataset), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<hsize_t> dims(rank > 0 ? rank : 0);
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

bool HasLink(hid_t file, const char* name) {
  return H5Lexists(file, name, H5P_DEFAULT) > 0;
}

std::vector<float> ReadAll(hid_t file, const char* name,
                           const std::string& path) {
  H5 d(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!d.ok())
    Fail("cannot open dataset '" + std::string(name) + "' of '" + path + "'");
  hsize_t n = 1;
  for (hsize_t v : Shape(d.get())) n *= v;
  std::vector<float> out(n);
  if (n > 0 && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                       out.data()) < 0)
    Fail("cannot read dataset '" + std::string(name) + "' of '" + path + "'");
  return out;
}

}  // namespace

Experiment ReadExperiment(const std::filesystem::path& path,
                          bool need_spectra) {
  QuietHdf5();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    Fail("experiment file '" + path.string() + "' does not exist");
  if (H5Fis_hdf5(path.c_str()) <= 0)
    Fail("'" + path.string() + "' is not an HDF5 file");
  H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) Fail("cannot open '" + path.string() + "'");
  Experiment e;
  e.path = path;
  if (!HasLink(f.get(), "image"))
    Fail("'" + path.string() + "' has no /image dataset");
  {
    H5 d(H5Dopen2(f.get(), "image", H5P_DEFAULT), H5Dclose);
    std::vector<hsize_t> s = Shape(d.get());
    if (s.size() != 2)
      Fail("/image of '" + path.string() + "' is not two-dimensional");
    e.height = static_cast<int>(s[0]);
    e.width = static_cast<int>(s[1]);
  }
  e.image = ReadAll(f.get(), "image", path.string());
  if (HasLink(f.get(), "energy")) {
    e.energy = ReadAll(f.get(), "energy", path.string());
    e.channels = static_cast<int>(e.energy.size());
  }
  if (HasLink(f.get(), "spectra")) {
    H5 d(H5Dopen2(f.get(), "spectra", H5P_DEFAULT), H5Dclose);
    std::vector<hsize_t> s = Shape(d.get());
    if (s.size() != 3 || static_cast<int>(s[0]) != e.height ||
        static_cast<int>(s[1]) != e.width)
      Fail("/spectra of '" + path.string() + "' does not match /image (" +
           std::to_string(e.height) + "x" + std::to_string(e.width) + ")");
    if (e.channels != 0 && static_cast<int>(s[2]) != e.channels)
      Fail("/spectra of '" + path.string() + "' has " + std::to_string(s[2]) +
           " channels but /energy has " + std::to_string(e.channels));
    e.has_spectra = true;
  }
  if (need_spectra && !e.has_spectra)
    Fail("'" + path.string() + "' has no /spectra to replay");
  if (e.channels == 0) Fail("'" + path.string() + "' has no /energy axis");
  return e;
}

std::vector<float> Experiment::Spectrum(int x, int y) const {
  QuietHdf5();
  if (x < 0 || y < 0 || x >= width || y >= height)
    Fail("pixel (" + std::to_string(x) + ", " + std::to_string(y) +
         ") lies outside the image");
  H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  H5 d(H5Dopen2(f.get(), "spectra", H5P_DEFAULT), H5Dclose);
  if (!d.ok()) Fail("cannot open /spectra of '" + path.string() + "'");
  H5 space(H5Dget_space(d.get()), H5Sclose);
  hsize_t start[3] = {static_cast<hsize_t>(y), static_cast<hsize_t>(x), 0};
  hsize_t count[3] = {1, 1, static_cast<hsize_t>(channels)};
  H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count,
                      nullptr);
  H5 mem(H5Screate_simple(3, count, nullptr), H5Sclose);
  std::vector<float> out(channels);
  if (H5Dread(d.get(), H5T_NATIVE_FLOAT, mem.get(), space.get(), H5P_DEFAULT,
              out.data()) < 0)
    Fail("cannot read /spectra of '" + path.string() + "'");
  return out;
}

std::vector<double> Experiment::PooledAtCentres(const Patches& p,
                                                int pool) const {
  QuietHdf5();
  int groups = channels / pool;
  std::vector<double> out(static_cast<std::size_t>(p.count) * groups);
  H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  H5 d(H5Dopen2(f.get(), "spectra", H5P_DEFAULT), H5Dclose);
  if (!d.ok()) Fail("cannot open /spectra of '" + path.string() + "'");
  H5 space(H5Dget_space(d.get()), H5Sclose);
  hsize_t count[3] = {1, static_cast<hsize_t>(width),
                      static_cast<hsize_t>(channels)};
  H5 mem(H5Screate_simple(3, count, nullptr), H5Sclose);
  std::vector<float> row(static_cast<std::size_t>(width) * channels);
  for (int r = 0; r < p.rows; ++r) {
    hsize_t start[3] = {static_cast<hsize_t>(r + p.window / 2), 0, 0};
    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start, nullptr, count,
                        nullptr);
    if (H5Dread(d.get(), H5T_NATIVE_FLOAT, mem.get(), space.get(), H5P_DEFAULT,
                row.data()) < 0)
      Fail("cannot read /spectra of '" + path.string() + "'");
    for (int c = 0; c < p.cols; ++c) {
      int x = c + p.window / 2;
      std::vector<double> pooled = PoolSpectrum(
          row.data() + static_cast<std::size_t>(x) * channels, channels, pool);
      std::copy(
          pooled.begin(), pooled.end(),
          out.begin() + (static_cast<std::size_t>(r) * p.cols + c) * groups);
    }
  }
  return out;
}

int Patches::IndexOf(int x, int y) const {
  int c = x - window / 2;
  int r = y - window / 2;
  if (c < 0 || r < 0 || c >= cols || r >= rows) return -1;
  return r * cols + c;
}

Patches MakePatches(const std::vector<float>& image, int height, int width,
                    int window) {
  if (window < 1) Fail("the window must be at least 1 pixel");
  if (window > height || window > width)
    Fail("a window of " + std::to_string(window) +
         " pixels does not fit in a " + std::to_string(height) + "x" +
         std::to_string(width) + " image");
  Patches p;
  p.window = window;
  p.rows = height - window + 1;
  p.cols = width - window + 1;
  p.count = p.rows * p.cols;
  p.features = window * window;
  p.values.resize(static_cast<std::size_t>(p.count) * p.features);
  float lo = std::numeric_limits<float>::infinity();
  float hi = -lo;
  for (int r = 0; r < p.rows; ++r) {
    for (int c = 0; c < p.cols; ++c) {
      float* out = p.values.data() +
                   (static_cast<std::size_t>(r) * p.cols + c) * p.features;
      for (int i = 0; i < window; ++i) {
        const float* src =
            image.data() + static_cast<std::size_t>(r + i) * width + c;
        std::memcpy(out + i * window, src, window * sizeof(float));
      }
    }
  }
  for (float v : p.values) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  float span = hi - lo;
  for (float& v : p.values) v = span > 0 ? (v - lo) / span : 0.0f;
  return p;
}

std::vector<double> PoolSpectrum(const float* spectrum, int channels,
                                 int pool) {
  int groups = channels / pool;
  std::vector<double> out(groups);
  for (int g = 0; g < groups; ++g) {
    double sum = 0;
    for (int k = 0; k < pool; ++k) sum += spectrum[g * pool + k];
    out[g] = sum / pool;
  }
  return out;
}

std::vector<double> PoolEnergy(const std::vector<float>& energy, int pool) {
  return PoolSpectrum(energy.data(), static_cast<int>(energy.size()), pool);
}

Scalarizer Scalarizer::Parse(const std::string& text) {
  Scalarizer s;
  if (text == "vector") {
    s.kind = Kind::kVector;
    return s;
  }
  auto bad = [&]() -> Scalarizer {
    Fail("scalarizer '" + text +
         "' is not band-mean:LO:HI, band-peak:LO:HI (eV) or vector");
  };
  std::string rest;
  if (text.rfind("band-mean:", 0) == 0) {
    s.kind = Kind::kBandMean;
    rest = text.substr(10);
  } else if (text.rfind("band-peak:", 0) == 0) {
    s.kind = Kind::kBandPeak;
    rest = text.substr(10);
  } else {
    return bad();
  }
  std::size_t colon = rest.find(':');
  if (colon == std::string::npos) return bad();
  std::string lo = rest.substr(0, colon);
  std::string hi = rest.substr(colon + 1);
  char* end = nullptr;
  s.lo = std::strtod(lo.c_str(), &end);
  if (lo.empty() || *end != '\0') return bad();
  s.hi = std::strtod(hi.c_str(), &end);
  if (hi.empty() || *end != '\0') return bad();
  if (!(s.lo <= s.hi)) Fail("scalarizer '" + text + "': LO is above HI");
  return s;
}

std::string Scalarizer::ToString() const {
  if (kind == Kind::kVector) return "vector";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s:%g:%g",
                kind == Kind::kBandMean ? "band-mean" : "band-peak", lo, hi);
  return buf;
}

std::vector<int> Scalarizer::Band(
    const std::vector<double>& group_energy) const {
  std::vector<int> band;
  if (kind == Kind::kVector) return band;
  for (int g = 0; g < static_cast<int>(group_energy.size()); ++g)
    if (group_energy[g] >= lo && group_energy[g] <= hi) band.push_back(g);
  if (band.empty()) {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "the band %g..%g eV holds no pooled channel (they span "
                  "%.3g..%.3g eV)",
                  lo, hi, group_energy.empty() ? 0.0 : group_energy.front(),
                  group_energy.empty() ? 0.0 : group_energy.back());
    Fail(buf);
  }
  return band;
}

void Scalarizer::Apply(const double* pooled, const std::vector<int>& band,
                       int groups, double* out) const {
  switch (kind) {
    case Kind::kVector:
      std::copy(pooled, pooled + groups, out);
      return;
    case Kind::kBandMean: {
      double sum = 0;
      for (int g : band) sum += pooled[g];
      *out = sum / static_cast<double>(band.size());
      return;
    }
    case Kind::kBandPeak: {
      double best = -std::numeric_limits<double>::infinity();
      for (int g : band) best = std::max(best, pooled[g]);
      *out = best;
      return;
    }
  }
}

Range RangeOf(const std::vector<double>& values) {
  Range r;
  if (values.empty()) return r;
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  r.min = *lo;
  r.max = *hi;
  return r;
}

std::vector<double> ReadNpy(const std::filesystem::path& path,
                            std::vector<std::int64_t>* shape) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot open '" + path.string() + "'");
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    Fail("'" + path.string() + "' is not a NumPy .npy file");
  std::uint32_t header_len = 0;
  if (magic[6] == 1) {
    unsigned char b[2];
    in.read(reinterpret_cast<char*>(b), 2);
    header_len = b[0] | (b[1] << 8);
  } else {
    unsigned char b[4];
    in.read(reinterpret_cast<char*>(b), 4);
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) |
                 (static_cast<std::uint32_t>(b[3]) << 24);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  auto field = [&](const std::string& key) {
    std::size_t k = header.find("'" + key + "'");
    if (k == std::string::npos) Fail("'" + path.string() + "': no " + key);
    return header.substr(header.find(':', k) + 1);
  };
  std::string descr = field("descr");
  bool f4 = descr.find("<f4") != std::string::npos;
  bool f8 = descr.find("<f8") != std::string::npos;
  if (!f4 && !f8) Fail("'" + path.string() + "' holds neither <f4 nor <f8");
  bool fortran =
      field("fortran_order").find("True") < field("fortran_order").find(',');
  std::string sh = field("shape");
  sh = sh.substr(sh.find('(') + 1, sh.find(')') - sh.find('(') - 1);
  shape->clear();
  std::size_t pos = 0;
  while (pos < sh.size()) {
    std::size_t comma = sh.find(',', pos);
    std::string part = sh.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (part.find_first_of("0123456789") != std::string::npos)
      shape->push_back(std::stoll(part));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::int64_t n = 1;
  for (std::int64_t d : *shape) n *= d;
  std::vector<double> raw(n);
  if (f4) {
    std::vector<float> tmp(n);
    in.read(reinterpret_cast<char*>(tmp.data()), n * 4);
    std::copy(tmp.begin(), tmp.end(), raw.begin());
  } else {
    in.read(reinterpret_cast<char*>(raw.data()), n * 8);
  }
  if (!in) Fail("'" + path.string() + "' is truncated");
  if (!fortran || shape->size() < 2) return raw;
  // Fortran order: transpose into row-major.
  std::vector<double> out(n);
  const std::vector<std::int64_t>& s = *shape;
  if (s.size() != 2) Fail("'" + path.string() + "': Fortran order above 2-D");
  for (std::int64_t i = 0; i < s[0]; ++i)
    for (std::int64_t j = 0; j < s[1]; ++j)
      out[i * s[1] + j] = raw[j * s[0] + i];
  return out;
}

}  // namespace cmf::ml
