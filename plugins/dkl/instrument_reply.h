// The replies of an instrument controller (doc/instrument-protocol.md), read
// apart from the process that sends them and from LibTorch, so that the unit
// tests and a fuzz target (tests/fuzz) can feed them any bytes. Each function
// takes one reply line, as the controller wrote it without its newline, and
// throws std::runtime_error with a message for the user when the reply is not
// what the protocol asks for. Pure functions: any thread.
#pragma once

#include <string>
#include <vector>

namespace cmf::dkl {

// Accepts the answer to the greeting: a JSON object with a "ready" key.
void CheckGreetingReply(const std::string& line);

// The spectrum of the answer to a measure at pixel (X, Y): exactly CHANNELS
// values, each a number that is finite as a 32-bit float. Throws for an
// {"error": ...} answer (with the controller's message) and for anything else.
std::vector<float> ParseSpectrumReply(const std::string& line, int channels,
                                      int x, int y);

}  // namespace cmf::dkl
