#!/usr/bin/env bash
# The README's first command: the main job on an embedded default. Sets up (Debian packages, a
# build in build/), generates a synthetic STEM-EELS experiment (samples/gen_eels.cpp; see
# doc/sample-data.md), and runs a short deep-kernel-learning active-learning experiment on it with
# `cmf run dkl-al`, replaying the recorded spectra as the microscope would measure them. Every
# step's choice, uncertainty and error is recorded; the model, the predicted maps and the measured
# points are the run's outputs.
#
#   bash samples/quickstart.sh [WORKSPACE] [STEPS]   (default: a new folder under /tmp, 30 steps)
set -euo pipefail
source "$(dirname "$0")/build.sh"

ws=${1:-$(mktemp -d /tmp/cmf-dkl-XXXXXX)}
steps=${2:-30}
mkdir -p "$ws"
cd "$ws"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say cmf init
"$cmf" init -q 2>/dev/null || true
"$cmf" config core.pipeline dkl-sample

say cmf-gen-eels -o sample.h5 --seed 7
"$gen" -o sample.h5 --seed 7
"$cmf" add -q sample.h5

say cmf run dkl-al --data sample.h5 --steps "$steps" --acquisition ei --scalarizer band-peak:0.85:0.95 --out result
"$cmf" run dkl-al --data sample.h5 --steps "$steps" --acquisition ei \
  --scalarizer band-peak:0.85:0.95 --out result

run=$("$cmf" log -n 1 --oneline | cut -d' ' -f1)  # the short id: the last 12 digits
say cmf show "$run"
"$cmf" show "$run"

say cmf metrics "$run" --series rmse --csv '|' tail -n 5
"$cmf" metrics "$run" --series rmse --csv | tail -n 5

say cmf lineage result/measured.h5
"$cmf" lineage result/measured.h5

cat <<MSG

The experiment ran in $ws. Look at:
  result/maps.h5       the predicted map of the gap-plasmon peak (/mean) and its uncertainty
                       (/uncertainty) over every patch centre, and where it measured (/measured)
  result/measured.h5   the measured locations with their spectra: the slice that travels to the
                       datacenter with 'cmf push'
  result/model.pt      the DKL model (PyTorch can load it: doc/dkl-checkpoint.md)
  cmf metrics $run     x, y, acquisition, uncertainty, max_uncertainty, train_loss, step_seconds, rmse
  cmf ui               its pages in a browser: the sample with the points measured, the maps

The whole loop, two microscopes and a datacenter (meta-learning, MD, a seeded edge run):
  bash samples/steering_loop.sh
MSG
