// A repository's configuration: .cmf/config, in git-config format (so
// `git config -f .cmf/config` reads and writes it too), read and written by
// cmf's own parser: sections, quoted subsections, quoted values with git's
// escapes, comments and continued lines. (Not through libgit2, whose start-up
// alone cost every command about 5 ms.)
//
// Keys are "section.name" or "section.sub.name", as in git. Each Set/Unset
// re-reads the file under a lock file (config.lock, as git) and renames its
// new text into place. A Config is owned by one thread at a time; several
// processes may use the same file, the last writer of a key wins (a writer that
// finds the lock taken fails with Conflict).
//
// Keys cmf reads:
//   core.site       this site's id, made by `cmf init` (16 hex digits), stamped
//   on every fact core.pipeline   the pipeline that `cmf exec` logs to when
//   --pipeline is not given store.synchronous  "full" (default: a logged fact
//   survives a power cut when the call
//                   returns) or "normal" (survives a crash of the process;
//                   faster)
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cmf/status.h"

namespace cmf {

// "64M", "1G", "4096" (K, M, G or KiB, MiB, GiB: powers of 1024): bytes.
// InvalidArgument for anything else, and for a size over 2^64 - 1.
Result<std::uint64_t> ParseSize(const std::string& text);

class Config {
 public:
  // Opens the config file at PATH (created on the first Set when missing).
  // IOError when it exists but cannot be parsed.
  static Result<Config> Open(const std::filesystem::path& path);

  Config(Config&&) noexcept;
  Config& operator=(Config&&) noexcept;
  ~Config();

  // The value of KEY; NotFound when it is not set; InvalidArgument for a
  // malformed key.
  Result<std::string> Get(const std::string& key) const;
  // The value of KEY, or FALLBACK when it is not set or cannot be read.
  std::string GetOr(const std::string& key, const std::string& fallback) const;
  // Sets KEY. InvalidArgument for a malformed key, IOError when the file cannot
  // be written.
  Status Set(const std::string& key, const std::string& value);
  // Removes KEY. NotFound when it was not set.
  Status Unset(const std::string& key);
  // Checks VALUE for the keys cmf reads (core.site, store.synchronous,
  // cache.link, core.repositoryformatversion); InvalidArgument when cmf would
  // refuse it. Other keys are not checked.
  static Status Validate(const std::string& key, const std::string& value);

  // Every key and value, in file order, keys in git's normalised (lowercase)
  // form.
  Result<std::vector<std::pair<std::string, std::string>>> List() const;

 private:
  struct Impl;
  explicit Config(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cmf
