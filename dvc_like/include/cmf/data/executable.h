// Where the running binary lives: modules and plugins are looked for beside
// it (the build tree) before where `meson install` puts them.
#pragma once

#include <filesystem>

namespace cmf::data {

// The folder of the running executable (/proc/self/exe), or an empty path
// when it cannot be read.
inline std::filesystem::path ExecutableDir() {
  std::error_code ec;
  std::filesystem::path exe =
      std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

}  // namespace cmf::data
