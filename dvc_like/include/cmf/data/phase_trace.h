// Where a command's time goes, phase by phase. With CMF_TRACE_PHASES set in
// the environment (to anything but the empty string), each phase a command
// marks is told on standard error as it ends:
//
//   cmf: phase: stat 181.204 ms
//
// its time since the previous mark in the process (the first: since the
// process's start-up code ran). The phases follow one another, so their sum
// is the command's time less its start and its exit. The benches read these
// lines to print each figure's breakdown (doc/performance.md); without the
// variable a mark costs one branch.
#pragma once

#include <string_view>

namespace cmf::data {

// True when CMF_TRACE_PHASES is set and not empty (read once per process).
bool TracingPhases();

// Ends phase WHAT now, and tells its time when tracing. Called from one
// thread at a time (the command's own: a phase's threads are joined first).
void MarkPhase(std::string_view what);

}  // namespace cmf::data
