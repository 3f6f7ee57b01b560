// Internal: the libgit2 half of cmf, built as the module cmf-git.so and
// loaded on first use (cmf/data/module_loader.h), so that the commands that
// never touch git (add, status, log, lineage, query…) do not load libgit2 and
// the dozen libraries it links: about 2 ms of every start.
//
// The module holds the metadata log's implementation (git_log.h: git_log.cpp,
// git_transfer.cpp) and the reading of the code's git version
// (code_version.cpp); cmf's MetaLog and ReadCodeVersion forward to it
// (metalog.cpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cmf/data/module_loader.h"
#include "cmf/metalog.h"
#include "cmf/records.h"

namespace cmf {

constexpr int kGitModuleAbi = 3;  // 3: the header holds a build id

// What MetaLog does, implemented over libgit2 in the module.
class MetaLogBackend {
 public:
  virtual ~MetaLogBackend() = default;
  virtual Result<std::string> Tip(const std::string& ref) const = 0;
  virtual Result<std::string> CommitSegment(const std::string& site,
                                            const std::string& hash,
                                            const std::string& text,
                                            const std::string& message) = 0;
  virtual Result<MetaLog::Merged> Merge(const std::string& theirs,
                                        const std::string& message) = 0;
  virtual Status ForEachNewEntry(
      const std::string& tip, const std::vector<std::string>& hide,
      const std::function<Status(const MetaLog::Entry&)>& sink) const = 0;
  virtual Result<std::int64_t> CountNew(const std::string& tip,
                                        const std::string& hide) const = 0;
  virtual Result<bool> IsAncestor(const std::string& a,
                                  const std::string& b) const = 0;
  virtual Result<std::string> Fetch(const std::string& url,
                                    const std::string& into,
                                    GitTransferStats* stats) = 0;
  virtual Status Push(const std::string& url, GitTransferStats* stats) = 0;
};

struct GitModule {
  data::ModuleHeader header;  // first: what the loader checks
  Status (*create_log)(const std::filesystem::path& git_dir);
  Result<std::unique_ptr<MetaLogBackend>> (*open_log)(
      const std::filesystem::path& git_dir);
  std::optional<CodeVersion> (*read_code_version)(
      const std::filesystem::path& dir);
};

}  // namespace cmf

extern "C" const cmf::GitModule* cmf_git_module();
