// A real OpenSSH server on 127.0.0.1, on a free port, with throwaway keys:
// what the ssh transport tests talk to.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <string>

#include "support.h"

namespace cmf::test {

class SshServer {
 public:
  // Starts sshd (Debian's openssh-server) and waits until it accepts
  // connections. ok() is false, with why(), when it cannot.
  SshServer();
  ~SshServer();
  SshServer(const SshServer&) = delete;
  SshServer& operator=(const SshServer&) = delete;

  bool ok() const { return pid_ > 0; }
  const std::string& why() const { return why_; }
  int port() const { return port_; }
  // ssh://127.0.0.1:PORT + PATH
  std::string Url(const std::filesystem::path& path) const;
  // The environment for cmf: HOME holds .ssh with the client key and a
  // known_hosts that names this server; no ssh agent.
  std::map<std::string, std::string> Env() const;
  const std::filesystem::path& home() const { return home_; }
  // The server's public host key line ("ssh-ed25519 AAAA...").
  const std::string& host_key() const { return host_key_; }

 private:
  TempDir dir_;
  std::filesystem::path home_;
  std::string host_key_;
  std::string why_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace cmf::test
