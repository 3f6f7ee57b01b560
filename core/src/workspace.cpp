#include "cmf/workspace.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "cmf/data/file_ops.h"
#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "cmf/data/progress.h"
#include "cmf/data/scan.h"
#include "cmf/run.h"
#include "cmf/store_stat_cache.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

Result<std::vector<data::LinkMode>> LinkOrder(Repo& repo) {
  return data::ParseLinkOrder(repo.config().GetOr("cache.link", "auto"));
}

// The workspace-relative form of PATH, which must lie inside the workspace.
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

// A path of the workspace, absolute, from its workspace-relative form.
fs::path Absolute(const Repo& repo, const std::string& rel) {
  return rel == "." ? repo.workspace() : repo.workspace() / rel;
}

std::string Join(const std::string& dir, const std::string& file) {
  if (file.empty()) return dir;
  return dir == "." ? file : dir + "/" + file;
}

// Checkout writes only the workspace's own files: never through a symbolic
// link to a folder (which may lead outside the workspace), nor in place of a
// link, unless it is cmf's own link into the cache (cache.link symlink).
// InvalidArgument naming the link otherwise.
Status RefuseLinkOnTheWay(const Repo& repo, const fs::path& dest) {
  const fs::path rel = dest.lexically_relative(repo.workspace());
  fs::path at = repo.workspace();
  for (auto it = rel.begin(); it != rel.end(); ++it) {
    at /= *it;
    struct stat st {};
    if (::lstat(at.c_str(), &st) != 0) return Status::Ok();  // made anew
    if (!S_ISLNK(st.st_mode)) continue;
    if (std::next(it) == rel.end()) {
      // Read, not resolved: a link to an object that gc removed is still ours.
      std::error_code ec;
      fs::path to = fs::read_symlink(at, ec);
      if (to.is_relative()) to = at.parent_path() / to;
      fs::path in = to.lexically_normal().lexically_relative(
          repo.objects().root().lexically_normal());
      if (!ec && !in.empty() && *in.begin() != "..") return Status::Ok();
    }
    const std::string link = at.lexically_relative(repo.workspace()).string();
    const std::string what = rel.string();
    const std::string where = what == link ? "'" + link + "' is a symbolic link"
                                           : "'" + what +
                                                 "' lies behind the symbolic "
                                                 "link '" +
                                                 link + "'";
    return Status::InvalidArgument(
        where +
        "; checkout does not write through or replace links (remove the link "
        "to restore the recorded content)");
  }
  return Status::Ok();
}

// Writes a private, writable copy of the file at PATH in its place (not
// flushed: the cache holds the same bytes).
Status MakePrivateCopy(const fs::path& path, bool executable) {
  data::AtomicFile::Options options;
  options.durability = data::Durability::kAtomic;
  CMF_ASSIGN_OR_RETURN(data::AtomicFile copy,
                       data::AtomicFile::Create(path, options));
  std::error_code ec;
  fs::copy_file(path, copy.temp_path(), fs::copy_options::overwrite_existing,
                ec);
  if (ec)
    return Status::IOError("cannot copy '" + path.string() +
                           "': " + ec.message());
  // copy_file gave it the object's read-only mode.
  if (::fchmod(copy.fd(), executable ? 0755 : 0644) != 0)
    return Status::IOError("cannot make '" + path.string() +
                           "' writable: " + std::strerror(errno));
  return copy.Commit();
}

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
  return results;
}

Result<StatusReport> WorkspaceStatus(Repo& repo, const AddOptions& options) {
  StatusReport report;
  CMF_ASSIGN_OR_RETURN(report.tracked, repo.store().ListTracked());
  CMF_ASSIGN_OR_RETURN(Store::Pending pending, repo.store().CountPending());
  report.uncommitted_executions = pending.executions;
  report.uncommitted_facts = pending.facts;
  CMF_ASSIGN_OR_RETURN(auto interrupted, repo.store().FindInterrupted());
  for (const auto& run : interrupted) report.interrupted.push_back(run.id);
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
  return report;
}

Result<CheckoutResult> Checkout(Repo& repo, const fs::path& path,
                                const std::optional<std::string>& rev,
                                bool force) {
  CMF_ASSIGN_OR_RETURN(std::vector<data::LinkMode> order, LinkOrder(repo));
  CMF_ASSIGN_OR_RETURN(std::string rel, InsideWorkspace(repo, path));
  CMF_ASSIGN_OR_RETURN(std::vector<ArtifactRef> tracked,
                       repo.store().ListTracked());
  const ArtifactRef* owner = nullptr;  // the tracked path REL is, or lies in
  for (const ArtifactRef& t : tracked) {
    if (t.path == rel || t.path == "." || rel.starts_with(t.path + "/"))
      owner = &t;
  }

  CheckoutResult result;
  result.path = rel;
  std::string hash;
  std::string within;  // REL relative to the tracked directory, when inside one
  ArtifactKind kind = ArtifactKind::kFile;
  if (rev) {
    if (owner != nullptr && owner->path != rel) {
      return Status::InvalidArgument(
          "'" + rel + "' lies inside tracked '" + owner->path +
          "'; check out a version of '" + owner->path + "' instead");
    }
    CMF_ASSIGN_OR_RETURN(hash, repo.store().ResolveArtifact(*rev));
    CMF_ASSIGN_OR_RETURN(ArtifactRef artifact, repo.store().GetArtifact(hash));
    kind = artifact.kind;
  } else {
    if (owner == nullptr)
      return Status::NotFound("'" + rel + "' is not tracked");
    hash = owner->hash;
    kind = owner->kind;
    if (owner->path != rel)
      within = owner->path == "." ? rel : rel.substr(owner->path.size() + 1);
  }
  const data::ObjectCache& objects = repo.objects();
  if (!objects.Has(hash)) {
    return Status::NotFound("the content of '" + rel + "' (" +
                            hash.substr(0, 12) + ") is not in the cache");
  }
  // Nothing is written from an object whose bytes are not what its name says
  // (a hard-linked file written in place, a flipped bit on disk).
  auto verify = [&](const std::string& object,
                    const std::string& where) -> Status {
    CMF_ASSIGN_OR_RETURN(bool good, objects.Verify(object));
    if (good) return Status::Ok();
    return Status::Corruption("the cached object " + object + " of '" + where +
                              "' is damaged (its bytes do not match its "
                              "name); nothing was restored; run cmf fsck");
  };
  // What the store tracked at REL before this checkout (for --rev: what a
  // file may hold and still count as unchanged).
  const ArtifactRef* recorded =
      owner != nullptr && owner->path == rel ? owner : nullptr;
  std::vector<std::string> changed;  // files with local changes
  auto refuse = [&]() -> Status {
    std::string first = changed.front();
    if (changed.size() == 1) {
      return Status::Conflict("'" + first +
                              "' has local changes; commit them with cmf add, "
                              "or use --force to discard them");
    }
    return Status::Conflict("'" + first + "' and " +
                            std::to_string(changed.size() - 1) + " more file" +
                            (changed.size() == 2 ? "" : "s") +
                            " have local changes; commit them with cmf add, "
                            "or use --force to discard them");
  };
  // A directory's object is its manifest; a file's object is only read by
  // whatever copies it (it may be larger than memory).
  Result<std::vector<data::ScannedFile>> files = Status::NotFound("a file");
  std::uint64_t file_size = 0;
  if (kind == ArtifactKind::kDirectory) {
    CMF_RETURN_IF_ERROR(verify(hash, rel));
    CMF_ASSIGN_OR_RETURN(std::string manifest, objects.ReadObject(hash));
    files = data::ParseManifest(manifest);
    if (!files.ok()) return files.status().With("object '" + hash + "'");
  } else {
    std::error_code ec;
    file_size = fs::file_size(objects.PathOf(hash), ec);
  }
  const std::string target_rel = rev || within.empty() ? rel : owner->path;
  fs::path target = Absolute(repo, target_rel);
  result.hash = hash;
  if (!files.ok()) {  // a single file
    Result<data::ObjectInfo> current = data::HashPath(objects, target);
    if (!current.ok() || current->hash != hash) {
      bool there = current.ok() || current.status().code() != Code::kNotFound;
      bool as_recorded = current.ok() && recorded != nullptr &&
                         current->hash == recorded->hash;
      if (there && !as_recorded && !force) {
        changed.push_back(rel);
        return refuse();
      }
      CMF_RETURN_IF_ERROR(verify(hash, rel));
      CMF_RETURN_IF_ERROR(RefuseLinkOnTheWay(repo, target));
      CMF_RETURN_IF_ERROR(objects.Materialize(hash, target, order));
      result.restored_files = 1;
    }
  } else {
    StoreStatCache stat_cache(repo.store());
    std::map<std::string, std::string> present;
    data::ScanOptions scan;
    scan.stat_cache = &stat_cache;
    if (Result<data::ScanResult> now = data::Scan(objects, target, scan);
        now.ok()) {
      for (const auto& f : now->files) present[f.path] = f.hash;
    }
    // The files as the store tracked them at REL: the manifest itself when
    // restoring the tracked content, the tracked one's for --rev.
    std::map<std::string, std::string> before;
    if (!rev) {
      for (const auto& f : *files) before[f.path] = f.hash;
    } else if (recorded != nullptr &&
               recorded->kind == ArtifactKind::kDirectory) {
      if (Result<std::string> m = objects.ReadObject(recorded->hash); m.ok()) {
        if (auto old = data::ParseManifest(*m); old.ok()) {
          for (const auto& f : *old) before[f.path] = f.hash;
        }
      }
    }
    // Everything is checked before anything is written.
    std::vector<const data::ScannedFile*> to_write;
    for (const data::ScannedFile& f : *files) {
      if (!within.empty() && f.path != within &&
          !f.path.starts_with(within + "/"))
        continue;
      auto it = present.find(f.path);
      if (it != present.end() && it->second == f.hash) continue;
      if (it != present.end()) {
        auto was = before.find(f.path);
        if (!force && (was == before.end() || was->second != it->second))
          changed.push_back(Join(target_rel, f.path));
      }
      to_write.push_back(&f);
    }
    if (!changed.empty()) return refuse();
    for (const data::ScannedFile* f : to_write)
      CMF_RETURN_IF_ERROR(RefuseLinkOnTheWay(repo, target / f->path));
    for (const data::ScannedFile* f : to_write)
      CMF_RETURN_IF_ERROR(verify(f->hash, Join(target_rel, f->path)));
    for (const data::ScannedFile* f : to_write) {
      fs::path dest = target / f->path;
      CMF_RETURN_IF_ERROR(objects.Materialize(f->hash, dest, order));
      if (f->executable) {
        struct stat st {};
        if (::lstat(dest.c_str(), &st) == 0 && st.st_nlink == 1 &&
            S_ISREG(st.st_mode)) {
          ::chmod(dest.c_str(), 0755);
        }
      }
      ++result.restored_files;
    }
    if (!within.empty() && result.restored_files == 0 &&
        std::none_of(
            files->begin(), files->end(), [&](const data::ScannedFile& f) {
              return f.path == within || f.path.starts_with(within + "/");
            })) {
      return Status::NotFound("'" + rel + "' is not in tracked '" +
                              owner->path + "'");
    }
  }
  if (rev) {
    ArtifactRef ref{rel, hash, 0, kind};
    if (files.ok()) {
      for (const auto& f : *files) ref.size += f.size;
    } else {
      ref.size = file_size;
    }
    CMF_RETURN_IF_ERROR(repo.store().Track(ref));
  }
  return result;
}

Result<std::uint64_t> Unlock(Repo& repo, const fs::path& path) {
  CMF_ASSIGN_OR_RETURN(std::string rel, InsideWorkspace(repo, path));
  fs::path target = Absolute(repo, rel);
  std::error_code ec;
  if (!fs::exists(target, ec))
    return Status::NotFound("no such file or directory '" + rel + "'");
  std::vector<fs::path> files;
  if (fs::is_directory(target, ec)) {
    for (auto it = fs::recursive_directory_iterator(target, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->path().filename() == ".cmf") {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) files.push_back(it->path());
    }
  } else {
    files.push_back(target);
  }
  const data::ObjectCache& objects = repo.objects();
  std::string cache_root =
      fs::weakly_canonical(objects.root(), ec).string() + "/";
  // The inodes of the cache's objects, gathered only if some file has other
  // links: a file that shares one is a hard link into the cache (whatever it
  // holds now).
  std::set<std::pair<dev_t, ino_t>> object_inodes;
  bool gathered = false;
  std::uint64_t unlocked = 0;
  for (const fs::path& f : files) {
    struct stat link_st {
    }, st{};
    if (::lstat(f.c_str(), &link_st) != 0 || ::stat(f.c_str(), &st) != 0)
      continue;
    bool shared = false;
    if (S_ISLNK(link_st.st_mode)) {
      shared = fs::weakly_canonical(f, ec).string().starts_with(cache_root);
    } else if (st.st_nlink > 1) {
      if (!gathered) {
        CMF_RETURN_IF_ERROR(
            objects.ForEach([&](const std::string& hash, std::uint64_t) {
              struct stat o {};
              if (::stat(objects.PathOf(hash).c_str(), &o) == 0) {
                object_inodes.insert({o.st_dev, o.st_ino});
              }
              return Status::Ok();
            }));
        gathered = true;
      }
      shared = object_inodes.count({st.st_dev, st.st_ino}) > 0;
    }
    if (!shared) continue;
    CMF_RETURN_IF_ERROR(MakePrivateCopy(f, (st.st_mode & S_IXUSR) != 0));
    ++unlocked;
  }
  return unlocked;
}

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
