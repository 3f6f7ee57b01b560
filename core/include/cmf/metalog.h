// The metadata log: .cmf/log.git, a bare git repository whose branch `main`
// holds every committed segment (doc/federation.md). The work is done by the
// module cmf-git.so, loaded on first use (src/git_module.h); Open and Create
// fail with IOError when it cannot be loaded.
//
// Each commit made here adds exactly one segment, at a path that only its site
// can write (cmf/segment.h), so two logs always merge as the union of their
// trees: a merge never conflicts and never needs a person. The branch only
// moves forward, and only after the segments it adds are in metadata.db, so
// "every segment reachable from main is ingested" always holds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cmf/status.h"

namespace cmf {

class MetaLogBackend;

inline constexpr char kLogBranch[] = "refs/heads/main";

// How libgit2 reaches a remote: host keys and keys for ssh.
struct GitTransferStats {
  std::uint64_t objects = 0;
  std::uint64_t bytes = 0;
};

class MetaLog {
 public:
  // Opens the bare repository GIT_DIR. NotFound when it is not one.
  static Result<MetaLog> Open(const std::filesystem::path& git_dir);
  // Creates a bare repository at GIT_DIR whose HEAD names main.
  static Status Create(const std::filesystem::path& git_dir);

  MetaLog(MetaLog&&) noexcept;
  MetaLog& operator=(MetaLog&&) noexcept;
  ~MetaLog();

  // The commit REF points at (full ref name), or "" when REF does not exist.
  Result<std::string> Tip(const std::string& ref = kLogBranch) const;

  // Commits the segment TEXT (named HASH, from SITE) on main, on top of its
  // tip. Returns the new commit's id.
  Result<std::string> CommitSegment(const std::string& site,
                                    const std::string& hash,
                                    const std::string& text,
                                    const std::string& message);

  enum class MergeKind { kUpToDate, kFastForward, kUnion };
  struct Merged {
    std::string tip;
    MergeKind kind = MergeKind::kUpToDate;
  };
  // Brings commit THEIRS into main: nothing when main has it, a fast-forward
  // when main is its ancestor, else a merge commit whose tree is the union of
  // both trees.
  Result<Merged> Merge(const std::string& theirs, const std::string& message);

  // A file a commit adds under segments/.
  struct Entry {
    std::string path;  // in the log's tree
    std::string site;  // its site, as the path says ("" when it is not one)
    std::string hash;  // its name, as the path says ("" when it is not one)
    std::string text;
    // Empty for a segment's path, segments/<site>/<xx>/<hash>.jsonl (a valid
    // site id, 64 lowercase hex digits, xx their first two); else why the
    // path is not one (a "..", a wrong shape...).
    std::string problem;
  };
  // Calls SINK for each file under segments/ that each commit adds (and for
  // any path that holds "." or ".." or an empty name), for the commits
  // reachable from TIP but not from any of HIDE (empty ids are skipped), every
  // commit after its parents. Other files (a future kind) are skipped.
  Status ForEachNewEntry(const std::string& tip,
                         const std::vector<std::string>& hide,
                         const std::function<Status(const Entry&)>& sink) const;

  // As ForEachNewEntry, with (hash, text) of the files whose path is a
  // segment's (the others are skipped).
  Status ForEachNewSegment(
      const std::string& tip, const std::vector<std::string>& hide,
      const std::function<Status(const std::string& hash,
                                 const std::string& text)>& sink) const;

  // The number of commits reachable from TIP but not from HIDE.
  Result<std::int64_t> CountNew(const std::string& tip,
                                const std::string& hide) const;

  // True when commit A is B or one of B's ancestors.
  Result<bool> IsAncestor(const std::string& a, const std::string& b) const;

  // Fetches the remote's main at URL into INTO (a ref name). Returns the
  // remote's tip, or "" when the remote has no main yet.
  Result<std::string> Fetch(const std::string& url, const std::string& into,
                            GitTransferStats* stats);

  // Pushes main to URL's main. Conflict when the remote moved on (its main is
  // not an ancestor of ours) or is locked by another push.
  Status Push(const std::string& url, GitTransferStats* stats);

 private:
  explicit MetaLog(std::unique_ptr<MetaLogBackend> backend);
  std::unique_ptr<MetaLogBackend> backend_;
};

}  // namespace cmf
