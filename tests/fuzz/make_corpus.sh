#!/usr/bin/env bash
# Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/TARGET/) from real files: a
# workspace that the real cmf binary fills (init, add of a folder, exec, commit, remote, export),
# and a small MLMD store cut from the real cmflib store in ../shared/data. The seeds are checked
# in; run this again (with a built cmf) when a format changes.
#   tests/fuzz/make_corpus.sh [CMF_BINARY]   (default: build/cmf_cli/cmf)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
cmf=$(realpath "${1:-build/cmf_cli/cmf}")
corpus=$root/tests/fuzz/corpus
mlmd=$root/../shared/data/cmflib-mlmd/aldkl.mlmd.sqlite

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$corpus"
mkdir -p "$corpus"/{segment,import_json,cmflib,config,manifest,stat_cache,instrument_reply,url,trajectory,energy_reply,where}

# A workspace: a tracked folder (a manifest, stat-cache blobs), two executions with parameters,
# metrics, inputs and outputs, a commit (a segment), a remote, an export.
ws=$work/ws
mkdir -p "$ws" && cd "$ws"
"$cmf" init -q
mkdir -p data/sub "data/with blank"
printf 'alpha\n' > data/a.txt
printf 'beta\n' > data/sub/b.csv
printf '#!/bin/sh\n' > "data/with blank/run.sh" && chmod +x "data/with blank/run.sh"
touch -d '1 hour ago' data/a.txt data/sub/b.csv "data/with blank/run.sh"  # the stat cache keeps them
"$cmf" add -q data 2>/dev/null || "$cmf" add data >/dev/null
"$cmf" exec --stage prepare --in data -p window=16 -p rate=0.5 --out patches.bin -- \
  sh -c 'echo "loss 0 0.9" >&$CMF_METRICS_FD; echo "loss 1 0.4" >&$CMF_METRICS_FD; cat data/a.txt > patches.bin' >/dev/null
"$cmf" exec --stage train --in patches.bin --out model.pt -p lr=0.01 -p flag=true -- \
  sh -c 'cp patches.bin model.pt' >/dev/null
"$cmf" commit -m seeds >/dev/null
"$cmf" remote add hub "$work/hub" >/dev/null 2>&1 || true
"$cmf" export > "$corpus/import_json/export.json"
printf '{"format": "cmf-export", "version": 1, "facts": []}\n' > "$corpus/import_json/empty.json"

# Segments: every one the log holds.
git --git-dir=.cmf/log.git ls-tree -r --name-only HEAD | grep '^segments/' | while read -r seg; do
  git --git-dir=.cmf/log.git show "HEAD:$seg" > "$corpus/segment/$(basename "$seg" .jsonl)"
done
cp .cmf/config "$corpus/config/workspace"
printf '[core]\n\tsite = abc\n[remote "a.b \\"q\\""]\n\turl = "  x ; y"\n[Old.Sub]\n\tkey\n\tv = a\\\n b # c\n' \
  > "$corpus/config/hand-written"

# The folder's manifest: the cached object that starts with the manifest header.
grep -rlZ --null '^cmf-manifest' .cmf/objects 2>/dev/null | head -z -n 3 | while IFS= read -r -d '' m; do
  cp "$m" "$corpus/manifest/$(basename "$m")"
done
# The stat-cache blobs `cmf add` saved.
i=0
for r in $(sqlite3 .cmf/metadata.db "SELECT hex(root) FROM stat_index"); do
  sqlite3 .cmf/metadata.db "SELECT writefile('$corpus/stat_cache/blob$i', entries) FROM stat_index WHERE hex(root) = '$r'" >/dev/null
  i=$((i + 1))
done

# A cmflib store: the tables cmf reads, with the first rows of each, in 512-byte pages.
if [ -f "$mlmd" ]; then
  out=$corpus/cmflib/aldkl-small.mlmd.sqlite
  sqlite3 "$out" <<SQL >/dev/null
PRAGMA page_size = 512;
ATTACH '$mlmd' AS src;
CREATE TABLE Type AS SELECT * FROM src.Type;
CREATE TABLE Context AS SELECT * FROM src.Context;
CREATE TABLE ParentContext AS SELECT * FROM src.ParentContext;
CREATE TABLE Execution AS SELECT * FROM src.Execution WHERE id <= 2;
CREATE TABLE ExecutionProperty AS SELECT * FROM src.ExecutionProperty WHERE execution_id <= 2;
CREATE TABLE Association AS SELECT * FROM src.Association WHERE execution_id <= 2;
CREATE TABLE Event AS SELECT * FROM src.Event WHERE execution_id <= 2;
CREATE TABLE Artifact AS SELECT * FROM src.Artifact WHERE id IN (SELECT artifact_id FROM Event);
CREATE TABLE ArtifactProperty AS SELECT * FROM src.ArtifactProperty
  WHERE artifact_id IN (SELECT id FROM Artifact);
DETACH src;
VACUUM;
SQL
fi

# Instrument replies: the first byte is the number of channels, the rest the line.
printf '\003{"spectrum":[2.17,2.2,0.035]}' > "$corpus/instrument_reply/spectrum"
printf '\003{"ready":{"controller":"microscope_sim","protocol":1}}' > "$corpus/instrument_reply/ready"
printf '\003{"error":"beam blanked: vacuum interlock"}' > "$corpus/instrument_reply/error"
printf '\002{"spectrum":[1,-0.5e3]}' > "$corpus/instrument_reply/numbers"

# Remotes: NAME, URL, METADATA and DATA apart by NUL bytes.
printf 'hub\0ssh://me@hpc.example.org:2222/srv/cmf\0\0' > "$corpus/url/ssh"
printf 'edge\0me@edge:cmf/repo\0\0' > "$corpus/url/scp"
printf 'pair\0\0file:///srv/log.git\0/srv/objects' > "$corpus/url/pair"
printf 'web\0https://user:token@example.org/x\0\0' > "$corpus/url/password"
printf 'v6\0ssh://[::1]:22/x\0\0' > "$corpus/url/ipv6"

# Trajectories: the first byte picks the reader (0 VASP, 1 LAMMPS, 2 extended XYZ; +128 gives
# --species Mo S), then the file, then after a NUL the energies' file.
xdatcar='MoS2\n 1.0\n 4.0 0.0 0.0\n 2.0 3.0 0.0\n 0.0 0.0 10.0\n Mo S\n 1 2\nDirect configuration=     1\n 0.0 0.0 0.5\n 0.5 0.25 0.6\n 0.5 0.25 0.4\n'
printf "\000${xdatcar}\000   1 T=   300. E= -.10E+02 F= -.11E+02 E0= -.11E+02  EK= 0.1E+01\n" \
  > "$corpus/trajectory/vasp"
printf '\001ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS xy xz yz pp pp pp\n-1 5 2\n0 3 0\n-5 5 0\nITEM: ATOMS id type x y z fx fy fz\n2 2 1 1 1 0.1 0.2 0.3\n1 1 0 0 0 0 0 0\n\000LAMMPS (29 Sep 2021)\nunits metal\ntimestep 0.001\nkim interactions Mo S\nStep Temp PotEng\n0 300 -10.5\nLoop time of 1\n' \
  > "$corpus/trajectory/lammps"
printf '\0022\nLattice="4 0 0 2 3 0 0 0 10" Properties=species:S:1:pos:R:3:forces:R:3 energy=-10.25 pbc="T T F"\nMo 0 0 5 0 0 0\nS 1 1 6.5 0.1 0.2 0.3\n' \
  > "$corpus/trajectory/extxyz"

# Energy driver answers: one line each.
printf '{"energy": -541.2516}' > "$corpus/energy_reply/energy"
printf '{"ready": {"driver": "energy_driver_lammps.py"}}' > "$corpus/energy_reply/ready"
printf '{"error": "SCF did not converge"}' > "$corpus/energy_reply/error"

# --where expressions.
printf "metrics.rmse < 0.02 and params.acquisition = 'ei'" > "$corpus/where/and"
printf "not (status = 'failed' or tags.deployed = \"microscope-2\")" > "$corpus/where/not"
printf "started >= '2026-12-01' and started < '2026-12-02T10:00:00Z' and metrics.loss:max > 0.1" > "$corpus/where/dates"
printf "params.epochs > 9 or params.cold = true and stage = dkl-al" > "$corpus/where/precedence"
printf "params.x = 'it''s'" > "$corpus/where/quote"

du -sh "$corpus"/* | sed "s|$root/||"
