#include "git_util.h"

#include <git2.h>

#include <mutex>

namespace cmf::git {

void EnsureInit() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // The log is metadata that SQLite already calls committed: its objects
    // and refs must reach the disk too.
    git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
  });
}

Status Error(int rc, const std::string& what) {
  const git_error* e = git_error_last();
  std::string msg =
      what + ": " + (e && e->message ? e->message : "unknown libgit2 error");
  if (rc == GIT_ENOTFOUND) return Status::NotFound(msg);
  if (rc == GIT_EINVALIDSPEC) return Status::InvalidArgument(msg);
  if (rc == GIT_ELOCKED) return Status::Conflict(msg);
  return Status::IOError(msg);
}

}  // namespace cmf::git
