// The version of the code an execution ran: the enclosing git repository's HEAD
// and whether its tracked files differ from it. Read with libgit2; the
// repository is never written to.
#pragma once

#include <filesystem>
#include <optional>

#include "cmf/records.h"

namespace cmf {

// The code version of the git work tree that contains DIR (searching upwards),
// or nothing when DIR is not inside one (or it cannot be read). Untracked files
// do not make it dirty. Thread-safe.
std::optional<CodeVersion> ReadCodeVersion(const std::filesystem::path& dir);

}  // namespace cmf
