// Running LAMMPS as a child process (under mpirun when asked), with the
// caller's cancellation polled while it runs. POSIX only.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace cmf::md {

// PROGRAM's path: itself when it names a path (has a '/'), else the first
// executable of that name in PATH; empty when there is none.
std::string FindProgram(const std::string& program);

struct LammpsJob {
  std::string lammps;  // the executable (a path, as FindProgram gives)
  int mpi_ranks = 1;   // > 1: runs under MPIRUN -np MPI_RANKS
  std::vector<std::string> mpirun;  // the MPI launcher and its own options
  std::filesystem::path workdir;    // LAMMPS's working directory
  std::filesystem::path input;      // the input script
  std::filesystem::path log;        // where LAMMPS writes its log
  std::function<bool()> cancelled;  // polled while it runs
};

// Runs JOB and waits for it. Throws std::runtime_error when LAMMPS (or the
// launcher) cannot be started, ends with a nonzero status or a signal (the
// message quotes LAMMPS's first ERROR line), or is cancelled (then the whole
// process group is stopped before it returns; the message starts with
// "interrupted").
void RunLammps(const LammpsJob& job);

}  // namespace cmf::md
