#include "cmf/data/ssh.h"

#include <libssh2.h>
#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

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

Status CheckHostKey(const std::string& host, int port, const char* key,
                    std::size_t len, int type) {
  static std::once_flag once;
  std::call_once(once, [] { libssh2_init(0); });
  int key_bit = 0;
  switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
      key_bit = LIBSSH2_KNOWNHOST_KEY_SSHRSA;
      break;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
      key_bit = LIBSSH2_KNOWNHOST_KEY_SSHDSS;
      break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
      key_bit = LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
      break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
      key_bit = LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
      break;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
      key_bit = LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
      break;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
      key_bit = LIBSSH2_KNOWNHOST_KEY_ED25519;
      break;
    default:
      return Status::IOError("the ssh host " + host +
                             " offered a key of an unknown type");
  }
  const std::string file = SshDir() + "/known_hosts";
  std::string where =
      port == 22 ? host : "[" + host + "]:" + std::to_string(port);
  LIBSSH2_SESSION* session = libssh2_session_init();
  if (session == nullptr) return Status::IOError("cannot start libssh2");
  LIBSSH2_KNOWNHOSTS* hosts = libssh2_knownhost_init(session);
  int read = hosts ? libssh2_knownhost_readfile(hosts, file.c_str(),
                                                LIBSSH2_KNOWNHOST_FILE_OPENSSH)
                   : -1;
  int check = LIBSSH2_KNOWNHOST_CHECK_NOTFOUND;
  if (hosts && read >= 0) {
    struct libssh2_knownhost* found = nullptr;
    check = libssh2_knownhost_checkp(
        hosts, host.c_str(), port, key, len,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | key_bit,
        &found);
  }
  if (hosts) libssh2_knownhost_free(hosts);
  libssh2_session_free(session);
  switch (check) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
      return Status::Ok();
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
      return Status::IOError(
          "the host key of " + where + " does not match the one in " + file +
          ": someone may be intercepting the connection, or the host's key "
          "changed; cmf refuses to connect");
    default:
      return Status::IOError(
          "the ssh host " + where + " is not in " + file +
          "; check its fingerprint, then add it (ssh-keyscan" +
          (port == 22 ? "" : " -p " + std::to_string(port)) + " " + host +
          " >> " + file + ")");
  }
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
