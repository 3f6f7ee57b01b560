// CheckHostKey: the one part of ssh.h that needs libssh2, kept apart so that
// cmf itself does not link libssh2 (only cmf-ssh.so and cmf-git.so do).
#include <libssh2.h>

#include <mutex>

#include "cmf/data/ssh.h"

namespace cmf::data {

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

}  // namespace cmf::data
