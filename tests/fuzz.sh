#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, AddressSanitizer and UndefinedBehaviorSanitizer,
# in build-fuzz/) and runs each for a bounded time from its seed corpus (tests/fuzz/corpus/TARGET).
# Prints, per target, the inputs run and the crashes found; exits 1 when any target crashed, and
# keeps each crashing input (its path is printed: rerun it with build-fuzz/tests/fuzz/TARGET_fuzz
# PATH). What the runs add to a corpus is kept in build-fuzz/fuzz-runs/TARGET/corpus for the next
# run; the checked-in seeds are never written. The inputs that once crashed a target
# (tests/fuzz/crashes/TARGET/) are run once first, and fail the run if they crash it again.
#   tests/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]     (default: 30 s, every target)
# Environment: CMF_FUZZ_BUILD (build folder, default build-fuzz), CMF_FUZZ_FORK=N (N jobs in
# libFuzzer's fork mode, going on past crashes: what bench/fuzz.sh uses).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-30}
shift || true
all=(segment import_json cmflib config manifest stat_cache instrument_reply url trajectory energy_reply where)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
build=${CMF_FUZZ_BUILD:-build-fuzz}
fork=${CMF_FUZZ_FORK:-0}

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ meson setup "$build" -Dfuzz=enabled -Dtorch=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debugoptimized >/dev/null
fi
ninja -C "$build" $(for t in "${targets[@]}"; do echo "tests/fuzz/${t}_fuzz"; done) >/dev/null

# Scratch files of the targets (stores, configs) in memory when there is /dev/shm.
scratch=$(mktemp -d -p "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")" cmf-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

failed=0
total_runs=0
for t in "${targets[@]}"; do
  runs=$build/fuzz-runs/$t
  mkdir -p "$runs/corpus" "$runs/crashes"
  cp -n tests/fuzz/corpus/"$t"/* "$runs/corpus/" 2>/dev/null || true
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 -print_funcs=0
        -artifact_prefix="$runs/crashes/")
  case $t in
    segment|import_json|instrument_reply) args+=(-dict=tests/fuzz/json.dict -max_len=65536) ;;
  esac
  if [ "$fork" -gt 0 ]; then
    args+=(-fork="$fork" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  # The inputs that once crashed this target (tests/fuzz/crashes/TARGET), each run once first.
  for input in tests/fuzz/crashes/"$t"/*; do
    [ -f "$input" ] || continue
    if ! TMPDIR=$scratch "$build/tests/fuzz/${t}_fuzz" "$input" >"$runs/replay.log" 2>&1; then
      failed=1
      printf 'fuzz %-17s crashes again on %s\n' "$t" "$input"
      grep -m1 -E 'ERROR: |fuzz property broken|runtime error|what\(\)|Assertion' "$runs/replay.log" |
        sed 's/^/    /' || true
    fi
  done
  before=$(ls "$runs/crashes" | wc -l)
  set +e
  TMPDIR=$scratch "$build/tests/fuzz/${t}_fuzz" "${args[@]}" "$runs/corpus" >"$runs/log" 2>&1
  rc=$?
  set -e
  # Inputs run: libFuzzer's final count, or in fork mode the last progress line's.
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$runs/log" | tail -1)
  [ -n "$n" ] || n=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$runs/log" | tail -1)
  n=${n:-0}
  total_runs=$((total_runs + n))
  found=$(( $(ls "$runs/crashes" | wc -l) - before ))
  printf 'fuzz %-17s %10s inputs in %ss, %d crash(es)\n' "$t" "$n" "$seconds" "$found"
  if [ "$found" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$fork" -eq 0 ]; }; then
    failed=1
    grep -m1 -E 'ERROR: |fuzz property broken|runtime error|terminate called' "$runs/log" | sed 's/^/    /' || true
    ls -t "$runs/crashes" | head -n "$(( found > 0 ? found : 1 ))" | sed "s|^|    input: $root/$runs/crashes/|"
    echo "    log: $root/$runs/log"
  fi
done
echo "fuzz: $total_runs inputs over ${#targets[@]} targets, $([ $failed -eq 0 ] && echo "no crash" || echo "CRASHES FOUND")"
exit $failed
