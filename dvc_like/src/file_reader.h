// Internal: streaming reads of whole files in large blocks, with a check that
// the file did not change while it was read.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>

#include "cmf/status.h"

namespace cmf::data {

// Calls SINK with consecutive blocks of the regular file at PATH until its end,
// or until SINK returns an error (which is returned). NotFound when PATH does
// not exist; IOError when it cannot be opened or read, is not a regular file,
// or its size or modification time changed while it was read.
Status ReadFileInBlocks(
    const std::filesystem::path& path,
    const std::function<Status(const char*, std::size_t)>& sink);

}  // namespace cmf::data
