#!/usr/bin/env bash
# The whole steering loop on one machine: two microscopes (edges) and a datacenter, three
# workspaces that share through a bare hub repository, as the paper's edge -> datacenter -> edge
# loop.
#
#   1. Each edge generates its own samples of one material family (cmf-gen-eels, gold: two
#      microscopes, different particles), runs `cmf run dkl-al` on each, commits and pushes.
#      The raw spectrum images stay at the edge (push.max-size stands for "too big to move");
#      the measured-points slices, the models, the maps and the metrics travel.
#   2. The datacenter pulls, meta-trains `cmf run reptile --tasks-from-stage dkl-al` on what the
#      edges measured, simulates MoS2 (`cmf run md-mos2`, LAMMPS) and runs `cmf run aimd-al`
#      seeded by the meta-model, then commits and pushes.
#   3. The first edge pulls the meta-model and runs `dkl-al` on a new sample twice, cold and
#      seeded by the meta-model (`--init`), and compares their error curves.
#
# At the end it prints the bytes each site sent against the raw data it kept, the steps the
# seeded run saved, and how to look at it all with `cmf ui`.
#
#   bash samples/steering_loop.sh [FOLDER]     (default: a new folder under /tmp)
#   CMF_LOOP_SHORT=1 bash samples/steering_loop.sh FOLDER    (fewer steps: the CI's run)
#
# It builds cmf in build/ first when needed (samples/build.sh), unless CMF_BINARY and
# CMF_GEN_EELS name a cmf and a cmf-gen-eels to use.
set -euo pipefail
if [ -n "${CMF_BINARY:-}" ] && [ -n "${CMF_GEN_EELS:-}" ]; then
  cmf=$CMF_BINARY gen=$CMF_GEN_EELS   # a build of one's own (the tests)
else
  source "$(dirname "$0")/build.sh"
fi

top=${1:-$(mktemp -d /tmp/cmf-loop-XXXXXX)}
short=${CMF_LOOP_SHORT:-0}
if [ "$short" = 1 ]; then
  per_edge=2 steps=15 iterations=10 md_steps=300 aimd_steps=10
else
  per_edge=6 steps=30 iterations=50 md_steps=2500 aimd_steps=30
fi
mkdir -p "$top"
top=$(cd "$top" && pwd)
say() { printf '\n\033[1m[%s] $ %s\033[0m\n' "$1" "${*:2}"; }
# A site's bytes sent by `cmf push --json`: objects and metadata.
sent_bytes() {
  python3 -c 'import json, sys
d = json.load(sys.stdin)
print(d["bytes_sent"] + d["metadata_bytes_sent"])'
}
declare -A sent

say hub cmf init --bare "$top/hub.cmf"
"$cmf" init --bare -q "$top/hub.cmf"

# 1. The edges: each measures its own samples.
member=0
for edge in edge-a edge-b; do
  mkdir -p "$top/$edge"
  cd "$top/$edge"
  say "$edge" cmf init '&&' cmf remote add hub ../hub.cmf
  "$cmf" init -q
  "$cmf" config core.pipeline steering
  "$cmf" config push.max-size 4M   # stands for "raw data is too big to move" (real scans: GBs)
  "$cmf" remote add hub "$top/hub.cmf"
  for ((k = 0; k < per_edge; ++k)); do
    name="sample-$member.h5"
    say "$edge" cmf-gen-eels --family gold --member $member -o "$name" '&&' cmf add "$name"
    "$gen" --family gold --member "$member" -o "$name"
    "$cmf" add -q "$name"
    say "$edge" cmf run dkl-al --data "$name" --steps $steps --out "al-$member"
    "$cmf" run -q dkl-al --data "$name" --steps "$steps" --out "al-$member"
    member=$((member + 1))
  done
  say "$edge" cmf commit '&&' cmf push hub
  "$cmf" commit -q -m "$edge: $per_edge samples measured"
  sent[$edge]=$("$cmf" push hub --json | sent_bytes)
done

# 2. The datacenter: meta-learning on what the edges measured, and MD with active learning.
mkdir -p "$top/datacenter"
cd "$top/datacenter"
say datacenter cmf init '&&' cmf remote add hub ../hub.cmf '&&' cmf pull hub
"$cmf" init -q
"$cmf" config core.pipeline steering
"$cmf" remote add hub "$top/hub.cmf"
"$cmf" pull -q hub
say datacenter cmf run reptile --tasks-from-stage dkl-al --iterations $iterations -o meta.pt
"$cmf" run -q reptile --tasks-from-stage dkl-al --iterations "$iterations" -o meta.pt
for v in 0 1 2; do
  say datacenter cmf run md-mos2 --supercell 6 --vacancies $v --steps $md_steps --every 10 -o "traj-v$v.h5"
  "$cmf" run -q md-mos2 --supercell 6 --vacancies "$v" --temperature 300 --steps "$md_steps" \
    --every 10 --seed "$v" -o "traj-v$v.h5"
done
say datacenter cmf run aimd-al --trajectories traj-v0.h5 traj-v1.h5 traj-v2.h5 --features image --init meta.pt --steps $aimd_steps -o aimd
"$cmf" run -q aimd-al --trajectories traj-v0.h5 traj-v1.h5 traj-v2.h5 --features image \
  --init meta.pt --steps "$aimd_steps" -o aimd
say datacenter cmf commit '&&' cmf push hub
"$cmf" commit -q -m "datacenter: meta-model and MoS2 active learning"
sent[datacenter]=$("$cmf" push hub --json | sent_bytes)

# 3. Back at the first edge: a new sample, cold and seeded by the meta-model.
cd "$top/edge-a"
say edge-a cmf pull hub '&&' cmf get meta.pt
"$cmf" pull -q hub
"$cmf" get -q meta.pt    # the datacenter's meta-model, by the path it was written at
new="sample-$member.h5"
say edge-a cmf-gen-eels --family gold --member $member -o "$new"
"$gen" --family gold --member "$member" -o "$new"
"$cmf" add -q "$new"
for mode in cold seeded; do
  init=()
  [ "$mode" = seeded ] && init=(--init meta.pt)
  say edge-a cmf run dkl-al --data "$new" --steps $steps ${init[*]} --out "new-$mode"
  "$cmf" run -q dkl-al --data "$new" --steps "$steps" "${init[@]}" --out "new-$mode"
  id=$("$cmf" log -n 1 --oneline | cut -d' ' -f1)
  "$cmf" metrics "$id" --series rmse --csv | tail -n +2 | cut -d, -f2,3 > "rmse-$mode.csv"
  [ "$mode" = seeded ] && seeded_id=$id
done
"$cmf" commit -q -m "edge-a: a new sample, cold and seeded"
sent[edge-a]=$((sent[edge-a] + $("$cmf" push hub --json | sent_bytes)))

# What moved, and what the meta-model saved.
printf '\n\033[1mWhat each site sent to the hub, against the raw data it kept:\033[0m\n'
# The sum of the sizes of the files given that exist.
bytes_of() {
  local total=0 f
  for f in "$@"; do
    [ -f "$f" ] && total=$((total + $(stat -c %s "$f")))
  done
  echo "$total"
}
for site in edge-a edge-b; do
  printf '  %-10s sent %10d bytes; kept its raw spectrum images: %10d bytes\n' "$site" \
    "${sent[$site]}" "$(bytes_of "$top/$site"/sample-*.h5)"
done
printf '  %-10s sent %10d bytes (the meta-model, the MoS2 trajectories and results)\n' \
  datacenter "${sent[datacenter]}"
printf '\n\033[1mRMSE of the predicted map on the new sample (cold | seeded by the meta-model):\033[0m\n'
join -t, "$top/edge-a/rmse-cold.csv" "$top/edge-a/rmse-seeded.csv" |
  awk -F, '$1 == 1 || $1 % 5 == 0 { printf "  step %3d   %.4f | %.4f\n", $1, $2, $3 }'
# Steps to target as doc/meta-learning.md counts them: the first step after which the seeded
# curve stays at or below the cold curve's last value; and the mean RMSE over the steps.
join -t, "$top/edge-a/rmse-cold.csv" "$top/edge-a/rmse-seeded.csv" | awk -F, '
  { step[NR] = $1; cold[NR] = $2; seeded[NR] = $3; sum_cold += $2; sum_seeded += $3 }
  END {
    target = cold[NR]; at = ""
    for (i = NR; i >= 1 && seeded[i] <= target; --i) at = step[i]
    printf "\nMean RMSE over the %d steps: cold %.4f, seeded %.4f (%+.0f %%).\n",
      NR, sum_cold / NR, sum_seeded / NR, 100 * (sum_seeded / sum_cold - 1)
    if (at == "") {
      printf "The seeded run did not stay at the cold run'"'"'s final RMSE (%.4f) by step %d: no steps saved.\n",
        target, step[NR]
    } else {
      printf "The seeded run stays at or below the cold run'"'"'s final RMSE (%.4f, step %d) from step %d: %d steps saved (%.0f %%).\n",
        target, step[NR], at, step[NR] - at, 100 * (step[NR] - at) / step[NR]
    }
    printf "(One run on one sample: doc/meta-learning.md measures it over many, with intervals.)\n"
  }'

cat <<MSG

The three sites are under $top. To look at them in a browser:
  cd $top/edge-a && $cmf ui       # then open http://127.0.0.1:8780/
  (the seeded run: http://127.0.0.1:8780/execution/$seeded_id)
MSG
