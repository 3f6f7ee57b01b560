// Writing a small text file whole or not at all: a temporary name beside it,
// fsync, rename over PATH. Throws std::runtime_error naming the file.
#pragma once

#include <filesystem>
#include <string>

namespace cmf::h5 {

void WriteTextFile(const std::filesystem::path& path, const std::string& text);

}  // namespace cmf::h5
