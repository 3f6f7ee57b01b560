// The link strategies: their names, the order config cache.link gives, and
// Materialize, which places an object at a path by the first that works.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "cmf/data/object_cache.h"
#include "file_reader.h"
#include "object_cache_internal.h"

namespace fs = std::filesystem;

namespace cmf::data {

using cache_internal::ErrnoStatus;
using cache_internal::RelinkHard;
using cache_internal::RelinkSymbolic;

std::string_view ToString(LinkMode mode) {
  switch (mode) {
    case LinkMode::kReflink:
      return "reflink";
    case LinkMode::kHardlink:
      return "hardlink";
    case LinkMode::kSymlink:
      return "symlink";
    case LinkMode::kCopy:
      return "copy";
  }
  return "copy";
}

Result<std::vector<LinkMode>> ParseLinkOrder(std::string_view text) {
  if (text == "auto" || text.empty()) {
    // A clone where the file system can make one; otherwise the workspace
    // file itself becomes the object, read-only until `cmf unlock` (as
    // git-annex's locked files): adding then reads each byte once and writes
    // none. A copy only across file systems. (Root ignores the read-only mode:
    // a hard-linked file that root rewrites in place changes the object, which
    // cmf status and cmf fsck then report. `reflink,copy` avoids that.)
    return std::vector<LinkMode>{LinkMode::kReflink, LinkMode::kHardlink,
                                 LinkMode::kCopy};
  }
  std::vector<LinkMode> order;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view name = text.substr(start, comma - start);
    bool known = false;
    for (LinkMode m : {LinkMode::kReflink, LinkMode::kHardlink,
                       LinkMode::kSymlink, LinkMode::kCopy}) {
      if (name == ToString(m)) {
        order.push_back(m);
        known = true;
      }
    }
    if (!known) {
      return Status::InvalidArgument(
          "cache.link must be 'auto' or a list of reflink, hardlink, symlink, "
          "copy; not '" +
          std::string(text) + "'");
    }
    start = comma + 1;
  }
  return order;
}

namespace cache_internal {

int RelinkHard(const fs::path& target, const fs::path& dest) {
  struct stat t {
  }, d{};
  if (::stat(target.c_str(), &t) == 0 && ::lstat(dest.c_str(), &d) == 0 &&
      t.st_dev == d.st_dev && t.st_ino == d.st_ino) {
    return 0;  // already that file (and rename() of two links to one file does
               // nothing)
  }
  std::string temp = dest.string() + ".cmf-link";
  ::unlink(temp.c_str());
  if (::link(target.c_str(), temp.c_str()) != 0) return errno;
  int err = ::rename(temp.c_str(), dest.c_str()) == 0 ? 0 : errno;
  ::unlink(temp.c_str());  // left behind when the rename failed
  return err;
}

int RelinkSymbolic(const fs::path& target, const fs::path& dest) {
  fs::path link = target;
  if (target.is_absolute() && dest.is_absolute()) {
    fs::path relative = target.lexically_relative(dest.parent_path());
    if (!relative.empty()) link = relative;
  }
  std::string temp = dest.string() + ".cmf-link";
  ::unlink(temp.c_str());
  if (::symlink(link.c_str(), temp.c_str()) != 0) return errno;
  if (::rename(temp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    ::unlink(temp.c_str());
    return err;
  }
  return 0;
}

}  // namespace cache_internal

Status ObjectCache::Materialize(const std::string& hash, const fs::path& dest,
                                std::span<const LinkMode> order) const {
  if (!Has(hash))
    return Status::NotFound("object '" + hash + "' is not in the cache");
  fs::path object = PathOf(hash);
  std::error_code ec;
  if (dest.has_parent_path()) fs::create_directories(dest.parent_path(), ec);
  Status last =
      Status::IOError("no link strategy given for '" + dest.string() + "'");
  for (LinkMode mode : order) {
    int err = 0;
    if (mode == LinkMode::kHardlink) {
      err = RelinkHard(object, dest);
    } else if (mode == LinkMode::kSymlink) {
      err = RelinkSymbolic(object, dest);
    } else {
      // reflink or copy: a private, writable file, built beside DEST and
      // renamed (not flushed: the cache holds the bytes, a checkout can be
      // made again, and git does not flush its checkouts either).
      AtomicFile::Options options;
      options.durability = Durability::kAtomic;
      options.ops = &ops();
      Result<AtomicFile> out = AtomicFile::Create(dest, options);
      if (!out.ok()) return out.status();
      bool done = false;
      if (mode == LinkMode::kReflink) {
        int in = ::open(object.c_str(), O_RDONLY | O_CLOEXEC);
        done = in >= 0 && ::ioctl(out->fd(), FICLONE, in) == 0;
        err = done ? 0 : errno;
        if (in >= 0) ::close(in);
      } else {
        Status st =
            ReadFileInBlocks(object, [&](const char* data, std::size_t n) {
              return out->Write(std::string_view(data, n));
            });
        done = st.ok();
        if (!st.ok()) last = st;
      }
      if (done) {
        Status named = out->Commit();
        if (named.ok()) return named;
        last = named;
        err = 0;
        continue;
      }
      if (mode == LinkMode::kCopy && !done) continue;
    }
    if (err == 0) return Status::Ok();
    last = ErrnoStatus(
        "cannot " + std::string(ToString(mode)) + " '" + dest.string() + "'",
        err);
  }
  return last;
}

}  // namespace cmf::data
