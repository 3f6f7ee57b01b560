#!/usr/bin/env bash
# Meta-learning at the datacenter, few-shot active learning at the edge, on one machine:
# generates a family of related prior experiments (13 by default) and a held-out one
# (samples/gen_eels.cpp; synthetic, see doc/sample-data.md), meta-trains a DKL model over the
# priors with `cmf run reptile`, then runs `cmf run dkl-al` on the held-out experiment twice,
# from a cold start and seeded with the meta-model, and compares their error curves.
#
#   bash samples/meta_learning.sh [WORKSPACE] [PRIORS] [STEPS]   (defaults: /tmp/..., 13, 30)
set -euo pipefail
source "$(dirname "$0")/build.sh"

ws=${1:-$(mktemp -d /tmp/cmf-meta-XXXXXX)}
priors=${2:-13}
steps=${3:-30}
mkdir -p "$ws"
cd "$ws"
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

"$cmf" init -q 2>/dev/null || true
"$cmf" config core.pipeline meta-sample

say cmf-gen-eels --family gold --family-size "$priors" --out-dir priors
"$gen" --family gold --family-size "$priors" --out-dir priors
say cmf-gen-eels --family gold --member "$priors" -o held-out.h5
"$gen" --family gold --member "$priors" -o held-out.h5

say cmf run reptile --tasks priors/*.h5 -o meta.pt
"$cmf" run reptile --tasks priors/*.h5 -o meta.pt

for mode in cold seeded; do
  init=()
  [ "$mode" = seeded ] && init=(--init meta.pt)
  say cmf run dkl-al --data held-out.h5 --steps "$steps" ${init[*]} --out "al-$mode"
  "$cmf" run -q dkl-al --data held-out.h5 --steps "$steps" "${init[@]}" \
    --out "al-$mode"
  id=$("$cmf" log -n 1 --oneline | cut -d' ' -f1)
  "$cmf" metrics "$id" --series rmse --csv | tail -n +2 | cut -d, -f2,3 > "rmse-$mode.csv"
done

printf '\nRMSE of the predicted map after each step (cold | seeded by the meta-model):\n'
join -t, rmse-cold.csv rmse-seeded.csv | awk -F, '$1 == 1 || $1 % 5 == 0 {
  printf "  step %3d   %.4f | %.4f\n", $1, $2, $3 }'
say cmf lineage al-seeded/model.pt --depth 3
"$cmf" lineage al-seeded/model.pt --depth 3
printf '\nThe workspace is %s.\n' "$ws"
