// Internal (the git module): the metadata log over libgit2, a bare
// repository open for the object's lifetime. Its transfers (fetch, push) are
// git_transfer.cpp; the rest, git_log.cpp.
#pragma once

#include <git2.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cmf/metalog.h"
#include "cmf/status.h"
#include "git_module.h"

namespace cmf {

class GitLog final : public MetaLogBackend {
 public:
  explicit GitLog(git_repository* repo) : repo_(repo) {}
  ~GitLog() override { git_repository_free(repo_); }
  GitLog(const GitLog&) = delete;
  GitLog& operator=(const GitLog&) = delete;

  Result<std::string> Tip(const std::string& ref) const override;
  Result<std::string> CommitSegment(const std::string& site,
                                    const std::string& hash,
                                    const std::string& text,
                                    const std::string& message) override;
  Result<MetaLog::Merged> Merge(const std::string& theirs,
                                const std::string& message) override;
  Status ForEachNewEntry(
      const std::string& tip, const std::vector<std::string>& hide,
      const std::function<Status(const MetaLog::Entry&)>& sink) const override;
  Result<std::int64_t> CountNew(const std::string& tip,
                                const std::string& hide) const override;
  Result<bool> IsAncestor(const std::string& a,
                          const std::string& b) const override;
  Result<std::string> Fetch(const std::string& url, const std::string& into,
                            GitTransferStats* stats) override;
  Status Push(const std::string& url, GitTransferStats* stats) override;

 private:
  Status SetMain(const std::string& id, const std::string& expected,
                 const std::string& why);
  git_repository* repo_;
};

}  // namespace cmf
