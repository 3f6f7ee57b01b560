#!/usr/bin/env bash
# The datacenter's simulations: three NVT molecular-dynamics trajectories of a 6x6 MoS2 monolayer
# with 0, 1 and 2 sulfur vacancies (LAMMPS with the OpenKIM Stillinger-Weber model of Wen et al.
# 2017; `cmf run md-mos2`, doc/md.md), 251 frames each (2,500 steps of 1 fs after 1,000 steps of
# equilibration at 300 K). Each run records its generated LAMMPS input as an input and the
# trajectory as a dataset; `cmf log` lists them and `cmf lineage` leads from a trajectory back to
# its input. Add --mpi-ranks 2 to a run to use MPI.
#
#   bash samples/simulate.sh [WORKSPACE]   (default: a new folder under /tmp)
set -euo pipefail
source "$(dirname "$0")/build.sh"

ws=${1:-$(mktemp -d /tmp/cmf-md-XXXXXX)}
mkdir -p "$ws"
cd "$ws"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say cmf init
"$cmf" init -q 2>/dev/null || true
"$cmf" config core.pipeline mos2-md

start=$SECONDS
for k in 0 1 2; do
  say cmf run md-mos2 --supercell 6 --vacancies $k --temperature 300 --steps 2500 --every 10 --seed $k -o traj-v$k.h5
  "$cmf" run md-mos2 --supercell 6 --vacancies "$k" --temperature 300 --steps 2500 --every 10 \
    --seed "$k" -o "traj-v$k.h5"
done
echo "three trajectories in $((SECONDS - start)) s"

say cmf log --oneline
"$cmf" log --oneline

say cmf lineage traj-v2.h5
"$cmf" lineage traj-v2.h5

cat <<MSG

The simulations ran in $ws. Look at:
  traj-v0.h5 .. traj-v2.h5   /positions [251, N, 3] (Å), /energy [251] (eV), /forces, /cell,
                             /species, /step, /time_fs (doc/formats.md, "Trajectory files")
  traj-v0.lammps ..          the LAMMPS input each run generated and ran
  cmf metrics ID --series energy   the potential energy of every frame
MSG
