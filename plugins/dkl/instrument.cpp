#include "instrument.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "instrument_reply.h"

namespace cmf::dkl {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

class Replay : public Instrument {
 public:
  explicit Replay(const ml::Experiment& e) : experiment_(e) {}
  std::vector<float> Measure(int x, int y) override {
    return experiment_.Spectrum(x, y);
  }
  std::string Describe() const override { return "replay"; }

 private:
  const ml::Experiment& experiment_;
};

// Ignores SIGPIPE while it lives, so that writing to a controller that died
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

class Process : public Instrument {
 public:
  Process(const std::string& command, const ml::Experiment& e, double timeout)
      : command_(command), channels_(e.channels), timeout_(timeout) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0)
      Fail(std::string("cannot create pipes: ") + std::strerror(errno));
    pid_ = ::fork();
    if (pid_ < 0) Fail(std::string("cannot fork: ") + std::strerror(errno));
    if (pid_ == 0) {
      // Its own process group, so that stopping it reaches what the shell
      // started too (dash forks rather than execs a command).
      ::setpgid(0, 0);
      ::dup2(in[0], STDIN_FILENO);
      ::dup2(out[1], STDOUT_FILENO);
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_child_ = in[1];
    from_child_ = out[0];
    ::setpgid(pid_, pid_);  // also here: whichever runs first
  }

  // The greeting tells the controller what will be asked of it. Called once,
  // right after construction (a failure then still runs the destructor).
  void Greet(const ml::Experiment& e) {
    nlohmann::json hello = {{"hello",
                             {{"protocol", 1},
                              {"width", e.width},
                              {"height", e.height},
                              {"channels", e.channels}}}};
    CheckGreetingReply(Exchange(hello));
  }

  ~Process() override {
    if (to_child_ >= 0) {
      NoSigpipe guard;
      std::string bye = "{\"bye\": {}}\n";
      (void)!::write(to_child_, bye.data(), bye.size());
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
      // while a controller that ignores it lives on).
      ::kill(-pid_, SIGKILL);
      if (!reaped) ::waitpid(pid_, nullptr, 0);
    }
  }

  std::vector<float> Measure(int x, int y) override {
    return ParseSpectrumReply(Exchange({{"measure", {{"x", x}, {"y", y}}}}),
                              channels_, x, y);
  }

  std::string Describe() const override { return "proc:" + command_; }

 private:
  std::string ExitDescription() {
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

  // Sends REQUEST; returns the reply line, not yet parsed.
  std::string Exchange(const nlohmann::json& request) {
    NoSigpipe guard;
    std::string line = request.dump() + "\n";
    const char* p = line.data();
    std::size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(to_child_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0)
        Fail("the instrument controller '" + command_ + "' " +
             ExitDescription() + " (writing to it failed: " +
             std::strerror(errno) + ")");
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return ReadLine();
  }

  std::string ReadLine() {
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
        Fail("the instrument controller sent a line of more than 64 MiB");
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%g", timeout_);
        Fail("the instrument controller '" + command_ +
             "' did not answer within " + buf +
             " s (see --instrument-timeout)");
      }
      int wait_ms = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)
              .count()) + 1;
      pollfd pfd = {from_child_, POLLIN, 0};
      int r = ::poll(&pfd, 1, wait_ms);
      if (r < 0 && errno == EINTR) continue;  // Ctrl-C: the caller checks
      if (r <= 0) continue;
      char chunk[65536];
      ssize_t n = ::read(from_child_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        Fail("the instrument controller '" + command_ + "' " +
             ExitDescription() + " before answering");
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  std::string command_;
  int channels_;
  double timeout_;
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

}  // namespace

std::unique_ptr<Instrument> MakeReplay(const ml::Experiment& experiment) {
  if (!experiment.has_spectra)
    Fail("'" + experiment.path.string() + "' has no /spectra to replay");
  return std::make_unique<Replay>(experiment);
}

std::unique_ptr<Instrument> MakeProcess(const std::string& command,
                                        const ml::Experiment& experiment,
                                        double timeout_seconds) {
  if (command.empty()) Fail("--instrument proc: needs a command after 'proc:'");
  auto process = std::make_unique<Process>(command, experiment, timeout_seconds);
  process->Greet(experiment);
  return process;
}

}  // namespace cmf::dkl
