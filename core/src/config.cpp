#include "cmf/config.h"

#include <git2.h>

#include <cctype>

#include "cmf/data/object_cache.h"
#include "cmf/segment.h"
#include "cmf/sync.h"
#include "git_util.h"

namespace cmf {

struct Config::Impl {
  git_config* cfg = nullptr;
  std::string path;
  ~Impl() { git_config_free(cfg); }
};

Config::Config(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::~Config() = default;

Result<Config> Config::Open(const std::filesystem::path& path) {
  git::EnsureInit();
  auto impl = std::make_unique<Impl>();
  impl->path = path.string();
  int rc = git_config_open_ondisk(&impl->cfg, impl->path.c_str());
  if (rc < 0) return git::Error(rc, "cannot read config '" + impl->path + "'");
  return Config(std::move(impl));
}

Result<std::string> Config::Get(const std::string& key) const {
  git_buf buf = GIT_BUF_INIT;
  int rc = git_config_get_string_buf(&buf, impl_->cfg, key.c_str());
  if (rc == GIT_ENOTFOUND)
    return Status::NotFound("config key '" + key + "' is not set");
  if (rc < 0) return git::Error(rc, "cannot read config key '" + key + "'");
  std::string value(buf.ptr, buf.size);
  git_buf_dispose(&buf);
  return value;
}

std::string Config::GetOr(const std::string& key,
                          const std::string& fallback) const {
  Result<std::string> value = Get(key);
  return value.ok() ? value.value() : fallback;
}

Status Config::Set(const std::string& key, const std::string& value) {
  int rc = git_config_set_string(impl_->cfg, key.c_str(), value.c_str());
  if (rc == GIT_EINVALIDSPEC)
    return Status::InvalidArgument("invalid config key '" + key + "'");
  if (rc < 0) return git::Error(rc, "cannot write config key '" + key + "'");
  return Status::Ok();
}

Status Config::Validate(const std::string& key, const std::string& value) {
  std::string k = key;
  for (char& c : k)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (k == "core.site") {
    if (!IsValidSiteId(value)) {
      return Status::InvalidArgument(
          "core.site must be 1 to 64 letters, digits, '-' or '_'");
    }
  } else if (k == "store.synchronous") {
    if (value != "full" && value != "normal") {
      return Status::InvalidArgument(
          "store.synchronous must be 'full' or 'normal', not '" + value + "'");
    }
  } else if (k == "push.data" || k == "pull.data") {
    if (value != "relevant" && value != "all" && value != "none") {
      return Status::InvalidArgument(
          k + " must be 'relevant', 'all' or 'none', not '" + value + "'");
    }
  } else if (k == "push.max-size") {
    return ParseSize(value).status();
  } else if (k == "cache.link") {
    return data::ParseLinkOrder(value).status();
  } else if (k == "core.repositoryformatversion" && value != "1") {
    return Status::InvalidArgument("core.repositoryformatversion must stay 1");
  }
  return Status::Ok();
}

Status Config::Unset(const std::string& key) {
  int rc = git_config_delete_entry(impl_->cfg, key.c_str());
  if (rc == GIT_ENOTFOUND)
    return Status::NotFound("config key '" + key + "' is not set");
  if (rc == GIT_EINVALIDSPEC)
    return Status::InvalidArgument("invalid config key '" + key + "'");
  if (rc < 0) return git::Error(rc, "cannot remove config key '" + key + "'");
  return Status::Ok();
}

Result<std::vector<std::pair<std::string, std::string>>> Config::List() const {
  std::vector<std::pair<std::string, std::string>> out;
  int rc = git_config_foreach(
      impl_->cfg,
      [](const git_config_entry* e, void* payload) {
        static_cast<decltype(out)*>(payload)->emplace_back(e->name, e->value);
        return 0;
      },
      &out);
  if (rc < 0) return git::Error(rc, "cannot read config '" + impl_->path + "'");
  return out;
}

}  // namespace cmf
