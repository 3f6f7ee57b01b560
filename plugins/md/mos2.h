// A 2H-MoS2 monolayer with sulfur vacancies, and the LAMMPS input that runs
// NVT molecular dynamics of it with the OpenKIM Stillinger-Weber model of Wen
// et al. (2017). Pure functions of their arguments: the same seed gives the
// same structure and the same input, byte for byte.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cmf::md {

// The potential: an OpenKIM portable model that Debian's openkim-models has.
inline constexpr const char* kMos2KimModel =
    "SW_MX2_WenShirodkarPlechac_2017_MoS__MO_201919462778_001";

struct Mos2Options {
  int supercell = 6;        // n: n x n primitive cells, 3 n^2 sites
  int vacancies = 0;        // S sites left empty, drawn with the seed
  double lattice = 3.16;    // a (Å)
  double thickness = 3.17;  // S-S distance across the layer (Å)
  double vacuum = 16.0;     // empty space between periodic images (Å)
  double displacement =
      0.05;  // Gaussian displacement of every atom (Å, per axis)
  std::uint64_t seed = 0;
};

struct Structure {
  double cell[9] = {};  // rows: a1, a2, a3 (Å)
  std::vector<std::string> species;
  std::vector<double> positions;  // N x 3, Cartesian (Å)
  std::vector<int>
      vacancy_sites;  // the S sites (0-based over the 2 n^2) left empty
};

// The seeded structure; fails (std::invalid_argument) when the options are out
// of range (supercell 1..50, vacancies 0..2 n^2 - 1).
Structure BuildMos2(const Mos2Options& options);

struct MdOptions {
  double temperature = 300;  // K
  double timestep_fs = 1.0;
  int equilibrate = 1000;  // steps run before the first frame, not recorded
  int steps = 2500;        // recorded steps after equilibration
  int every = 10;          // a frame every this many steps
  std::uint64_t seed = 0;
};

// LAMMPS's seed for `velocity create` (1 .. 2^31 - 2) from SEED.
int LammpsSeed(std::uint64_t seed);

// The input script: the structure, the potential, velocities drawn at the
// temperature, equilibration, then a `dump custom` frame and a thermo row
// every `every` steps, to DUMP_PATH (relative to LAMMPS's directory). Steps
// count from the start: the first frame is at step `equilibrate`.
std::string LammpsInput(const Structure& s, const MdOptions& md,
                        const std::string& dump_path);

}  // namespace cmf::md
