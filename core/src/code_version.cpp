#include "cmf/code_version.h"

#include <git2.h>

#include "git_util.h"

namespace cmf {

std::optional<CodeVersion> ReadCodeVersion(const std::filesystem::path& dir) {
  git::EnsureInit();
  git_repository* repo = nullptr;
  if (git_repository_open_ext(&repo, dir.c_str(), 0, nullptr) < 0)
    return std::nullopt;
  struct Free {
    git_repository* r;
    ~Free() { git_repository_free(r); }
  } free_repo{repo};
  if (git_repository_is_bare(repo)) return std::nullopt;

  CodeVersion code;
  const char* workdir = git_repository_workdir(repo);
  code.repo =
      workdir ? std::filesystem::path(workdir).lexically_normal().string() : "";
  if (!code.repo.empty() && code.repo.size() > 1 && code.repo.back() == '/')
    code.repo.pop_back();

  git_oid head;
  if (git_reference_name_to_id(&head, repo, "HEAD") == 0) {
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &head);
    code.commit = hex;
  }  // else: a repository with no commit yet; commit stays empty

  git_status_options opts = GIT_STATUS_OPTIONS_INIT;
  opts.show = GIT_STATUS_SHOW_INDEX_AND_WORKDIR;
  opts.flags = GIT_STATUS_OPT_EXCLUDE_SUBMODULES;  // tracked files only:
                                                   // untracked are not dirt
  git_status_list* list = nullptr;
  if (git_status_list_new(&list, repo, &opts) == 0) {
    code.dirty = git_status_list_entrycount(list) > 0;
    git_status_list_free(list);
  }
  return code;
}

}  // namespace cmf
