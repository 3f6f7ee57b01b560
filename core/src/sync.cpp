#include "cmf/sync.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "cmf/clock.h"
#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "cmf/data/progress.h"
#include "cmf/data/scan.h"
#include "cmf/data/transport.h"
#include "cmf/metalog.h"
#include "cmf/segment.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

constexpr std::uint64_t kDefaultMaxSize = 64ull << 20;

// An exclusive flock held for a scope.
class FileLock {
 public:
  static Result<FileLock> Acquire(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Status::IOError("cannot open lock '" + path.string() +
                             "': " + std::strerror(errno));
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::IOError("cannot lock '" + path.string() +
                             "': " + std::strerror(err));
    }
    return FileLock(fd);
  }
  // As Acquire, for a lock on a shared remote: opened read-only when it
  // exists (anyone may lock a file they can read), made group-writable, and
  // nullopt (no lock) where the file system has no flock, since the remote's
  // compare-and-swap keeps pushes safe without it.
  static Result<std::optional<FileLock>> AcquireIfSupported(
      const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      mode_t mask = ::umask(0);
      ::umask(mask);
      fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC,
                  0666 & ~(mask & 0002));
    }
    if (fd < 0) {
      if (errno == EACCES || errno == EROFS) return std::optional<FileLock>();
      return Status::IOError("cannot open lock '" + path.string() +
                             "': " + std::strerror(errno));
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      if (err == ENOLCK || err == ENOSYS || err == EOPNOTSUPP) {
        return std::optional<FileLock>();
      }
      return Status::IOError("cannot lock '" + path.string() +
                             "': " + std::strerror(err));
    }
    return std::optional<FileLock>(FileLock(fd));
  }
  FileLock(FileLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

bool ValidRemoteName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
           c == '_' || c == '.';
  });
}

// Where a remote's log and objects are.
struct Endpoints {
  std::string git_url;
  std::string data_url;    // empty: this remote holds no objects
  fs::path lock;           // a lock file beside a local log; empty otherwise
  bool workspace = false;  // the remote is a workspace with its own store
};

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
  CMF_ASSIGN_OR_RETURN(std::string id, t.CreateSmall("store-id", RandomHex(8)));
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  if (!IsValidSiteId(id)) {
    return Status::Corruption("the object store '" + t.Describe() +
                              "' has a bad store-id");
  }
  return id;
}

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
                             std::int64_t* quarantined = nullptr) {
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
  fs::path temp = SuspectsFile(repo).string() + ".new";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << kept;
    if (!out.flush()) {
      return Status::IOError("cannot write '" + temp.string() + "'");
    }
  }
  if (::rename(temp.c_str(), SuspectsFile(repo).c_str()) != 0) {
    return Status::IOError("cannot replace '" + SuspectsFile(repo).string() +
                           "': " + std::strerror(errno));
  }
  return Status::Ok();
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

// Decides about every artifact the store wants (named by segments from other
// sites): fetches, by POLICY, the bytes the remote's object store holds, and
// counts the rest as left where they are. Each decision is recorded as it is
// made, so a pull cut short goes on where it stopped.
Status PullData(Repo& repo, const std::string& name, const Endpoints& ends,
                DataPolicy policy, std::uint64_t max_size, bool progress_on,
                SyncReport* report) {
  Store& store = repo.store();
  const data::ObjectCache& cache = repo.objects();
  CMF_ASSIGN_OR_RETURN(std::vector<ArtifactRef> wanted, store.Wanted());
  std::unique_ptr<data::ObjectTransport> t;
  std::string store_id;
  bool no_store = ends.data_url.empty();
  data::Progress progress("pulling objects", progress_on);
  for (const ArtifactRef& a : wanted) {
    CMF_ASSIGN_OR_RETURN(auto objects, ObjectsOf(cache, a.hash, a.kind));
    bool complete =
        std::all_of(objects.begin(), objects.end(),
                    [&](const std::string& o) { return cache.Has(o); });
    if (!complete && (no_store || !Wanted(policy, a.kind, a.size, max_size))) {
      ++report->objects_left;
      CMF_RETURN_IF_ERROR(store.DropWanted(a.hash));
      continue;
    }
    if (!complete) {
      if (!t) {
        Result<std::unique_ptr<data::ObjectTransport>> opened =
            data::OpenTransport(ends.data_url);
        if (!opened.ok() && opened.status().code() == Code::kNotFound) {
          no_store = true;  // a store with no objects yet
          ++report->objects_left;
          CMF_RETURN_IF_ERROR(store.DropWanted(a.hash));
          continue;
        }
        CMF_RETURN_IF_ERROR(opened.status());
        t = std::move(opened).value();
        CMF_ASSIGN_OR_RETURN(store_id, StoreId(*t));
        CMF_RETURN_IF_ERROR(RememberStoreId(repo, name, store_id));
      }
      // An object whose bytes do not match its name is not fetched, and the
      // others go on (Download notes it for a push that repairs the store).
      auto missing = [](const Status& st) {
        return st.code() == Code::kNotFound || st.code() == Code::kCorruption;
      };
      Status got = Status::Ok();
      if (!cache.Has(a.hash)) {
        CMF_ASSIGN_OR_RETURN(bool there, t->Has(a.hash));
        got = there ? Download(repo, *t, store_id, {a.hash}, a.hash, &progress,
                               report)
                    : Status::NotFound("not there");
      }
      if (got.ok()) {
        // A directory's files come after its manifest, which names them.
        CMF_ASSIGN_OR_RETURN(objects, ObjectsOf(cache, a.hash, a.kind));
        for (const std::string& o : objects) {
          Status one =
              Download(repo, *t, store_id, {o}, a.hash, &progress, report);
          if (!one.ok() && !missing(one)) return one;
          if (!one.ok()) got = one;
        }
      }
      if (got.code() == Code::kCorruption) {
        // Still wanted: the next pull tries again (a push may have repaired
        // the store by then), and cmf get can fetch it from elsewhere.
        ++report->objects_left;
        continue;
      }
      if (missing(got)) {
        ++report->objects_left;  // not (all) there: cmf get, later or elsewhere
      } else {
        CMF_RETURN_IF_ERROR(got);
        CMF_RETURN_IF_ERROR(store.AddLocation(a.hash, repo.site()));
        CMF_RETURN_IF_ERROR(store.AddLocation(a.hash, store_id));
      }
    }
    CMF_RETURN_IF_ERROR(store.DropWanted(a.hash));
  }
  return Status::Ok();
}

}  // namespace

// --- commit ---

Result<CommitReport> CommitMetadata(Repo& repo, const std::string& message) {
  CMF_ASSIGN_OR_RETURN(FileLock lock, LockLog(repo));
  CMF_ASSIGN_OR_RETURN(MetaLog log, OpenLog(repo));
  // What reached the log without reaching the store goes in first.
  CMF_RETURN_IF_ERROR(CatchUp(repo, log).status());
  CommitReport report;
  // A run whose process died is sealed as interrupted, not shipped to other
  // sites as running forever.
  CMF_ASSIGN_OR_RETURN(auto sealed, repo.store().SealInterrupted());
  for (const auto& run : sealed) report.interrupted.push_back(run.id);
  Store::CommitOptions options;
  const data::ObjectCache& cache = repo.objects();
  options.held = [&](const std::string& hash) { return cache.Has(hash); };
  CMF_ASSIGN_OR_RETURN(
      Store::Segment segment,
      repo.store().CommitPending(
          options, [&](const Store::Segment& s) -> Status {
            std::string text = message;
            if (text.empty()) {
              text = "Record " + std::to_string(s.facts) + " facts";
            }
            CMF_ASSIGN_OR_RETURN(
                report.commit,
                log.CommitSegment(repo.site(), s.hash, s.text, text));
            data::CrashPoint("commit:logged");  // in the log, not the store
            return repo.store().SetIngestedTip(report.commit);
          }));
  report.segment = segment.hash;
  report.facts = segment.facts;
  return report;
}

Status InitBare(const fs::path& path) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_empty(path, ec)) {
    return Status::AlreadyExists("'" + path.string() +
                                 "' exists and is not empty");
  }
  fs::path parent = fs::absolute(path, ec).parent_path();
  fs::create_directories(parent, ec);
  // Built under a temporary name beside PATH, then renamed: all or nothing.
  std::string pattern = (parent / ".cmf-bare-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Status::IOError("cannot create '" + path.string() +
                           "': " + std::strerror(errno));
  }
  fs::path temp = pattern;
  ::chmod(temp.c_str(), 0775);
  auto fail = [&](Status st) {
    fs::remove_all(temp, ec);
    return st;
  };
  const std::string id = RandomHex(8);
  {
    Result<Config> config = Config::Open(temp / "config");
    if (!config.ok()) return fail(config.status());
    Status st = config->Set("core.repositoryformatversion", "1");
    if (st.ok()) st = config->Set("core.bare", "true");
    if (st.ok()) st = config->Set("core.site", id);
    if (!st.ok()) return fail(st);
  }
  Status st = MetaLog::Create(temp / "log.git");
  if (!st.ok()) return fail(st);
  fs::create_directories(temp / "objects", ec);
  if (ec)
    return fail(Status::IOError("cannot create objects: " + ec.message()));
  {
    Result<std::unique_ptr<data::ObjectTransport>> t =
        data::OpenTransport((temp / "objects").string());
    if (!t.ok()) return fail(t.status());
    Result<std::string> made = (*t)->CreateSmall("store-id", id);
    if (!made.ok()) return fail(made.status());
  }
  if (fs::exists(path, ec)) fs::remove(path, ec);  // the empty folder
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail(Status::IOError("cannot create '" + path.string() +
                                "': " + std::strerror(errno)));
  }
  return Status::Ok();
}

// --- remotes ---

Result<std::vector<RemoteSpec>> ListRemotes(const Config& config) {
  CMF_ASSIGN_OR_RETURN(auto entries, config.List());
  std::map<std::string, RemoteSpec> by_name;
  for (const auto& [key, value] : entries) {
    if (key.rfind("remote.", 0) != 0) continue;
    auto dot = key.rfind('.');
    if (dot <= 7) continue;
    std::string name = key.substr(7, dot - 7);
    std::string field = key.substr(dot + 1);
    RemoteSpec& r = by_name[name];
    r.name = name;
    if (field == "url") r.url = value;
    if (field == "metadata") r.metadata = value;
    if (field == "data") r.data = value;
  }
  std::vector<RemoteSpec> out;
  for (auto& [name, r] : by_name) {
    if (!r.url.empty() || !r.metadata.empty()) out.push_back(std::move(r));
  }
  return out;
}

Result<RemoteSpec> FindRemote(const Config& config, const std::string& name) {
  CMF_ASSIGN_OR_RETURN(auto all, ListRemotes(config));
  for (auto& r : all) {
    if (r.name == name) return r;
  }
  std::string known;
  for (const auto& r : all) known += (known.empty() ? "" : ", ") + r.name;
  return Status::NotFound("no remote '" + name + "'" +
                          (known.empty() ? " (none is configured; add one with "
                                           "'cmf remote add NAME URL')"
                                         : " (remotes: " + known + ")"));
}

Status AddRemote(Config& config, const RemoteSpec& r) {
  if (!ValidRemoteName(r.name)) {
    return Status::InvalidArgument(
        "'" + r.name +
        "' is not a valid remote name (letters, digits, '-', '_', '.')");
  }
  if (r.url.empty() && r.metadata.empty()) {
    return Status::InvalidArgument("a remote needs a URL, or --metadata URL");
  }
  for (const std::string* url : {&r.url, &r.metadata, &r.data}) {
    if (url->empty()) continue;
    if (data::UrlHasPassword(*url)) {
      return Status::InvalidArgument(
          "'" + data::RedactUrl(*url) +
          "' carries a password; cmf stores none: use an ssh key or agent");
    }
  }
  for (const std::string* url : {&r.url, &r.data}) {
    if (url->empty()) continue;
    std::string scheme = data::UrlScheme(*url);
    if (scheme != "file" && scheme != "ssh") {
      // Only a registered transport can hold objects.
      Result<std::unique_ptr<data::ObjectTransport>> t =
          data::OpenTransport(*url);
      if (!t.ok() && t.status().code() == Code::kInvalidArgument)
        return t.status();
    }
  }
  if (FindRemote(config, r.name).ok()) {
    return Status::AlreadyExists("the remote '" + r.name + "' exists already");
  }
  const std::string prefix = "remote." + r.name + ".";
  if (!r.url.empty())
    CMF_RETURN_IF_ERROR(config.Set(prefix + "url", AbsoluteIfPath(r.url)));
  if (!r.metadata.empty()) {
    CMF_RETURN_IF_ERROR(
        config.Set(prefix + "metadata", AbsoluteIfPath(r.metadata)));
  }
  if (!r.data.empty()) {
    CMF_RETURN_IF_ERROR(config.Set(prefix + "data", AbsoluteIfPath(r.data)));
  }
  return Status::Ok();
}

Status RemoveRemote(Config& config, const std::string& name) {
  CMF_RETURN_IF_ERROR(FindRemote(config, name).status());
  CMF_ASSIGN_OR_RETURN(auto entries, config.List());
  const std::string prefix = "remote." + name + ".";
  for (const auto& [key, value] : entries) {
    if (key.rfind(prefix, 0) == 0 &&
        key.find('.', prefix.size()) == std::string::npos) {
      Status st = config.Unset(key);
      if (!st.ok() && st.code() != Code::kNotFound) return st;
    }
  }
  return Status::Ok();
}

Result<DataPolicy> ParseDataPolicy(const std::string& text) {
  if (text == "relevant") return DataPolicy::kRelevant;
  if (text == "all") return DataPolicy::kAll;
  if (text == "none") return DataPolicy::kNone;
  return Status::InvalidArgument(
      "the data policy must be 'relevant', 'all' or "
      "'none', not '" +
      text + "'");
}

Result<std::uint64_t> ParseSize(const std::string& text) {
  std::size_t used = 0;
  unsigned long long n = 0;
  try {
    n = std::stoull(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string suffix = used ? text.substr(used) : "";
  std::uint64_t unit = 1;
  if (suffix == "")
    unit = 1;
  else if (suffix == "K" || suffix == "k" || suffix == "KiB")
    unit = 1ull << 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    unit = 1ull << 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB")
    unit = 1ull << 30;
  else
    used = 0;
  if (used == 0 || text.empty() || text[0] == '-') {
    return Status::InvalidArgument(
        "'" + text +
        "' is not a size (a number of bytes, or with "
        "K, M or G)");
  }
  return static_cast<std::uint64_t>(n) * unit;
}

// --- push, pull, fetch ---

Result<SyncReport> Fetch(Repo& repo, const std::string& name,
                         const SyncOptions&) {
  CMF_ASSIGN_OR_RETURN(RemoteSpec remote, FindRemote(repo.config(), name));
  CMF_ASSIGN_OR_RETURN(Endpoints ends, Resolve(repo, remote));
  CMF_ASSIGN_OR_RETURN(FileLock lock, LockLog(repo));
  CMF_ASSIGN_OR_RETURN(MetaLog log, OpenLog(repo));
  SyncReport report;
  report.remote = name;
  report.tries = 1;
  GitTransferStats stats;
  CMF_ASSIGN_OR_RETURN(
      std::string tip,
      log.Fetch(ends.git_url, "refs/remotes/" + name + "/main", &stats));
  report.metadata_bytes_received = stats.bytes;
  CMF_ASSIGN_OR_RETURN(std::string ours, log.Tip());
  CMF_ASSIGN_OR_RETURN(report.commits_received, log.CountNew(tip, ours));
  return report;
}

Result<SyncReport> Pull(Repo& repo, const std::string& name,
                        const SyncOptions& options) {
  CMF_ASSIGN_OR_RETURN(RemoteSpec remote, FindRemote(repo.config(), name));
  CMF_ASSIGN_OR_RETURN(Endpoints ends, Resolve(repo, remote));
  CMF_ASSIGN_OR_RETURN(DataPolicy policy,
                       PolicyFor(repo, options, "pull.data"));
  CMF_ASSIGN_OR_RETURN(std::uint64_t max_size, MaxSize(repo));
  SyncReport report;
  report.remote = name;
  report.tries = 1;
  CMF_ASSIGN_OR_RETURN(FileLock lock, LockLog(repo));
  CMF_ASSIGN_OR_RETURN(MetaLog log, OpenLog(repo));
  std::string tip;
  CMF_RETURN_IF_ERROR(FetchAndMerge(repo, log, remote, ends, &report, &tip));
  CMF_RETURN_IF_ERROR(
      PullData(repo, name, ends, policy, max_size, options.progress, &report));
  CMF_RETURN_IF_ERROR(NamePaths(repo, report.damaged));
  data::CrashPoint("pull:data");
  return report;
}

Result<SyncReport> Push(Repo& repo, const std::string& name,
                        const SyncOptions& options) {
  CMF_ASSIGN_OR_RETURN(RemoteSpec remote, FindRemote(repo.config(), name));
  CMF_ASSIGN_OR_RETURN(Endpoints ends, Resolve(repo, remote));
  if (ends.workspace) {
    // As git refuses to push into a checked-out branch: that workspace's
    // store would not see what arrived in its log.
    return Status::InvalidArgument(
        "the remote '" + name +
        "' is a workspace, which takes in new records "
        "only by pulling; push to a bare repository (cmf init --bare) or pull "
        "from there instead");
  }
  CMF_ASSIGN_OR_RETURN(DataPolicy policy,
                       PolicyFor(repo, options, "push.data"));
  CMF_ASSIGN_OR_RETURN(std::uint64_t max_size, MaxSize(repo));
  SyncReport report;
  report.remote = name;
  const data::ObjectCache& cache = repo.objects();
  std::unique_ptr<data::ObjectTransport> transport;
  std::string store_id;
  std::mt19937 jitter(std::random_device{}());

  for (int attempt = 1;; ++attempt) {
    report.tries = attempt;
    report.objects_left = 0;  // counted again by each try
    // This site's lock first (it may wait on a long local run), then the
    // remote's, so that a site busy here never holds up the others' pushes.
    CMF_ASSIGN_OR_RETURN(FileLock lock, LockLog(repo));
    std::optional<FileLock> remote_lock;
    if (!ends.lock.empty()) {
      CMF_ASSIGN_OR_RETURN(std::optional<FileLock> l,
                           FileLock::AcquireIfSupported(ends.lock));
      if (l) remote_lock.emplace(std::move(*l));
    }
    if (remote_lock) RemoveStaleRemoteMainLock(ends);
    CMF_ASSIGN_OR_RETURN(MetaLog log, OpenLog(repo));
    std::string remote_tip;
    CMF_RETURN_IF_ERROR(
        FetchAndMerge(repo, log, remote, ends, &report, &remote_tip));

    // The data the commits the remote lacks need, by the policy.
    CMF_ASSIGN_OR_RETURN(std::string ours, log.Tip());
    std::set<std::string> named;
    CMF_RETURN_IF_ERROR(log.ForEachNewSegment(
        ours, {remote_tip},
        [&](const std::string&, const std::string& text) -> Status {
          // A segment that is not one (quarantined) names nothing to send.
          Result<std::vector<std::string>> names = SegmentArtifacts(text);
          if (names.ok()) named.insert(names->begin(), names->end());
          return Status::Ok();
        }));
    if (options.data == DataPolicy::kAll) {
      // Asked for all the data by name: every artifact whose bytes are here,
      // not only those of new commits (an earlier push may have left them).
      CMF_ASSIGN_OR_RETURN(auto artifacts, repo.store().ListArtifacts());
      for (const auto& a : artifacts) named.insert(a.hash);
    }
    // The objects to send: files first, then the manifests of directories
    // (each only once its files are whole there).
    std::vector<data::ObjectTransport::PutItem> items, manifests;
    struct Going {
      std::string hash;
      std::vector<std::string> objects;
    };
    std::vector<Going> going;  // artifacts whose bytes are (to be) there
    std::set<std::string> queued;
    std::optional<std::set<std::string>> suspects;  // read once a store is open
    std::set<std::string> cleared;
    const bool check_all = options.data == DataPolicy::kAll;
    report.damaged.clear();  // found again by each try
    if (policy != DataPolicy::kNone && !ends.data_url.empty()) {
      for (const std::string& h : named) {
        Result<ArtifactRef> a = repo.store().GetArtifact(h);
        if (!a.ok() && a.status().code() == Code::kNotFound) continue;
        CMF_RETURN_IF_ERROR(a.status());
        if (!cache.Has(h)) continue;  // its bytes are elsewhere already
        if (!Wanted(policy, a->kind, a->size, max_size)) {
          ++report.objects_left;
          continue;
        }
        if (!transport) {
          CMF_ASSIGN_OR_RETURN(transport, data::OpenTransport(ends.data_url));
          CMF_ASSIGN_OR_RETURN(store_id, StoreId(*transport));
          CMF_RETURN_IF_ERROR(RememberStoreId(repo, name, store_id));
        }
        if (!suspects) suspects = Suspects(repo, store_id);
        CMF_ASSIGN_OR_RETURN(auto objects, ObjectsOf(cache, h, a->kind));
        if (!std::all_of(objects.begin(), objects.end(),
                         [&](const std::string& o) { return cache.Has(o); })) {
          continue;  // not whole here: never said to be whole there
        }
        for (const std::string& o : objects) {
          if (!queued.insert(o).second) continue;
          CMF_ASSIGN_OR_RETURN(bool there, transport->Has(o));
          bool replace = false;
          if (there) {
            // A copy there is trusted, unless all the data was asked for by
            // name or a pull found it damaged: then it is read back.
            bool suspect = suspects->count(o) > 0;
            if (!check_all && !suspect) continue;
            Result<bool> good = transport->Verify(o);
            if (!good.ok() && good.status().code() != Code::kNotFound)
              return good.status();
            if (good.ok() && *good) {
              if (suspect) cleared.insert(o);
              continue;
            }
            replace = good.ok();
          }
          std::error_code ec;
          std::uint64_t size = fs::file_size(cache.PathOf(o), ec);
          bool manifest = a->kind == ArtifactKind::kDirectory && o == h;
          (manifest ? manifests : items)
              .push_back({o, cache.PathOf(o), ec ? 0 : size, replace});
        }
        going.push_back({h, std::move(objects)});
      }
      // What a pull or get found damaged in this store is checked whatever
      // this push names, and replaced with good bytes from here.
      std::error_code ec;
      if (!suspects && fs::file_size(SuspectsFile(repo), ec) > 0 && !ec) {
        if (!transport) {
          CMF_ASSIGN_OR_RETURN(transport, data::OpenTransport(ends.data_url));
          CMF_ASSIGN_OR_RETURN(store_id, StoreId(*transport));
          CMF_RETURN_IF_ERROR(
              repo.config().Set("remote." + name + ".store-id", store_id));
        }
        suspects = Suspects(repo, store_id);
      }
      for (const std::string& o :
           suspects ? *suspects : std::set<std::string>{}) {
        if (queued.count(o) || !cache.Has(o)) continue;
        queued.insert(o);
        Result<bool> good = transport->Verify(o);
        if (!good.ok() && good.status().code() != Code::kNotFound)
          return good.status();
        if (good.ok() && *good) {
          cleared.insert(o);
          continue;
        }
        std::uint64_t size = fs::file_size(cache.PathOf(o), ec);
        items.push_back({o, cache.PathOf(o), ec ? 0 : size, good.ok()});
      }
    }
    std::vector<std::string> damaged;
    std::set<std::string> not_sent;  // damaged, or a manifest held back
    auto put = [&](std::vector<data::ObjectTransport::PutItem>& batch,
                   data::Progress& progress) -> Status {
      if (batch.empty()) return Status::Ok();
      std::size_t before = damaged.size();
      CMF_RETURN_IF_ERROR(transport->Put(batch, &progress, &damaged));
      std::set<std::string> bad(damaged.begin() + before, damaged.end());
      not_sent.insert(bad.begin(), bad.end());
      for (const auto& item : batch) {
        if (bad.count(item.hash)) continue;
        report.bytes_sent += item.size;
        report.objects_sent += 1;
        if (item.replace) report.objects_repaired += 1;
        if (suspects && suspects->count(item.hash)) cleared.insert(item.hash);
      }
      return Status::Ok();
    };
    if (!items.empty() || !manifests.empty()) {
      data::Progress progress("pushing objects", options.progress);
      CMF_RETURN_IF_ERROR(put(items, progress));
      // A manifest there always has its files.
      std::vector<data::ObjectTransport::PutItem> whole;
      for (auto& m : manifests) {
        auto g = std::find_if(going.begin(), going.end(),
                              [&](const Going& x) { return x.hash == m.hash; });
        bool files_there = g == going.end() ||
                           std::none_of(g->objects.begin(), g->objects.end(),
                                        [&](const std::string& o) {
                                          return not_sent.count(o);
                                        });
        if (files_there) {
          whole.push_back(std::move(m));
        } else {
          not_sent.insert(m.hash);
        }
      }
      CMF_RETURN_IF_ERROR(put(whole, progress));
    }
    CMF_RETURN_IF_ERROR(ForgetSuspects(repo, store_id, cleared));
    // The damaged ones, each named once, with the artifact it belongs to.
    for (const std::string& d :
         std::set<std::string>(damaged.begin(), damaged.end())) {
      std::string artifact;
      for (const Going& g : going) {
        if (std::count(g.objects.begin(), g.objects.end(), d)) {
          artifact = g.hash;
          break;
        }
      }
      report.damaged.push_back({d, artifact});
    }
    CMF_RETURN_IF_ERROR(NamePaths(repo, report.damaged));
    // Locations only for the artifacts whose bytes are all there now.
    std::vector<std::string> sent_artifacts;
    for (const Going& g : going) {
      if (std::none_of(g.objects.begin(), g.objects.end(),
                       [&](const std::string& o) { return not_sent.count(o); }))
        sent_artifacts.push_back(g.hash);
    }
    data::CrashPoint("push:objects-sent");
    if (!sent_artifacts.empty()) {
      // Say where the bytes now are, in the same push.
      for (const std::string& h : sent_artifacts) {
        CMF_RETURN_IF_ERROR(repo.store().AddLocation(h, store_id));
      }
      Store::CommitOptions only_locations;
      only_locations.locations_only = true;
      CMF_RETURN_IF_ERROR(
          repo.store()
              .CommitPending(only_locations,
                             [&](const Store::Segment& s) -> Status {
                               CMF_ASSIGN_OR_RETURN(
                                   std::string commit,
                                   log.CommitSegment(repo.site(), s.hash,
                                                     s.text,
                                                     "Record where " + name +
                                                         " holds bytes"));
                               return repo.store().SetIngestedTip(commit);
                             })
              .status());
      CMF_ASSIGN_OR_RETURN(ours, log.Tip());
    }
    if (ours.empty() || ours == remote_tip) {
      report.commits_sent = 0;
      break;  // nothing to send
    }
    CMF_ASSIGN_OR_RETURN(report.commits_sent, log.CountNew(ours, remote_tip));
    GitTransferStats stats;
    Status pushed = log.Push(ends.git_url, &stats);
    report.metadata_bytes_sent += stats.bytes;
    if (pushed.ok()) {
      data::CrashPoint("push:metadata-sent");
      break;
    }
    if (pushed.code() != Code::kConflict || attempt >= options.max_tries) {
      if (pushed.code() == Code::kConflict) {
        return Status::Conflict(
            "the remote '" + name + "' kept moving; gave up after " +
            std::to_string(attempt) + " tries (run cmf push again)");
      }
      return pushed;
    }
    // Someone pushed first: fetch, merge and try again, a little later.
    std::uniform_int_distribution<int> wait(10, 60 * attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait(jitter)));
  }
  return report;
}

// --- whereis, get ---

namespace {

// Resolves TARGET to an artifact hash: a workspace path first (when one of
// that name is recorded), else a hash or prefix.
Result<std::string> ResolveTarget(Repo& repo, const std::string& target,
                                  std::string* workspace_path) {
  std::error_code ec;
  fs::path abs = fs::absolute(target, ec).lexically_normal();
  fs::path rel = abs.lexically_relative(repo.workspace());
  bool inside = !rel.empty() && *rel.begin() != ".." && *rel.begin() != ".cmf";
  if (inside) {
    Result<std::string> at = repo.store().ArtifactAtPath(rel.string());
    if (at.ok()) {
      if (workspace_path) *workspace_path = rel.string();
      return at;
    }
  }
  Result<std::string> hash = repo.store().ResolveArtifact(target);
  if (hash.ok()) return hash;
  if (hash.status().code() == Code::kInvalidArgument &&
      target.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Status::NotFound("no record names '" + target +
                            "' (neither a recorded path nor an artifact hash)");
  }
  return hash;
}

}  // namespace

Result<Whereabouts> WhereIs(Repo& repo, const std::string& target) {
  Whereabouts w;
  CMF_ASSIGN_OR_RETURN(w.hash, ResolveTarget(repo, target, &w.path));
  w.here = repo.objects().Has(w.hash);
  CMF_ASSIGN_OR_RETURN(auto ids, repo.store().Locations(w.hash));
  std::map<std::string, std::string> remotes;
  if (auto entries = repo.config().List(); entries.ok()) {
    for (const auto& [key, value] : *entries) {
      const std::string suffix = ".store-id";
      if (key.rfind("remote.", 0) == 0 && key.size() > suffix.size() &&
          key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0) {
        remotes[value] = key.substr(7, key.size() - 7 - suffix.size());
      }
    }
  }
  for (const std::string& id : ids) {
    Whereabouts::Place p;
    p.id = id;
    p.this_site = id == repo.site();
    if (auto it = remotes.find(id); it != remotes.end()) p.remote = it->second;
    if (p.this_site && !w.here) continue;  // it was here once, but went (gc)
    w.places.push_back(p);
  }
  if (w.here && std::none_of(w.places.begin(), w.places.end(),
                             [](const auto& p) { return p.this_site; })) {
    w.places.insert(w.places.begin(), {repo.site(), "", true});
  }
  return w;
}

Result<GetReport> Get(Repo& repo, const std::string& target,
                      const std::optional<std::string>& from,
                      bool progress_on) {
  GetReport report;
  std::string workspace_path;
  CMF_ASSIGN_OR_RETURN(report.hash,
                       ResolveTarget(repo, target, &workspace_path));
  CMF_ASSIGN_OR_RETURN(ArtifactRef artifact,
                       repo.store().GetArtifact(report.hash));
  const data::ObjectCache& cache = repo.objects();

  std::vector<RemoteSpec> candidates;
  if (from) {
    CMF_ASSIGN_OR_RETURN(RemoteSpec r, FindRemote(repo.config(), *from));
    candidates.push_back(r);
  } else {
    CMF_ASSIGN_OR_RETURN(candidates, ListRemotes(repo.config()));
    // Remotes known to hold the bytes first.
    CMF_ASSIGN_OR_RETURN(auto ids, repo.store().Locations(report.hash));
    std::stable_partition(
        candidates.begin(), candidates.end(), [&](const RemoteSpec& r) {
          std::string id =
              repo.config().GetOr("remote." + r.name + ".store-id", "");
          return !id.empty() && std::count(ids.begin(), ids.end(), id) > 0;
        });
  }
  auto complete = [&]() -> Result<bool> {
    CMF_ASSIGN_OR_RETURN(auto objects,
                         ObjectsOf(cache, report.hash, artifact.kind));
    return std::all_of(objects.begin(), objects.end(),
                       [&](const std::string& o) { return cache.Has(o); }) &&
           cache.Has(report.hash);
  };
  CMF_ASSIGN_OR_RETURN(bool done, complete());
  std::string tried;
  Status last;
  for (const RemoteSpec& remote : candidates) {
    if (done) break;
    tried += (tried.empty() ? "" : ", ") + remote.name;
    Result<Endpoints> ends = Resolve(repo, remote);
    if (!ends.ok() || ends->data_url.empty()) {
      last = ends.ok() ? Status::NotFound("no object store") : ends.status();
      continue;
    }
    Result<std::unique_ptr<data::ObjectTransport>> t =
        data::OpenTransport(ends->data_url);
    if (!t.ok()) {
      last = t.status();
      continue;
    }
    SyncReport counts;
    data::Progress progress("getting objects", progress_on);
    Result<bool> there = (*t)->Has(report.hash);
    if (!there.ok() || !*there) {
      last = there.ok() ? Status::NotFound("not there") : there.status();
      continue;
    }
    std::string store_id =
        repo.config().GetOr("remote." + remote.name + ".store-id", "");
    if (store_id.empty()) {
      Result<std::string> id = (*t)->ReadSmall("store-id");
      if (id.ok()) store_id = id->substr(0, id->find_first_of(" \n"));
    }
    // Bytes that do not match their name are not stored; another remote may
    // hold good ones.
    Status st = Download(repo, **t, store_id, {report.hash}, report.hash,
                         &progress, &counts);
    if (st.code() == Code::kCorruption) {
      last = st;
      continue;
    }
    CMF_RETURN_IF_ERROR(st);
    CMF_ASSIGN_OR_RETURN(auto objects,
                         ObjectsOf(cache, report.hash, artifact.kind));
    st =
        Download(repo, **t, store_id, objects, report.hash, &progress, &counts);
    if (st.code() == Code::kCorruption) last = st;
    if (!st.ok() && st.code() != Code::kNotFound &&
        st.code() != Code::kCorruption)
      return st;
    report.objects += counts.objects_received;
    report.bytes += counts.bytes_received;
    report.from = remote.name;
    CMF_ASSIGN_OR_RETURN(done, complete());
  }
  if (!done) {
    if (candidates.empty()) {
      return Status::NotFound("the bytes of " + report.hash.substr(0, 12) +
                              " are not here, and no remote is configured");
    }
    return Status::NotFound("no remote holds the bytes of " +
                            report.hash.substr(0, 12) + " (tried " + tried +
                            (last.ok() ? "" : "; last: " + last.message()) +
                            ")");
  }
  CMF_RETURN_IF_ERROR(repo.store().AddLocation(report.hash, repo.site()));

  // Place the content where the user named it, only inside the workspace and
  // never over an existing file.
  if (!workspace_path.empty()) {
    fs::path rel = fs::path(workspace_path).lexically_normal();
    bool safe = rel.is_relative() && !rel.empty() && *rel.begin() != ".." &&
                *rel.begin() != ".cmf";
    fs::path dest = repo.workspace() / rel;
    std::error_code ec;
    if (safe) {  // and no symlinked folder on the way leads out
      fs::path parent = fs::weakly_canonical(dest.parent_path(), ec);
      fs::path via =
          parent.lexically_relative(fs::weakly_canonical(repo.workspace(), ec));
      safe =
          !ec && !via.empty() && *via.begin() != ".." && *via.begin() != ".cmf";
    }
    if (safe && !fs::exists(fs::symlink_status(dest, ec))) {
      CMF_ASSIGN_OR_RETURN(auto order, data::ParseLinkOrder(repo.config().GetOr(
                                           "cache.link", "auto")));
      if (artifact.kind == ArtifactKind::kDirectory) {
        CMF_ASSIGN_OR_RETURN(std::string manifest,
                             cache.ReadObject(report.hash));
        CMF_ASSIGN_OR_RETURN(auto files, data::ParseManifest(manifest));
        for (const auto& f : files) {
          CMF_RETURN_IF_ERROR(cache.Materialize(f.hash, dest / f.path, order));
        }
      } else {
        CMF_RETURN_IF_ERROR(cache.Materialize(report.hash, dest, order));
      }
      report.placed_at = rel.string();
    }
  }
  return report;
}

}  // namespace cmf
