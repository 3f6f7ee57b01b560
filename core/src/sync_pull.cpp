// Commit, fetch and pull (cmf/sync.h): sealing pending records into the log,
// and bringing a remote's commits and data here.

#include <algorithm>

#include "cmf/data/fault.h"
#include "cmf/data/open_transport.h"
#include "cmf/sync.h"
#include "sync_common.h"

namespace fs = std::filesystem;

namespace cmf {

using namespace sync_internal;

namespace {

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

}  // namespace cmf
