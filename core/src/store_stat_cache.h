// Internal: the stat cache of data::Scan, kept in the store's stat_cache
// table.
#pragma once

#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cmf/data/scan.h"
#include "cmf/store.h"

namespace cmf {

// The stat cache of data::Scan, kept in the store: loaded once per scan for the
// scanned tree, saved in one transaction at the end.
class StoreStatCache : public data::StatCache {
 public:
  explicit StoreStatCache(Store& store) : store_(store) {}

  void Prefetch(const std::filesystem::path& root) override {
    Result<std::vector<Store::StatRow>> rows =
        store_.LoadStatCache(root.string());
    if (!rows.ok()) return;  // a cold cache only costs time
    known_.reserve(known_.size() + rows->size());
    for (Store::StatRow& r : *rows) {
      data::FileStat st{r.dev, r.ino, r.size, r.mtime_ns};
      known_[r.path] = {st, std::move(r.hash)};
    }
  }

  std::optional<std::string> Lookup(const std::string& path,
                                    const data::FileStat& stat) override {
    auto it = known_.find(path);
    if (it == known_.end() || !(it->second.first == stat)) return std::nullopt;
    return it->second.second;
  }

  void Remember(const std::string& path, const data::FileStat& stat,
                const std::string& hash) override {
    pending_.push_back(
        {path, stat.dev, stat.ino, stat.size, stat.mtime_ns, hash});
    known_[path] = {stat, hash};
  }

  Status Flush() override {
    Status st = store_.SaveStatCache(pending_);
    pending_.clear();
    return st;
  }

 private:
  Store& store_;
  std::unordered_map<std::string, std::pair<data::FileStat, std::string>>
      known_;
  std::vector<Store::StatRow> pending_;
};

}  // namespace cmf
