// Crash points for tests of interrupted operations.
//
// CrashPoint("push:objects") kills the process with SIGKILL, exactly as a
// power cut or `kill -9` would, when the environment variable CMF_CRASH_AT
// names that point. Tests use it to stop a push or a pull between two steps
// and check that both sides stay consistent and the next run completes.
#pragma once

#include <string_view>

namespace cmf::data {

void CrashPoint(std::string_view point);

}  // namespace cmf::data
