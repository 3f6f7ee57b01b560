#include "cmf/repo.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <system_error>

#include "cmf/clock.h"
#include "cmf/data/file_ops.h"
#include "cmf/data/object_cache.h"
#include "cmf/metalog.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

// core.repositoryformatversion: the layout of .cmf/ that this cmf reads.
constexpr int kFormat = 1;

constexpr char kCmfDirName[] = ".cmf";

bool IsCmfDir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::is_regular_file(dir / "config", ec);
}

// Writes a new .cmf folder's contents into DIR.
Status Populate(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir / "objects", ec);
  if (ec)
    return Status::IOError("cannot create '" + (dir / "objects").string() +
                           "': " + ec.message());

  CMF_ASSIGN_OR_RETURN(Config config, Config::Open(dir / "config"));
  CMF_RETURN_IF_ERROR(
      config.Set("core.repositoryformatversion", std::to_string(kFormat)));
  CMF_ASSIGN_OR_RETURN(const std::string site, RandomHex(8));
  CMF_RETURN_IF_ERROR(config.Set("core.site", site));
  CMF_RETURN_IF_ERROR(MetaLog::Create(dir / "log.git"));
  // The object cache's 256 folders, made now rather than by the first add.
  CMF_RETURN_IF_ERROR(data::ObjectCache(dir / "objects").CreateFolders());
  // Names this cache as an object store when the repository is a remote.
  CMF_RETURN_IF_ERROR(
      data::WriteFileAtomically(dir / "objects" / "store-id", site));
  // Keeps the code's git repository from ever seeing cmf's own files.
  CMF_RETURN_IF_ERROR(data::WriteFileAtomically(
      dir / ".gitignore",
      "# cmf's repository: not part of the code's git history\n*\n"));

  StoreOptions options;
  options.create = true;
  CMF_ASSIGN_OR_RETURN(auto store, Store::Open(dir / "metadata.db", options));
  return Status::Ok();
}

}  // namespace

Result<CacheLock> CacheLock::Acquire(const Repo& repo, bool exclusive) {
  CMF_ASSIGN_OR_RETURN(
      data::FileLock lock,
      data::FileLock::Acquire(repo.cmf_dir() / "lock",
                              exclusive ? data::FileLock::Kind::kExclusive
                                        : data::FileLock::Kind::kShared));
  return CacheLock(std::move(lock));
}

Repo::Repo(Repo&&) noexcept = default;
Repo& Repo::operator=(Repo&&) noexcept = default;
Repo::~Repo() = default;

Result<Repo> Repo::Init(const fs::path& workspace) {
  std::error_code ec;
  fs::path root = fs::weakly_canonical(fs::absolute(workspace, ec), ec);
  if (!root.has_filename()) root = root.parent_path();
  if (!fs::is_directory(root, ec)) {
    return Status::NotFound("no such directory '" + workspace.string() + "'");
  }
  fs::path final_dir = root / kCmfDirName;
  if (fs::exists(fs::symlink_status(final_dir, ec))) {
    return Status::AlreadyExists("a cmf repository already exists in '" +
                                 root.string() + "'");
  }
  // Built under a temporary name and renamed, so that a failed or concurrent
  // init leaves either nothing or a whole repository.
  std::string temp_pattern = (root / ".cmf-init-XXXXXX").string();
  if (::mkdtemp(temp_pattern.data()) == nullptr) {
    return Status::IOError("cannot create a repository in '" + root.string() +
                           "': " + std::strerror(errno));
  }
  fs::path temp = temp_pattern;
  mode_t mask =
      ::umask(0);  // mkdtemp made it 0700; give it the mode mkdir would
  ::umask(mask);
  ::chmod(temp.c_str(), 0777 & ~mask);
  Status st = Populate(temp);
  if (st.ok() && ::rename(temp.c_str(), final_dir.c_str()) != 0) {
    st = errno == EEXIST || errno == ENOTEMPTY
             ? Status::AlreadyExists("a cmf repository already exists in '" +
                                     root.string() + "'")
             : Status::IOError("cannot create '" + final_dir.string() +
                               "': " + std::strerror(errno));
  } else if (st.ok()) {
    st = data::FsyncFolder(root);  // the new name, on disk
  }
  if (!st.ok()) {
    fs::remove_all(temp, ec);
    return st;
  }
  return OpenAt(final_dir, OpenMode::kReadWrite);
}

Result<fs::path> DiscoverCmfDir(const DiscoverOptions& options) {
  std::error_code ec;
  if (!options.cmf_dir.empty()) {
    // Canonical, so that a trailing slash or a symbolic link does not change
    // which folder is the workspace.
    fs::path dir = fs::weakly_canonical(fs::absolute(options.cmf_dir, ec), ec);
    if (!dir.has_filename()) dir = dir.parent_path();
    if (IsCmfDir(dir)) return dir;
    if (IsCmfDir(dir / kCmfDirName)) return dir / kCmfDirName;
    return Status::NotFound("CMF_DIR '" + options.cmf_dir.string() +
                            "' is not a cmf repository");
  }
  fs::path start = options.start.empty() ? fs::current_path(ec) : options.start;
  if (ec)
    return Status::IOError("cannot read the current directory: " +
                           ec.message());
  fs::path dir = fs::weakly_canonical(fs::absolute(start, ec), ec);
  if (!dir.has_filename()) dir = dir.parent_path();  // "a/b/" -> "a/b"
  for (;;) {
    if (IsCmfDir(dir / kCmfDirName)) return dir / kCmfDirName;
    if (dir == dir.root_path() || dir.empty()) break;
    dir = dir.parent_path();
  }
  return Status::NotFound(
      "not a cmf repository (or any of the parent directories): .cmf");
}

bool IsBareRepository(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / "config", ec) ||
      !fs::is_directory(dir / "log.git", ec) ||
      !fs::is_directory(dir / "objects", ec)) {
    return false;
  }
  Result<Config> config = Config::Open(dir / "config");
  return config.ok() && config->GetOr("core.bare", "") == "true";
}

Result<Repo> Repo::Open(const DiscoverOptions& options, OpenMode mode) {
  CMF_ASSIGN_OR_RETURN(fs::path dir, DiscoverCmfDir(options));
  return OpenAt(dir, mode);
}

Result<Repo> Repo::OpenAt(const fs::path& cmf_dir, OpenMode mode) {
  Repo repo;
  repo.cmf_dir_ = cmf_dir;
  repo.workspace_ = cmf_dir.parent_path();
  repo.objects_ = std::make_unique<data::ObjectCache>(cmf_dir / "objects");
  if (mode == OpenMode::kRead) {
    StoreOptions options;
    options.read_only = true;
    CMF_ASSIGN_OR_RETURN(repo.store_,
                         Store::Open(cmf_dir / "metadata.db", options));
    return repo;
  }
  CMF_ASSIGN_OR_RETURN(Config config, Config::Open(cmf_dir / "config"));
  // A repository laid out by a newer cmf is refused before anything reads or
  // writes it as if it were this one's.
  const std::string format =
      config.GetOr("core.repositoryformatversion", std::to_string(kFormat));
  if (format != std::to_string(kFormat)) {
    return Status::InvalidArgument(
        "the repository '" + cmf_dir.string() + "' has format version '" +
        format + "', which this cmf (format " + std::to_string(kFormat) +
        ") does not understand; upgrade cmf");
  }
  repo.config_ = std::make_unique<Config>(std::move(config));
  if (mode == OpenMode::kConfig) return repo;
  repo.site_ = repo.config_->GetOr("core.site", "");
  if (repo.site_.empty()) {
    return Status::Corruption("config '" + (cmf_dir / "config").string() +
                              "' has no core.site");
  }
  std::string sync = repo.config_->GetOr("store.synchronous", "full");
  if (sync != "full" && sync != "normal") {
    return Status::InvalidArgument(
        "config store.synchronous must be 'full' or 'normal', not '" + sync +
        "'");
  }
  StoreOptions options;
  options.site = repo.site_;
  options.synchronous_full = sync == "full";
  CMF_ASSIGN_OR_RETURN(repo.store_,
                       Store::Open(cmf_dir / "metadata.db", options));
  return repo;
}

}  // namespace cmf
