#include "mos2.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <stdexcept>

namespace cmf::md {
namespace {

// SplitMix64: a small generator whose output is fixed by its definition (the
// standard library's distributions are not), so that a seed means the same
// structure on every platform.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t Next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n).
  std::uint64_t Below(std::uint64_t n) {
    return static_cast<std::uint64_t>(Uniform() * n);
  }
  // Standard normal (Box-Muller).
  double Normal() {
    double u = 1.0 - Uniform();
    double v = Uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * M_PI * v);
  }

 private:
  std::uint64_t state_;
};

std::string Format(const char* fmt, double a, double b, double c) {
  char buf[160];
  std::snprintf(buf, sizeof buf, fmt, a, b, c);
  return buf;
}

}  // namespace

Structure BuildMos2(const Mos2Options& o) {
  if (o.supercell < 1 || o.supercell > 50)
    throw std::invalid_argument("--supercell must be 1 to 50");
  const int n = o.supercell;
  const int s_sites = 2 * n * n;
  if (o.vacancies < 0 || o.vacancies >= s_sites)
    throw std::invalid_argument(
        "--vacancies must be 0 to " + std::to_string(s_sites - 1) + " for a " +
        std::to_string(n) + "x" + std::to_string(n) + " supercell");
  if (!(o.displacement >= 0 && o.displacement < 0.5))
    throw std::invalid_argument("the displacement must be 0 to 0.5 Å");
  Rng rng(o.seed);
  // The vacancies: a seeded partial Fisher-Yates draw over the S sites.
  std::vector<int> sites(s_sites);
  std::iota(sites.begin(), sites.end(), 0);
  for (int i = 0; i < o.vacancies; ++i) {
    int j = i + static_cast<int>(
                    rng.Below(static_cast<std::uint64_t>(s_sites - i)));
    std::swap(sites[i], sites[j]);
  }
  Structure s;
  s.vacancy_sites.assign(sites.begin(), sites.begin() + o.vacancies);
  std::sort(s.vacancy_sites.begin(), s.vacancy_sites.end());
  std::vector<char> empty(s_sites, 0);
  for (int v : s.vacancy_sites) empty[v] = 1;

  const double a = o.lattice;
  const double h = std::sqrt(3.0) / 2.0;
  const double lz = o.thickness + o.vacuum;
  const double cell[9] = {n * a, 0, 0, n * a * 0.5, n * a * h, 0, 0, 0, lz};
  std::copy(cell, cell + 9, s.cell);
  const double zmid = lz / 2;
  auto place = [&](const char* element, double f1, double f2, double z) {
    // Fractional (f1, f2) of the primitive lattice, in the supercell.
    s.species.emplace_back(element);
    s.positions.push_back(a * (f1 + 0.5 * f2) + o.displacement * rng.Normal());
    s.positions.push_back(a * h * f2 + o.displacement * rng.Normal());
    s.positions.push_back(z + o.displacement * rng.Normal());
  };
  // Mo at (0, 0) of each primitive cell, the two S of the trigonal prism at
  // (1/3, 1/3) above and below; S site 2k is the top one of cell k.
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < n; ++i) {
      int k = j * n + i;
      place("Mo", i, j, zmid);
      if (!empty[2 * k])
        place("S", i + 1.0 / 3, j + 1.0 / 3, zmid + o.thickness / 2);
      if (!empty[2 * k + 1])
        place("S", i + 1.0 / 3, j + 1.0 / 3, zmid - o.thickness / 2);
    }
  }
  return s;
}

int LammpsSeed(std::uint64_t seed) {
  Rng rng(seed ^ 0x6c616d6d7073ULL);  // "lammps": not the structure's stream
  return 1 + static_cast<int>(rng.Next() % 2147483646ULL);
}

std::string LammpsInput(const Structure& s, const MdOptions& md,
                        const std::string& dump_path) {
  const double* c = s.cell;
  std::string in;
  in +=
      "# Written by cmf run md-mos2: NVT molecular dynamics of a MoS2 "
      "monolayer.\n";
  in +=
      "# Potential: the Stillinger-Weber model of Wen, Shirodkar, Plechac et "
      "al.,\n";
  in += "# J. Appl. Phys. 122, 244301 (2017), from OpenKIM.\n";
  in += std::string("kim init ") + kMos2KimModel + " metal\n";
  in += "boundary p p p\n";
  in += "atom_style atomic\n";
  in += Format("region cell prism 0 %.10f 0 %.10f 0 %.10f", c[0], c[4], c[8]);
  in += Format(" %.10f %.10f %.10f units box\n", c[3], c[6], c[7]);
  in += "create_box 2 cell\n";
  for (std::size_t i = 0; i < s.species.size(); ++i) {
    in += s.species[i] == "Mo" ? "create_atoms 1 single"
                               : "create_atoms 2 single";
    in += Format(" %.10f %.10f %.10f units box remap yes\n", s.positions[3 * i],
                 s.positions[3 * i + 1], s.positions[3 * i + 2]);
  }
  in += "mass 1 95.95\nmass 2 32.06\n";
  in += "kim interactions Mo S\n";
  in += Format("timestep %.10g\n", md.timestep_fs / 1000.0, 0, 0);
  in += Format(
      "velocity all create %.10g %.0f mom yes rot yes dist gaussian loop "
      "geom\n",
      md.temperature, LammpsSeed(md.seed), 0);
  // Nose-Hoover thermostat, damped over 100 time steps.
  in += Format("fix nvt all nvt temp %.10g %.10g %.10g\n", md.temperature,
               md.temperature, 100 * md.timestep_fs / 1000.0);
  in += "thermo_style custom step temp pe etotal\n";
  in += "thermo_modify format float %.15g\n";
  if (md.equilibrate > 0) {
    in += "thermo " + std::to_string(std::max(1, md.equilibrate / 10)) + "\n";
    in += "run " + std::to_string(md.equilibrate) + "\n";
  }
  // No reset_timestep: the recorded frames' steps go on from the
  // equilibration's, so that no step of the log's thermo tables has two
  // energies (the reader refuses such a log).
  in += "thermo " + std::to_string(md.every) + "\n";
  in += "dump frames all custom " + std::to_string(md.every) + " " + dump_path +
        " id element x y z fx fy fz\n";
  in += "dump_modify frames sort id element Mo S format float %.9g\n";
  in += "run " + std::to_string(md.steps) + "\n";
  return in;
}

}  // namespace cmf::md
