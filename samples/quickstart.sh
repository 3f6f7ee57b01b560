#!/usr/bin/env bash
# The README's first command. Sets up (Debian packages, a build in build/), then records a small
# sample pipeline with cmf in a fresh workspace: acquire -> prepare -> train, every step recorded
# with its inputs, outputs, parameters and the training loss per epoch.
#
#   bash samples/quickstart.sh [WORKSPACE]      (default: a new folder under /tmp)
#
# The data is synthetic (samples/stages/acquire.awk), so that the sample runs anywhere.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

bash "$root/.ci/setup"
if [ ! -f "$root/build/build.ninja" ]; then
  meson setup "$root/build" --buildtype=debugoptimized >/dev/null
fi
ninja -C "$root/build" >/dev/null
cmf="$root/build/cmf_cli/cmf"
stages="$root/samples/stages"

ws=${1:-$(mktemp -d /tmp/cmf-sample-XXXXXX)}
mkdir -p "$ws"
cd "$ws"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say cmf init
"$cmf" init
"$cmf" config core.pipeline sample-scan

mkdir -p raw
# Each command writes its outputs itself; cmf hashes and stores them after the run.
say cmf exec --stage acquire --out raw/scan.csv -p pixels=64 ... -- sh -c 'awk ... > raw/scan.csv'
"$cmf" exec --stage acquire --out raw/scan.csv -p pixels=64 -p channels=46 -p seed=7 -- \
  sh -c "awk -v pixels=64 -v channels=46 -v seed=7 -f '$stages/acquire.awk' > raw/scan.csv"

say cmf exec --stage prepare --in raw/scan.csv --out peaks.csv -- sh -c 'awk ... > peaks.csv'
"$cmf" exec --stage prepare --in raw/scan.csv --out peaks.csv -- \
  sh -c "awk -f '$stages/prepare.awk' raw/scan.csv > peaks.csv"

say cmf exec --stage train --in peaks.csv --out model.txt -p lr=0.5 -p epochs=1000 -- awk ...
"$cmf" exec --stage train --in peaks.csv --out model.txt -p lr=0.5 -p epochs=1000 -- \
  awk -v lr=0.5 -v epochs=1000 -v model=model.txt -f "$stages/train.awk" peaks.csv

say cmf log --oneline
"$cmf" log --oneline

train=$("$cmf" log -n 1 --stage train --oneline | cut -d' ' -f1)
say cmf show "${train:0:13}"
"$cmf" show "${train:0:13}"

say cmf metrics "${train:0:13}" --csv '|' tail -n 3
"$cmf" metrics "${train:0:13}" --csv | tail -n 3

printf '\nThe sample workspace is %s: try cmf log, cmf show and cmf metrics there.\n' "$ws"
