// A trajectory: the frames of one simulation (positions of N atoms at T
// times, the cell, the potential energy of each frame when known) and the
// HDF5 file that holds it (doc/formats.md, "Trajectory files"). Torch-free;
// errors throw std::runtime_error with a message for the user.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cmf::md {

struct Trajectory {
  std::vector<std::string> species;  // N element symbols ("Mo", "S")
  // The cell's three lattice vectors as rows (Å): 9 values for a fixed cell,
  // 9 per frame for a variable one.
  std::vector<double> cell;
  // T x N x 3, Cartesian (Å), with the cell's origin at 0: fractional
  // coordinates are positions times the inverse of the cell.
  std::vector<float> positions;
  std::vector<double> energy;      // T potential energies (eV), or empty
  std::vector<float> forces;       // T x N x 3 (eV/Å), or empty
  std::vector<std::int64_t> step;  // T: the engine's step of each frame
  std::vector<double> time_fs;     // T, or empty when the source lacks it
  // File attributes: engine, potential, temperature, timestep, sources...
  std::map<std::string, std::string> text;
  std::map<std::string, double> real;
  std::map<std::string, long long> integer;

  int atoms() const { return static_cast<int>(species.size()); }
  int frames() const { return static_cast<int>(step.size()); }
  bool variable_cell() const { return cell.size() > 9; }
  // The 9 values of frame T's cell.
  const double* cell_of(int t) const {
    return cell.data() +
           (variable_cell() ? static_cast<std::size_t>(t) * 9 : 0);
  }
};

// The atomic number of an element symbol ("Mo" -> 42), or 0 when SYMBOL is
// not one (case matters: "MO" is not).
int AtomicNumber(std::string_view symbol);

// Checks sizes, finite values, element symbols, a cell of positive volume and
// strictly increasing steps; throws naming WHAT (a file) on the first fault.
void Validate(const Trajectory& t, const std::string& what);

// Collapses a variable cell whose frames all have the same cell to one cell.
void CollapseCell(Trajectory* t);

// Writes T (validated first) to PATH through a temporary file: /positions
// float32 [T, N, 3], /species [N] (fixed-length ASCII), /cell float64 [3, 3]
// (or [T, 3, 3] for a variable cell), /step int64 [T], and when present
// /energy float64 [T], /time_fs float64 [T], /forces float32 [T, N, 3]; the
// text and real attributes on the root group.
void WriteTrajectory(const std::filesystem::path& path, const Trajectory& t);

// Reads a trajectory file written by WriteTrajectory (or by another program
// to the same layout: /step may be absent, and counts 0, 1, ...). Every
// dataset's shape is checked against the others before it is read. The root's
// attributes of one value (text, integer, real) come along.
Trajectory ReadTrajectory(const std::filesystem::path& path);

}  // namespace cmf::md

namespace cmf::md {

// Frames FRAMES of T as a trajectory of their own (same atoms, attributes
// kept), e.g. a data slice of T.
Trajectory Subset(const Trajectory& t, const std::vector<int>& frames);

// Frame F of T as a LAMMPS data file (atom_style atomic, a triclinic box at
// the origin, one atom type per species in order of first appearance, with
// their masses), from which the next MD can start.
std::string LammpsData(const Trajectory& t, int frame,
                       const std::string& title);

// Frame F of T as one extended-XYZ frame (Lattice, Properties, energy when
// known), as ASE reads it.
std::string ExtxyzFrame(const Trajectory& t, int frame);

}  // namespace cmf::md
