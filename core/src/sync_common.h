// Internal: what push, pull, fetch, get and commit share (sync_*.cpp): where a
// remote's log and objects are, the data policy, the locks, the ingest of the
// log's segments, the notes of damaged objects, and downloads into the cache.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "cmf/data/file_ops.h"
#include "cmf/data/object_cache.h"
#include "cmf/data/progress.h"
#include "cmf/data/transport.h"
#include "cmf/metalog.h"
#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/status.h"
#include "cmf/sync.h"

namespace cmf::sync_internal {

using data::FileLock;

// Where a remote's log and objects are.
struct Endpoints {
  std::string git_url;
  std::string data_url;        // empty: this remote holds no objects
  std::filesystem::path lock;  // beside a local log; empty otherwise
  bool workspace = false;      // the remote is a workspace with its own store
};

// Makes a relative path absolute (remotes are stored as given, but a path is
// relative to where cmf runs, which changes).
std::string AbsoluteIfPath(const std::string& url);

// Where REMOTE's log and objects are. NotFound when it is not a cmf
// repository.
Result<Endpoints> Resolve(const Repo& repo, const RemoteSpec& remote);

// The data policy of a push or pull: OPTIONS', else config KEY, else
// push.data, else "relevant".
Result<DataPolicy> PolicyFor(Repo& repo, const SyncOptions& options,
                             const char* key);
// push.max-size (64 MiB when unset).
Result<std::uint64_t> MaxSize(Repo& repo);
// Whether POLICY sends or fetches an artifact of KIND and SIZE.
bool Wanted(DataPolicy policy, ArtifactKind kind, std::uint64_t size,
            std::uint64_t max_size);

// The objects that hold the bytes of artifact HASH: the object itself and, for
// a directory, the files its manifest (read from CACHE) lists.
Result<std::vector<std::string>> ObjectsOf(const data::ObjectCache& cache,
                                           const std::string& hash,
                                           ArtifactKind kind);

// The id of the object store behind T, made when it has none yet.
Result<std::string> StoreId(data::ObjectTransport& t);

// Records ID as the store-id of remote NAME, writing the config only when it
// changes (most pushes and pulls then write nothing there).
Status RememberStoreId(Repo& repo, const std::string& name,
                       const std::string& id);

// Ingests every segment reachable from main that the store does not hold yet
// (see sync_common.cpp). Counts what it quarantined in *QUARANTINED when given.
Result<std::int64_t> CatchUp(Repo& repo, MetaLog& log,
                             std::int64_t* quarantined = nullptr);

// Fetches the remote's log, merges it into main and ingests what it brought
// (the part push and pull share).
Status FetchAndMerge(Repo& repo, MetaLog& log, const RemoteSpec& remote,
                     const Endpoints& ends, SyncReport* report,
                     std::string* remote_tip);

Result<MetaLog> OpenLog(const Repo& repo);

// Takes .cmf/log.lock: one cmf process at a time changes the log.
Result<FileLock> LockLog(const Repo& repo);

// With the push lock of a remote's log on a path held, removes the lock of
// its `main` that a push killed while it moved it left behind.
void RemoveStaleRemoteMainLock(const Endpoints& ends);

// Objects that a pull or get found damaged in an object store:
// .cmf/suspect-objects, one "STORE-ID HASH" a line (doc/formats.md).
std::filesystem::path SuspectsFile(const Repo& repo);
// The objects noted as damaged in the store STORE_ID.
std::set<std::string> Suspects(const Repo& repo, const std::string& store_id);
// Notes HASH as damaged in the store STORE_ID (best effort).
void NoteSuspect(const Repo& repo, const std::string& store_id,
                 const std::string& hash);
// Drops the notes of CLEARED in the store STORE_ID, rewriting the file
// atomically.
Status ForgetSuspects(const Repo& repo, const std::string& store_id,
                      const std::set<std::string>& cleared);

// DAMAGED holds, in each path, the hash of the artifact its object belongs
// to: replaces it with a path that artifact was seen at.
Status NamePaths(Repo& repo, std::vector<SyncReport::Damaged>& damaged);

// Downloads the objects HASHES from T (the store STORE_ID) into the cache,
// verifying each (see sync_common.cpp).
Status Download(Repo& repo, data::ObjectTransport& t,
                const std::string& store_id,
                const std::vector<std::string>& hashes,
                const std::string& artifact, data::Progress* progress,
                SyncReport* report);

}  // namespace cmf::sync_internal
