// Internal: libgit2 set-up and error conversion.
#pragma once

#include <git2.h>

#include <string>

#include "cmf/status.h"

namespace cmf::git {

// Initialises libgit2 once per process (thread-safe).
void EnsureInit();

// A Status for the last libgit2 error, prefixed with WHAT; NotFound for
// GIT_ENOTFOUND.
Status Error(int rc, const std::string& what);

// Owning handles for libgit2 objects.
template <typename T, void (*Free)(T*)>
struct Own {
  T* p = nullptr;
  Own() = default;
  Own(const Own&) = delete;
  Own& operator=(const Own&) = delete;
  ~Own() {
    if (p) Free(p);
  }
  T** out() { return &p; }
  T* get() const { return p; }
};
using Tree = Own<git_tree, git_tree_free>;
using Commit = Own<git_commit, git_commit_free>;
using Builder = Own<git_treebuilder, git_treebuilder_free>;
using Walk = Own<git_revwalk, git_revwalk_free>;
using Remote = Own<git_remote, git_remote_free>;
using Sig = Own<git_signature, git_signature_free>;
using Blob = Own<git_blob, git_blob_free>;
using Ref = Own<git_reference, git_reference_free>;

inline Result<git_oid> ParseOid(const std::string& hex) {
  git_oid oid;
  if (git_oid_fromstr(&oid, hex.c_str()) != 0) {
    return Status::InvalidArgument("not a commit id: '" + hex + "'");
  }
  return oid;
}

inline std::string Hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

}  // namespace cmf::git
