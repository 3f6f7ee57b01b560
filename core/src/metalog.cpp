// cmf's side of the git module (git_module.h): MetaLog and ReadCodeVersion
// forward to cmf-git.so, loaded on first use.
#include "cmf/metalog.h"

#include "cmf/code_version.h"
#include "git_module.h"

namespace cmf {
namespace {

Result<const GitModule*> LoadGit() {
  return data::LoadModuleOnce<GitModule>({"git", "CMF_GIT_MODULE", "core",
                                          "cmf-git.so", "cmf_git_module",
                                          kGitModuleAbi});
}

}  // namespace

Status MetaLog::Create(const std::filesystem::path& git_dir) {
  CMF_ASSIGN_OR_RETURN(const GitModule* git, LoadGit());
  return git->create_log(git_dir);
}

Result<MetaLog> MetaLog::Open(const std::filesystem::path& git_dir) {
  CMF_ASSIGN_OR_RETURN(const GitModule* git, LoadGit());
  CMF_ASSIGN_OR_RETURN(std::unique_ptr<MetaLogBackend> backend,
                       git->open_log(git_dir));
  return MetaLog(std::move(backend));
}

MetaLog::MetaLog(std::unique_ptr<MetaLogBackend> backend)
    : backend_(std::move(backend)) {}
MetaLog::MetaLog(MetaLog&&) noexcept = default;
MetaLog& MetaLog::operator=(MetaLog&&) noexcept = default;
MetaLog::~MetaLog() = default;

Result<std::string> MetaLog::Tip(const std::string& ref) const {
  return backend_->Tip(ref);
}

Result<std::string> MetaLog::CommitSegment(const std::string& site,
                                           const std::string& hash,
                                           const std::string& text,
                                           const std::string& message) {
  return backend_->CommitSegment(site, hash, text, message);
}

Result<MetaLog::Merged> MetaLog::Merge(const std::string& theirs,
                                       const std::string& message) {
  return backend_->Merge(theirs, message);
}

Status MetaLog::ForEachNewSegment(
    const std::string& tip, const std::vector<std::string>& hide,
    const std::function<Status(const std::string& hash,
                               const std::string& text)>& sink) const {
  return backend_->ForEachNewEntry(tip, hide, [&](const Entry& e) -> Status {
    if (!e.problem.empty()) return Status::Ok();
    return sink(e.hash, e.text);
  });
}

Status MetaLog::ForEachNewEntry(
    const std::string& tip, const std::vector<std::string>& hide,
    const std::function<Status(const Entry&)>& sink) const {
  return backend_->ForEachNewEntry(tip, hide, sink);
}

Result<std::int64_t> MetaLog::CountNew(const std::string& tip,
                                       const std::string& hide) const {
  return backend_->CountNew(tip, hide);
}

Result<bool> MetaLog::IsAncestor(const std::string& a,
                                 const std::string& b) const {
  return backend_->IsAncestor(a, b);
}

Result<std::string> MetaLog::Fetch(const std::string& url,
                                   const std::string& into,
                                   GitTransferStats* stats) {
  return backend_->Fetch(url, into, stats);
}

Status MetaLog::Push(const std::string& url, GitTransferStats* stats) {
  return backend_->Push(url, stats);
}

// Without the module there is no code version to record (as outside a git
// work tree); the commands that need git itself fail with the loader's error.
std::optional<CodeVersion> ReadCodeVersion(const std::filesystem::path& dir) {
  Result<const GitModule*> git = LoadGit();
  if (!git.ok()) return std::nullopt;
  return (*git)->read_code_version(dir);
}

}  // namespace cmf
