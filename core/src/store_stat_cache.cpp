#include "cmf/store_stat_cache.h"

#include <algorithm>
#include <cstring>

namespace cmf {
namespace {

constexpr std::string_view kMagic = "cmf-stat 1\n";
constexpr std::size_t kFixed = 5 * sizeof(std::uint64_t) + 32;  // after a path

// True when PATH is ROOT or lies below it; REL gets the part below ("" for
// ROOT itself).
bool Below(std::string_view root, std::string_view path,
           std::string_view* rel) {
  if (path == root) {
    *rel = {};
    return true;
  }
  const std::size_t cut = root.ends_with('/') ? root.size() : root.size() + 1;
  if (path.size() <= cut || !path.starts_with(root) || path[cut - 1] != '/')
    return false;
  *rel = path.substr(cut);
  return true;
}

bool FromHex(std::string_view hex, data::Digest* out) {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Calls ON_ENTRY(path, stat, object ctime, digest) for each entry of BYTES, the
// path a view into BYTES. False when BYTES is malformed (entries already passed
// stand).
template <typename F>
bool Parse(std::string_view bytes, F&& on_entry) {
  if (!bytes.starts_with(kMagic)) return false;
  std::size_t pos = kMagic.size();
  while (pos < bytes.size()) {
    if (bytes.size() - pos < sizeof(std::uint32_t)) return false;
    const auto length = Get<std::uint32_t>(bytes.data() + pos);
    pos += sizeof(std::uint32_t);
    if (bytes.size() - pos < kFixed || bytes.size() - pos - kFixed < length)
      return false;
    std::string_view path = bytes.substr(pos, length);
    const char* p = bytes.data() + pos + length;
    data::FileStat stat{Get<std::uint64_t>(p), Get<std::uint64_t>(p + 8),
                        Get<std::uint64_t>(p + 16), Get<std::int64_t>(p + 24)};
    const auto object_ctime_ns = Get<std::int64_t>(p + 32);
    data::Digest digest;
    std::memcpy(digest.data(), p + 40, digest.size());
    on_entry(path, stat, object_ctime_ns, digest);
    pos += length + kFixed;
  }
  return true;
}

// The numbers and digest of the entry whose path is PATH, a view into a
// parsed blob: they follow the path there.
data::FileStat StatAfter(std::string_view path) {
  const char* p = path.data() + path.size();
  return {Get<std::uint64_t>(p), Get<std::uint64_t>(p + 8),
          Get<std::uint64_t>(p + 16), Get<std::int64_t>(p + 24)};
}
std::int64_t ObjectCtimeAfter(std::string_view path) {
  return Get<std::int64_t>(path.data() + path.size() + 32);
}
data::Digest DigestAfter(std::string_view path) {
  data::Digest digest;
  std::memcpy(digest.data(), path.data() + path.size() + 40, digest.size());
  return digest;
}

// Calls F(below, row) for each row that this scan found in the blob of a
// root other than OWN's and that lies below OWN's root (BELOW: its path
// below it; ROW: the row's path, a view into its blob), until F returns
// false; false when it did. INDEXES: StoreStatCache::indexes_.
bool ForEachFoundElsewhere(const auto& indexes, const auto& own, auto&& f) {
  std::string_view below;
  for (const auto& index : indexes) {
    if (index.get() == &own) continue;
    for (std::size_t i = 0; i < index->rows.size(); ++i) {
      if (index->used[i].load(std::memory_order_relaxed) == 0) continue;
      const std::string_view row = index->rows[i].path;
      std::string full = index->root;
      if (!row.empty()) (full += '/') += row;
      if (Below(own.root, full, &below) && !f(below, row)) return false;
    }
  }
  return true;
}

}  // namespace

std::string StoreStatCache::Encode(std::vector<Entry> entries) {
  // Sorted by path, the first of a path kept.
  std::stable_sort(
      entries.begin(), entries.end(),
      [](const Entry& a, const Entry& b) { return a.path < b.path; });
  entries.erase(std::unique(entries.begin(), entries.end(),
                            [](const Entry& a, const Entry& b) {
                              return a.path == b.path;
                            }),
                entries.end());
  std::string out(kMagic);
  std::size_t size = out.size();
  for (const Entry& e : entries) size += 4 + e.path.size() + kFixed;
  out.reserve(size);
  for (const Entry& e : entries) {
    Put(&out, static_cast<std::uint32_t>(e.path.size()));
    out += e.path;
    Put(&out, e.stat.dev);
    Put(&out, e.stat.ino);
    Put(&out, e.stat.size);
    Put(&out, e.stat.mtime_ns);
    Put(&out, e.object_ctime_ns);
    out.append(reinterpret_cast<const char*>(e.digest.data()), e.digest.size());
  }
  return out;
}

bool StoreStatCache::Decode(std::string_view bytes, std::vector<Entry>* out) {
  return Parse(
      bytes, [&](std::string_view path, const data::FileStat& stat,
                 std::int64_t object_ctime_ns, const data::Digest& digest) {
        out->push_back({std::string(path), stat, object_ctime_ns, digest});
      });
}

StoreStatCache::Index* StoreStatCache::Find(std::string_view root) {
  for (auto& index : indexes_)
    if (index->root == root) return index.get();
  return nullptr;
}

void StoreStatCache::Load(Store::StatBlob blob) {
  auto index = std::make_unique<Index>();
  index->root = std::move(blob.root);
  index->bytes = std::move(blob.bytes);
  index->stored = true;
  bool sorted = true;
  bool ok =
      Parse(index->bytes, [&](std::string_view path, const data::FileStat&,
                              std::int64_t, const data::Digest&) {
        if (!index->rows.empty() && !(index->rows.back().path < path))
          sorted = false;
        index->rows.push_back({path});
      });
  if (!ok || !sorted) index->rows.clear();  // a damaged blob is no help
  index->used.reset(new std::atomic<std::uint8_t>[index->rows.size()]());
  indexes_.push_back(std::move(index));
}

void StoreStatCache::Prefetch(const std::filesystem::path& root) {
  const std::string r = root.string();
  if (Index* known = Find(r)) {
    known->scanned = true;
    return;
  }
  if (Result<std::vector<Store::StatBlob>> blobs = store_.LoadStatIndex(r);
      blobs.ok()) {  // a cold cache only costs time
    for (Store::StatBlob& blob : *blobs)
      if (Find(blob.root) == nullptr) Load(std::move(blob));
  }
  Index* own = Find(r);
  if (own == nullptr) {
    auto index = std::make_unique<Index>();
    index->root = r;
    own = index.get();
    indexes_.push_back(std::move(index));
  }
  own->scanned = true;
  std::stable_sort(indexes_.begin(), indexes_.end(),
                   [](const auto& a, const auto& b) {
                     return a->root.size() > b->root.size();
                   });
}

std::optional<data::StatCache::Known> StoreStatCache::Lookup(
    const std::string& path, const data::FileStat& stat) {
  for (const auto& index : indexes_) {
    std::string_view rel;
    if (!Below(index->root, path, &rel)) continue;
    auto it = std::lower_bound(
        index->rows.begin(), index->rows.end(), rel,
        [](const Row& row, std::string_view p) { return row.path < p; });
    if (it == index->rows.end() || it->path != rel ||
        !(StatAfter(it->path) == stat))
      continue;
    index->used[static_cast<std::size_t>(it - index->rows.begin())].store(
        1, std::memory_order_relaxed);
    return Known{data::ToHex(DigestAfter(it->path)),
                 ObjectCtimeAfter(it->path)};
  }
  return std::nullopt;
}

void StoreStatCache::Remember(const std::string& path,
                              const data::FileStat& stat, const Known& known) {
  Entry e{path, stat, known.object_ctime_ns, {}};
  if (FromHex(known.hash, &e.digest)) remembered_.push_back(std::move(e));
}

// True when ROOT's blob, saved as OWN holds it, would come out the same from
// this scan: nothing hashed under it, every one of its rows found unchanged,
// and nothing found in another root's blob. Most scans (status, an add of an
// unchanged tree) end here, without building a blob to compare.
bool StoreStatCache::Unchanged(const Index& own) const {
  if (!own.stored) return false;
  std::string_view rel;
  for (const Entry& e : remembered_)
    if (Below(own.root, e.path, &rel)) return false;
  for (std::size_t i = 0; i < own.rows.size(); ++i) {
    if (own.used[i].load(std::memory_order_relaxed) == 0)
      return false;  // gone, changed, or found in a deeper blob
  }
  return ForEachFoundElsewhere(
      indexes_, own, [](std::string_view, std::string_view) { return false; });
}

Status StoreStatCache::Flush() {
  Status result;
  for (auto& own : indexes_) {
    if (!own->scanned || Unchanged(*own)) continue;
    // ROOT's blob anew: what this scan hashed under it, then what it found
    // unchanged, in any blob (a path is looked up in the deepest blob first).
    std::vector<Entry> entries;
    std::string_view rel;
    for (const Entry& e : remembered_) {
      if (!Below(own->root, e.path, &rel)) continue;
      entries.push_back(
          {std::string(rel), e.stat, e.object_ctime_ns, e.digest});
    }
    auto keep = [&entries](std::string_view below, std::string_view row) {
      entries.push_back({std::string(below), StatAfter(row),
                         ObjectCtimeAfter(row), DigestAfter(row)});
      return true;
    };
    for (std::size_t i = 0; i < own->rows.size(); ++i) {
      if (own->used[i].load(std::memory_order_relaxed) != 0)
        keep(own->rows[i].path, own->rows[i].path);
    }
    ForEachFoundElsewhere(indexes_, *own, keep);
    // Hashed now comes first, and so beats what was remembered.
    std::string bytes = Encode(std::move(entries));
    if (own->stored && bytes == own->bytes) continue;
    if (Status st = store_.SaveStatIndex(own->root, bytes);
        !st.ok() && result.ok()) {
      result = st;
    }
  }
  // The next scan (status scans one tracked path at a time) starts afresh;
  // what was loaded stays true of the files, whatever was saved.
  remembered_.clear();
  for (auto& index : indexes_) {
    index->scanned = false;
    for (std::size_t i = 0; i < index->rows.size(); ++i)
      index->used[i].store(0, std::memory_order_relaxed);
  }
  return result;
}

}  // namespace cmf
