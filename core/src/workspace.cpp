// cmf add and cmf status (cmf/workspace.h); checkout and unlock are
// workspace_checkout.cpp, fsck and gc workspace_maintenance.cpp.
#include "cmf/workspace.h"

#include <algorithm>
#include <map>
#include <system_error>

#include "cmf/data/object_cache.h"
#include "cmf/data/phase_trace.h"
#include "cmf/data/progress.h"
#include "cmf/data/scan.h"
#include "cmf/run.h"
#include "cmf/store_stat_cache.h"
#include "workspace_internal.h"

namespace fs = std::filesystem;

namespace cmf {
namespace workspace_internal {

Result<std::vector<data::LinkMode>> LinkOrder(Repo& repo) {
  return data::ParseLinkOrder(repo.config().GetOr("cache.link", "auto"));
}

Result<std::string> InsideWorkspace(const Repo& repo, const fs::path& path) {
  CMF_ASSIGN_OR_RETURN(std::string rel, EventPath(repo, path));
  std::error_code ec;
  fs::path real = fs::weakly_canonical(fs::absolute(path, ec), ec);
  fs::path into = real.lexically_relative(repo.cmf_dir());
  if (!ec && !into.empty() &&
      *into.begin() != "..") {  // e.g. a symbolic link to .cmf
    return Status::InvalidArgument("'" + path.string() +
                                   "' is inside the repository's .cmf/");
  }
  if (fs::path(rel).is_absolute()) {
    return Status::InvalidArgument("'" + path.string() +
                                   "' is outside the workspace '" +
                                   repo.workspace().string() + "'");
  }
  return rel;
}

fs::path Absolute(const Repo& repo, const std::string& rel) {
  return rel == "." ? repo.workspace() : repo.workspace() / rel;
}

std::string Join(const std::string& dir, const std::string& file) {
  if (file.empty()) return dir;
  return dir == "." ? file : dir + "/" + file;
}

}  // namespace workspace_internal

using workspace_internal::Absolute;
using workspace_internal::InsideWorkspace;
using workspace_internal::Join;
using workspace_internal::LinkOrder;

std::string_view ToString(Change::Kind kind) {
  switch (kind) {
    case Change::Kind::kModified:
      return "modified";
    case Change::Kind::kMissing:
      return "missing";
    case Change::Kind::kNew:
      return "new";
  }
  return "modified";
}

Result<std::vector<AddResult>> Add(Repo& repo,
                                   const std::vector<fs::path>& paths,
                                   const AddOptions& options) {
  data::MarkPhase("open");
  CMF_ASSIGN_OR_RETURN(std::vector<data::LinkMode> order, LinkOrder(repo));
  std::vector<std::string> rels;
  for (const fs::path& p :
       paths) {  // every path is checked before anything is stored
    CMF_ASSIGN_OR_RETURN(std::string rel, InsideWorkspace(repo, p));
    std::error_code ec;
    if (!fs::exists(Absolute(repo, rel), ec)) {
      return Status::NotFound("no such file or directory '" + p.string() + "'");
    }
    rels.push_back(std::move(rel));
  }
  CMF_ASSIGN_OR_RETURN(std::vector<ArtifactRef> tracked,
                       repo.store().ListTracked());
  std::map<std::string, std::string> before;
  for (const ArtifactRef& t : tracked) before[t.path] = t.hash;
  data::MarkPhase("tracked list");

  // Objects are named before they are recorded: gc must wait.
  CMF_ASSIGN_OR_RETURN(CacheLock lock,
                       CacheLock::Acquire(repo, /*exclusive=*/false));
  std::vector<AddResult> results;
  StoreStatCache stat_cache(repo.store());
  data::Progress progress("adding", options.progress);
  data::ScanOptions scan;
  scan.stat_cache = &stat_cache;
  scan.store = true;
  scan.link_order = order;
  scan.threads = options.threads;
  scan.progress = &progress;
  std::vector<fs::path> absolute;
  for (const std::string& rel : rels) absolute.push_back(Absolute(repo, rel));
  // All paths in one scan: their files share the cores, and one flush of the
  // file system covers every object.
  CMF_ASSIGN_OR_RETURN(std::vector<data::ScanResult> scanned,
                       data::ScanMany(repo.objects(), absolute, scan));
  for (std::size_t i = 0; i < rels.size(); ++i) {
    const std::string& rel = rels[i];
    const fs::path& abs = absolute[i];
    data::ScanResult& found = scanned[i];
    AddResult r;
    r.artifact = {rel, found.info.hash, found.info.size,
                  GuessKind(abs, found.info.is_directory)};
    r.files = found.files.size();
    r.hashed_files = found.hashed_files;
    r.hashed_bytes = found.hashed_bytes;
    auto old = before.find(rel);
    r.changed = old == before.end() || old->second != r.artifact.hash;
    // Nothing to write when the path is tracked with this content already.
    if (r.changed) CMF_RETURN_IF_ERROR(repo.store().Track(r.artifact));
    results.push_back(std::move(r));
  }
  progress.Finish();
  data::MarkPhase("track");
  return results;
}

Result<StatusReport> WorkspaceStatus(Repo& repo, const AddOptions& options) {
  data::MarkPhase("open");
  StatusReport report;
  CMF_ASSIGN_OR_RETURN(report.tracked, repo.store().ListTracked());
  CMF_ASSIGN_OR_RETURN(Store::Pending pending, repo.store().CountPending());
  report.uncommitted_executions = pending.executions;
  report.uncommitted_facts = pending.facts;
  CMF_ASSIGN_OR_RETURN(auto interrupted, repo.store().FindInterrupted());
  for (const auto& run : interrupted) report.interrupted.push_back(run.id);
  data::MarkPhase("tracked list");
  StoreStatCache stat_cache(repo.store());
  data::Progress progress("checking", options.progress);
  for (const ArtifactRef& t : report.tracked) {
    data::ScanOptions scan;
    scan.stat_cache = &stat_cache;
    scan.threads = options.threads;
    scan.progress = &progress;
    Result<data::ScanResult> now =
        data::Scan(repo.objects(), Absolute(repo, t.path), scan);
    if (!now.ok()) {
      if (now.status().code() != Code::kNotFound) return now.status();
      report.changes.push_back({Change::Kind::kMissing, t.path, t.path});
      continue;
    }
    if (now->info.hash == t.hash) continue;
    // A file whose bytes changed while it shares its inode with the object it
    // was recorded as has changed that object too.
    auto modified = [&](const std::string& path, const std::string& old_hash) {
      Change c{Change::Kind::kModified, path, t.path};
      struct stat file {
      }, object{};
      c.cache_damaged =
          ::stat(Absolute(repo, path).c_str(), &file) == 0 &&
          ::stat(repo.objects().PathOf(old_hash).c_str(), &object) == 0 &&
          file.st_dev == object.st_dev && file.st_ino == object.st_ino;
      report.changes.push_back(std::move(c));
    };
    Result<std::vector<data::ScannedFile>> old_files =
        Status::NotFound("a file");
    if (t.kind == ArtifactKind::kDirectory && now->info.is_directory) {
      Result<std::string> manifest = repo.objects().ReadObject(t.hash);
      if (manifest.ok()) old_files = data::ParseManifest(*manifest);
    }
    if (!old_files
             .ok()) {  // a file, or a directory whose old manifest is not here
      if (now->info.is_directory) {
        report.changes.push_back({Change::Kind::kModified, t.path, t.path});
      } else {
        modified(t.path, t.hash);
      }
      continue;
    }
    // hash and mode: a file made executable (or not) has changed too
    std::map<std::string, const data::ScannedFile*> old_hash;
    for (const auto& f : *old_files) old_hash[f.path] = &f;
    for (const auto& f : now->files) {
      auto it = old_hash.find(f.path);
      if (it == old_hash.end()) {
        report.changes.push_back(
            {Change::Kind::kNew, Join(t.path, f.path), t.path});
      } else {
        if (it->second->hash != f.hash) {
          modified(Join(t.path, f.path), it->second->hash);
        } else if (it->second->executable != f.executable) {
          // Only the mode: the bytes (and so any object) are as recorded.
          report.changes.push_back(
              {Change::Kind::kModified, Join(t.path, f.path), t.path});
        }
        old_hash.erase(it);
      }
    }
    for (const auto& entry : old_hash) {
      report.changes.push_back(
          {Change::Kind::kMissing, Join(t.path, entry.first), t.path});
    }
  }
  progress.Finish();
  std::sort(report.changes.begin(), report.changes.end(),
            [](const Change& a, const Change& b) { return a.path < b.path; });
  data::MarkPhase("compare");
  return report;
}

}  // namespace cmf
