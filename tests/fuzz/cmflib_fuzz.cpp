// Fuzz target: `cmf import cmflib` (ImportCmflib) of any file: the input is
// written to a file, which SQLite opens read-only (a corrupt database must be
// refused, never crash), and imported into a real store in a batch rolled back
// afterwards. Seeds: tests/fuzz/corpus/cmflib (a small MLMD store cut from
// ../shared/data/cmflib-mlmd, by tests/fuzz/make_corpus.sh).

#include <cstddef>
#include <cstdint>

#include "cmf/import.h"
#include "cmf/store.h"
#include "fuzz_util.h"

using namespace cmf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const auto file = fuzz::ScratchDir() / "input.mlmd.sqlite";
  fuzz::WriteFile(file, fuzz::Bytes(data, size));
  fuzz::InRolledBackBatch(
      [&](Store& store) { static_cast<void>(ImportCmflib(store, file)); });
  return 0;
}
