#include "trajectory.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "h5io.h"

namespace cmf::md {
namespace {

using h5::H5;

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

constexpr std::array<std::string_view, 118> kElements = {
    "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg",
    "Al", "Si", "P",  "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr",
    "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr",
    "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd",
    "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd",
    "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf",
    "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po",
    "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am", "Cm",
    "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs",
    "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};

// The longest symbol, and the size of a /species string.
constexpr std::size_t kSymbolBytes = 3;

double Determinant(const double* m) {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) -
         m[1] * (m[3] * m[8] - m[5] * m[6]) +
         m[2] * (m[3] * m[7] - m[4] * m[6]);
}

template <typename T>
bool AllFinite(const std::vector<T>& v) {
  return std::all_of(v.begin(), v.end(), [](T x) { return std::isfinite(x); });
}

}  // namespace

int AtomicNumber(std::string_view symbol) {
  for (std::size_t i = 0; i < kElements.size(); ++i)
    if (kElements[i] == symbol) return static_cast<int>(i) + 1;
  return 0;
}

void Validate(const Trajectory& t, const std::string& what) {
  const std::size_t n = t.species.size();
  const std::size_t frames = t.step.size();
  if (n == 0) Fail(what + ": no atoms");
  if (frames == 0) Fail(what + ": no frames");
  for (const std::string& s : t.species)
    if (AtomicNumber(s) == 0)
      Fail(what + ": '" + s + "' is not an element symbol");
  if (t.positions.size() != frames * n * 3)
    Fail(what + ": positions of " + std::to_string(t.positions.size() / 3) +
         " atoms for " + std::to_string(frames) + " frames of " +
         std::to_string(n));
  if (t.cell.size() != 9 && t.cell.size() != 9 * frames)
    Fail(what + ": the cell is neither fixed nor one per frame");
  if (!t.energy.empty() && t.energy.size() != frames)
    Fail(what + ": " + std::to_string(t.energy.size()) + " energies for " +
         std::to_string(frames) + " frames");
  if (!t.time_fs.empty() && t.time_fs.size() != frames)
    Fail(what + ": " + std::to_string(t.time_fs.size()) + " times for " +
         std::to_string(frames) + " frames");
  if (!t.forces.empty() && t.forces.size() != t.positions.size())
    Fail(what + ": forces and positions differ in size");
  if (!AllFinite(t.positions))
    Fail(what + ": a position is not a finite number");
  if (!AllFinite(t.cell)) Fail(what + ": the cell is not finite");
  if (!AllFinite(t.energy)) Fail(what + ": an energy is not a finite number");
  if (!AllFinite(t.forces)) Fail(what + ": a force is not a finite number");
  if (!AllFinite(t.time_fs)) Fail(what + ": a time is not a finite number");
  for (std::size_t c = 0; c < t.cell.size(); c += 9)
    if (!(Determinant(t.cell.data() + c) > 1e-6))
      Fail(what + ": the cell of frame " + std::to_string(c / 9) +
           " has no positive volume");
  for (std::size_t i = 1; i < frames; ++i)
    if (t.step[i] <= t.step[i - 1])
      Fail(what + ": step " + std::to_string(t.step[i]) + " follows step " +
           std::to_string(t.step[i - 1]));
}

void CollapseCell(Trajectory* t) {
  if (!t->variable_cell()) return;
  for (std::size_t i = 9; i < t->cell.size(); ++i)
    if (t->cell[i] != t->cell[i % 9]) return;
  t->cell.resize(9);
}

void WriteTrajectory(const std::filesystem::path& path, const Trajectory& t) {
  Validate(t, "'" + path.string() + "'");
  const hsize_t frames = static_cast<hsize_t>(t.frames());
  const hsize_t n = static_cast<hsize_t>(t.atoms());
  h5::NewFile f(path);
  const std::string where = f.path();
  h5::Write(f.get(), "positions", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE,
            {frames, n, 3}, t.positions.data(), where);
  std::string symbols(n * kSymbolBytes, '\0');
  for (hsize_t i = 0; i < n; ++i)
    std::copy(t.species[i].begin(), t.species[i].end(),
              symbols.begin() + i * kSymbolBytes);
  H5 text(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(text.get(), kSymbolBytes);
  H5Tset_strpad(text.get(), H5T_STR_NULLPAD);
  h5::Write(f.get(), "species", text.get(), text.get(), {n}, symbols.data(),
            where);
  std::vector<hsize_t> cell_dims = {3, 3};
  if (t.variable_cell()) cell_dims.insert(cell_dims.begin(), frames);
  h5::Write(f.get(), "cell", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, cell_dims,
            t.cell.data(), where);
  h5::Write(f.get(), "step", H5T_NATIVE_INT64, H5T_STD_I64LE, {frames},
            t.step.data(), where);
  if (!t.energy.empty())
    h5::Write(f.get(), "energy", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {frames},
              t.energy.data(), where);
  if (!t.time_fs.empty())
    h5::Write(f.get(), "time_fs", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {frames},
              t.time_fs.data(), where);
  if (!t.forces.empty())
    h5::Write(f.get(), "forces", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE,
              {frames, n, 3}, t.forces.data(), where);
  for (const auto& [k, v] : t.text) h5::Attribute(f.get(), k, v);
  for (const auto& [k, v] : t.real) h5::RealAttribute(f.get(), k, v);
  for (const auto& [k, v] : t.integer) h5::IntAttribute(f.get(), k, v);
  f.Commit();
}

namespace {

// The shape of dataset NAME, or empty when it does not exist.
std::vector<hsize_t> ShapeOf(hid_t file, const char* name,
                             const std::string& where) {
  if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return {};
  H5 d(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!d.ok()) Fail(where + ": cannot open /" + name);
  H5 space(H5Dget_space(d.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 1 || rank > 3)
    Fail(where + ": /" + std::string(name) + " has rank " +
         std::to_string(rank));
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

std::vector<std::string> ReadSpecies(hid_t file, hsize_t n,
                                     const std::string& where) {
  H5 d(H5Dopen2(file, "species", H5P_DEFAULT), H5Dclose);
  H5 type(H5Dget_type(d.get()), H5Tclose);
  if (!d.ok() || H5Tget_class(type.get()) != H5T_STRING)
    Fail(where + ": /species is not a dataset of strings");
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    H5 mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    std::vector<char*> raw(n, nullptr);
    if (H5Dread(d.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) <
        0)
      Fail(where + ": cannot read /species");
    for (char* s : raw) out.emplace_back(s ? s : "");
    H5 space(H5Dget_space(d.get()), H5Sclose);
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
  } else {
    std::size_t size = H5Tget_size(type.get());
    if (size == 0 || size > 64)
      Fail(where + ": /species strings are " + std::to_string(size) + " bytes");
    H5 mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), size);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    std::string raw(n * size, '\0');
    if (H5Dread(d.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) <
        0)
      Fail(where + ": cannot read /species");
    for (hsize_t i = 0; i < n; ++i) {
      std::string s = raw.substr(i * size, size);
      s.resize(std::min(s.find('\0'), s.find(' ')));
      out.push_back(s);
    }
  }
  return out;
}

}  // namespace

Trajectory ReadTrajectory(const std::filesystem::path& path) {
  const std::string where = "'" + path.string() + "'";
  h5::QuietHdf5();
  if (H5Fis_hdf5(path.c_str()) <= 0) Fail(where + " is not an HDF5 file");
  H5 f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) Fail("cannot open " + where);
  std::vector<hsize_t> pos = ShapeOf(f.get(), "positions", where);
  if (pos.size() != 3 || pos[2] != 3 || pos[0] == 0 || pos[1] == 0)
    Fail(where + ": /positions is not [frames, atoms, 3]");
  const hsize_t frames = pos[0], n = pos[1];
  if (n > 10'000'000) Fail(where + ": more than 10,000,000 atoms");
  if (ShapeOf(f.get(), "species", where) != std::vector<hsize_t>{n})
    Fail(where + ": /species is not [" + std::to_string(n) + "]");
  std::vector<hsize_t> cell = ShapeOf(f.get(), "cell", where);
  if (cell != std::vector<hsize_t>{3, 3} &&
      cell != std::vector<hsize_t>{frames, 3, 3})
    Fail(where + ": /cell is neither [3, 3] nor [frames, 3, 3]");
  for (const char* name : {"energy", "time_fs", "step"}) {
    std::vector<hsize_t> s = ShapeOf(f.get(), name, where);
    if (!s.empty() && s != std::vector<hsize_t>{frames})
      Fail(where + ": /" + std::string(name) + " is not [" +
           std::to_string(frames) + "]");
  }
  std::vector<hsize_t> forces = ShapeOf(f.get(), "forces", where);
  if (!forces.empty() && forces != pos)
    Fail(where + ": /forces is not shaped as /positions");

  Trajectory t;
  std::vector<hsize_t> dims;
  t.positions =
      h5::ReadAll<float>(f.get(), "positions", H5T_NATIVE_FLOAT, &dims, where);
  t.species = ReadSpecies(f.get(), n, where);
  t.cell =
      h5::ReadAll<double>(f.get(), "cell", H5T_NATIVE_DOUBLE, &dims, where);
  if (H5Lexists(f.get(), "step", H5P_DEFAULT) > 0) {
    std::vector<long long> s =
        h5::ReadAll<long long>(f.get(), "step", H5T_NATIVE_LLONG, &dims, where);
    t.step.assign(s.begin(), s.end());
  } else {
    for (hsize_t i = 0; i < frames; ++i)
      t.step.push_back(static_cast<std::int64_t>(i));
  }
  if (H5Lexists(f.get(), "energy", H5P_DEFAULT) > 0)
    t.energy =
        h5::ReadAll<double>(f.get(), "energy", H5T_NATIVE_DOUBLE, &dims, where);
  if (H5Lexists(f.get(), "time_fs", H5P_DEFAULT) > 0)
    t.time_fs = h5::ReadAll<double>(f.get(), "time_fs", H5T_NATIVE_DOUBLE,
                                    &dims, where);
  if (!forces.empty())
    t.forces =
        h5::ReadAll<float>(f.get(), "forces", H5T_NATIVE_FLOAT, &dims, where);
  // Every attribute of one value on the root, by its type: provenance
  // (input_sha256, source_sha256, vacancy_sites, ...) travels into slices.
  std::vector<std::string> names;
  H5Aiterate2(
      f.get(), H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5A_info_t*, void* data) -> herr_t {
        auto* list = static_cast<std::vector<std::string>*>(data);
        if (list->size() >= 1000)
          return 1;  // enough of a hostile file's attributes
        list->emplace_back(name);
        return 0;
      },
      &names);
  for (const std::string& name : names) {
    H5 a(H5Aopen(f.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
    H5 type(H5Aget_type(a.get()), H5Tclose);
    if (!a.ok() || !type.ok()) continue;
    const H5T_class_t c = H5Tget_class(type.get());
    if (c == H5T_STRING) {
      if (auto v = h5::TextAttribute(f.get(), name.c_str())) t.text[name] = *v;
    } else if (c == H5T_INTEGER) {
      if (auto v = h5::RealAttributeOf(f.get(), name.c_str()))
        t.integer[name] = static_cast<long long>(*v);
    } else if (c == H5T_FLOAT) {
      if (auto v = h5::RealAttributeOf(f.get(), name.c_str()))
        t.real[name] = *v;
    }
  }
  Validate(t, where);
  return t;
}

}  // namespace cmf::md

namespace cmf::md {
namespace {

// Standard atomic weights of the elements a MoS2 study meets, and a few
// neighbours; other elements get 2 Z (a placeholder a user will see).
double Mass(const std::string& symbol) {
  static const std::map<std::string, double> kMass = {
      {"H", 1.008},  {"C", 12.011},  {"N", 14.007},  {"O", 15.999},
      {"S", 32.06},  {"Se", 78.971}, {"Te", 127.6},  {"Mo", 95.95},
      {"W", 183.84}, {"Nb", 92.906}, {"Re", 186.207}};
  auto it = kMass.find(symbol);
  return it != kMass.end() ? it->second : 2.0 * AtomicNumber(symbol);
}

std::string Fmt(const char* format, double a, double b = 0, double c = 0) {
  int n = std::snprintf(nullptr, 0, format, a, b,
                        c);  // %.10f of 1e300 is 311 characters
  std::string out(static_cast<std::size_t>(std::max(n, 0)) + 1, '\0');
  std::snprintf(out.data(), out.size(), format, a, b, c);
  out.pop_back();
  return out;
}

}  // namespace

Trajectory Subset(const Trajectory& t, const std::vector<int>& frames) {
  Trajectory s;
  s.species = t.species;
  s.text = t.text;
  s.real = t.real;
  s.integer = t.integer;
  const std::size_t n3 = static_cast<std::size_t>(t.atoms()) * 3;
  for (int f : frames) {
    if (f < 0 || f >= t.frames()) throw std::out_of_range("frame out of range");
    s.positions.insert(s.positions.end(), t.positions.begin() + f * n3,
                       t.positions.begin() + (f + 1) * n3);
    if (!t.forces.empty())
      s.forces.insert(s.forces.end(), t.forces.begin() + f * n3,
                      t.forces.begin() + (f + 1) * n3);
    if (!t.energy.empty()) s.energy.push_back(t.energy[f]);
    if (!t.time_fs.empty()) s.time_fs.push_back(t.time_fs[f]);
    s.step.push_back(t.step[f]);
    if (t.variable_cell() || s.cell.empty())
      s.cell.insert(s.cell.end(), t.cell_of(f), t.cell_of(f) + 9);
  }
  return s;
}

std::string LammpsData(const Trajectory& t, int frame,
                       const std::string& title) {
  std::vector<std::string> kinds;
  for (const std::string& s : t.species)
    if (std::find(kinds.begin(), kinds.end(), s) == kinds.end())
      kinds.push_back(s);
  const double* m = t.cell_of(frame);
  // LAMMPS wants a1 along x, a2 in the xy plane: true of the cells cmf
  // writes from LAMMPS and md-mos2; other cells are rotated into that frame.
  const double ax = std::sqrt(m[0] * m[0] + m[1] * m[1] + m[2] * m[2]);
  double ex[3] = {m[0] / ax, m[1] / ax, m[2] / ax};
  double bx = m[3] * ex[0] + m[4] * ex[1] + m[5] * ex[2];
  double b_perp[3] = {m[3] - bx * ex[0], m[4] - bx * ex[1], m[5] - bx * ex[2]};
  double by = std::sqrt(b_perp[0] * b_perp[0] + b_perp[1] * b_perp[1] +
                        b_perp[2] * b_perp[2]);
  double ey[3] = {b_perp[0] / by, b_perp[1] / by, b_perp[2] / by};
  double ez[3] = {ex[1] * ey[2] - ex[2] * ey[1], ex[2] * ey[0] - ex[0] * ey[2],
                  ex[0] * ey[1] - ex[1] * ey[0]};
  auto project = [&](const double* v, double* out) {
    out[0] = v[0] * ex[0] + v[1] * ex[1] + v[2] * ex[2];
    out[1] = v[0] * ey[0] + v[1] * ey[1] + v[2] * ey[2];
    out[2] = v[0] * ez[0] + v[1] * ez[1] + v[2] * ez[2];
  };
  double c[3];
  project(m + 6, c);
  std::string out = "# " + title + "\n\n";
  out += std::to_string(t.atoms()) + " atoms\n" + std::to_string(kinds.size()) +
         " atom types\n\n";
  out += Fmt("0 %.10f xlo xhi\n", ax);
  out += Fmt("0 %.10f ylo yhi\n", by);
  out += Fmt("0 %.10f zlo zhi\n", c[2]);
  out += Fmt("%.10f %.10f %.10f xy xz yz\n\nMasses\n\n", bx, c[0], c[1]);
  for (std::size_t k = 0; k < kinds.size(); ++k)
    out += std::to_string(k + 1) + Fmt(" %.4f", Mass(kinds[k])) + "  # " +
           kinds[k] + "\n";
  out += "\nAtoms  # atomic\n\n";
  const float* p =
      t.positions.data() + static_cast<std::size_t>(frame) * t.atoms() * 3;
  for (int i = 0; i < t.atoms(); ++i) {
    double v[3] = {p[3 * i], p[3 * i + 1], p[3 * i + 2]}, r[3];
    project(v, r);
    int type =
        static_cast<int>(std::find(kinds.begin(), kinds.end(), t.species[i]) -
                         kinds.begin()) +
        1;
    out += std::to_string(i + 1) + " " + std::to_string(type) +
           Fmt(" %.8f %.8f %.8f\n", r[0], r[1], r[2]);
  }
  return out;
}

std::string ExtxyzFrame(const Trajectory& t, int frame) {
  const double* m = t.cell_of(frame);
  std::string out = std::to_string(t.atoms()) + "\nLattice=\"";
  for (int k = 0; k < 9; ++k) out += Fmt(k ? " %.10f" : "%.10f", m[k]);
  out += "\" Properties=species:S:1:pos:R:3";
  if (!t.energy.empty()) out += Fmt(" energy=%.10f", t.energy[frame]);
  out += " pbc=\"T T T\"\n";
  const float* p =
      t.positions.data() + static_cast<std::size_t>(frame) * t.atoms() * 3;
  for (int i = 0; i < t.atoms(); ++i)
    out += t.species[i] + Fmt(" %.8f %.8f", p[3 * i], p[3 * i + 1]) +
           Fmt(" %.8f\n", p[3 * i + 2]);
  return out;
}

}  // namespace cmf::md
