// The energy driver of aimd-al: a program that computes the potential energy
// of a frame (a DFT code at a real site; samples/energy_driver_lammps.py here),
// asked over JSON lines as doc/aimd.md describes. Replies are another
// program's bytes: ParseEnergyReply checks them apart from the process, so
// that the unit tests and a fuzz target can feed it anything. Errors throw
// std::runtime_error with a message for the user. Torch-free.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "trajectory.h"

namespace cmf::proc {
class LineProcess;
}

namespace cmf::md {

// Accepts the answer to the greeting: a JSON object with a "ready" key.
void CheckDriverGreeting(const std::string& line);

// The energy (eV) of the answer to a request for frame FRAME of trajectory
// TRAJECTORY: {"energy": E} with E a finite number of magnitude below 1e9.
// Throws for {"error": ...} (quoting the driver's message) and anything else.
double ParseEnergyReply(const std::string& line, int trajectory, int frame);

// The request for frame F of T (trajectory index TRAJECTORY): one JSON line.
std::string EnergyRequest(const Trajectory& t, int trajectory, int f);

class EnergyDriver {
 public:
  // Starts COMMAND (/bin/sh -c) and greets it; TIMEOUT bounds every answer,
  // and CANCELLED (may be empty), polled while one is awaited, ends the wait.
  EnergyDriver(const std::string& command, double timeout_seconds,
               std::function<bool()> cancelled = {});
  ~EnergyDriver();
  // The potential energy of frame F of T, in eV.
  double Energy(const Trajectory& t, int trajectory, int f);

 private:
  std::unique_ptr<proc::LineProcess> process_;
};

}  // namespace cmf::md
