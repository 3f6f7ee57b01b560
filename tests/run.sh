#!/usr/bin/env bash
# Sets up (Debian packages, a debugoptimized build in build/) and runs every test: the unit-test
# binary and the end-to-end tests that run the real cmf binary. Prints "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/setup
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=debugoptimized >/dev/null
fi
ninja -C build

status=0
meson test -C build --print-errorlogs || status=$?

# --- fuzz (issue 15): each libFuzzer target of tests/fuzz for CMF_FUZZ_SECONDS (default 20) from
# its seed corpus, built with clang and the sanitizers in build-fuzz/ (tests/fuzz.sh; longer runs:
# bench/fuzz.sh). CMF_FUZZ_SECONDS=0 skips it. A crash fails the run and prints its input.
if [ "${CMF_FUZZ_SECONDS:-20}" != 0 ]; then
  bash tests/fuzz.sh "${CMF_FUZZ_SECONDS:-20}" || status=1
fi
# --- end fuzz

# Sum doctest's own counts over the test binaries into one closing line.
awk '/\[doctest\] test cases:/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "passed") p += $i; if ($(i+1) == "failed") f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' build/meson-logs/testlog.txt
exit $status
