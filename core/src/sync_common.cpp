#include "sync_common.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "cmf/data/open_transport.h"
#include "cmf/data/scan.h"
#include "cmf/segment.h"

namespace fs = std::filesystem;

namespace cmf::sync_internal {
namespace {

constexpr std::uint64_t kDefaultMaxSize = 64ull << 20;

// Says on stderr, once per segment, that one was kept out of the store.
void WarnQuarantined(const std::string& site, const std::string& hash,
                     const std::string& path, const std::string& reason,
                     int needs_format) {
  const std::string what = !site.empty() && !hash.empty()
                               ? "segment " + site + "/" + hash.substr(0, 12)
                               : "file '" + path + "' of the metadata log";
  if (needs_format > 0) {
    fmt::print(stderr,
               "cmf: warning: {} skipped: {} (a cmf that reads it will "
               "ingest it)\n",
               what, reason);
  } else {
    fmt::print(stderr, "cmf: warning: {} quarantined: {}\n", what, reason);
  }
}

std::string ShortMerge(MetaLog::MergeKind kind) {
  switch (kind) {
    case MetaLog::MergeKind::kUpToDate:
      return "up-to-date";
    case MetaLog::MergeKind::kFastForward:
      return "fast-forward";
    case MetaLog::MergeKind::kUnion:
      return "union";
  }
  return "up-to-date";
}

}  // namespace

// Makes a relative path absolute (remotes are stored as given, but a path is
// relative to where cmf runs, which changes).
std::string AbsoluteIfPath(const std::string& url) {
  if (data::UrlScheme(url) != "file" || url.rfind("file://", 0) == 0)
    return url;
  std::string path = data::FileUrlPath(url);
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  return ec ? url : abs.lexically_normal().string();
}

Result<Endpoints> Resolve(const Repo& repo, const RemoteSpec& remote) {
  Endpoints out;
  std::string base;
  if (!remote.url.empty()) {
    std::string scheme = data::UrlScheme(remote.url);
    if (scheme == "file") {
      fs::path p = data::FileUrlPath(remote.url);
      if (p.is_relative()) p = repo.workspace() / p;
      std::error_code ec;
      if (fs::is_directory(p / ".cmf" / "log.git", ec)) {
        base = (p / ".cmf").string();
        out.workspace = true;
      } else if (fs::is_directory(p / "log.git", ec)) {
        base = p.string();
      } else if (!fs::exists(p, ec)) {
        return Status::NotFound("the remote '" + remote.name + "' (" +
                                remote.url + ") does not exist");
      } else {
        return Status::NotFound("the remote '" + remote.name + "' (" +
                                remote.url +
                                ") is not a cmf repository; make one with "
                                "'cmf init --bare " +
                                remote.url + "'");
      }
      out.git_url = base + "/log.git";
      out.data_url = base + "/objects";
      out.lock = fs::path(base) / "push.lock";
    } else if (scheme == "ssh") {
      CMF_ASSIGN_OR_RETURN(auto probe, data::OpenTransport(remote.url));
      CMF_ASSIGN_OR_RETURN(bool workspace, probe->HasFolder(".cmf/log.git"));
      if (workspace) {
        base = data::JoinUrl(remote.url, ".cmf");
        out.workspace = true;
      } else {
        CMF_ASSIGN_OR_RETURN(bool bare, probe->HasFolder("log.git"));
        if (!bare) {
          return Status::NotFound("the remote '" + remote.name + "' (" +
                                  data::RedactUrl(remote.url) +
                                  ") is not a cmf repository; make one there "
                                  "with 'cmf init --bare PATH'");
        }
        base = remote.url;
      }
      out.git_url = data::JoinUrl(base, "log.git");
      out.data_url = data::JoinUrl(base, "objects");
    } else {
      // Let the transport registry name the schemes it knows.
      CMF_RETURN_IF_ERROR(data::OpenTransport(remote.url).status());
    }
  }
  if (!remote.metadata.empty()) {
    out.git_url = AbsoluteIfPath(remote.metadata);
    out.lock.clear();
    if (data::UrlScheme(out.git_url) == "file") {
      fs::path git_dir = data::FileUrlPath(out.git_url);
      out.lock = git_dir / "cmf-push.lock";
      std::error_code ec;  // a workspace's own log, named directly
      out.workspace = fs::exists(git_dir.parent_path() / "metadata.db", ec);
    }
  }
  if (!remote.data.empty()) out.data_url = AbsoluteIfPath(remote.data);
  if (out.git_url.empty()) {
    return Status::InvalidArgument("the remote '" + remote.name +
                                   "' has no URL for its metadata");
  }
  return out;
}

Result<DataPolicy> PolicyFor(Repo& repo, const SyncOptions& options,
                             const char* key) {
  if (options.data) return *options.data;
  std::string text = repo.config().GetOr(key, "");
  if (text.empty()) text = repo.config().GetOr("push.data", "relevant");
  return ParseDataPolicy(text);
}

Result<std::uint64_t> MaxSize(Repo& repo) {
  std::string text = repo.config().GetOr("push.max-size", "");
  if (text.empty()) return kDefaultMaxSize;
  return ParseSize(text);
}

bool Wanted(DataPolicy policy, ArtifactKind kind, std::uint64_t size,
            std::uint64_t max_size) {
  switch (policy) {
    case DataPolicy::kAll:
      return true;
    case DataPolicy::kNone:
      return false;
    case DataPolicy::kRelevant:
      return kind == ArtifactKind::kDataslice || kind == ArtifactKind::kModel ||
             kind == ArtifactKind::kMetrics || size < max_size;
  }
  return false;
}

// The objects that hold the bytes of artifact HASH: the object itself and, for
// a directory, the files its manifest (read from CACHE) lists.
Result<std::vector<std::string>> ObjectsOf(const data::ObjectCache& cache,
                                           const std::string& hash,
                                           ArtifactKind kind) {
  std::vector<std::string> out{hash};
  if (kind != ArtifactKind::kDirectory || !cache.Has(hash)) return out;
  CMF_ASSIGN_OR_RETURN(std::string manifest, cache.ReadObject(hash));
  CMF_ASSIGN_OR_RETURN(auto files, data::ParseManifest(manifest));
  for (const auto& f : files) out.push_back(f.hash);
  return out;
}

// The id of the object store behind T, made when it has none yet.
Result<std::string> StoreId(data::ObjectTransport& t) {
  CMF_ASSIGN_OR_RETURN(std::string fresh, RandomHex(8));
  CMF_ASSIGN_OR_RETURN(std::string id, t.CreateSmall("store-id", fresh));
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  if (!IsValidSiteId(id)) {
    return Status::Corruption("the object store '" + t.Describe() +
                              "' has a bad store-id");
  }
  return id;
}

// Records ID as the store-id of remote NAME, writing the config only when it
// changes (most pushes and pulls then write nothing there).
Status RememberStoreId(Repo& repo, const std::string& name,
                       const std::string& id) {
  const std::string key = "remote." + name + ".store-id";
  if (repo.config().GetOr(key, "") == id) return Status::Ok();
  return repo.config().Set(key, id);
}

// Ingests every segment reachable from main that the store does not hold yet:
// those a merge just brought, or those left by a run cut short between moving
// main and ingesting. Moves the store's ingested tip to main in the same
// transaction as the last of them. A bad segment is quarantined (and said
// once on stderr), never a wall: the others go on. First tries again the
// quarantined segments this cmf may read now. Counts what it quarantined in
// *QUARANTINED when given.
Result<std::int64_t> CatchUp(Repo& repo, MetaLog& log,
                             std::int64_t* quarantined) {
  Store& store = repo.store();
  std::int64_t ingested = 0;
  CMF_ASSIGN_OR_RETURN(std::vector<Store::Retried> retried,
                       store.RetryQuarantined());
  for (const Store::Retried& r : retried) {
    if (r.outcome.kind == Store::IngestOutcome::Kind::kApplied) {
      ++ingested;
    } else {
      WarnQuarantined(r.segment.site, r.segment.hash, r.segment.path,
                      r.outcome.reason, r.outcome.needs_format);
      if (quarantined) ++*quarantined;
    }
  }
  CMF_ASSIGN_OR_RETURN(std::string tip, log.Tip());
  CMF_ASSIGN_OR_RETURN(std::string done, store.IngestedTip());
  if (tip == done) return ingested;
  // Segments go in by batches of transactions: one flush per batch, and a
  // failure rolls back only the batch it happens in (ingest is idempotent).
  // Inside a batch each segment is its own savepoint, so a bad one is rolled
  // back alone.
  constexpr int kBatch = 256;
  int in_batch = 0;
  CMF_RETURN_IF_ERROR(store.BeginBatch());
  Status walked = log.ForEachNewEntry(
      tip, {done}, [&](const MetaLog::Entry& entry) -> Status {
        if (in_batch == kBatch) {
          CMF_RETURN_IF_ERROR(store.EndBatch(/*commit=*/true));
          CMF_RETURN_IF_ERROR(store.BeginBatch());
          in_batch = 0;
        }
        ++in_batch;
        if (!entry.problem.empty()) {
          const std::string hash =
              entry.hash.empty() ? data::HashBytes(entry.text) : entry.hash;
          // The same text at a segment's path is fine: nothing to say.
          CMF_ASSIGN_OR_RETURN(bool known, store.HasSegment(hash));
          if (known) return Status::Ok();
          CMF_ASSIGN_OR_RETURN(
              bool first, store.QuarantineFile(entry.path, entry.site, hash,
                                               entry.text, entry.problem));
          if (first) {
            WarnQuarantined("", "", entry.path, entry.problem, 0);
            if (quarantined) ++*quarantined;
          }
          return Status::Ok();
        }
        CMF_ASSIGN_OR_RETURN(
            Store::IngestOutcome outcome,
            store.IngestSegment(entry.hash, entry.text, entry.site));
        if (outcome.kind == Store::IngestOutcome::Kind::kApplied) ++ingested;
        if (outcome.first_time) {
          WarnQuarantined(entry.site, entry.hash, entry.path, outcome.reason,
                          outcome.needs_format);
          if (quarantined) ++*quarantined;
        }
        return Status::Ok();
      });
  if (walked.ok()) walked = store.SetIngestedTip(tip);
  Status ended = store.EndBatch(/*commit=*/walked.ok());
  CMF_RETURN_IF_ERROR(walked);
  CMF_RETURN_IF_ERROR(ended);
  return ingested;
}

// Fetches the remote's log, merges it into main and ingests what it brought
// (the part push and pull share).
Status FetchAndMerge(Repo& repo, MetaLog& log, const RemoteSpec& remote,
                     const Endpoints& ends, SyncReport* report,
                     std::string* remote_tip) {
  GitTransferStats stats;
  const std::string tracking = "refs/remotes/" + remote.name + "/main";
  CMF_ASSIGN_OR_RETURN(*remote_tip, log.Fetch(ends.git_url, tracking, &stats));
  report->metadata_bytes_received += stats.bytes;
  data::CrashPoint("pull:fetched");
  CMF_ASSIGN_OR_RETURN(std::string ours, log.Tip());
  CMF_ASSIGN_OR_RETURN(std::int64_t incoming, log.CountNew(*remote_tip, ours));
  report->commits_received += incoming;
  CMF_ASSIGN_OR_RETURN(
      MetaLog::Merged merged,
      log.Merge(*remote_tip, "Merge the log of " + remote.name));
  if (merged.kind != MetaLog::MergeKind::kUpToDate) {
    report->merge = ShortMerge(merged.kind);
  }
  data::CrashPoint("pull:merged");
  CMF_ASSIGN_OR_RETURN(std::int64_t n,
                       CatchUp(repo, log, &report->segments_quarantined));
  report->segments_ingested += n;
  data::CrashPoint("pull:ingested");
  return Status::Ok();
}

Result<MetaLog> OpenLog(const Repo& repo) {
  return MetaLog::Open(repo.cmf_dir() / "log.git");
}

// Takes .cmf/log.lock: one cmf process at a time changes the log. Every
// writer of the log holds it, so a lock file of git's own found then (a ref's
// `*.lock`, left by a process killed while it moved that ref) belongs to
// nobody alive; it would refuse every later update of the ref, and goes.
Result<FileLock> LockLog(const Repo& repo) {
  CMF_ASSIGN_OR_RETURN(FileLock lock,
                       FileLock::Acquire(repo.cmf_dir() / "log.lock"));
  const fs::path git_dir = repo.cmf_dir() / "log.git";
  std::error_code ec;
  for (const char* name : {"HEAD.lock", "packed-refs.lock"})
    fs::remove(git_dir / name, ec);
  for (auto it = fs::recursive_directory_iterator(git_dir / "refs", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->path().extension() == ".lock" && it->is_regular_file(ec)) {
      fs::remove(it->path(), ec);
    }
  }
  return lock;
}

// With the push lock of a remote's log on a path held, removes the lock of
// its `main` that a push killed while it moved it left behind (else every
// later push fails: "kept moving"). A git process that pushes there without
// that lock (over ssh) and loses its lock so fails once and is retried; it
// never loses an update, as cmf moves `main` by compare-and-swap.
void RemoveStaleRemoteMainLock(const Endpoints& ends) {
  if (data::UrlScheme(ends.git_url) != "file") return;
  std::error_code ec;
  fs::remove(fs::path(data::FileUrlPath(ends.git_url)) / "refs" / "heads" /
                 "main.lock",
             ec);
}

// Objects that a pull or get found damaged in an object store:
// .cmf/suspect-objects, one "STORE-ID HASH" a line (doc/formats.md). A push to
// that store reads them back and replaces those still damaged.
fs::path SuspectsFile(const Repo& repo) {
  return repo.cmf_dir() / "suspect-objects";
}

// The objects noted as damaged in the store STORE_ID.
std::set<std::string> Suspects(const Repo& repo, const std::string& store_id) {
  std::set<std::string> out;
  std::ifstream in(SuspectsFile(repo));
  std::string id, hash;
  while (in >> id >> hash) {
    if (id == store_id && data::IsSha256Hex(hash)) out.insert(hash);
  }
  return out;
}

// Notes HASH as damaged in the store STORE_ID (one line appended: a write
// shorter than PIPE_BUF with O_APPEND is never torn). Best effort: a note
// lost costs only a check that a push --data all makes anyway.
void NoteSuspect(const Repo& repo, const std::string& store_id,
                 const std::string& hash) {
  if (store_id.empty() || Suspects(repo, store_id).count(hash)) return;
  int fd = ::open(SuspectsFile(repo).c_str(),
                  O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string line = store_id + " " + hash + "\n";
  [[maybe_unused]] ssize_t n = ::write(fd, line.data(), line.size());
  ::close(fd);
}

// Drops the notes of CLEARED in the store STORE_ID (checked good, or
// replaced), rewriting the file atomically.
Status ForgetSuspects(const Repo& repo, const std::string& store_id,
                      const std::set<std::string>& cleared) {
  if (cleared.empty()) return Status::Ok();
  std::ifstream in(SuspectsFile(repo));
  std::string kept, id, hash;
  while (in >> id >> hash) {
    if (id == store_id && cleared.count(hash)) continue;
    kept += id + " " + hash + "\n";
  }
  in.close();
  return data::WriteFileAtomically(SuspectsFile(repo), kept);
}

// DAMAGED holds, in each path, the hash of the artifact its object belongs
// to: replaces it with a path that artifact was seen at (only when something
// was damaged: it lists every artifact).
Status NamePaths(Repo& repo, std::vector<SyncReport::Damaged>& damaged) {
  if (damaged.empty()) return Status::Ok();
  CMF_ASSIGN_OR_RETURN(auto artifacts, repo.store().ListArtifacts());
  std::map<std::string, std::string> path_of;
  for (const auto& a : artifacts) path_of[a.hash] = a.path;
  for (SyncReport::Damaged& d : damaged) {
    auto it = path_of.find(d.path);
    d.path = it == path_of.end() ? "" : it->second;
  }
  return Status::Ok();
}

// Downloads the objects HASHES from T (the store STORE_ID) into the cache,
// verifying each. Corruption, at the first object whose bytes do not match
// its name (it is not stored, but noted, and added to REPORT's damaged with
// ARTIFACT, for NamePaths); NotFound when T lacks one.
Status Download(Repo& repo, data::ObjectTransport& t,
                const std::string& store_id,
                const std::vector<std::string>& hashes,
                const std::string& artifact, data::Progress* progress,
                SyncReport* report) {
  const data::ObjectCache& cache = repo.objects();
  for (const std::string& h : hashes) {
    if (cache.Has(h)) continue;
    std::uint64_t bytes = 0;
    Status st = cache.Import(h, [&](int fd) -> Status {
      CMF_RETURN_IF_ERROR(t.Get(h, fd, progress));
      off_t end = ::lseek(fd, 0, SEEK_END);
      bytes = end > 0 ? static_cast<std::uint64_t>(end) : 0;
      return Status::Ok();
    });
    if (st.code() == Code::kCorruption) {
      NoteSuspect(repo, store_id, h);
      report->damaged.push_back({h, artifact});
    }
    CMF_RETURN_IF_ERROR(st);
    if (progress) progress->Add(1, 0);
    report->objects_received += 1;
    report->bytes_received += bytes;
  }
  return Status::Ok();
}

}  // namespace cmf::sync_internal
