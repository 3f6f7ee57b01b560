// Fuzz target: `cmf import json` (ImportJson) of any document, into a real
// SQLite store, in a batch rolled back afterwards; what it accepts is exported
// again (ExportJson). Seeds: tests/fuzz/corpus/import_json (exports that the
// real cmf wrote).

#include <cstddef>
#include <cstdint>
#include <string>

#include "cmf/import.h"
#include "cmf/store.h"
#include "fuzz_util.h"

using namespace cmf;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const std::string text(fuzz::Bytes(data, size));
  fuzz::InRolledBackBatch([&](Store& store) {
    if (ImportJson(store, text).ok())
      static_cast<void>(ExportJson(store, std::nullopt));
  });
  return 0;
}
