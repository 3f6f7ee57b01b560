// Fuzz target: the manifest of a tracked directory (data::ParseManifest), an
// object that arrives from remotes like any other. What it accepts is written
// again by BuildManifest and reads back the same, and names no path that could
// leave its folder. Seeds: tests/fuzz/corpus/manifest (the manifest `cmf add`
// wrote for a folder).

#include <cstddef>
#include <cstdint>
#include <string>

#include "cmf/data/scan.h"
#include "fuzz_util.h"

using namespace cmf;
using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  Result<std::vector<data::ScannedFile>> files =
      data::ParseManifest(fuzz::Bytes(data, size));
  if (!files.ok()) return 0;
  for (const data::ScannedFile& f : *files) {
    // (A line break is allowed: version 2 manifests escape it.)
    Require(!f.path.empty() && f.path.front() != '/',
            "a manifest path is relative");
    Require(f.path != ".." && !f.path.starts_with("../") &&
                f.path.find("/../") == std::string::npos &&
                !f.path.ends_with("/.."),
            "a manifest path stays in its folder");
  }
  Result<std::vector<data::ScannedFile>> again =
      data::ParseManifest(data::BuildManifest(*files));
  Require(again.ok() && again->size() == files->size(),
          "a built manifest parses");
  for (std::size_t i = 0; i < files->size(); ++i) {
    const data::ScannedFile &a = (*files)[i], &b = (*again)[i];
    Require(a.path == b.path && a.hash == b.hash && a.size == b.size &&
                a.executable == b.executable,
            "a built manifest reads back the same");
  }
  return 0;
}
