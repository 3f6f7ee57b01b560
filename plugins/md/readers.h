// Readers of the trajectories that simulation codes write, into a Trajectory:
// VASP (XDATCAR, with OSZICAR for the energies), LAMMPS (a `dump custom` file,
// with log.lammps for the energies) and extended XYZ as ASE writes it. The
// bytes are another program's: every count is checked against what follows,
// every number parsed strictly, and a fault is an error that names the file
// and line (std::runtime_error). Torch-free, no I/O but ReadSource.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "trajectory.h"

namespace cmf::md {

// A file's name (for messages) and its bytes.
struct Source {
  std::string name;
  std::string text;
};

// Reads PATH whole; fails when it is larger than MAX_BYTES or unreadable.
Source ReadSource(const std::string& path, std::size_t max_bytes);

struct ReadOptions {
  // Element symbols by LAMMPS atom type (1, 2, ...), or VASP 4's species
  // (which its XDATCAR does not name). Empty: from the files.
  std::vector<std::string> species;
  // The time step (fs), for sources that do not state it (VASP, extended
  // XYZ); 0: /time_fs is left out unless the source gives times.
  double timestep_fs = 0;
  // Bounds on what a file may declare.
  std::size_t max_atoms = 10'000'000;
};

// XDATCAR (VASP 5 or later names the species; VASP 4 needs options.species),
// fixed or variable cell; the frames' steps are its "configuration= N"
// numbers. With OSZICAR (nullptr: no energies), each frame's energy is the
// F= value (the free energy, TOTEN) of the ionic step of the same number; a
// frame whose step OSZICAR lacks is an error.
Trajectory ReadVasp(const Source& xdatcar, const Source* oszicar,
                    const ReadOptions& options);

// A `dump custom` file with id (optional), type or element, and x y z (or
// xs ys zs, xu yu zu, xsu ysu zsu), optionally fx fy fz; the box of each frame.
// With LOG (nullptr: no energies) the PotEng column of its thermo tables gives
// each frame's energy, matched by step, and its `units` and `timestep` give
// the time; element symbols come from options.species, an element column, or
// the log's `kim interactions` / `pair_coeff * *` line, in that order.
// Units metal and real are converted to Å and eV; others are refused.
Trajectory ReadLammps(const Source& dump, const Source* log,
                      const ReadOptions& options);

// Extended XYZ: a count line, a comment line of key=value pairs with
// Lattice="..." and Properties=species:S:1:pos:R:3[:forces:R:3...], and
// energy= (every frame or none), then one line per atom.
Trajectory ReadExtxyz(const Source& xyz, const ReadOptions& options);

}  // namespace cmf::md
