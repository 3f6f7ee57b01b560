// Internal: what the files of the workspace (workspace.cpp: add and status;
// workspace_checkout.cpp: checkout and unlock; workspace_maintenance.cpp: fsck
// and gc) share. Paths are workspace-relative unless they are fs::path.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cmf/data/file_ops.h"
#include "cmf/data/object_cache.h"
#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf::workspace_internal {

// The link strategies of config cache.link, in the order they are tried.
Result<std::vector<data::LinkMode>> LinkOrder(Repo& repo);

// The workspace-relative form of PATH, which must lie inside the workspace
// and outside its .cmf/ (InvalidArgument otherwise).
Result<std::string> InsideWorkspace(const Repo& repo,
                                    const std::filesystem::path& path);

// A path of the workspace, absolute, from its workspace-relative form.
std::filesystem::path Absolute(const Repo& repo, const std::string& rel);

// FILE inside the workspace folder DIR ("." for the workspace itself).
std::string Join(const std::string& dir, const std::string& file);

}  // namespace cmf::workspace_internal
