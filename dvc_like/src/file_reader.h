// Internal: streaming reads of whole files in large blocks, with a check that
// the file did not change while it was read.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>

#include "cmf/data/file_stat.h"
#include "cmf/status.h"

namespace cmf::data {

// Calls SINK with consecutive blocks of the regular file at PATH until its end,
// or until SINK returns an error (which is returned). NotFound when PATH does
// not exist; IOError when it cannot be opened or read, is not a regular file,
// or its size or modification time changed while it was read.
Status ReadFileInBlocks(
    const std::filesystem::path& path,
    const std::function<Status(const char*, std::size_t)>& sink);

// As above, for a file the caller listed as EXPECTED: IOError ("changed while
// it was read") unless the file opened still looks like that.
Status ReadFileInBlocks(
    const std::filesystem::path& path,
    const std::function<Status(const char*, std::size_t)>& sink,
    const FileStat* expected);

// The SHA-256 of the file at PATH in hex, read as ReadFileInBlocks reads it
// (EXPECTED may be null) and with its errors: a file that grows or shrinks
// meanwhile is reported as changed.
Result<std::string> HashFileContent(const std::filesystem::path& path,
                                    const FileStat* expected);

}  // namespace cmf::data
