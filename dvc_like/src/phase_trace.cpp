#include "cmf/data/phase_trace.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace cmf::data {
namespace {

using Clock = std::chrono::steady_clock;

// When the last phase ended: at first, when this library's start-up code ran.
Clock::time_point last_mark = Clock::now();

}  // namespace

bool TracingPhases() {
  static const bool on = [] {
    const char* value = std::getenv("CMF_TRACE_PHASES");
    return value != nullptr && *value != '\0';
  }();
  return on;
}

void MarkPhase(std::string_view what) {
  if (!TracingPhases()) return;
  const Clock::time_point now = Clock::now();
  const double ms =
      std::chrono::duration<double, std::milli>(now - last_mark).count();
  last_mark = now;
  std::fprintf(stderr, "cmf: phase: %.*s %.3f ms\n",
               static_cast<int>(what.size()), what.data(), ms);
}

}  // namespace cmf::data
