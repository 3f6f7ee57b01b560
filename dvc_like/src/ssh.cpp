#include "cmf/data/ssh.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace cmf::data {

Result<SshUrl> ParseSshUrl(const std::string& url) {
  SshUrl out;
  std::string rest;
  if (url.rfind("ssh://", 0) == 0) {
    rest = url.substr(6);
    auto slash = rest.find('/');
    std::string authority = rest.substr(0, slash);
    out.path = slash == std::string::npos ? "" : rest.substr(slash);
    auto at = authority.rfind('@');
    if (at != std::string::npos) {
      out.user = authority.substr(0, at);
      authority = authority.substr(at + 1);
    }
    auto colon = authority.rfind(':');
    if (colon != std::string::npos &&
        authority.find(']') == std::string::npos) {
      std::string port = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
      char* end = nullptr;
      long p = std::strtol(port.c_str(), &end, 10);
      if (port.empty() || *end != '\0' || p <= 0 || p > 65535) {
        return Status::InvalidArgument("bad port in ssh URL '" + url + "'");
      }
      out.port = static_cast<int>(p);
    }
    out.host = authority;
  } else {
    auto colon = url.find(':');
    if (colon == std::string::npos) {
      return Status::InvalidArgument("not an ssh URL: '" + url + "'");
    }
    std::string authority = url.substr(0, colon);
    out.path = url.substr(colon + 1);
    auto at = authority.rfind('@');
    if (at != std::string::npos) {
      out.user = authority.substr(0, at);
      authority = authority.substr(at + 1);
    }
    out.host = authority;
  }
  if (out.user.find(':') != std::string::npos) {
    return Status::InvalidArgument(
        "an ssh URL must not carry a password; use an ssh key or agent");
  }
  if (out.host.empty()) {
    return Status::InvalidArgument("no host in ssh URL '" + url + "'");
  }
  if (out.path.empty()) out.path = ".";
  return out;
}

std::string SshUser(const SshUrl& url) {
  if (!url.user.empty()) return url.user;
  if (const char* u = std::getenv("USER"); u && *u) return u;
  if (struct passwd* pw = ::getpwuid(::getuid())) return pw->pw_name;
  return "root";
}

std::string SshDir() {
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    struct passwd* pw = ::getpwuid(::getuid());
    home = pw ? pw->pw_dir : "/";
  }
  return std::string(home) + "/.ssh";
}

std::vector<SshIdentity> SshIdentities() {
  std::vector<SshIdentity> out;
  std::string dir = SshDir();
  for (const char* name : {"id_ed25519", "id_ecdsa", "id_rsa"}) {
    std::string priv = dir + "/" + name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(priv, ec) &&
        std::filesystem::is_regular_file(priv + ".pub", ec)) {
      out.push_back({priv + ".pub", priv});
    }
  }
  return out;
}

}  // namespace cmf::data
