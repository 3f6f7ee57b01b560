#include "cmf/data/transport.h"

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>

#include "cmf/data/fault.h"
#include "ssh_module.h"

namespace cmf::data {

Result<std::unique_ptr<ObjectTransport>> OpenFileTransport(
    const std::string& url);

namespace {

// ssh object stores are served by the module cmf-ssh.so, loaded on first use.
Result<std::unique_ptr<ObjectTransport>> OpenSftpTransport(
    const std::string& url) {
  CMF_ASSIGN_OR_RETURN(const SshModule* module,
                       LoadModuleOnce<SshModule>(
                           {"ssh", "CMF_SSH_MODULE", "dvc_like", "cmf-ssh.so",
                            "cmf_ssh_module", kSshModuleAbi}));
  return module->open_sftp(url);
}

std::mutex registry_mutex;

std::map<std::string, TransportFactory>& Registry() {
  static std::map<std::string, TransportFactory> registry{
      {"file", OpenFileTransport}, {"ssh", OpenSftpTransport}};
  return registry;
}

}  // namespace

void CrashPoint(std::string_view point) {
  const char* at = std::getenv("CMF_CRASH_AT");
  if (at != nullptr && point == at) std::raise(SIGKILL);
}

void RegisterTransport(const std::string& scheme, TransportFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  Registry()[scheme] = std::move(factory);
}

std::string UrlScheme(const std::string& url) {
  auto colon = url.find("://");
  if (colon != std::string::npos) {
    std::string scheme = url.substr(0, colon);
    bool word = !scheme.empty() &&
                std::all_of(scheme.begin(), scheme.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) ||
                         c == '+' || c == '-' || c == '.';
                });
    if (word) return scheme;
  }
  // scp-like user@host:path (a colon before any slash)
  auto first_colon = url.find(':');
  auto first_slash = url.find('/');
  if (first_colon != std::string::npos && first_colon > 0 &&
      (first_slash == std::string::npos || first_colon < first_slash)) {
    return "ssh";
  }
  return "file";
}

Result<std::unique_ptr<ObjectTransport>> OpenTransport(const std::string& url) {
  std::string scheme = UrlScheme(url);
  TransportFactory factory;
  std::string known;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = Registry().find(scheme);
    if (it != Registry().end()) factory = it->second;
    for (const auto& [name, f] : Registry()) {
      known += (known.empty() ? "" : ", ") + name;
    }
  }
  if (!factory) {
    return Status::InvalidArgument("unknown URL scheme '" + scheme + "' in '" +
                                   RedactUrl(url) + "' (cmf knows: " + known +
                                   ", and paths)");
  }
  return factory(url);
}

bool UrlHasPassword(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return false;
  auto host_start = scheme_end + 3;
  auto path_start = url.find('/', host_start);
  auto at =
      url.rfind('@', path_start == std::string::npos ? url.size() : path_start);
  if (at == std::string::npos || at < host_start) return false;
  return url.find(':', host_start) < at;
}

std::string RedactUrl(const std::string& url) {
  const std::string scheme = UrlScheme(url);
  if (scheme == "http" || scheme == "https") {
    // The user part of a web URL is often a token: none of it is shown.
    auto host_start = url.find("://") + 3;
    auto path_start = url.find('/', host_start);
    auto at = url.rfind(
        '@', path_start == std::string::npos ? url.size() : path_start);
    if (at != std::string::npos && at >= host_start) {
      return url.substr(0, host_start) + url.substr(at + 1);
    }
    return url;
  }
  if (!UrlHasPassword(url)) return url;
  auto host_start = url.find("://") + 3;
  auto path_start = url.find('/', host_start);
  auto at =
      url.rfind('@', path_start == std::string::npos ? url.size() : path_start);
  auto colon = url.find(':', host_start);
  return url.substr(0, colon) + url.substr(at);
}

std::string FileUrlPath(const std::string& url) {
  if (url.rfind("file://", 0) == 0) return url.substr(7);
  return url;
}

std::string JoinUrl(const std::string& url, const std::string& relative) {
  if (url.empty()) return relative;
  if (url.back() == '/') return url + relative;
  return url + "/" + relative;
}

}  // namespace cmf::data
