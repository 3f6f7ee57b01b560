// Data versioning in the workspace: what `cmf add`, `status`, `checkout`,
// `unlock`, `fsck` and `gc` do.
//
// A tracked path (a file or a directory of the workspace) is recorded in the
// store with the hash of its content, and that content is kept in the object
// cache, entered by the link strategies of config cache.link (default: auto =
// reflink, then copy). Unchanged files are never hashed twice:
// the store keeps a stat cache (path, device, inode, size, mtime -> hash).
//
// Every function here borrows a Repo opened for writing and is used from one
// thread at a time (they use all cores inside).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/status.h"
#include "cmf/store.h"

namespace cmf {

struct AddOptions {
  bool progress = true;  // a progress line while stdout is a terminal
  unsigned threads = 0;  // 0: one per core
};

struct AddResult {
  ArtifactRef artifact;     // path is workspace-relative
  std::uint64_t files = 0;  // regular files in it
  std::uint64_t hashed_files =
      0;  // read this time (the rest came from the stat cache)
  std::uint64_t hashed_bytes = 0;
  bool changed = false;  // its tracked content differs from before
};

// Tracks PATHS: hashes them, stores their content in the cache and records
// them. InvalidArgument for a path outside the workspace or inside .cmf/;
// NotFound for a missing one; IOError as the object cache reports. Paths are
// checked before anything is stored, and a path is recorded only after all of
// its content is in the cache.
Result<std::vector<AddResult>> Add(
    Repo& repo, const std::vector<std::filesystem::path>& paths,
    const AddOptions& options);

// One difference between a tracked path and the workspace.
struct Change {
  enum class Kind { kModified, kMissing, kNew };
  Kind kind = Kind::kModified;
  std::string path;     // workspace-relative
  std::string tracked;  // the tracked path it belongs to
  // A modified file that is still a hard link to the object of its recorded
  // content: it was written in place (root ignores the read-only mode), so
  // that object no longer holds what its name says.
  bool cache_damaged = false;
};
std::string_view ToString(Change::Kind kind);  // "modified", "missing", "new"

struct StatusReport {
  std::vector<ArtifactRef> tracked;
  std::vector<Change> changes;  // sorted by path
  std::int64_t uncommitted_executions = 0;
  std::int64_t uncommitted_facts = 0;  // of every kind, executions included
  // Executions of this site still recorded as running whose process is gone
  // (the next commit records them as interrupted).
  std::vector<std::string> interrupted;
};

// Compares every tracked path with the workspace (through the stat cache).
Result<StatusReport> WorkspaceStatus(Repo& repo, const AddOptions& options);

struct CheckoutResult {
  std::string path;
  std::string hash;
  std::uint64_t restored_files =
      0;  // files written; the others were already right
};

// Restores PATH (a tracked path, or a path inside a tracked directory) from the
// cache. With REV (an artifact hash or a unique prefix of one), restores that
// content instead and tracks it at PATH. Every object is verified against its
// name before it is placed. NotFound when PATH is not tracked or the content
// is not in the cache; Corruption (nothing written) when an object is damaged;
// Conflict (nothing written) when a file to be replaced has local changes (its
// content is not what the store tracked at PATH), unless FORCE.
Result<CheckoutResult> Checkout(Repo& repo, const std::filesystem::path& path,
                                const std::optional<std::string>& rev,
                                bool force = false);

// Replaces each file under PATH that shares its bytes with the cache (a hard
// link or a symbolic link into it) by a private, writable copy. Returns the
// number of files unlocked.
Result<std::uint64_t> Unlock(Repo& repo, const std::filesystem::path& path);

struct FsckReport {
  std::uint64_t objects = 0;  // objects verified
  std::vector<std::string>
      corrupt;  // objects whose content does not match their name
  struct Missing {
    std::string hash;
    std::string path;  // where the artifact was seen
  };
  std::vector<Missing> missing;  // expected in the cache but absent
  // Temporary files of the cache (objects/tmp/) left by a killed add, push or
  // pull: untouched for data::kStaleTemporaryAge. Not damage (fsck stays ok);
  // `cmf gc --force` removes them.
  std::uint64_t temporaries = 0;
  std::uint64_t temporary_bytes = 0;
  // What SQLite's integrity check found wrong in metadata.db (at most 100
  // lines); empty when it is sound.
  std::vector<std::string> store_errors;
  // Executions still recorded as running whose process is gone (not an error:
  // the next commit records them as interrupted).
  std::vector<std::string> interrupted;
  // Segments of other sites kept out of the store (Store::ListQuarantined):
  // a finding about their data, not about this repository, so not in ok().
  std::vector<Store::Quarantined> quarantined;
  bool ok() const {
    return corrupt.empty() && missing.empty() && store_errors.empty();
  }
};

// Verifies metadata.db with SQLite's integrity check, every object against its
// name, and every record that expects its bytes in the cache (tracked paths,
// execution outputs, the files of their manifests). Repairs nothing. When the
// store is damaged, the checks that read records are skipped.
Result<FsckReport> Fsck(Repo& repo, const AddOptions& options);

struct GcReport {
  std::vector<std::string> unreferenced;  // objects no record needs
  std::uint64_t bytes = 0;
  bool removed = false;
  // Stat-index blobs of paths that exist no more (a folder deleted or moved,
  // the workspace moved): removed with the objects.
  std::size_t stale_stat_blobs = 0;
  // Temporary files of the object store left by a killed add, push or pull
  // (untouched for data::kStaleTemporaryAge): removed with the objects. Names
  // are relative to the objects/ folder ("tmp/obj-Ab12Cd").
  std::vector<std::string> temporaries;
  std::uint64_t temporary_bytes = 0;
};

// Finds the objects that nothing references (directly or through a manifest):
// not tracked now, not used or made by any execution, the stat-index blobs of
// paths that no longer exist, and the stale temporary files of the cache.
// Unless DRY_RUN, removes them.
Result<GcReport> CollectGarbage(Repo& repo, bool dry_run);

// As CollectGarbage for a bare repository at DIR (cmf init --bare), which has
// no store to say which objects are referenced: only the stale temporary
// files of its object store (DIR/objects/tmp/, left by killed pushes).
Result<GcReport> CollectBareGarbage(const std::filesystem::path& dir,
                                    bool dry_run);

}  // namespace cmf
