#!/usr/bin/env bash
# The sanitizer runs: builds cmf with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-asan/ and runs the unit and end-to-end tests there (every cmf process the end-to-end tests
# start, and every module it loads, runs sanitized too); then builds the unit tests with
# ThreadSanitizer in build-tsan/ and runs the test cases that use threads. Fails when a test
# fails or when any process wrote a sanitizer report, even a cmf process that a test expected to
# fail: reports go to files under build-*/sanitizer-reports/ (UBSan's, which go to standard
# error, are picked out of it there).
#
#   bash tests/sanitize.sh [asan|tsan|all]     (default: all; tests/run.sh runs it after the suite)
#
# Prints each run's time and "sanitizer reports: N" (N counted as failures by tests/run.sh); the
# doctest counts are in build-asan/ and build-tsan/meson-logs/testlog.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}

# The test cases of the ThreadSanitizer run: scanning and hashing on all cores, objects named in
# parallel (add, the file transport's puts), and two store connections writing at once. (Concurrent cmf processes are separate processes, which ThreadSanitizer does
# not see across; the end-to-end tests of them run under AddressSanitizer above.)
tsan_cases='scan:*,hash:*,object cache:*,workspace:*,transport:*,store: two connections*'

# -O1 (what the sanitizers' authors advise) with line tables only (-g1, in each build's cpp_args
# below): stack traces name files and lines, and the builds compile faster than with -O2 -g.
sanitized_build=(-Doptimization=1 -Ddebug=false)
# UndefinedBehaviorSanitizer without its null and alignment checks: they instrument every load
# and store, each check with a record that the loader relocates when the program starts. With
# them the sanitized cmf was 344 MB and took 1.4 s to start (91 MB and 0.22 s without), and the
# build took 1.7 times as long (a verb's file: 25 s against 14.5 s; ASan alone 13 s). A load
# through null is still a report here (AddressSanitizer's SEGV, with its stack); a misaligned
# load is harmless on x86-64; and the fuzz targets (tests/fuzz.sh), which run the parsers of
# outside bytes, keep every check of -fsanitize=undefined.
asan_args=-Dcpp_args='-g1 -fno-sanitize=null,alignment'

status=0
reports_total=0

# Runs `meson test` in build dir $1 with the sanitizer options of $2 (asan or tsan) and extra
# meson test arguments; reports land in $1/sanitizer-reports.
run_sanitized() {
  local dir=$1 kind=$2
  shift 2
  local reports="$PWD/$dir/sanitizer-reports"
  rm -rf "$reports" "$dir/meson-logs/testlog.txt"
  mkdir -p "$reports"
  local common="log_path=$reports/report:print_stacktrace=1:halt_on_error=1"
  local start=$SECONDS rc=0
  export CMF_SANITIZER_REPORTS="$reports"
  if [ "$kind" = asan ]; then
    ASAN_OPTIONS="$common:detect_leaks=1:check_initialization_order=1" \
    LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="$common" \
      meson test -C "$dir" --print-errorlogs "$@" || rc=$?
  else
    TSAN_OPTIONS="$common:second_deadlock_stack=1" \
      meson test -C "$dir" --print-errorlogs "$@" || rc=$?
  fi
  [ $rc -eq 0 ] || status=$rc
  # Reports printed to standard error instead (UBSan beside ASan ignores log_path): the test
  # binaries' own, in the test log, and those of the cmf processes they ran, kept by
  # tests/support.cpp.
  if grep -q -e 'runtime error: ' -e '^==[0-9]*==ERROR: ' -e 'WARNING: ThreadSanitizer' \
      "$dir/meson-logs/testlog.txt" 2>/dev/null; then
    grep -B2 -A20 -e 'runtime error: ' -e '^==[0-9]*==ERROR: ' -e 'WARNING: ThreadSanitizer' \
      "$dir/meson-logs/testlog.txt" > "$reports/testlog.txt"
  fi
  local n
  n=$(find "$reports" -type f | wc -l)
  if [ "$n" -gt 0 ]; then
    echo "cmf sanitize: $dir: $n sanitizer report(s):" >&2
    for f in "$reports"/*; do
      echo "--- $f" >&2
      head -n 60 "$f" >&2
    done
    status=1
  fi
  reports_total=$((reports_total + n))
  echo "cmf sanitize: $dir ($kind) ran in $((SECONDS - start)) s, $n report(s)"
}

if [ "$which" = asan ] || [ "$which" = all ]; then
  start=$SECONDS
  if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan -Dtorch=disabled -Db_sanitize=address,undefined -Db_lundef=false \
      -Dpython=disabled "${sanitized_build[@]}" "$asan_args" >/dev/null
  fi
  rm -f build-asan/meson-logs/testlog.txt
  ninja -C build-asan
  echo "cmf sanitize: build-asan built in $((SECONDS - start)) s"
  # Sanitized code runs slower: the tests get three times their usual time.
  # The kill loop and the random schedules of the end-to-end tests, smaller (they run in full
  # in the main suite).
  CMF_CHAOS_KILLS=10 CMF_CHAOS_SCHEDULES=4 run_sanitized build-asan asan --no-rebuild -t 3 unit e2e e2e-sites
fi

if [ "$which" = tsan ] || [ "$which" = all ]; then
  start=$SECONDS
  if [ ! -f build-tsan/build.ninja ]; then
    meson setup build-tsan -Dtorch=disabled -Db_sanitize=thread -Db_lundef=false \
      -Dpython=disabled "${sanitized_build[@]}" -Dcpp_args=-g1 >/dev/null
  fi
  rm -f build-tsan/meson-logs/testlog.txt
  ninja -C build-tsan tests/cmf_unit_tests dvc_like/cmf-hdf5.so dvc_like/cmf-ssh.so core/cmf-git.so
  echo "cmf sanitize: build-tsan built in $((SECONDS - start)) s"
  run_sanitized build-tsan tsan --no-rebuild -t 3 unit --test-args "'-tc=$tsan_cases'"
fi

echo "sanitizer reports: $reports_total"
exit $status
