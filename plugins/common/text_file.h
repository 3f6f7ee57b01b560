// Writing a small file whole or not at all (the plugins' side of the host's
// AtomicFile, which plugins do not link): a temporary name beside it, fsync,
// rename over PATH, fsync of its folder. TEXT may hold any bytes. Throws
// std::runtime_error naming the file.
#pragma once

#include <filesystem>
#include <string>

namespace cmf::h5 {

void WriteTextFile(const std::filesystem::path& path, const std::string& text);

}  // namespace cmf::h5
