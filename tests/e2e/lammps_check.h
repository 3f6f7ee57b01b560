// Whether the end-to-end tests that run LAMMPS (md-mos2, aimd-al) can run
// here: LAMMPS and its KIM model are Debian packages that CI installs, and a
// user's machine may lack them. Skips there with a reason, fails in CI.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "lammps.h"

namespace cmf::test {

inline bool HaveLammps() {
  static const bool have = !cmf::md::FindProgram("lmp").empty();
  if (!have) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true")
      FAIL(
          "CI=true and LAMMPS (lmp) is not installed: .ci/setup must install "
          "lammps");
    MESSAGE(
        "skipped: LAMMPS (lmp) is not installed (apt-get install lammps "
        "openkim-models)");
  }
  return have;
}

}  // namespace cmf::test
