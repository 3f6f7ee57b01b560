// Instruments that measure a spectrum at a pixel for the active-learning loop:
// replay of a recorded experiment, or a controller process that speaks the
// line-oriented JSON protocol of doc/instrument-protocol.md on its standard
// input and output. Errors throw std::runtime_error with a message for the
// user. One thread at a time.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "data.h"

namespace cmf::dkl {

class Instrument {
 public:
  virtual ~Instrument() = default;
  // The raw spectrum at pixel (x, y): as many values as the energy axis.
  virtual std::vector<float> Measure(int x, int y) = 0;
  virtual std::string Describe() const = 0;
};

// Reveals the recorded spectrum of EXPERIMENT (which must have /spectra).
std::unique_ptr<Instrument> MakeReplay(const ml::Experiment& experiment);

// Starts COMMAND with /bin/sh -c; CHANNELS is the length of every spectrum it
// must answer; TIMEOUT_SECONDS bounds each answer (and the greeting).
std::unique_ptr<Instrument> MakeProcess(const std::string& command,
                                        const ml::Experiment& experiment,
                                        double timeout_seconds);

}  // namespace cmf::dkl
