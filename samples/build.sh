# Sourced by the sample scripts: installs what is missing (.ci/setup), builds cmf in build/ if
# needed, and sets root (the checkout), cmf and gen (the binaries the samples run).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/.ci/setup"
if [ ! -f "$root/build/build.ninja" ]; then
  meson setup "$root/build" --buildtype=debugoptimized >/dev/null
fi
# The build says how far it is every tenth (the first one takes about ten minutes on 2 cores);
# its whole output goes to build/last-build.log, whose end is shown if it fails.
if ! ninja -C "$root/build" -n 2>/dev/null | grep -q "no work to do"; then
  echo "cmf: building in $root/build (the first build takes about ten minutes on 2 cores)" >&2
  started=$SECONDS
  if ! ninja -C "$root/build" 2>&1 | tee "$root/build/last-build.log" |
      awk '/^\[[0-9]+\/[0-9]+\]/ {
             split(substr($1, 2, length($1) - 2), n, "/")
             done = int(100 * n[1] / n[2])
             if (done >= next_at) { printf "cmf: build %d%%\n", done > "/dev/stderr"; next_at = done + 10 }
           }'; then
    echo "cmf: error: the build failed; the end of build/last-build.log:" >&2
    tail -n 40 "$root/build/last-build.log" >&2
    exit 1
  fi
  echo "cmf: built in $((SECONDS - started)) s" >&2
fi
cmf="$root/build/cmf_cli/cmf"
gen="$root/build/samples/cmf-gen-eels"
