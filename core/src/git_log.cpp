// The metadata log over libgit2 (git_log.h): commits of segments, the union
// merge, the walk over new entries; and the git module's table.
#include "git_log.h"

#include <fcntl.h>
#include <git2.h>
#include <signal.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <set>
#include <unordered_set>

#include "cmf/code_version.h"
#include "cmf/data/fault.h"
#include "cmf/segment.h"
#include "cmf_build_id.h"
#include "cmf_config.h"
#include "fact_check.h"
#include "git_util.h"

namespace fs = std::filesystem;

namespace cmf {

using namespace git;

namespace {

// The union of trees A and B (either may be null): entries of both, subtrees
// present in both merged recursively. Two different blobs at one path cannot
// come from segments (a path names its content), so they are Corruption.
Result<git_oid> UnionTrees(git_repository* repo, const git_tree* a,
                           const git_tree* b, const std::string& where) {
  if (a == nullptr) return *git_tree_id(b);
  if (b == nullptr || git_oid_equal(git_tree_id(a), git_tree_id(b))) {
    return *git_tree_id(a);
  }
  Builder builder;
  int rc = git_treebuilder_new(builder.out(), repo, a);
  if (rc < 0) return git::Error(rc, "cannot merge the metadata log");
  for (std::size_t i = 0, n = git_tree_entrycount(b); i < n; ++i) {
    const git_tree_entry* theirs = git_tree_entry_byindex(b, i);
    const char* name = git_tree_entry_name(theirs);
    const git_tree_entry* ours = git_treebuilder_get(builder.get(), name);
    if (ours != nullptr &&
        git_oid_equal(git_tree_entry_id(ours), git_tree_entry_id(theirs))) {
      continue;
    }
    git_oid id = *git_tree_entry_id(theirs);
    git_filemode_t mode = git_tree_entry_filemode(theirs);
    // A name git refuses in a tree ("..", ".git", ...) was not written by
    // cmf: it is left out (the walk of that side quarantines what it holds).
    const std::string_view entry_name(name);
    if (entry_name.empty() || entry_name == "." || entry_name == ".." ||
        entry_name.find('/') != entry_name.npos ||
        strcasecmp(name, ".git") == 0) {
      continue;
    }
    if (ours != nullptr) {
      if (git_tree_entry_type(ours) != GIT_OBJECT_TREE ||
          git_tree_entry_type(theirs) != GIT_OBJECT_TREE) {
        // Two different files at one path: one was not written by cmf (a
        // segment's path names its content). Ours stays; the walk of their
        // side finds theirs and quarantines it.
        continue;
      }
      Tree ta, tb;
      rc = git_tree_lookup(ta.out(), repo, git_tree_entry_id(ours));
      if (rc == 0) rc = git_tree_lookup(tb.out(), repo, &id);
      if (rc < 0) return git::Error(rc, "cannot read the metadata log");
      CMF_ASSIGN_OR_RETURN(
          id, UnionTrees(repo, ta.get(), tb.get(), where + name + "/"));
      mode = GIT_FILEMODE_TREE;
    }
    rc = git_treebuilder_insert(nullptr, builder.get(), name, &id, mode);
    if (rc < 0) return git::Error(rc, "cannot merge the metadata log");
  }
  git_oid out;
  rc = git_treebuilder_write(&out, builder.get());
  if (rc < 0) return git::Error(rc, "cannot merge the metadata log");
  return out;
}

// Fills ENTRY's site, hash and problem from its path. False when the path is
// outside segments/ and harmless (a future kind of file, skipped).
bool SegmentEntry(MetaLog::Entry* entry) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = entry->path.find('/', start);
    parts.push_back(entry->path.substr(start, slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  bool dotted = std::any_of(parts.begin(), parts.end(), [](const auto& p) {
    return p.empty() || p == "." || p == "..";
  });
  if (parts[0] != "segments" && !dotted) return false;
  if (parts.size() > 1 && IsValidSiteId(parts[1])) entry->site = parts[1];
  const std::string& file = parts.back();
  const std::string hash =
      file.size() == 70 && file.ends_with(".jsonl") ? file.substr(0, 64) : "";
  if (!dotted && parts.size() == 4 && !entry->site.empty() &&
      facts::IsSha256Hex(hash) && parts[2] == hash.substr(0, 2)) {
    entry->hash = hash;
    return true;
  }
  if (dotted) entry->site.clear();
  entry->problem = dotted ? "its path in the log holds \".\", \"..\" or an "
                            "empty name"
                          : "its path in the log is not "
                            "segments/<site>/<xx>/<hash>.jsonl";
  return true;
}

// Appends to OUT the blobs (path, id) that tree B has and tree A (which may be
// null) has not, reading only the subtrees whose ids differ.
Status AddedBlobs(git_repository* repo, const git_tree* a, const git_tree* b,
                  const std::string& prefix,
                  std::vector<std::pair<std::string, git_oid>>* out) {
  for (std::size_t i = 0, n = git_tree_entrycount(b); i < n; ++i) {
    const git_tree_entry* theirs = git_tree_entry_byindex(b, i);
    const char* name = git_tree_entry_name(theirs);
    const git_tree_entry* ours = a ? git_tree_entry_byname(a, name) : nullptr;
    if (ours &&
        git_oid_equal(git_tree_entry_id(ours), git_tree_entry_id(theirs))) {
      continue;
    }
    std::string path = prefix + name;
    if (git_tree_entry_type(theirs) == GIT_OBJECT_BLOB) {
      if (!ours) out->emplace_back(path, *git_tree_entry_id(theirs));
      continue;
    }
    if (git_tree_entry_type(theirs) != GIT_OBJECT_TREE) continue;
    Tree sub_b, sub_a;
    int rc = git_tree_lookup(sub_b.out(), repo, git_tree_entry_id(theirs));
    if (rc == 0 && ours && git_tree_entry_type(ours) == GIT_OBJECT_TREE) {
      rc = git_tree_lookup(sub_a.out(), repo, git_tree_entry_id(ours));
    }
    if (rc < 0) return git::Error(rc, "cannot read the metadata log");
    CMF_RETURN_IF_ERROR(
        AddedBlobs(repo, sub_a.get(), sub_b.get(), path + "/", out));
  }
  return Status::Ok();
}

}  // namespace

namespace {

Status CreateLog(const fs::path& git_dir) {
  git::EnsureInit();
  git_repository* repo = nullptr;
  int rc = git_repository_init(&repo, git_dir.c_str(), /*is_bare=*/1);
  if (rc < 0) return git::Error(rc, "cannot create the metadata log");
  Ref head;
  rc = git_reference_symbolic_create(head.out(), repo, "HEAD", kLogBranch, 1,
                                     "cmf: the log's branch is main");
  git_repository_free(repo);
  if (rc < 0) return git::Error(rc, "cannot create the metadata log");
  return Status::Ok();
}

Result<std::unique_ptr<MetaLogBackend>> OpenLog(const fs::path& git_dir) {
  git::EnsureInit();
  git_repository* repo = nullptr;
  int rc = git_repository_open_bare(&repo, git_dir.c_str());
  if (rc < 0) {
    return git::Error(
        rc, "cannot open the metadata log '" + git_dir.string() + "'");
  }
  return std::unique_ptr<MetaLogBackend>(std::make_unique<GitLog>(repo));
}

}  // namespace

Result<std::string> GitLog::Tip(const std::string& ref) const {
  git_oid oid;
  int rc = git_reference_name_to_id(&oid, repo_, ref.c_str());
  if (rc == GIT_ENOTFOUND) return std::string();
  if (rc < 0)
    return git::Error(rc, "cannot read '" + ref + "' of the metadata log");
  return Hex(oid);
}

Status GitLog::SetMain(const std::string& id, const std::string& expected,
                       const std::string& why) {
  CMF_ASSIGN_OR_RETURN(git_oid target, ParseOid(id));
  Ref ref;
  int rc;
  if (expected.empty()) {
    rc = git_reference_create(ref.out(), repo_, kLogBranch, &target, 0,
                              why.c_str());
  } else {
    CMF_ASSIGN_OR_RETURN(git_oid old, ParseOid(expected));
    rc = git_reference_create_matching(ref.out(), repo_, kLogBranch, &target, 1,
                                       &old, why.c_str());
  }
  if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS || rc == GIT_ELOCKED) {
    return Status::Conflict("the metadata log moved while cmf updated it");
  }
  if (rc < 0) return git::Error(rc, "cannot update the metadata log");
  return Status::Ok();
}

Result<std::string> GitLog::CommitSegment(const std::string& site,
                                          const std::string& hash,
                                          const std::string& text,
                                          const std::string& message) {
  CMF_ASSIGN_OR_RETURN(std::string tip, Tip(kLogBranch));
  Commit parent;
  Tree base;
  int rc = 0;
  if (!tip.empty()) {
    CMF_ASSIGN_OR_RETURN(git_oid pid, ParseOid(tip));
    rc = git_commit_lookup(parent.out(), repo_, &pid);
    if (rc == 0) rc = git_commit_tree(base.out(), parent.get());
    if (rc < 0) return git::Error(rc, "cannot read the metadata log");
  }
  git_oid blob;
  rc = git_blob_create_from_buffer(&blob, repo_, text.data(), text.size());
  if (rc < 0) return git::Error(rc, "cannot write to the metadata log");
  const std::string path = SegmentPath(site, hash);
  git_tree_update update{};
  update.action = GIT_TREE_UPDATE_UPSERT;
  update.id = blob;
  update.filemode = GIT_FILEMODE_BLOB;
  update.path = path.c_str();
  git_oid tree_id;
  rc = git_tree_create_updated(&tree_id, repo_, base.get(), 1, &update);
  if (rc < 0) return git::Error(rc, "cannot write to the metadata log");
  Tree tree;
  rc = git_tree_lookup(tree.out(), repo_, &tree_id);
  Sig sig;
  if (rc == 0)
    rc = git_signature_now(sig.out(), ("cmf site " + site).c_str(),
                           (site + "@cmf").c_str());
  if (rc < 0) return git::Error(rc, "cannot write to the metadata log");
  const git_commit* parents[] = {parent.get()};
  git_oid commit;
  rc = git_commit_create(&commit, repo_, nullptr, sig.get(), sig.get(), "UTF-8",
                         message.c_str(), tree.get(), tip.empty() ? 0 : 1,
                         parents);
  if (rc < 0) return git::Error(rc, "cannot write to the metadata log");
  CMF_RETURN_IF_ERROR(SetMain(Hex(commit), tip, "cmf commit"));
  return Hex(commit);
}

Result<bool> GitLog::IsAncestor(const std::string& a,
                                const std::string& b) const {
  if (a == b) return true;
  CMF_ASSIGN_OR_RETURN(git_oid oa, ParseOid(a));
  CMF_ASSIGN_OR_RETURN(git_oid ob, ParseOid(b));
  int rc = git_graph_descendant_of(repo_, &ob, &oa);
  if (rc < 0) return git::Error(rc, "cannot read the metadata log");
  return rc == 1;
}

Result<MetaLog::Merged> GitLog::Merge(const std::string& theirs,
                                      const std::string& message) {
  CMF_ASSIGN_OR_RETURN(std::string ours, Tip(kLogBranch));
  if (theirs.empty())
    return MetaLog::Merged{ours, MetaLog::MergeKind::kUpToDate};
  if (ours.empty()) {
    CMF_RETURN_IF_ERROR(SetMain(theirs, "", "cmf: fast-forward"));
    return MetaLog::Merged{theirs, MetaLog::MergeKind::kFastForward};
  }
  CMF_ASSIGN_OR_RETURN(bool have, IsAncestor(theirs, ours));
  if (have) return MetaLog::Merged{ours, MetaLog::MergeKind::kUpToDate};
  CMF_ASSIGN_OR_RETURN(bool behind, IsAncestor(ours, theirs));
  if (behind) {
    CMF_RETURN_IF_ERROR(SetMain(theirs, ours, "cmf: fast-forward"));
    return MetaLog::Merged{theirs, MetaLog::MergeKind::kFastForward};
  }
  CMF_ASSIGN_OR_RETURN(git_oid oo, ParseOid(ours));
  CMF_ASSIGN_OR_RETURN(git_oid ot, ParseOid(theirs));
  Commit co, ct;
  Tree to, tt;
  int rc = git_commit_lookup(co.out(), repo_, &oo);
  if (rc == 0) rc = git_commit_lookup(ct.out(), repo_, &ot);
  if (rc == 0) rc = git_commit_tree(to.out(), co.get());
  if (rc == 0) rc = git_commit_tree(tt.out(), ct.get());
  if (rc < 0) return git::Error(rc, "cannot read the metadata log");
  CMF_ASSIGN_OR_RETURN(git_oid tree_id,
                       UnionTrees(repo_, to.get(), tt.get(), ""));
  Tree tree;
  Sig sig;
  rc = git_tree_lookup(tree.out(), repo_, &tree_id);
  if (rc == 0) rc = git_signature_now(sig.out(), "cmf", "merge@cmf");
  if (rc < 0) return git::Error(rc, "cannot merge the metadata log");
  const git_commit* parents[] = {co.get(), ct.get()};
  git_oid commit;
  rc = git_commit_create(&commit, repo_, nullptr, sig.get(), sig.get(), "UTF-8",
                         message.c_str(), tree.get(), 2, parents);
  if (rc < 0) return git::Error(rc, "cannot merge the metadata log");
  CMF_RETURN_IF_ERROR(SetMain(Hex(commit), ours, "cmf: union merge"));
  return MetaLog::Merged{Hex(commit), MetaLog::MergeKind::kUnion};
}

Status GitLog::ForEachNewEntry(
    const std::string& tip, const std::vector<std::string>& hide,
    const std::function<Status(const MetaLog::Entry&)>& sink) const {
  if (tip.empty()) return Status::Ok();
  Walk walk;
  int rc = git_revwalk_new(walk.out(), repo_);
  if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
  CMF_ASSIGN_OR_RETURN(git_oid start, ParseOid(tip));
  rc = git_revwalk_push(walk.get(), &start);
  if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
  git_odb* odb = nullptr;
  rc = git_repository_odb(&odb, repo_);
  if (rc < 0) return git::Error(rc, "cannot open the metadata log");
  std::unique_ptr<git_odb, void (*)(git_odb*)> own_odb(odb, git_odb_free);
  for (const std::string& h : hide) {
    if (h.empty()) continue;
    CMF_ASSIGN_OR_RETURN(git_oid oid, ParseOid(h));
    if (!git_odb_exists(odb, &oid)) continue;  // nothing of it to hide
    rc = git_revwalk_hide(walk.get(), &oid);
    if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
  }
  git_oid oid;
  while ((rc = git_revwalk_next(&oid, walk.get())) == 0) {
    Commit commit;
    rc = git_commit_lookup(commit.out(), repo_, &oid);
    if (rc < 0) return git::Error(rc, "cannot read the metadata log");
    if (git_commit_parentcount(commit.get()) > 1) continue;  // a union
    Tree tree, parent_tree;
    rc = git_commit_tree(tree.out(), commit.get());
    if (rc == 0 && git_commit_parentcount(commit.get()) == 1) {
      Commit parent;
      rc = git_commit_parent(parent.out(), commit.get(), 0);
      if (rc == 0) rc = git_commit_tree(parent_tree.out(), parent.get());
    }
    if (rc < 0) return git::Error(rc, "cannot read the metadata log");
    // The blobs this commit adds: only subtrees whose ids differ are read,
    // so the cost follows the change, not the size of the history.
    std::vector<std::pair<std::string, git_oid>> added;
    CMF_RETURN_IF_ERROR(
        AddedBlobs(repo_, parent_tree.get(), tree.get(), "", &added));
    for (const auto& [path, id] : added) {
      MetaLog::Entry entry;
      entry.path = path;
      if (!SegmentEntry(&entry)) continue;  // a future kind of file
      Blob blob;
      rc = git_blob_lookup(blob.out(), repo_, &id);
      if (rc < 0) return git::Error(rc, "cannot read the metadata log");
      auto size = static_cast<std::size_t>(git_blob_rawsize(blob.get()));
      if (size > facts::kMaxSegmentBytes) {
        if (entry.problem.empty()) {
          entry.problem = "it is larger than " +
                          std::to_string(facts::kMaxSegmentBytes) + " bytes";
        }
      } else {
        entry.text.assign(
            static_cast<const char*>(git_blob_rawcontent(blob.get())), size);
      }
      CMF_RETURN_IF_ERROR(sink(entry));
    }
  }
  if (rc != GIT_ITEROVER) return git::Error(rc, "cannot walk the metadata log");
  return Status::Ok();
}

Result<std::int64_t> GitLog::CountNew(const std::string& tip,
                                      const std::string& hide) const {
  if (tip.empty()) return 0;
  Walk walk;
  int rc = git_revwalk_new(walk.out(), repo_);
  if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
  CMF_ASSIGN_OR_RETURN(git_oid start, ParseOid(tip));
  rc = git_revwalk_push(walk.get(), &start);
  if (rc == 0 && !hide.empty()) {
    CMF_ASSIGN_OR_RETURN(git_oid h, ParseOid(hide));
    rc = git_revwalk_hide(walk.get(), &h);
  }
  if (rc < 0) return git::Error(rc, "cannot walk the metadata log");
  std::int64_t n = 0;
  git_oid oid;
  while (git_revwalk_next(&oid, walk.get()) == 0) ++n;
  return n;
}

namespace {

const GitModule kGitModule = {
    .header = {kGitModuleAbi, CMF_VERSION, CMF_BUILD_ID},
    .create_log = &CreateLog,
    .open_log = &OpenLog,
    .read_code_version = &ReadCodeVersion,
};

}  // namespace
}  // namespace cmf

extern "C" __attribute__((visibility("default"))) const cmf::GitModule*
cmf_git_module() {
  return &cmf::kGitModule;
}
