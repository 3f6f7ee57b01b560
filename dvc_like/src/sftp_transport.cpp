// The ssh transport for objects: SFTP over libssh2 (the library under
// libgit2's own ssh transport), key-based authentication only.
#include <fcntl.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <set>
#include <vector>

#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "cmf/data/ssh.h"
#include "cmf/data/transport.h"
#include "cmf_build_id.h"
#include "cmf_config.h"
#include "ssh_module.h"

namespace cmf::data {
namespace {

// 16 random hex digits (for temporary names).
std::string RandomName() {
  static thread_local std::mt19937_64 rng(
      std::random_device{}() ^ static_cast<std::uint64_t>(::getpid()));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(rng()));
  return buf;
}

class SftpTransport : public ObjectTransport {
 public:
  explicit SftpTransport(std::string url) : url_(std::move(url)) {}
  ~SftpTransport() override {
    if (sftp_) libssh2_sftp_shutdown(sftp_);
    if (session_) {
      libssh2_session_disconnect(session_, "cmf done");
      libssh2_session_free(session_);
    }
    if (sock_ >= 0) ::close(sock_);
  }

  Status Connect() {
    static std::once_flag once;
    std::call_once(once, [] { libssh2_init(0); });
    CMF_ASSIGN_OR_RETURN(target_, ParseSshUrl(url_));
    const std::string where =
        target_.host +
        (target_.port == 22 ? "" : ":" + std::to_string(target_.port));

    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc =
        ::getaddrinfo(target_.host.c_str(),
                      std::to_string(target_.port).c_str(), &hints, &found);
    if (rc != 0) {
      return Status::IOError("cannot resolve ssh host '" + target_.host +
                             "': " + ::gai_strerror(rc));
    }
    int err = 0;
    for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
      int fd =
          ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
        sock_ = fd;
        break;
      }
      err = errno;
      ::close(fd);
    }
    ::freeaddrinfo(found);
    if (sock_ < 0) {
      return Status::IOError("cannot connect to " + where + ": " +
                             std::strerror(err));
    }
    session_ = libssh2_session_init();
    if (session_ == nullptr) return Status::IOError("cannot start libssh2");
    libssh2_session_set_blocking(session_, 1);
    libssh2_session_set_timeout(session_, 120000);
    if (libssh2_session_handshake(session_, sock_) != 0) {
      return SessionError("ssh handshake with " + where + " failed");
    }
    std::size_t len = 0;
    int type = 0;
    const char* key = libssh2_session_hostkey(session_, &len, &type);
    if (key == nullptr) return SessionError("no host key from " + where);
    CMF_RETURN_IF_ERROR(
        CheckHostKey(target_.host, target_.port, key, len, type));
    CMF_RETURN_IF_ERROR(Authenticate(where));
    sftp_ = libssh2_sftp_init(session_);
    if (sftp_ == nullptr) {
      return SessionError("cannot start SFTP on " + where);
    }
    return Status::Ok();
  }

  std::string Describe() const override { return url_; }

  std::string PathOf(const std::string& hash) const {
    return Join("sha256/" + hash.substr(0, 2) + "/" + hash.substr(2));
  }

  Result<bool> Has(const std::string& hash) override {
    LIBSSH2_SFTP_ATTRIBUTES attrs{};
    std::string path = PathOf(hash);
    if (libssh2_sftp_stat(sftp_, path.c_str(), &attrs) == 0) return true;
    if (IsMissing()) return false;
    return SftpError("cannot read '" + path + "'");
  }

  Status Put(std::span<const PutItem> items, Progress* progress,
             std::vector<std::string>* damaged) override {
    CMF_RETURN_IF_ERROR(MakeDirs("tmp"));
    std::vector<char> buffer(1 << 20);
    for (const PutItem& item : items) {
      std::string dir = "sha256/" + item.hash.substr(0, 2);
      CMF_RETURN_IF_ERROR(MakeDirs(dir));
      // A random name, created exclusively: two sites (even with one pid)
      // never share a temporary.
      std::string temp =
          Join("tmp/put-" + item.hash.substr(0, 16) + "-" + RandomName());
      int src = ::open(item.source.c_str(), O_RDONLY | O_CLOEXEC);
      if (src < 0) {
        return Status::IOError("cannot read '" + item.source.string() +
                               "': " + std::strerror(errno));
      }
      LIBSSH2_SFTP_HANDLE* h = libssh2_sftp_open(
          sftp_, temp.c_str(),
          LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
          LIBSSH2_SFTP_S_IRUSR | LIBSSH2_SFTP_S_IRGRP | LIBSSH2_SFTP_S_IROTH);
      if (h == nullptr) {
        ::close(src);
        return SftpError("cannot write '" + temp + "'");
      }
      Status st;
      Sha256 hasher;  // the bytes as they are sent, checked before the rename
      for (;;) {
        ssize_t n = ::read(src, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          st = Status::IOError("cannot read '" + item.source.string() + "'");
          break;
        }
        if (n == 0) break;
        hasher.Update(buffer.data(), static_cast<std::size_t>(n));
        for (ssize_t done = 0; done < n;) {
          ssize_t w = libssh2_sftp_write(h, buffer.data() + done, n - done);
          if (w < 0) {
            st = SftpError("cannot write '" + temp + "'");
            break;
          }
          done += w;
        }
        if (!st.ok()) break;
        if (progress) progress->Add(0, static_cast<std::uint64_t>(n));
      }
      ::close(src);
      if (st.ok())
        libssh2_sftp_fsync(h);  // best effort: needs OpenSSH's extension
      libssh2_sftp_close(h);
      if (!st.ok()) {
        libssh2_sftp_unlink(sftp_, temp.c_str());
        return st;
      }
      if (ToHex(hasher.Finish()) != item.hash) {
        // A damaged local object: never named in the store.
        libssh2_sftp_unlink(sftp_, temp.c_str());
        if (damaged) damaged->push_back(item.hash);
        if (progress) progress->Add(1, 0);
        continue;
      }
      CrashPoint("put:renamed-none");
      std::string final_path = PathOf(item.hash);
      if (libssh2_sftp_rename(sftp_, temp.c_str(), final_path.c_str()) != 0) {
        // OpenSSH refuses to rename over an existing file (SFTP version 3
        // has no replacing rename): a copy whose bytes are wrong is removed
        // first, so that readers find the object missing for a moment,
        // never damaged; otherwise another writer put the same object first,
        // which is as good.
        bool renamed = false;
        if (item.replace) {
          libssh2_sftp_unlink(sftp_, final_path.c_str());
          renamed =
              libssh2_sftp_rename(sftp_, temp.c_str(), final_path.c_str()) == 0;
        }
        if (!renamed) {
          Result<bool> there = Has(item.hash);
          libssh2_sftp_unlink(sftp_, temp.c_str());
          if (!there.ok() || !*there || item.replace) {
            return SftpError("cannot name object '" + final_path + "'");
          }
        }
      }
      if (progress) progress->Add(1, 0);
    }
    return Status::Ok();
  }

  Status Get(const std::string& hash, int fd, Progress* progress) override {
    return ReadObject(hash, [&](const char* data, std::size_t n) -> Status {
      for (std::size_t done = 0; done < n;) {
        ssize_t w = ::write(fd, data + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          return Status::IOError(
              std::string("cannot write a fetched object: ") +
              std::strerror(errno));
        }
        done += static_cast<std::size_t>(w);
      }
      if (progress) progress->Add(0, static_cast<std::uint64_t>(n));
      return Status::Ok();
    });
  }

  Result<bool> Verify(const std::string& hash) override {
    Sha256 hasher;
    Status st = ReadObject(hash, [&](const char* data, std::size_t n) {
      hasher.Update(data, n);
      return Status::Ok();
    });
    if (!st.ok()) return st;
    return ToHex(hasher.Finish()) == hash;
  }

  Result<std::string> ReadSmall(const std::string& name) override {
    std::string path = Join(name);
    LIBSSH2_SFTP_HANDLE* h =
        libssh2_sftp_open(sftp_, path.c_str(), LIBSSH2_FXF_READ, 0);
    if (h == nullptr) {
      if (IsMissing()) return Status::NotFound("'" + url_ + "' has no " + name);
      return SftpError("cannot read '" + path + "'");
    }
    std::string out;
    char buffer[4096];
    for (;;) {
      ssize_t n = libssh2_sftp_read(h, buffer, sizeof buffer);
      if (n < 0) {
        libssh2_sftp_close(h);
        return SftpError("cannot read '" + path + "'");
      }
      if (n == 0) break;
      out.append(buffer, static_cast<std::size_t>(n));
      if (out.size() > (1 << 20)) break;
    }
    libssh2_sftp_close(h);
    return out;
  }

  Result<std::string> CreateSmall(const std::string& name,
                                  const std::string& content) override {
    Result<std::string> existing = ReadSmall(name);
    if (existing.ok() || existing.status().code() != Code::kNotFound) {
      return existing;
    }
    CMF_RETURN_IF_ERROR(MakeDirs("tmp"));
    std::string temp = Join("tmp/" + name + "-" + RandomName());
    LIBSSH2_SFTP_HANDLE* h = libssh2_sftp_open(
        sftp_, temp.c_str(),
        LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
        LIBSSH2_SFTP_S_IRUSR | LIBSSH2_SFTP_S_IRGRP | LIBSSH2_SFTP_S_IROTH);
    if (h == nullptr) return SftpError("cannot write '" + temp + "'");
    ssize_t w = libssh2_sftp_write(h, content.data(), content.size());
    // Another site's host: AtomicFile cannot reach it. Best effort, as for
    // objects: needs OpenSSH's fsync extension.
    if (w == static_cast<ssize_t>(content.size())) libssh2_sftp_fsync(h);
    libssh2_sftp_close(h);
    if (w != static_cast<ssize_t>(content.size())) {
      libssh2_sftp_unlink(sftp_, temp.c_str());
      return SftpError("cannot write '" + temp + "'");
    }
    std::string final_path = Join(name);
    libssh2_sftp_rename(sftp_, temp.c_str(), final_path.c_str());
    libssh2_sftp_unlink(sftp_, temp.c_str());  // left when another won
    return ReadSmall(name);
  }

  Result<bool> HasFolder(const std::string& relative) override {
    LIBSSH2_SFTP_ATTRIBUTES attrs{};
    std::string path = Join(relative);
    if (libssh2_sftp_stat(sftp_, path.c_str(), &attrs) == 0) {
      return LIBSSH2_SFTP_S_ISDIR(attrs.permissions);
    }
    if (IsMissing()) return false;
    return SftpError("cannot read '" + path + "'");
  }

 private:
  // Reads the object HASH of the remote in 1 MiB pieces, handing each to SINK
  // (which may stop the read with an error).
  Status ReadObject(
      const std::string& hash,
      const std::function<Status(const char*, std::size_t)>& sink) {
    std::string path = PathOf(hash);
    LIBSSH2_SFTP_HANDLE* h =
        libssh2_sftp_open(sftp_, path.c_str(), LIBSSH2_FXF_READ, 0);
    if (h == nullptr) {
      if (IsMissing()) {
        return Status::NotFound("'" + url_ + "' has no object " + hash);
      }
      return SftpError("cannot read '" + path + "'");
    }
    std::vector<char> buffer(1 << 20);
    Status st;
    for (;;) {
      ssize_t n = libssh2_sftp_read(h, buffer.data(), buffer.size());
      if (n < 0) {
        st = SftpError("cannot read '" + path + "'");
        break;
      }
      if (n == 0) break;
      st = sink(buffer.data(), static_cast<std::size_t>(n));
      if (!st.ok()) break;
    }
    libssh2_sftp_close(h);
    return st;
  }

  std::string Join(const std::string& relative) const {
    std::string base = target_.path;
    if (!base.empty() && base.back() != '/') base += '/';
    return base + relative;
  }

  bool IsMissing() const {
    return libssh2_session_last_errno(session_) ==
               LIBSSH2_ERROR_SFTP_PROTOCOL &&
           libssh2_sftp_last_error(sftp_) == LIBSSH2_FX_NO_SUCH_FILE;
  }

  Status SessionError(const std::string& what) const {
    char* message = nullptr;
    libssh2_session_last_error(session_, &message, nullptr, 0);
    return Status::IOError(
        what + (message && *message ? std::string(": ") + message : ""));
  }

  Status SftpError(const std::string& what) const {
    if (libssh2_session_last_errno(session_) == LIBSSH2_ERROR_SFTP_PROTOCOL) {
      unsigned long code = libssh2_sftp_last_error(sftp_);
      const char* text = code == LIBSSH2_FX_PERMISSION_DENIED
                             ? "permission denied"
                         : code == LIBSSH2_FX_NO_SUCH_FILE ? "no such file"
                         : code == LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM
                             ? "no space left on the remote file system"
                             : "SFTP error";
      return Status::IOError(what + ": " + text + " (SFTP status " +
                             std::to_string(code) + ")");
    }
    return SessionError(what);
  }

  // Creates RELATIVE and its parents under the root (those that exist are
  // fine).
  Status MakeDirs(const std::string& relative) {
    if (made_.count(relative)) return Status::Ok();
    std::string so_far;
    std::size_t start = 0;
    while (start <= relative.size()) {
      std::size_t slash = relative.find('/', start);
      if (slash == std::string::npos) slash = relative.size();
      so_far = relative.substr(0, slash);
      std::string path = Join(so_far);
      if (libssh2_sftp_mkdir(sftp_, path.c_str(), 0775) != 0) {
        LIBSSH2_SFTP_ATTRIBUTES attrs{};
        if (libssh2_sftp_stat(sftp_, path.c_str(), &attrs) != 0 ||
            !LIBSSH2_SFTP_S_ISDIR(attrs.permissions)) {
          return SftpError("cannot create '" + path + "'");
        }
      }
      start = slash + 1;
    }
    made_.insert(relative);
    return Status::Ok();
  }

  Status Authenticate(const std::string& where) {
    const std::string user = SshUser(target_);
    char* methods = libssh2_userauth_list(session_, user.c_str(),
                                          static_cast<unsigned>(user.size()));
    if (methods == nullptr && libssh2_userauth_authenticated(session_)) {
      return Status::Ok();
    }
    std::string tried;
    if (LIBSSH2_AGENT* agent = libssh2_agent_init(session_)) {
      if (libssh2_agent_connect(agent) == 0 &&
          libssh2_agent_list_identities(agent) == 0) {
        tried = "ssh-agent";
        struct libssh2_agent_publickey* prev = nullptr;
        struct libssh2_agent_publickey* id = nullptr;
        while (libssh2_agent_get_identity(agent, &id, prev) == 0) {
          if (libssh2_agent_userauth(agent, user.c_str(), id) == 0) {
            libssh2_agent_disconnect(agent);
            libssh2_agent_free(agent);
            return Status::Ok();
          }
          prev = id;
        }
        libssh2_agent_disconnect(agent);
      }
      libssh2_agent_free(agent);
    }
    for (const SshIdentity& id : SshIdentities()) {
      tried += (tried.empty() ? "" : ", ") + id.private_key;
      if (libssh2_userauth_publickey_fromfile_ex(
              session_, user.c_str(), static_cast<unsigned>(user.size()),
              id.public_key.c_str(), id.private_key.c_str(), "") == 0) {
        return Status::Ok();
      }
    }
    return Status::IOError(
        "permission denied: " + where + " accepted no key for user '" + user +
        "' (tried " +
        (tried.empty() ? "no agent and no key in " + SshDir() : tried) + ")");
  }

  std::string url_;
  SshUrl target_;
  int sock_ = -1;
  LIBSSH2_SESSION* session_ = nullptr;
  LIBSSH2_SFTP* sftp_ = nullptr;
  std::set<std::string> made_;
};

Result<std::unique_ptr<ObjectTransport>> OpenSftp(const std::string& url) {
  auto t = std::make_unique<SftpTransport>(url);
  CMF_RETURN_IF_ERROR(t->Connect());
  CMF_ASSIGN_OR_RETURN(bool root, t->HasFolder("."));
  if (!root) {
    return Status::NotFound("the object store '" + url + "' does not exist");
  }
  return std::unique_ptr<ObjectTransport>(std::move(t));
}

const SshModule kModule{{kSshModuleAbi, CMF_VERSION, CMF_BUILD_ID}, OpenSftp};

}  // namespace
}  // namespace cmf::data

extern "C" __attribute__((visibility("default"))) const cmf::data::SshModule*
cmf_ssh_module() {
  return &cmf::data::kModule;
}
