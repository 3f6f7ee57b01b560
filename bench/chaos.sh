#!/usr/bin/env bash
# The crash campaign at scale: cmf add, commit, push and pull killed with SIGKILL at random
# moments (each kill followed by fsck, the same verb again, and at the end a check that both
# sites hold the same facts and every added file is whole: a failed check counts as damage), and
# random schedules of exec, commit, push and pull at three sites sharing one hub, after which
# every site must hold a byte-identical `cmf export`. The same test cases run small in the
# end-to-end suite (tests/e2e/crash_test.cpp, "chaos: ...").
#
#   bash bench/chaos.sh [KILLS] [SCHEDULES] [SEED]     (defaults: 1000 kills, 10000 schedules,
#                                                       a seed from the clock; SEED "" too)
#
# Uses build/ (CMF_BUILD=DIR for another build folder); the two loops run side by side. Prints
# the trials, the damage and the failures of each, with the seed that reproduces them.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-1000}
schedules=${2:-10000}
seed=${3:-$(date +%s)}
e2e=${4:-}  # the end-to-end test binary (meson benchmark passes it)
build=${CMF_BUILD:-build}

if [ -z "${CMF_BINARY:-}" ]; then
  ninja -C "$build" cmf_cli/cmf tests/cmf_e2e_tests >/dev/null
  export CMF_BINARY=$PWD/$build/cmf_cli/cmf CMF_SOURCE_ROOT=$PWD \
    CMF_TEST_PLUGIN_DIR=$PWD/$build/tests/plugins CMF_GEN_EELS=$PWD/$build/samples/cmf-gen-eels \
    MANPAGER=cat MANWIDTH=100
fi
e2e=${e2e:-$PWD/$build/tests/cmf_e2e_tests}

echo "chaos: $kills kills and $schedules schedules, seed $seed"
start=$SECONDS
status=0
CMF_CHAOS_KILLS=$kills CMF_CHAOS_SEED=$seed \
  "$e2e" -tc='chaos: add*' &
kill_pid=$!
CMF_CHAOS_SCHEDULES=$schedules CMF_CHAOS_SEED=$seed \
  "$e2e" -tc='chaos: three sites*' || status=1
wait $kill_pid || status=1
echo "chaos: done in $((SECONDS - start)) s"
exit $status
