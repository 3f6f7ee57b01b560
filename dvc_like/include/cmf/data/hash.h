// Content hashing for cmf: the SHA-256 of files, as 64 lowercase hex digits
// (and, through cmf/data/sha256.h, of bytes). Thread-safe.
#pragma once

#include <filesystem>
#include <string>

#include "cmf/data/sha256.h"
#include "cmf/status.h"

namespace cmf::data {

// The SHA-256 of a regular file's content, in hex. NotFound when it does not
// exist, IOError when it cannot be read or changed while it was read.
Result<std::string> HashFile(const std::filesystem::path& path);

}  // namespace cmf::data
