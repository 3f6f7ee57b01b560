// Fuzz target: the stat-cache blob of a scanned path (stat_index in
// metadata.db, core/include/cmf/store_stat_cache.h), which a damaged or
// hand-edited store may hold. Decode must refuse what is not a blob; what it
// accepts, Encode writes again and Decode reads back. The blob is also saved in
// a real store and used as a scan uses it (Prefetch, Lookup, Remember, Flush),
// in a batch rolled back afterwards. Seeds: tests/fuzz/corpus/stat_cache (blobs
// that the real `cmf add` saved).

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cmf/store_stat_cache.h"
#include "fuzz_util.h"

using namespace cmf;
using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const std::string_view bytes = fuzz::Bytes(data, size);
  std::vector<StoreStatCache::Entry> entries;
  const bool decoded = StoreStatCache::Decode(bytes, &entries);
  if (decoded) {
    std::vector<StoreStatCache::Entry> again;
    const std::string encoded = StoreStatCache::Encode(entries);
    Require(StoreStatCache::Decode(encoded, &again), "Decode(Encode()) reads");
    Require(again.size() <= entries.size(), "Encode keeps one entry a path");
    Require(StoreStatCache::Encode(again) == encoded,
            "Encode(Decode(Encode())) is Encode");
  }

  const std::string root = "/fuzz/root";
  fuzz::InRolledBackBatch([&](Store& store) {
    Require(store.SaveStatIndex(root, bytes).ok(), "SaveStatIndex");
    StoreStatCache cache(store);
    cache.Prefetch(root);
    for (const StoreStatCache::Entry& e : entries) {
      const std::string path = e.path.empty() ? root : root + "/" + e.path;
      static_cast<void>(cache.Lookup(path, e.stat));
    }
    cache.Remember(root + "/new", {1, 2, 3, 4}, {std::string(64, 'a'), 0});
    static_cast<void>(cache.Flush());
  });
  return 0;
}
