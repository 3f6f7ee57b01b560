// Remotes (cmf/sync.h): listing, adding and removing them, bare repositories
// to push to, the data policy's names.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "cmf/clock.h"
#include "cmf/data/open_transport.h"
#include "cmf/sync.h"
#include "sync_common.h"

namespace fs = std::filesystem;

namespace cmf {

using namespace sync_internal;

namespace {

bool ValidRemoteName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
           c == '_' || c == '.';
  });
}

}  // namespace

Status InitBare(const fs::path& path) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_empty(path, ec)) {
    return Status::AlreadyExists("'" + path.string() +
                                 "' exists and is not empty");
  }
  fs::path parent = fs::absolute(path, ec).parent_path();
  fs::create_directories(parent, ec);
  // Built under a temporary name beside PATH, then renamed: all or nothing.
  std::string pattern = (parent / ".cmf-bare-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Status::IOError("cannot create '" + path.string() +
                           "': " + std::strerror(errno));
  }
  fs::path temp = pattern;
  ::chmod(temp.c_str(), 0775);
  auto fail = [&](Status st) {
    fs::remove_all(temp, ec);
    return st;
  };
  Result<std::string> id = RandomHex(8);
  if (!id.ok()) return fail(id.status());
  {
    Result<Config> config = Config::Open(temp / "config");
    if (!config.ok()) return fail(config.status());
    Status st = config->Set("core.repositoryformatversion", "1");
    if (st.ok()) st = config->Set("core.bare", "true");
    if (st.ok()) st = config->Set("core.site", *id);
    if (!st.ok()) return fail(st);
  }
  Status st = MetaLog::Create(temp / "log.git");
  if (!st.ok()) return fail(st);
  fs::create_directories(temp / "objects", ec);
  if (ec)
    return fail(Status::IOError("cannot create objects: " + ec.message()));
  {
    Result<std::unique_ptr<data::ObjectTransport>> t =
        data::OpenTransport((temp / "objects").string());
    if (!t.ok()) return fail(t.status());
    Result<std::string> made = (*t)->CreateSmall("store-id", *id);
    if (!made.ok()) return fail(made.status());
  }
  if (fs::exists(path, ec)) fs::remove(path, ec);  // the empty folder
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return fail(Status::IOError("cannot create '" + path.string() +
                                "': " + std::strerror(errno)));
  }
  return data::FsyncFolder(parent);  // the new name, on disk
}

// --- remotes ---

Result<std::vector<RemoteSpec>> ListRemotes(const Config& config) {
  CMF_ASSIGN_OR_RETURN(auto entries, config.List());
  std::map<std::string, RemoteSpec> by_name;
  for (const auto& [key, value] : entries) {
    if (key.rfind("remote.", 0) != 0) continue;
    auto dot = key.rfind('.');
    if (dot <= 7) continue;
    std::string name = key.substr(7, dot - 7);
    std::string field = key.substr(dot + 1);
    RemoteSpec& r = by_name[name];
    r.name = name;
    if (field == "url") r.url = value;
    if (field == "metadata") r.metadata = value;
    if (field == "data") r.data = value;
  }
  std::vector<RemoteSpec> out;
  for (auto& [name, r] : by_name) {
    if (!r.url.empty() || !r.metadata.empty()) out.push_back(std::move(r));
  }
  return out;
}

Result<RemoteSpec> FindRemote(const Config& config, const std::string& name) {
  CMF_ASSIGN_OR_RETURN(auto all, ListRemotes(config));
  for (auto& r : all) {
    if (r.name == name) return r;
  }
  std::string known;
  for (const auto& r : all) known += (known.empty() ? "" : ", ") + r.name;
  return Status::NotFound("no remote '" + name + "'" +
                          (known.empty() ? " (none is configured; add one with "
                                           "'cmf remote add NAME URL')"
                                         : " (remotes: " + known + ")"));
}

Status AddRemote(Config& config, const RemoteSpec& r) {
  if (!ValidRemoteName(r.name)) {
    return Status::InvalidArgument(
        "'" + r.name +
        "' is not a valid remote name (letters, digits, '-', '_', '.')");
  }
  if (r.url.empty() && r.metadata.empty()) {
    return Status::InvalidArgument("a remote needs a URL, or --metadata URL");
  }
  for (const std::string* url : {&r.url, &r.metadata, &r.data}) {
    if (url->empty()) continue;
    if (data::UrlHasPassword(*url)) {
      return Status::InvalidArgument(
          "'" + data::RedactUrl(*url) +
          "' carries a password; cmf stores none: use an ssh key or agent");
    }
  }
  for (const std::string* url : {&r.url, &r.data}) {
    if (url->empty()) continue;
    std::string scheme = data::UrlScheme(*url);
    if (scheme != "file" && scheme != "ssh") {
      // Only a registered transport can hold objects.
      Result<std::unique_ptr<data::ObjectTransport>> t =
          data::OpenTransport(*url);
      if (!t.ok() && t.status().code() == Code::kInvalidArgument)
        return t.status();
    }
  }
  if (FindRemote(config, r.name).ok()) {
    return Status::AlreadyExists("the remote '" + r.name + "' exists already");
  }
  const std::string prefix = "remote." + r.name + ".";
  if (!r.url.empty())
    CMF_RETURN_IF_ERROR(config.Set(prefix + "url", AbsoluteIfPath(r.url)));
  if (!r.metadata.empty()) {
    CMF_RETURN_IF_ERROR(
        config.Set(prefix + "metadata", AbsoluteIfPath(r.metadata)));
  }
  if (!r.data.empty()) {
    CMF_RETURN_IF_ERROR(config.Set(prefix + "data", AbsoluteIfPath(r.data)));
  }
  return Status::Ok();
}

Status RemoveRemote(Config& config, const std::string& name) {
  CMF_RETURN_IF_ERROR(FindRemote(config, name).status());
  CMF_ASSIGN_OR_RETURN(auto entries, config.List());
  const std::string prefix = "remote." + name + ".";
  for (const auto& [key, value] : entries) {
    if (key.rfind(prefix, 0) == 0 &&
        key.find('.', prefix.size()) == std::string::npos) {
      Status st = config.Unset(key);
      if (!st.ok() && st.code() != Code::kNotFound) return st;
    }
  }
  return Status::Ok();
}

Result<DataPolicy> ParseDataPolicy(const std::string& text) {
  if (text == "relevant") return DataPolicy::kRelevant;
  if (text == "all") return DataPolicy::kAll;
  if (text == "none") return DataPolicy::kNone;
  return Status::InvalidArgument(
      "the data policy must be 'relevant', 'all' or "
      "'none', not '" +
      text + "'");
}

std::string RedactUrl(const std::string& url) { return data::RedactUrl(url); }

bool ProgressWanted() { return data::Progress::Wanted(); }

}  // namespace cmf
