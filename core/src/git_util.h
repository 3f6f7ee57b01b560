// Internal: libgit2 set-up and error conversion.
#pragma once

#include <string>

#include "cmf/status.h"

namespace cmf::git {

// Initialises libgit2 once per process (thread-safe).
void EnsureInit();

// A Status for the last libgit2 error, prefixed with WHAT; NotFound for
// GIT_ENOTFOUND.
Status Error(int rc, const std::string& what);

}  // namespace cmf::git
