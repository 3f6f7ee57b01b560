#include "ssh_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace fs = std::filesystem;

namespace cmf::test {
namespace {

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

bool Accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::string FirstTwoFields(const std::string& line) {
  auto first = line.find(' ');
  auto second = line.find(' ', first + 1);
  std::string out = line.substr(0, second);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' '))
    out.pop_back();
  return out;
}

}  // namespace

SshServer::SshServer() {
  const char* sshd = "/usr/sbin/sshd";
  if (::access(sshd, X_OK) != 0) {
    why_ = "no /usr/sbin/sshd (install openssh-server; .ci/setup does)";
    return;
  }
  home_ = dir_ / "home";
  fs::create_directories(home_ / ".ssh");
  fs::permissions(home_ / ".ssh", fs::perms::owner_all);
  for (const auto& [args, what] :
       std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
             (dir_ / "host_key").string()},
            "host key"},
           {{"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
             (home_ / ".ssh" / "id_ed25519").string()},
            "client key"}}) {
    if (RunProcess(args, dir_.path()).exit_code != 0) {
      why_ = "ssh-keygen could not make the " + what;
      return;
    }
  }
  host_key_ = FirstTwoFields(ReadFile(dir_ / "host_key.pub"));
  WriteFile(dir_ / "authorized_keys",
            ReadFile(home_ / ".ssh" / "id_ed25519.pub"));
  port_ = FreePort();
  WriteFile(home_ / ".ssh" / "known_hosts",
            "[127.0.0.1]:" + std::to_string(port_) + " " + host_key_ + "\n");
  WriteFile(dir_ / "sshd_config",
            "Port " + std::to_string(port_) +
                "\nListenAddress 127.0.0.1\n"
                "HostKey " +
                (dir_ / "host_key").string() + "\nAuthorizedKeysFile " +
                (dir_ / "authorized_keys").string() +
                "\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "PubkeyAuthentication yes\nStrictModes no\nUsePAM no\n"
                "PermitRootLogin prohibit-password\n"
                "PidFile " +
                (dir_ / "sshd.pid").string() +
                "\nSubsystem sftp internal-sftp\nLogLevel ERROR\n");
  if (::geteuid() == 0) {
    // sshd run by root insists on its privilege-separation folder.
    fs::create_directories("/run/sshd");
    ::chmod("/run/sshd", 0755);
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    std::string config = (dir_ / "sshd_config").string();
    std::string log = (dir_ / "sshd.log").string();
    ::execl(sshd, sshd, "-D", "-f", config.c_str(), "-E", log.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  pid_ = pid;
  for (int i = 0; i < 100; ++i) {
    if (Accepts(port_)) return;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  why_ = "sshd did not start: " + ReadFile(dir_ / "sshd.log");
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

SshServer::~SshServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string SshServer::Url(const fs::path& path) const {
  return "ssh://127.0.0.1:" + std::to_string(port_) + path.string();
}

std::map<std::string, std::string> SshServer::Env() const {
  return {{"HOME", home_.string()}, {"SSH_AUTH_SOCK", "\x01unset"}};
}

}  // namespace cmf::test
