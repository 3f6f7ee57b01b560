// How a file looks on disk, as stat(2) tells it: if all of it is unchanged, so
// is the file's content (the premise of the stat cache, and of every check that
// a file did not change while it was read).
#pragma once

#include <sys/stat.h>

#include <cstdint>

namespace cmf::data {

struct FileStat {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStat&) const = default;
};

inline FileStat ToFileStat(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_dev),
          static_cast<std::uint64_t>(st.st_ino),
          static_cast<std::uint64_t>(st.st_size),
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
              st.st_mtim.tv_nsec};
}

// The inode's change time in nanoseconds.
inline std::int64_t CtimeNs(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1'000'000'000 +
         st.st_ctim.tv_nsec;
}

}  // namespace cmf::data
