// What the ssh transports share: URL parsing, host-key checking against
// ~/.ssh/known_hosts, and the user's keys. No password is ever asked for or
// stored: authentication is by the ssh agent or by key files without a
// passphrase.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cmf/status.h"

namespace cmf::data {

struct SshUrl {
  std::string user;  // empty: the local user name
  std::string host;
  int port = 22;
  std::string path;  // absolute, or relative to the remote home
};

// ssh://[user@]host[:port]/path or [user@]host:path. InvalidArgument when URL
// is neither.
Result<SshUrl> ParseSshUrl(const std::string& url);

// The user name to log in as: URL's, else the local user's.
std::string SshUser(const SshUrl& url);

// The folder of the user's ssh files ($HOME/.ssh).
std::string SshDir();

// Checks the raw host key KEY (LEN bytes, of libssh2 host-key type TYPE, which
// is also libgit2's raw type) offered by HOST:PORT against known_hosts. Ok on a
// match; a clear error when the host is unknown or its key differs.
Status CheckHostKey(const std::string& host, int port, const char* key,
                    std::size_t len, int type);

struct SshIdentity {
  std::string public_key;   // path
  std::string private_key;  // path
};
// The user's key pairs that exist (id_ed25519, id_ecdsa, id_rsa), in that
// order.
std::vector<SshIdentity> SshIdentities();

}  // namespace cmf::data
