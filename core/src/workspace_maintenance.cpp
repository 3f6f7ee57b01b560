// cmf fsck and cmf gc (cmf/workspace.h): checking the cache and the store,
// and removing what nothing references.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <set>
#include <thread>

#include "cmf/data/object_cache.h"
#include "cmf/data/progress.h"
#include "cmf/data/scan.h"
#include "cmf/run.h"
#include "cmf/workspace.h"
#include "workspace_internal.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

using workspace_internal::Join;

// Counts TEMPORARIES of the store at ROOT into REPORT and, unless DRY_RUN,
// removes each that is still stale (one written meanwhile is kept, uncounted).
Status SweepTemporaries(const fs::path& root,
                        const std::vector<data::Temporary>& temporaries,
                        bool dry_run, GcReport* report) {
  for (const data::Temporary& t : temporaries) {
    if (!dry_run) {
      CMF_ASSIGN_OR_RETURN(bool removed, data::RemoveTemporary(root, t));
      if (!removed) continue;
    }
    report->temporaries.push_back(t.name);
    report->temporary_bytes += t.size;
  }
  return Status::Ok();
}

}  // namespace

Result<FsckReport> Fsck(Repo& repo, const AddOptions& options) {
  const data::ObjectCache& objects = repo.objects();
  FsckReport report;
  CMF_ASSIGN_OR_RETURN(report.store_errors, repo.store().CheckIntegrity());
  std::vector<std::string> all;
  CMF_RETURN_IF_ERROR(
      objects.ForEach([&](const std::string& hash, std::uint64_t) {
        all.push_back(hash);
        return Status::Ok();
      }));
  report.objects = all.size();

  // Re-hash every object on all cores.
  data::Progress progress("verifying", options.progress);
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  Status io_error;
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < all.size();) {
      Result<bool> good = objects.Verify(all[i]);
      std::lock_guard<std::mutex> lock(mutex);
      if (!good.ok()) {
        if (io_error.ok()) io_error = good.status();
      } else if (!*good) {
        report.corrupt.push_back(all[i]);
      }
      progress.Add(1, 0);
    }
  };
  unsigned threads =
      options.threads ? options.threads : std::thread::hardware_concurrency();
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::max(1u, threads); ++t)
    pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  progress.Finish();
  CMF_RETURN_IF_ERROR(io_error);
  std::sort(report.corrupt.begin(), report.corrupt.end());
  // A damaged store's records cannot be trusted, nor even read to the end.
  CMF_ASSIGN_OR_RETURN(std::vector<data::Temporary> temporaries,
                       data::StaleTemporaries(objects.root()));
  for (const data::Temporary& t : temporaries) {
    ++report.temporaries;
    report.temporary_bytes += t.size;
  }
  if (!report.store_errors.empty()) return report;
  CMF_ASSIGN_OR_RETURN(auto interrupted, repo.store().FindInterrupted());
  for (const auto& run : interrupted) report.interrupted.push_back(run.id);

  CMF_ASSIGN_OR_RETURN(std::vector<Store::ArtifactUse> artifacts,
                       repo.store().ListArtifacts());
  for (const Store::ArtifactUse& a : artifacts) {
    if (!a.cached)
      continue;  // an input that was only hashed: its bytes live in the
                 // workspace
    if (!objects.Has(a.hash)) {
      // Not corruption when the metadata says another site or store holds
      // it (pulled records whose bytes stayed where they were made).
      if (!a.elsewhere) report.missing.push_back({a.hash, a.path});
      continue;
    }
    if (a.kind != ArtifactKind::kDirectory) continue;
    Result<std::string> manifest = objects.ReadObject(a.hash);
    if (!manifest.ok()) continue;
    Result<std::vector<data::ScannedFile>> files =
        data::ParseManifest(*manifest);
    if (!files.ok()) continue;  // already reported when its content is wrong
    for (const auto& f : *files) {
      if (!objects.Has(f.hash))
        report.missing.push_back({f.hash, Join(a.path, f.path)});
    }
  }
  CMF_ASSIGN_OR_RETURN(report.quarantined, repo.store().ListQuarantined());
  return report;
}

Result<GcReport> CollectGarbage(Repo& repo, bool dry_run) {
  const data::ObjectCache& objects = repo.objects();
  // No add or output in flight between naming an object and recording it.
  CMF_ASSIGN_OR_RETURN(CacheLock lock,
                       CacheLock::Acquire(repo, /*exclusive=*/true));
  CMF_ASSIGN_OR_RETURN(std::vector<Store::ArtifactUse> artifacts,
                       repo.store().ListArtifacts());
  // Kept: what is tracked now and what any execution used or made (lineage
  // may ask for those bytes), with the files of their manifests. A version of
  // a tracked path that was replaced, and bytes that were stored but never
  // recorded (an interrupted add), go.
  std::set<std::string> keep;
  for (const Store::ArtifactUse& a : artifacts) {
    if (!a.referenced) continue;
    keep.insert(a.hash);
    if (a.kind != ArtifactKind::kDirectory) continue;
    Result<std::string> manifest = objects.ReadObject(a.hash);
    if (!manifest.ok()) continue;
    Result<std::vector<data::ScannedFile>> files =
        data::ParseManifest(*manifest);
    if (!files.ok()) continue;
    for (const auto& f : *files) keep.insert(f.hash);
  }
  GcReport report;
  CMF_RETURN_IF_ERROR(
      objects.ForEach([&](const std::string& hash, std::uint64_t size) {
        if (!keep.count(hash)) {
          report.unreferenced.push_back(hash);
          report.bytes += size;
        }
        return Status::Ok();
      }));
  std::sort(report.unreferenced.begin(), report.unreferenced.end());
  // What the stat cache knows of paths that are gone serves no scan.
  std::vector<std::string> stale;
  CMF_ASSIGN_OR_RETURN(std::vector<std::string> roots,
                       repo.store().ListStatRoots());
  for (const std::string& root : roots) {
    struct stat st {};
    if (::lstat(root.c_str(), &st) != 0 && errno == ENOENT)
      stale.push_back(root);
  }
  report.stale_stat_blobs = stale.size();
  CMF_ASSIGN_OR_RETURN(std::vector<data::Temporary> temporaries,
                       data::StaleTemporaries(objects.root()));
  if (!dry_run) {
    for (const std::string& hash : report.unreferenced)
      CMF_RETURN_IF_ERROR(objects.Remove(hash));
    CMF_RETURN_IF_ERROR(repo.store().DropStatIndex(stale));
    report.removed = true;
  }
  CMF_RETURN_IF_ERROR(
      SweepTemporaries(objects.root(), temporaries, dry_run, &report));
  return report;
}

Result<GcReport> CollectBareGarbage(const fs::path& dir, bool dry_run) {
  GcReport report;
  CMF_ASSIGN_OR_RETURN(std::vector<data::Temporary> temporaries,
                       data::StaleTemporaries(dir / "objects"));
  CMF_RETURN_IF_ERROR(
      SweepTemporaries(dir / "objects", temporaries, dry_run, &report));
  report.removed = !dry_run;
  return report;
}

}  // namespace cmf
