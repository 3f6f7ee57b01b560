#!/usr/bin/env bash
# Two sites and a datacenter, on one machine: an instrument PC (the edge) acquires and prepares
# data, commits and pushes to a bare repository that stands for the HPC datacenter; a datacenter
# workspace pulls, trains on what arrived, and pushes the model back; the edge pulls it. The raw
# scan stays at the edge (push.max-size is set small, as for real raw data), its location known.
#
#   bash samples/edge_to_hpc.sh [FOLDER]      (default: a new folder under /tmp)
set -euo pipefail
source "$(dirname "$0")/build.sh"
stages="$root/samples/stages"

top=${1:-$(mktemp -d /tmp/cmf-federation-XXXXXX)}
mkdir -p "$top/edge" "$top/datacenter"
say() { printf '\n\033[1m[%s] $ %s\033[0m\n' "$1" "${*:2}"; }

say hpc cmf init --bare "$top/hpc.cmf"
"$cmf" init --bare "$top/hpc.cmf"

cd "$top/edge"
say edge cmf init
"$cmf" init -q
"$cmf" config core.pipeline sample-scan
"$cmf" config push.max-size 8K          # stands for "raw data is too big to move"
"$cmf" remote add hpc "$top/hpc.cmf"
mkdir -p raw
say edge cmf exec --stage acquire ... '&&' cmf exec --stage prepare ...
"$cmf" exec -q --stage acquire --out raw/scan.csv -p pixels=64 -p channels=46 -p seed=7 -- \
  sh -c "awk -v pixels=64 -v channels=46 -v seed=7 -f '$stages/acquire.awk' > raw/scan.csv"
"$cmf" exec -q --stage prepare --in raw/scan.csv --out peaks.csv -- \
  sh -c "awk -f '$stages/prepare.awk' raw/scan.csv > peaks.csv"
say edge cmf commit -m "scan of sample 7" '&&' cmf push hpc
"$cmf" commit -m "scan of sample 7"
"$cmf" push hpc

cd "$top/datacenter"
say datacenter cmf init '&&' cmf remote add hpc ... '&&' cmf pull hpc
"$cmf" init -q
"$cmf" config core.pipeline sample-scan
"$cmf" remote add hpc "$top/hpc.cmf"
"$cmf" pull hpc
say datacenter cmf whereis raw/scan.csv
"$cmf" whereis raw/scan.csv
"$cmf" get -q peaks.csv
say datacenter cmf exec --stage train --in peaks.csv --out model.txt ... '&&' cmf commit '&&' cmf push hpc
"$cmf" exec -q --stage train --in peaks.csv --out model.txt -p lr=0.5 -p epochs=1000 -- \
  awk -v lr=0.5 -v epochs=1000 -v model=model.txt -f "$stages/train.awk" peaks.csv
"$cmf" commit -m "model trained at the datacenter"
"$cmf" push hpc

cd "$top/edge"
say edge cmf pull hpc '&&' cmf get model.txt '&&' cmf log --oneline
"$cmf" pull hpc
"$cmf" get model.txt
"$cmf" log --oneline
"$cmf" fsck

printf '\nThe sites are in %s: edge/, datacenter/ and the bare hpc.cmf/.\n' "$top"
