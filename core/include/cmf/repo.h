// A cmf repository: a workspace folder with a .cmf/ folder inside it.
//
//   .cmf/config        git-config format (cmf/config.h)
//   .cmf/metadata.db   the SQLite store (cmf/store.h)
//   .cmf/log.git/      a bare git repository for the committed metadata history
//   .cmf/objects/      the content-addressed object cache
//   (cmf/data/object_cache.h)
//
// Repo owns its Config, Store and ObjectCache. It is movable, not copyable, and
// is used by one thread at a time; several processes may open the same
// repository at once (the store serialises their writes).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "cmf/config.h"
#include "cmf/data/file_ops.h"
#include "cmf/status.h"
#include "cmf/store.h"

namespace cmf::data {
class ObjectCache;
}

namespace cmf {

// What a Repo is opened for. Reading skips the config (and with it libgit2's
// start-up, which costs milliseconds): config() is unavailable and the store
// refuses writes.
// kConfig opens the config alone (store() is unavailable), so that a config
// that the other verbs refuse can still be mended with `cmf config`.
enum class OpenMode { kReadWrite, kRead, kConfig };

struct DiscoverOptions {
  // Where to start looking for .cmf/ (walking up to the root). Empty: the
  // current directory.
  std::filesystem::path start;
  // The .cmf folder itself (or a workspace that holds one), as CMF_DIR gives
  // it; when set, no search is made. Empty: not given.
  std::filesystem::path cmf_dir;
};

// True when DIR is a bare repository (cmf init --bare): a config that says
// core.bare = true, beside log.git/ and objects/.
bool IsBareRepository(const std::filesystem::path& dir);

class Repo {
 public:
  // Creates .cmf/ in WORKSPACE (which must exist) with a new site id, an empty
  // store, an empty object cache and an empty log.git, all at once: a failed
  // init leaves nothing behind. AlreadyExists when WORKSPACE already has a
  // .cmf/; IOError when it cannot be written.
  static Result<Repo> Init(const std::filesystem::path& workspace);

  // Finds and opens the repository. NotFound when there is none; the store's
  // errors (corrupt, foreign or newer store) otherwise.
  static Result<Repo> Open(const DiscoverOptions& options,
                           OpenMode mode = OpenMode::kReadWrite);

  Repo(Repo&&) noexcept;
  Repo& operator=(Repo&&) noexcept;
  ~Repo();

  const std::filesystem::path& workspace() const { return workspace_; }
  const std::filesystem::path& cmf_dir() const { return cmf_dir_; }
  // The config; only when opened kReadWrite.
  Config& config() { return *config_; }
  Store& store() { return *store_; }
  const data::ObjectCache& objects() const { return *objects_; }
  // This site's id (config core.site); empty when opened kRead.
  const std::string& site() const { return site_; }

 private:
  Repo() = default;
  static Result<Repo> OpenAt(const std::filesystem::path& cmf_dir,
                             OpenMode mode);

  std::filesystem::path workspace_;
  std::filesystem::path cmf_dir_;
  std::string site_;
  std::unique_ptr<Config> config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<data::ObjectCache> objects_;
};

// A lock on the repository's object cache (flock on .cmf/lock), held until
// destroyed. Writers that store objects and then record them hold it shared;
// gc holds it exclusive, so it never removes an object that is about to be
// recorded. Movable; one thread at a time.
class CacheLock {
 public:
  // Waits for the lock. IOError when the lock file cannot be opened.
  static Result<CacheLock> Acquire(const Repo& repo, bool exclusive);

 private:
  explicit CacheLock(data::FileLock lock) : lock_(std::move(lock)) {}
  data::FileLock lock_;
};

// Finds the .cmf folder for OPTIONS without opening anything. NotFound when
// there is none.
Result<std::filesystem::path> DiscoverCmfDir(const DiscoverOptions& options);

}  // namespace cmf
