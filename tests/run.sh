#!/usr/bin/env bash
# Sets up (Debian packages, a debugoptimized build in build/) and runs every test: the unit-test
# binary and the end-to-end tests that run the real cmf binary; then the sanitizer runs
# (tests/sanitize.sh: the unit and end-to-end tests under AddressSanitizer and
# UndefinedBehaviorSanitizer, the threaded tests under ThreadSanitizer, each in its own build
# folder; CMF_SANITIZE=0 skips them). Prints "N passed, N failed" over all of them, a sanitizer
# report counted as a failure; then each fuzz target for 20 s (tests/fuzz.sh; CMF_FUZZ_SECONDS=0
# skips it), a crash counted as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/setup
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=debugoptimized >/dev/null
fi
ninja -C build

status=0
start=$SECONDS
meson test -C build --print-errorlogs || status=$?
echo "cmf tests: the suite ran in $((SECONDS - start)) s"

logs=(build/meson-logs/testlog.txt)
reports=0
if [ "${CMF_SANITIZE:-1}" != 0 ]; then
  sanitize_out=$(mktemp)
  bash tests/sanitize.sh all 2>&1 | tee "$sanitize_out" || status=1
  reports=$(awk '/^sanitizer reports:/ { n = $3 } END { print n + 0 }' "$sanitize_out")
  rm -f "$sanitize_out"
  for log in build-asan/meson-logs/testlog.txt build-tsan/meson-logs/testlog.txt; do
    if [ -f "$log" ]; then logs+=("$log"); else status=1; fi
  done
fi

# --- fuzz (issue 15): each libFuzzer target of tests/fuzz for CMF_FUZZ_SECONDS (default 20) from
# its seed corpus, built with clang and the sanitizers in build-fuzz/ (tests/fuzz.sh; longer runs:
# bench/fuzz.sh). CMF_FUZZ_SECONDS=0 skips it. A crash fails the run and prints its input.
if [ "${CMF_FUZZ_SECONDS:-20}" != 0 ]; then
  if ! bash tests/fuzz.sh "${CMF_FUZZ_SECONDS:-20}"; then
    status=1
    reports=$((reports + 1))  # a crash (or a build that failed) counts as a failure
  fi
fi
# --- end fuzz

# Sum doctest's own counts over the test binaries into one closing line.
awk -v reports="$reports" '/\[doctest\] test cases:/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "passed") p += $i; if ($(i+1) == "failed") f += $i } }
     END { printf "%d passed, %d failed\n", p, f + reports }' "${logs[@]}"
exit $status
