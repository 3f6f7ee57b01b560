// Whereis and get (cmf/sync.h): which sites and stores hold an object's
// bytes, and fetching them on demand.

#include <algorithm>
#include <map>

#include "cmf/data/fault.h"
#include "cmf/data/open_transport.h"
#include "cmf/data/scan.h"
#include "cmf/sync.h"
#include "sync_common.h"

namespace fs = std::filesystem;

namespace cmf {

using namespace sync_internal;

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

namespace {

// The remotes to ask for HASH: FROM alone, else every remote, holders first.
Result<std::vector<RemoteSpec>> CandidateRemotes(
    Repo& repo, const std::optional<std::string>& from,
    const std::string& hash) {
  std::vector<RemoteSpec> candidates;
  if (from) {
    CMF_ASSIGN_OR_RETURN(RemoteSpec r, FindRemote(repo.config(), *from));
    candidates.push_back(r);
  } else {
    CMF_ASSIGN_OR_RETURN(candidates, ListRemotes(repo.config()));
    // Remotes known to hold the bytes first.
    CMF_ASSIGN_OR_RETURN(auto ids, repo.store().Locations(hash));
    std::stable_partition(
        candidates.begin(), candidates.end(), [&](const RemoteSpec& r) {
          std::string id =
              repo.config().GetOr("remote." + r.name + ".store-id", "");
          return !id.empty() && std::count(ids.begin(), ids.end(), id) > 0;
        });
  }
  return candidates;
}

// True when CACHE holds the object HASH of KIND and every object it names.
Result<bool> IsComplete(const data::ObjectCache& cache, const std::string& hash,
                        ArtifactKind kind) {
  CMF_ASSIGN_OR_RETURN(auto objects, ObjectsOf(cache, hash, kind));
  return std::all_of(objects.begin(), objects.end(),
                     [&](const std::string& o) { return cache.Has(o); }) &&
         cache.Has(hash);
}

// Downloads ARTIFACT from REMOTE into REPORT; returns IsComplete after, false
// (with LAST set) when another remote may do better.
Result<bool> GetFrom(Repo& repo, const RemoteSpec& remote,
                     const ArtifactRef& artifact, bool progress_on,
                     GetReport* report, Status* last) {
  const data::ObjectCache& cache = repo.objects();
  Result<Endpoints> ends = Resolve(repo, remote);
  if (!ends.ok() || ends->data_url.empty()) {
    *last = ends.ok() ? Status::NotFound("no object store") : ends.status();
    return false;
  }
  Result<std::unique_ptr<data::ObjectTransport>> t =
      data::OpenTransport(ends->data_url);
  if (!t.ok()) {
    *last = t.status();
    return false;
  }
  SyncReport counts;
  data::Progress progress("getting objects", progress_on);
  Result<bool> there = (*t)->Has(report->hash);
  if (!there.ok() || !*there) {
    *last = there.ok() ? Status::NotFound("not there") : there.status();
    return false;
  }
  std::string store_id =
      repo.config().GetOr("remote." + remote.name + ".store-id", "");
  if (store_id.empty()) {
    Result<std::string> id = (*t)->ReadSmall("store-id");
    if (id.ok()) store_id = id->substr(0, id->find_first_of(" \n"));
  }
  // Bytes that do not match their name are not stored; another remote may
  // hold good ones.
  Status st = Download(repo, **t, store_id, {report->hash}, report->hash,
                       &progress, &counts);
  if (st.code() == Code::kCorruption) {
    *last = st;
    return false;
  }
  CMF_RETURN_IF_ERROR(st);
  CMF_ASSIGN_OR_RETURN(auto objects,
                       ObjectsOf(cache, report->hash, artifact.kind));
  st = Download(repo, **t, store_id, objects, report->hash, &progress, &counts);
  if (st.code() == Code::kCorruption) *last = st;
  if (!st.ok() && st.code() != Code::kNotFound &&
      st.code() != Code::kCorruption)
    return st;
  report->objects += counts.objects_received;
  report->bytes += counts.bytes_received;
  report->from = remote.name;
  return IsComplete(cache, report->hash, artifact.kind);
}

// Materializes ARTIFACT at WORKSPACE_PATH when that is safe and free.
Status PlaceInWorkspace(Repo& repo, const std::string& workspace_path,
                        const ArtifactRef& artifact, GetReport* report) {
  const data::ObjectCache& cache = repo.objects();
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
                           cache.ReadObject(report->hash));
      CMF_ASSIGN_OR_RETURN(auto files, data::ParseManifest(manifest));
      for (const auto& f : files) {
        CMF_RETURN_IF_ERROR(cache.Materialize(f.hash, dest / f.path, order));
      }
    } else {
      CMF_RETURN_IF_ERROR(cache.Materialize(report->hash, dest, order));
    }
    report->placed_at = rel.string();
  }
  return Status::Ok();
}

}  // namespace

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

  CMF_ASSIGN_OR_RETURN(std::vector<RemoteSpec> candidates,
                       CandidateRemotes(repo, from, report.hash));
  CMF_ASSIGN_OR_RETURN(bool done,
                       IsComplete(cache, report.hash, artifact.kind));
  std::string tried;
  Status last;
  for (const RemoteSpec& remote : candidates) {
    if (done) break;
    tried += (tried.empty() ? "" : ", ") + remote.name;
    CMF_ASSIGN_OR_RETURN(
        done, GetFrom(repo, remote, artifact, progress_on, &report, &last));
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
    CMF_RETURN_IF_ERROR(
        PlaceInWorkspace(repo, workspace_path, artifact, &report));
  }
  return report;
}

}  // namespace cmf
