// Fuzz target: the answers of aimd-al's energy driver
// (plugins/md/energy_driver.h), parsed apart from the process. The input is one
// answer line. An answer is either refused with a message or gives a finite
// energy below 1e9 eV. Seeds: tests/fuzz/corpus/energy_reply.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "energy_driver.h"
#include "fuzz_util.h"

using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const std::string line(cmf::fuzz::Bytes(data, size));
  try {
    cmf::md::CheckDriverGreeting(line);
  } catch (const std::runtime_error&) {
  }
  try {
    double e = cmf::md::ParseEnergyReply(line, 1, 2);
    Require(std::isfinite(e) && std::fabs(e) < 1e9,
            "an energy is finite and below 1e9 eV");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
