// The stat cache of data::Scan, kept in the store's stat_index table as one
// blob of entries per scanned path. Used by the workspace verbs and `cmf run`;
// public for the tests and the fuzzer of its blob format.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/data/hash.h"
#include "cmf/data/scan.h"
#include "cmf/store.h"

namespace cmf {

// The stat cache of data::Scan, kept in the store.
//
// A scan of the path ROOT loads the blob saved for ROOT (and those of the
// folders above and the paths below it: what an earlier scan of them learnt
// still serves), looks its files up there without a single allocation, and
// saves ROOT's blob again only when something differs: a file hashed, gone or
// found in another path's blob. An unchanged tree reads one blob and writes
// nothing.
//
// A blob is "cmf-stat 1\n" and then, sorted by path, one entry per file:
// the path below ROOT as a 32-bit length and its bytes ("" when ROOT is the
// file), 64-bit device, inode, size, mtime and object ctime (in nanoseconds;
// 0 when the file is not the object, data::StatCache::Known), and the 32
// bytes of the SHA-256, all numbers in this machine's byte order (the index
// never leaves it). A blob that does not parse is ignored: it only costs time.
class StoreStatCache : public data::StatCache {
 public:
  explicit StoreStatCache(Store& store) : store_(store) {}

  void Prefetch(const std::filesystem::path& root) override;
  std::optional<Known> Lookup(const std::string& path,
                              const data::FileStat& stat) override;
  void Remember(const std::string& path, const data::FileStat& stat,
                const Known& known) override;
  Status Flush() override;

  // The encoding of a blob, exposed for tests. Encode sorts ENTRIES by path
  // and keeps the first of each path.
  struct Entry {
    std::string path;  // below the root, '/'-separated; "" for the root
    data::FileStat stat;
    std::int64_t object_ctime_ns = 0;
    data::Digest digest{};
  };
  static std::string Encode(std::vector<Entry> entries);
  // False when BYTES is not a whole, well-formed blob.
  static bool Decode(std::string_view bytes, std::vector<Entry>* out);

 private:
  // An entry of a loaded blob: its path, a view into Index::bytes, where the
  // entry's numbers and digest follow it (read when looked up: 100,000 rows
  // of 16 bytes, not of 88).
  struct Row {
    std::string_view path;
  };
  struct Index {
    std::string root;
    std::string bytes;  // as loaded ("" for a root without a blob)
    std::vector<Row> rows;
    std::unique_ptr<std::atomic<std::uint8_t>[]> used;  // per row, by Lookup
    bool stored = false;   // a blob was loaded for it
    bool scanned = false;  // the current scan covers ROOT
  };

  Index* Find(std::string_view root);
  bool Unchanged(const Index& own) const;
  void Load(Store::StatBlob blob);

  Store& store_;
  // Most specific first: a path is looked up in the blob of the deepest root
  // above it before the others.
  std::vector<std::unique_ptr<Index>> indexes_;
  std::vector<Entry> remembered_;  // absolute paths, this scan
};

}  // namespace cmf
