// cmf checkout and cmf unlock (cmf/workspace.h): writing the workspace's
// files from the cache, and making a private copy of a file that shares its
// bytes with the cache.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <map>
#include <set>
#include <system_error>

#include "cmf/data/file_ops.h"
#include "cmf/data/object_cache.h"
#include "cmf/data/scan.h"
#include "cmf/store_stat_cache.h"
#include "cmf/workspace.h"
#include "workspace_internal.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

using workspace_internal::Absolute;
using workspace_internal::InsideWorkspace;
using workspace_internal::Join;
using workspace_internal::LinkOrder;

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

// What a checkout restores, and where.
struct CheckoutSource {
  std::string hash;
  ArtifactKind kind = ArtifactKind::kFile;
  const ArtifactRef* owner = nullptr;  // the tracked path REL is, or lies in
  // What the store tracked at REL before this checkout (for --rev: what a
  // file may hold and still count as unchanged).
  const ArtifactRef* recorded = nullptr;
  std::string within;  // REL relative to the tracked directory, when inside one
  std::string target_rel;  // the workspace path written
};

// What to check out at REL: its tracked content, or with REV the artifact REV
// names. Points into TRACKED, which must outlive the result.
Result<CheckoutSource> ResolveCheckout(
    Repo& repo, const std::string& rel, const std::optional<std::string>& rev,
    const std::vector<ArtifactRef>& tracked) {
  CheckoutSource source;
  for (const ArtifactRef& t : tracked) {
    if (t.path == rel || t.path == "." || rel.starts_with(t.path + "/"))
      source.owner = &t;
  }
  const ArtifactRef* owner = source.owner;
  if (rev) {
    if (owner != nullptr && owner->path != rel) {
      return Status::InvalidArgument(
          "'" + rel + "' lies inside tracked '" + owner->path +
          "'; check out a version of '" + owner->path + "' instead");
    }
    CMF_ASSIGN_OR_RETURN(source.hash, repo.store().ResolveArtifact(*rev));
    CMF_ASSIGN_OR_RETURN(ArtifactRef artifact,
                         repo.store().GetArtifact(source.hash));
    source.kind = artifact.kind;
  } else {
    if (owner == nullptr)
      return Status::NotFound("'" + rel + "' is not tracked");
    source.hash = owner->hash;
    source.kind = owner->kind;
    if (owner->path != rel) {
      source.within =
          owner->path == "." ? rel : rel.substr(owner->path.size() + 1);
    }
  }
  source.recorded = owner != nullptr && owner->path == rel ? owner : nullptr;
  source.target_rel = rev || source.within.empty() ? rel : owner->path;
  return source;
}

// Nothing is written from an object whose bytes are not what its name says
// (a hard-linked file written in place, a flipped bit on disk): Corruption
// naming WHERE when OBJECT is damaged.
Status VerifyObject(const data::ObjectCache& objects, const std::string& object,
                    const std::string& where) {
  CMF_ASSIGN_OR_RETURN(bool good, objects.Verify(object));
  if (good) return Status::Ok();
  return Status::Corruption("the cached object " + object + " of '" + where +
                            "' is damaged (its bytes do not match its "
                            "name); nothing was restored; run cmf fsck");
}

// The Conflict that refuses to overwrite CHANGED, the files with local
// changes (at least one).
Status LocalChanges(const std::vector<std::string>& changed) {
  const std::string& first = changed.front();
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
}

// Restores the file at TARGET (REL) from the object of SOURCE, unless it
// holds it already; refuses local changes unless FORCE.
Status RestoreFile(Repo& repo, const CheckoutSource& source,
                   const std::string& rel, const fs::path& target, bool force,
                   const std::vector<data::LinkMode>& order,
                   CheckoutResult& result) {
  const data::ObjectCache& objects = repo.objects();
  Result<data::ObjectInfo> current = data::HashPath(objects, target);
  if (current.ok() && current->hash == source.hash) return Status::Ok();
  bool there = current.ok() || current.status().code() != Code::kNotFound;
  bool as_recorded = current.ok() && source.recorded != nullptr &&
                     current->hash == source.recorded->hash;
  if (there && !as_recorded && !force) return LocalChanges({rel});
  CMF_RETURN_IF_ERROR(VerifyObject(objects, source.hash, rel));
  CMF_RETURN_IF_ERROR(RefuseLinkOnTheWay(repo, target));
  CMF_RETURN_IF_ERROR(objects.Materialize(source.hash, target, order));
  result.restored_files = 1;
  return Status::Ok();
}

// The files as the store tracked them at the checked-out path: the manifest
// FILES itself when restoring the tracked content, the tracked one's for
// --rev (REV).
std::map<std::string, std::string> FilesBefore(
    const data::ObjectCache& objects, const CheckoutSource& source, bool rev,
    const std::vector<data::ScannedFile>& files) {
  std::map<std::string, std::string> before;
  if (!rev) {
    for (const auto& f : files) before[f.path] = f.hash;
  } else if (source.recorded != nullptr &&
             source.recorded->kind == ArtifactKind::kDirectory) {
    if (Result<std::string> m = objects.ReadObject(source.recorded->hash);
        m.ok()) {
      if (auto old = data::ParseManifest(*m); old.ok()) {
        for (const auto& f : *old) before[f.path] = f.hash;
      }
    }
  }
  return before;
}

// Restores the files of the directory manifest FILES under TARGET that differ
// (only those under SOURCE.within when it is set). Everything is checked
// before anything is written: local changes (unless FORCE), links on the way,
// the objects' bytes.
Status RestoreDirectory(Repo& repo, const CheckoutSource& source,
                        const std::string& rel, bool rev,
                        const std::vector<data::ScannedFile>& files,
                        const fs::path& target, bool force,
                        const std::vector<data::LinkMode>& order,
                        CheckoutResult& result) {
  const data::ObjectCache& objects = repo.objects();
  const std::string& within = source.within;
  StoreStatCache stat_cache(repo.store());
  std::map<std::string, std::string> present;
  data::ScanOptions scan;
  scan.stat_cache = &stat_cache;
  if (Result<data::ScanResult> now = data::Scan(objects, target, scan);
      now.ok()) {
    for (const auto& f : now->files) present[f.path] = f.hash;
  }
  const std::map<std::string, std::string> before =
      FilesBefore(objects, source, rev, files);
  std::vector<std::string> changed;  // files with local changes
  std::vector<const data::ScannedFile*> to_write;
  for (const data::ScannedFile& f : files) {
    if (!within.empty() && f.path != within &&
        !f.path.starts_with(within + "/"))
      continue;
    auto it = present.find(f.path);
    if (it != present.end() && it->second == f.hash) continue;
    if (it != present.end()) {
      auto was = before.find(f.path);
      if (!force && (was == before.end() || was->second != it->second))
        changed.push_back(Join(source.target_rel, f.path));
    }
    to_write.push_back(&f);
  }
  if (!changed.empty()) return LocalChanges(changed);
  for (const data::ScannedFile* f : to_write)
    CMF_RETURN_IF_ERROR(RefuseLinkOnTheWay(repo, target / f->path));
  for (const data::ScannedFile* f : to_write) {
    CMF_RETURN_IF_ERROR(
        VerifyObject(objects, f->hash, Join(source.target_rel, f->path)));
  }
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
      std::none_of(files.begin(), files.end(), [&](const data::ScannedFile& f) {
        return f.path == within || f.path.starts_with(within + "/");
      })) {
    return Status::NotFound("'" + rel + "' is not in tracked '" +
                            source.owner->path + "'");
  }
  return Status::Ok();
}
}  // namespace

Result<CheckoutResult> Checkout(Repo& repo, const fs::path& path,
                                const std::optional<std::string>& rev,
                                bool force) {
  CMF_ASSIGN_OR_RETURN(std::vector<data::LinkMode> order, LinkOrder(repo));
  CMF_ASSIGN_OR_RETURN(std::string rel, InsideWorkspace(repo, path));
  CMF_ASSIGN_OR_RETURN(std::vector<ArtifactRef> tracked,
                       repo.store().ListTracked());
  CMF_ASSIGN_OR_RETURN(CheckoutSource source,
                       ResolveCheckout(repo, rel, rev, tracked));
  const std::string& hash = source.hash;
  CheckoutResult result;
  result.path = rel;
  const data::ObjectCache& objects = repo.objects();
  if (!objects.Has(hash)) {
    return Status::NotFound("the content of '" + rel + "' (" +
                            hash.substr(0, 12) + ") is not in the cache");
  }
  // A directory's object is its manifest; a file's object is only read by
  // whatever copies it (it may be larger than memory).
  Result<std::vector<data::ScannedFile>> files = Status::NotFound("a file");
  std::uint64_t file_size = 0;
  if (source.kind == ArtifactKind::kDirectory) {
    CMF_RETURN_IF_ERROR(VerifyObject(objects, hash, rel));
    CMF_ASSIGN_OR_RETURN(std::string manifest, objects.ReadObject(hash));
    files = data::ParseManifest(manifest);
    if (!files.ok()) return files.status().With("object '" + hash + "'");
  } else {
    std::error_code ec;
    file_size = fs::file_size(objects.PathOf(hash), ec);
  }
  const fs::path target = Absolute(repo, source.target_rel);
  result.hash = hash;
  if (!files.ok()) {  // a single file
    CMF_RETURN_IF_ERROR(
        RestoreFile(repo, source, rel, target, force, order, result));
  } else {
    CMF_RETURN_IF_ERROR(RestoreDirectory(repo, source, rel, rev.has_value(),
                                         *files, target, force, order, result));
  }
  if (rev) {
    ArtifactRef ref{rel, hash, 0, source.kind};
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

}  // namespace cmf
