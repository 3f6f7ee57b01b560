#include "line_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace cmf::proc {
namespace {

// Ignores SIGPIPE while it lives, so that writing to a program that died
// fails with EPIPE instead of ending cmf.
class NoSigpipe {
 public:
  NoSigpipe() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGPIPE, &ignore, &old_);
  }
  ~NoSigpipe() { ::sigaction(SIGPIPE, &old_, nullptr); }

 private:
  struct sigaction old_ {};
};

}  // namespace

void LineProcess::Fail(const std::string& message) const {
  throw std::runtime_error(message);
}

LineProcess::LineProcess(std::string command, std::string who,
                         std::string timeout_flag, double timeout_seconds)
    : command_(std::move(command)),
      who_(std::move(who)),
      timeout_flag_(std::move(timeout_flag)),
      timeout_(timeout_seconds) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0)
    Fail(std::string("cannot create pipes: ") + std::strerror(errno));
  if (::pipe2(out, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(in[0]);
    ::close(in[1]);
    Fail(std::string("cannot create pipes: ") + std::strerror(e));
  }
  pid_ = ::fork();
  if (pid_ < 0) {
    int e = errno;
    for (int fd : {in[0], in[1], out[0], out[1]}) ::close(fd);
    Fail(std::string("cannot fork: ") + std::strerror(e));
  }
  if (pid_ == 0) {
    // Its own process group, so that stopping it reaches what the shell
    // started too (dash forks rather than execs a command).
    ::setpgid(0, 0);
    // Should cmf be killed outright, the program is told to end too.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::execl("/bin/sh", "sh", "-c", command_.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  to_child_ = in[1];
  from_child_ = out[0];
  ::setpgid(pid_, pid_);  // also here: whichever runs first
}

LineProcess::~LineProcess() {
  if (to_child_ >= 0) {
    NoSigpipe guard;
    if (!bye_.empty()) {
      std::string bye = bye_ + "\n";
      (void)!::write(to_child_, bye.data(), bye.size());
    }
    ::close(to_child_);
  }
  if (from_child_ >= 0) ::close(from_child_);
  if (pid_ > 0 && !exited_) {
    // Give it a moment to finish on its own, then stop it.
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(-pid_, SIGTERM);
    bool reaped = false;
    for (int i = 0; i < 100 && !reaped; ++i) {
      reaped = ::waitpid(pid_, nullptr, WNOHANG) == pid_;
      if (!reaped) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // Whatever of the group outlived SIGTERM (the shell may have died of it
    // while a program that ignores it lives on).
    ::kill(-pid_, SIGKILL);
    if (!reaped) ::waitpid(pid_, nullptr, 0);
  }
}

std::string LineProcess::ExitDescription() {
  int status = 0;
  for (int i = 0; i < 50; ++i) {
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      if (WIFEXITED(status))
        return "exited with status " + std::to_string(WEXITSTATUS(status));
      if (WIFSIGNALED(status))
        return "was killed by signal " + std::to_string(WTERMSIG(status));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return "closed its output";
}

std::string LineProcess::Exchange(const std::string& request) {
  NoSigpipe guard;
  std::string line = request + "\n";
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(to_child_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      Fail(who_ + " '" + command_ + "' " + ExitDescription() +
           " (writing to it failed: " + std::strerror(errno) + ")");
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return ReadLine();
}

std::string LineProcess::ReadLine() {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::duration<double>(timeout_);
  for (;;) {
    std::size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      return line;
    }
    if (buffer_.size() > (64u << 20))
      Fail(who_ + " sent a line of more than 64 MiB");
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", timeout_);
      Fail(who_ + " '" + command_ + "' did not answer within " + buf +
           " s (see " + timeout_flag_ + ")");
    }
    int wait_ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                             deadline - now)
                             .count()) +
        1;
    // Wake at least every 200 ms to see whether the run was cancelled.
    pollfd pfd = {from_child_, POLLIN, 0};
    int r = ::poll(&pfd, 1, std::min(wait_ms, 200));
    if (cancelled_ && cancelled_())
      Fail("interrupted while waiting for " + who_);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char chunk[65536];
    ssize_t n = ::read(from_child_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      Fail(who_ + " '" + command_ + "' " + ExitDescription() +
           " before answering");
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

}  // namespace cmf::proc
