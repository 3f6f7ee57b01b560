// Fuzz target: the reply lines of an instrument controller (the dkl plugin's
// proc: instrument, doc/instrument-protocol.md), parsed apart from LibTorch
// (plugins/dkl/instrument_reply.h). The first byte of the input is the number
// of channels the spectrum must have; the rest is the line. A reply is either
// refused with a message or gives exactly that many finite values. Seeds:
// tests/fuzz/corpus/instrument_reply.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "../../plugins/dkl/instrument_reply.h"
#include "fuzz_util.h"

using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  if (size == 0) return 0;
  const int channels = data[0];
  const std::string line(cmf::fuzz::Bytes(data + 1, size - 1));
  try {
    cmf::dkl::CheckGreetingReply(line);
  } catch (const std::runtime_error&) {
  }
  try {
    std::vector<float> spectrum =
        cmf::dkl::ParseSpectrumReply(line, channels, 3, 4);
    Require(static_cast<int>(spectrum.size()) == channels,
            "a spectrum has as many values as channels");
    for (float v : spectrum)
      Require(std::isfinite(v), "a spectrum holds finite values only");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
