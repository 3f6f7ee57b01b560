#!/usr/bin/env bash
# The fuzz campaign at a larger scale than CI: every libFuzzer target of tests/fuzz for SECONDS
# each (default 1800) in libFuzzer's fork mode with JOBS processes (default: the CPUs), going on
# past a crash so that one run finds several. Prints per target the inputs run and the crashes
# found (each kept, its path printed), then the totals; exits 1 when anything crashed. What a run
# adds to a corpus is kept in build-fuzz/fuzz-runs/TARGET/corpus and seeds the next run.
#   bench/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-1800}
shift || true
CMF_FUZZ_FORK=${CMF_FUZZ_FORK:-$(nproc)} exec bash tests/fuzz.sh "$seconds" "$@"
