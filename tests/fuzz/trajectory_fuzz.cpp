// Fuzz target: the trajectory readers of the md plugin (plugins/md/readers.h),
// which read what other sites' simulation codes wrote. The first byte picks
// the reader (VASP, LAMMPS, extended XYZ); the rest is the first file and,
// after a NUL byte when there is one, the second (OSZICAR, log.lammps). A
// file is either refused with a message or gives a trajectory that passes
// Validate with finite numbers of the right sizes. Seeds:
// tests/fuzz/corpus/trajectory.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fuzz_util.h"
#include "readers.h"

using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  if (size == 0) return 0;
  const int reader = data[0] % 3;
  std::string rest(cmf::fuzz::Bytes(data + 1, size - 1));
  std::size_t nul = rest.find('\0');
  cmf::md::Source first{"first", rest.substr(0, nul)};
  cmf::md::Source second{"second",
                         nul == std::string::npos ? "" : rest.substr(nul + 1)};
  const cmf::md::Source* energies =
      nul == std::string::npos ? nullptr : &second;
  cmf::md::ReadOptions options;
  options.max_atoms = 4096;  // enough for any seed; keeps each input quick
  if (data[0] & 0x80) options.species = {"Mo", "S"};
  try {
    cmf::md::Trajectory t =
        reader == 0   ? cmf::md::ReadVasp(first, energies, options)
        : reader == 1 ? cmf::md::ReadLammps(first, energies, options)
                      : cmf::md::ReadExtxyz(first, options);
    cmf::md::Validate(t, "fuzz");
    Require(t.positions.size() ==
                static_cast<std::size_t>(t.frames()) * t.atoms() * 3,
            "positions of every atom of every frame");
    Require(t.energy.empty() || static_cast<int>(t.energy.size()) == t.frames(),
            "an energy per frame or none");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
