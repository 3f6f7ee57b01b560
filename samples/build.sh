# Sourced by the sample scripts: installs what is missing (.ci/setup), builds cmf in build/ if
# needed, and sets root (the checkout), cmf and gen (the binaries the samples run).
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/.ci/setup"
if [ ! -f "$root/build/build.ninja" ]; then
  meson setup "$root/build" --buildtype=debugoptimized >/dev/null
fi
ninja -C "$root/build" >/dev/null
cmf="$root/build/cmf_cli/cmf"
gen="$root/build/samples/cmf-gen-eels"
