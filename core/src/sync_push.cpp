// Push (cmf/sync.h): the data the commits need, then the commits, retried
// when the remote moved meanwhile.

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "cmf/data/fault.h"
#include "cmf/data/open_transport.h"
#include "cmf/segment.h"
#include "cmf/sync.h"
#include "sync_common.h"

namespace fs = std::filesystem;

namespace cmf {

using namespace sync_internal;

namespace {

// A push in progress: what every try shares, and what each try plans anew.
class Pusher {
 public:
  Pusher(Repo& repo, std::string name, Endpoints ends,
         const SyncOptions& options, DataPolicy policy, std::uint64_t max_size)
      : repo_(repo),
        cache_(repo.objects()),
        name_(std::move(name)),
        ends_(std::move(ends)),
        options_(options),
        policy_(policy),
        max_size_(max_size) {
    report_.remote = name_;
  }

  // Tries until the remote's main takes the commits, or options.max_tries.
  Result<SyncReport> Run(const RemoteSpec& remote);

 private:
  // An artifact whose bytes are (to be) on the remote, and its objects.
  struct Going {
    std::string hash;
    std::vector<std::string> objects;
  };

  // The artifacts the commits that the remote lacks name (every artifact
  // held here when all the data was asked for by name).
  Result<std::set<std::string>> Named(MetaLog& log, const std::string& ours,
                                      const std::string& remote_tip);
  // Opens the remote's object store and learns its id, once.
  Status OpenStore();
  // Queues for sending the objects of the NAMED artifacts that the policy
  // sends and the remote lacks (or holds damaged), and the suspect objects of
  // this store whatever is named.
  Status Plan(const std::set<std::string>& named);
  // Queues object O of artifact A unless the remote holds good bytes of it.
  Status Queue(const ArtifactRef& a, const std::string& o);
  // Sends the queued objects: files first, then the manifests whose files all
  // arrived. Counts what went in the report.
  Status Send();
  Status Put(std::vector<data::ObjectTransport::PutItem>& batch,
             data::Progress& progress);
  // Names the damaged objects in the report, and records (in a commit of
  // their own) where the bytes of each artifact now whole there are.
  // Updates OURS when it commits.
  Status RecordLocations(MetaLog& log, std::string* ours);

  Repo& repo_;
  const data::ObjectCache& cache_;
  const std::string name_;
  const Endpoints ends_;
  const SyncOptions& options_;
  const DataPolicy policy_;
  const std::uint64_t max_size_;
  SyncReport report_;
  std::unique_ptr<data::ObjectTransport> transport_;
  std::string store_id_;

  // Planned by each try.
  std::vector<data::ObjectTransport::PutItem> items_, manifests_;
  std::vector<Going> going_;
  std::set<std::string> queued_;
  std::optional<std::set<std::string>> suspects_;  // read once a store is open
  std::set<std::string> cleared_;
  std::vector<std::string> damaged_;
  std::set<std::string> not_sent_;  // damaged, or a manifest held back
};

Result<std::set<std::string>> Pusher::Named(MetaLog& log,
                                            const std::string& ours,
                                            const std::string& remote_tip) {
  std::set<std::string> named;
  CMF_RETURN_IF_ERROR(log.ForEachNewSegment(
      ours, {remote_tip},
      [&](const std::string&, const std::string& text) -> Status {
        // A segment that is not one (quarantined) names nothing to send.
        Result<std::vector<std::string>> names = SegmentArtifacts(text);
        if (names.ok()) named.insert(names->begin(), names->end());
        return Status::Ok();
      }));
  if (options_.data == DataPolicy::kAll) {
    // Asked for all the data by name: every artifact whose bytes are here,
    // not only those of new commits (an earlier push may have left them).
    CMF_ASSIGN_OR_RETURN(auto artifacts, repo_.store().ListArtifacts());
    for (const auto& a : artifacts) named.insert(a.hash);
  }
  return named;
}

Status Pusher::OpenStore() {
  if (transport_) return Status::Ok();
  CMF_ASSIGN_OR_RETURN(transport_, data::OpenTransport(ends_.data_url));
  CMF_ASSIGN_OR_RETURN(store_id_, StoreId(*transport_));
  return RememberStoreId(repo_, name_, store_id_);
}

Status Pusher::Plan(const std::set<std::string>& named) {
  items_.clear();
  manifests_.clear();
  going_.clear();
  queued_.clear();
  suspects_.reset();
  cleared_.clear();
  report_.damaged.clear();  // found again by each try
  if (policy_ == DataPolicy::kNone || ends_.data_url.empty())
    return Status::Ok();
  for (const std::string& h : named) {
    Result<ArtifactRef> a = repo_.store().GetArtifact(h);
    if (!a.ok() && a.status().code() == Code::kNotFound) continue;
    CMF_RETURN_IF_ERROR(a.status());
    if (!cache_.Has(h)) continue;  // its bytes are elsewhere already
    if (!Wanted(policy_, a->kind, a->size, max_size_)) {
      ++report_.objects_left;
      continue;
    }
    CMF_RETURN_IF_ERROR(OpenStore());
    if (!suspects_) suspects_ = Suspects(repo_, store_id_);
    CMF_ASSIGN_OR_RETURN(auto objects, ObjectsOf(cache_, h, a->kind));
    if (!std::all_of(objects.begin(), objects.end(),
                     [&](const std::string& o) { return cache_.Has(o); })) {
      continue;  // not whole here: never said to be whole there
    }
    for (const std::string& o : objects) CMF_RETURN_IF_ERROR(Queue(*a, o));
    going_.push_back({h, std::move(objects)});
  }
  // What a pull or get found damaged in this store is checked whatever this
  // push names, and replaced with good bytes from here.
  std::error_code ec;
  if (!suspects_ && fs::file_size(SuspectsFile(repo_), ec) > 0 && !ec) {
    CMF_RETURN_IF_ERROR(OpenStore());
    suspects_ = Suspects(repo_, store_id_);
  }
  for (const std::string& o :
       suspects_ ? *suspects_ : std::set<std::string>{}) {
    if (queued_.count(o) || !cache_.Has(o)) continue;
    queued_.insert(o);
    Result<bool> good = transport_->Verify(o);
    if (!good.ok() && good.status().code() != Code::kNotFound)
      return good.status();
    if (good.ok() && *good) {
      cleared_.insert(o);
      continue;
    }
    std::uint64_t size = fs::file_size(cache_.PathOf(o), ec);
    items_.push_back({o, cache_.PathOf(o), ec ? 0 : size, good.ok()});
  }
  return Status::Ok();
}

Status Pusher::Queue(const ArtifactRef& a, const std::string& o) {
  if (!queued_.insert(o).second) return Status::Ok();
  CMF_ASSIGN_OR_RETURN(bool there, transport_->Has(o));
  bool replace = false;
  if (there) {
    // A copy there is trusted, unless all the data was asked for by name or
    // a pull found it damaged: then it is read back.
    bool suspect = suspects_->count(o) > 0;
    if (options_.data != DataPolicy::kAll && !suspect) return Status::Ok();
    Result<bool> good = transport_->Verify(o);
    if (!good.ok() && good.status().code() != Code::kNotFound)
      return good.status();
    if (good.ok() && *good) {
      if (suspect) cleared_.insert(o);
      return Status::Ok();
    }
    replace = good.ok();
  }
  std::error_code ec;
  std::uint64_t size = fs::file_size(cache_.PathOf(o), ec);
  bool manifest = a.kind == ArtifactKind::kDirectory && o == a.hash;
  (manifest ? manifests_ : items_)
      .push_back({o, cache_.PathOf(o), ec ? 0 : size, replace});
  return Status::Ok();
}

Status Pusher::Put(std::vector<data::ObjectTransport::PutItem>& batch,
                   data::Progress& progress) {
  if (batch.empty()) return Status::Ok();
  std::size_t before = damaged_.size();
  CMF_RETURN_IF_ERROR(transport_->Put(batch, &progress, &damaged_));
  std::set<std::string> bad(damaged_.begin() + before, damaged_.end());
  not_sent_.insert(bad.begin(), bad.end());
  for (const auto& item : batch) {
    if (bad.count(item.hash)) continue;
    report_.bytes_sent += item.size;
    report_.objects_sent += 1;
    if (item.replace) report_.objects_repaired += 1;
    if (suspects_ && suspects_->count(item.hash)) cleared_.insert(item.hash);
  }
  return Status::Ok();
}

Status Pusher::Send() {
  damaged_.clear();
  not_sent_.clear();
  if (items_.empty() && manifests_.empty()) return Status::Ok();
  data::Progress progress("pushing objects", options_.progress);
  CMF_RETURN_IF_ERROR(Put(items_, progress));
  // A manifest there always has its files.
  std::vector<data::ObjectTransport::PutItem> whole;
  for (auto& m : manifests_) {
    auto g = std::find_if(going_.begin(), going_.end(),
                          [&](const Going& x) { return x.hash == m.hash; });
    bool files_there =
        g == going_.end() ||
        std::none_of(g->objects.begin(), g->objects.end(),
                     [&](const std::string& o) { return not_sent_.count(o); });
    if (files_there) {
      whole.push_back(std::move(m));
    } else {
      not_sent_.insert(m.hash);
    }
  }
  return Put(whole, progress);
}

Status Pusher::RecordLocations(MetaLog& log, std::string* ours) {
  // The damaged ones, each named once, with the artifact it belongs to.
  for (const std::string& d :
       std::set<std::string>(damaged_.begin(), damaged_.end())) {
    std::string artifact;
    for (const Going& g : going_) {
      if (std::count(g.objects.begin(), g.objects.end(), d)) {
        artifact = g.hash;
        break;
      }
    }
    report_.damaged.push_back({d, artifact});
  }
  CMF_RETURN_IF_ERROR(NamePaths(repo_, report_.damaged));
  // Locations only for the artifacts whose bytes are all there now.
  std::vector<std::string> sent_artifacts;
  for (const Going& g : going_) {
    if (std::none_of(g.objects.begin(), g.objects.end(),
                     [&](const std::string& o) { return not_sent_.count(o); }))
      sent_artifacts.push_back(g.hash);
  }
  data::CrashPoint("push:objects-sent");
  if (sent_artifacts.empty()) return Status::Ok();
  // Say where the bytes now are, in the same push.
  for (const std::string& h : sent_artifacts) {
    CMF_RETURN_IF_ERROR(repo_.store().AddLocation(h, store_id_));
  }
  Store::CommitOptions only_locations;
  only_locations.locations_only = true;
  CMF_RETURN_IF_ERROR(
      repo_.store()
          .CommitPending(only_locations,
                         [&](const Store::Segment& s) -> Status {
                           CMF_ASSIGN_OR_RETURN(
                               std::string commit,
                               log.CommitSegment(
                                   repo_.site(), s.hash, s.text,
                                   "Record where " + name_ + " holds bytes"));
                           return repo_.store().SetIngestedTip(commit);
                         })
          .status());
  CMF_ASSIGN_OR_RETURN(*ours, log.Tip());
  return Status::Ok();
}

Result<SyncReport> Pusher::Run(const RemoteSpec& remote) {
  std::mt19937 jitter(std::random_device{}());
  for (int attempt = 1;; ++attempt) {
    report_.tries = attempt;
    report_.objects_left = 0;  // counted again by each try
    // This site's lock first (it may wait on a long local run), then the
    // remote's, so that a site busy here never holds up the others' pushes.
    CMF_ASSIGN_OR_RETURN(FileLock lock, LockLog(repo_));
    std::optional<FileLock> remote_lock;
    if (!ends_.lock.empty()) {
      CMF_ASSIGN_OR_RETURN(std::optional<FileLock> l,
                           FileLock::AcquireIfSupported(ends_.lock));
      if (l) remote_lock.emplace(std::move(*l));
    }
    if (remote_lock) RemoveStaleRemoteMainLock(ends_);
    CMF_ASSIGN_OR_RETURN(MetaLog log, OpenLog(repo_));
    std::string remote_tip;
    CMF_RETURN_IF_ERROR(
        FetchAndMerge(repo_, log, remote, ends_, &report_, &remote_tip));

    // The data the commits the remote lacks need, by the policy.
    CMF_ASSIGN_OR_RETURN(std::string ours, log.Tip());
    CMF_ASSIGN_OR_RETURN(std::set<std::string> named,
                         Named(log, ours, remote_tip));
    CMF_RETURN_IF_ERROR(Plan(named));
    CMF_RETURN_IF_ERROR(Send());
    CMF_RETURN_IF_ERROR(ForgetSuspects(repo_, store_id_, cleared_));
    CMF_RETURN_IF_ERROR(RecordLocations(log, &ours));

    if (ours.empty() || ours == remote_tip) {
      report_.commits_sent = 0;
      break;  // nothing to send
    }
    CMF_ASSIGN_OR_RETURN(report_.commits_sent, log.CountNew(ours, remote_tip));
    GitTransferStats stats;
    Status pushed = log.Push(ends_.git_url, &stats);
    report_.metadata_bytes_sent += stats.bytes;
    if (pushed.ok()) {
      data::CrashPoint("push:metadata-sent");
      break;
    }
    if (pushed.code() != Code::kConflict || attempt >= options_.max_tries) {
      if (pushed.code() == Code::kConflict) {
        return Status::Conflict(
            "the remote '" + name_ + "' kept moving; gave up after " +
            std::to_string(attempt) + " tries (run cmf push again)");
      }
      return pushed;
    }
    // Someone pushed first: fetch, merge and try again, a little later.
    std::uniform_int_distribution<int> wait(10, 60 * attempt);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait(jitter)));
  }
  return report_;
}

}  // namespace

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
  Pusher pusher(repo, name, std::move(ends), options, policy, max_size);
  return pusher.Run(remote);
}

}  // namespace cmf
