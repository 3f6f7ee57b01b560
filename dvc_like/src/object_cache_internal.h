// Internal: what the source files of ObjectCache share. object_cache.cpp holds
// the cache's layout and its lookups; object_cache_write.cpp stores files and
// bytes as pending objects; object_cache_publish.cpp gives pending objects
// their names; object_cache_link.cpp holds the link strategies and
// Materialize; object_cache_gc.cpp lists, verifies and removes objects and
// left-behind temporaries. Nothing here is for the rest of libcmf_data.
#pragma once

#include <cstring>
#include <filesystem>
#include <string>

#include "cmf/status.h"

namespace cmf::data::cache_internal {

inline Status ErrnoStatus(const std::string& what, int err) {
  return Status::IOError(what + ": " + std::strerror(err));
}

// Replaces DEST by a new hard link to TARGET (atomically, through a temporary
// name beside DEST). Returns 0 or an errno value.
int RelinkHard(const std::filesystem::path& target,
               const std::filesystem::path& dest);

// Replaces DEST by a symbolic link to TARGET, relative when both are absolute
// (so that moving the whole workspace keeps it working, as git-annex does).
// Returns 0 or an errno value.
int RelinkSymbolic(const std::filesystem::path& target,
                   const std::filesystem::path& dest);

}  // namespace cmf::data::cache_internal
