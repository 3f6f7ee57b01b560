#include "cmf/exec.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <system_error>

#include "cmf/clock.h"
#include "cmf/data/fault.h"
#include "cmf/data/object_cache.h"

extern char** environ;

namespace fs = std::filesystem;

namespace cmf {
namespace {

bool IsExecutableFile(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// The file that `execvp` would run for NAME, or NotFound.
Result<std::string> FindExecutable(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (IsExecutableFile(name)) return name;
    return Status::NotFound("cannot run '" + name +
                            "': no such executable file");
  }
  const char* path_env = std::getenv("PATH");
  std::string search = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream dirs(search);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + name;
    if (IsExecutableFile(candidate)) return candidate;
  }
  return Status::NotFound("cannot run '" + name + "': command not found");
}

// The child being waited for, for the signal handler that forwards SIGTERM and
// SIGHUP.
volatile sig_atomic_t g_child = 0;

void ForwardSignal(int sig) {
  if (g_child > 0) ::kill(static_cast<pid_t>(g_child), sig);
}

// The parent's signal handling while a child runs: SIGINT and SIGQUIT are
// ignored (the terminal sends them to the command too, as for system()),
// SIGTERM and SIGHUP are passed on to the command, SIGCHLD is the default (an
// inherited "ignore" would make waitpid fail). Restored by Release() or at the
// end of the scope.
class SignalGuard {
 public:
  SignalGuard() {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGINT, &ignore, &old_int_);
    ::sigaction(SIGQUIT, &ignore, &old_quit_);
    struct sigaction forward {};
    forward.sa_handler = ForwardSignal;
    sigemptyset(&forward.sa_mask);
    forward.sa_flags = SA_RESTART;
    ::sigaction(SIGTERM, &forward, &old_term_);
    ::sigaction(SIGHUP, &forward, &old_hup_);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGCHLD, &dfl, &old_chld_);
    active_ = true;
  }
  ~SignalGuard() { Release(); }

  void Release() {
    if (!active_) return;
    g_child = 0;
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGQUIT, &old_quit_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGHUP, &old_hup_, nullptr);
    ::sigaction(SIGCHLD, &old_chld_, nullptr);
    active_ = false;
  }

 private:
  bool active_ = false;
  struct sigaction old_int_ {
  }, old_quit_{}, old_term_{}, old_hup_{}, old_chld_{};
};

// Reads "SERIES STEP VALUE" lines from a pipe and logs them in one transaction
// per series per read, so that a command logging thousands of steps a second
// costs few commits.
class MetricsReader {
 public:
  static constexpr std::size_t kMaxLine = 4096;

  explicit MetricsReader(Run& run) : run_(run) {}

  // Consumes what is available; returns false at end of file, on an error, or
  // when nothing is available on a non-blocking descriptor.
  bool ReadAvailable(int fd) {
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) return true;
    if (n <= 0) return false;
    pending_.append(buf, static_cast<std::size_t>(n));
    Consume(/*at_end=*/false);
    return true;
  }

  // Takes a last line that has no line break.
  void Finish() { Consume(/*at_end=*/true); }

  int logged() const { return logged_; }

 private:
  void Consume(bool at_end) {
    std::map<std::string, std::vector<MetricPoint>> batch;
    std::size_t start = 0;
    for (;;) {
      std::size_t nl = pending_.find('\n', scanned_);
      if (nl == std::string::npos) {
        if (at_end && start < pending_.size())
          nl = pending_.size();
        else
          break;
      }
      std::string_view line(pending_.data() + start, nl - start);
      if (skipping_) {
        skipping_ = false;  // the tail of an overlong line, already reported
      } else if (line.size() > kMaxLine) {
        WarnOverlong();
      } else {
        Take(line, batch);
      }
      start = std::min(nl + 1, pending_.size());
      scanned_ = start;
      if (nl == pending_.size()) break;
    }
    pending_.erase(0, start);
    scanned_ = pending_.size();
    if (pending_.size() >
        kMaxLine) {  // no line break in sight: drop it, warn once
      WarnOverlong();
      pending_.clear();
      scanned_ = 0;
      skipping_ = true;
    }
    for (const auto& [series, points] : batch) {
      Status st = run_.LogMetrics(series, points);
      if (!st.ok()) {
        fmt::print(stderr, "cmf: warning: cannot log metrics: {}\n",
                   st.message());
      } else {
        logged_ += static_cast<int>(points.size());
      }
    }
  }

  void WarnOverlong() {
    fmt::print(stderr,
               "cmf: warning: ignoring a metrics line longer than {} bytes\n",
               kMaxLine);
  }

  void Take(std::string_view line,
            std::map<std::string, std::vector<MetricPoint>>& batch) {
    std::string series;
    MetricPoint point;
    if (ParseMetricLine(line, &series, &point)) {
      batch[series].push_back(point);
    } else if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
      fmt::print(stderr,
                 "cmf: warning: ignoring metrics line '{}' (want: SERIES STEP "
                 "VALUE)\n",
                 line);
    }
  }

  Run& run_;
  std::string pending_;
  std::size_t scanned_ = 0;  // pending_ holds no line break before this
  bool skipping_ = false;
  int logged_ = 0;
};

struct ChildEnd {
  ExecStatus status = ExecStatus::kFailed;
  int exit_code = 1;
  std::string message;
};

ChildEnd Interpret(int wait_status) {
  ChildEnd end;
  if (WIFEXITED(wait_status)) {
    end.exit_code = WEXITSTATUS(wait_status);
    end.status = end.exit_code == 0 ? ExecStatus::kOk : ExecStatus::kFailed;
    if (end.exit_code != 0)
      end.message = fmt::format("exited with code {}", end.exit_code);
  } else if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    end.exit_code = 128 + sig;
    bool stopped_by_user = sig == SIGINT || sig == SIGTERM || sig == SIGHUP;
    end.status =
        stopped_by_user ? ExecStatus::kInterrupted : ExecStatus::kFailed;
    end.message =
        fmt::format("killed by signal {} ({})", sig, ::strsignal(sig));
  }
  return end;
}

}  // namespace

bool ParseMetricLine(std::string_view line, std::string* series,
                     MetricPoint* point) {
  std::string text(line);
  std::istringstream in(text);
  std::string name, step_text, value_text, extra;
  if (!(in >> name >> step_text >> value_text) || (in >> extra)) return false;
  std::int64_t step = 0;
  auto [end, ec] = std::from_chars(step_text.data(),
                                   step_text.data() + step_text.size(), step);
  if (ec != std::errc() || end != step_text.data() + step_text.size())
    return false;
  char* value_end = nullptr;
  double value = std::strtod(value_text.c_str(), &value_end);
  if (value_end != value_text.c_str() + value_text.size()) return false;
  *series = std::move(name);
  *point = {step, value};
  return true;
}

namespace {

// Hashes OPTIONS' inputs and checks its outputs' paths, recording nothing.
Result<std::vector<ArtifactRef>> CheckPaths(Repo& repo,
                                            const ExecOptions& options) {
  std::vector<ArtifactRef> inputs;
  for (const fs::path& path : options.inputs) {
    CMF_ASSIGN_OR_RETURN(std::string event_path, EventPath(repo, path));
    Result<data::ObjectInfo> info = HashContent(repo, path, /*store=*/false);
    if (!info.ok()) {
      if (info.status().code() == Code::kNotFound) {
        return Status::NotFound("input '" + path.string() + "' does not exist");
      }
      return info.status().With("input '" + path.string() + "'");
    }
    inputs.push_back({event_path, info->hash, info->size,
                      GuessKind(path, info->is_directory)});
  }
  for (const fs::path& path : options.outputs) {
    CMF_RETURN_IF_ERROR(EventPath(repo, path).status());
  }
  return inputs;
}

// The command's environment: cmf's own, with its execution id and metrics fd.
std::vector<std::string> ChildEnvironment(const std::string& id, int write_fd) {
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("CMF_EXECUTION_ID=") ||
        entry.starts_with("CMF_METRICS_FD=")) {
      continue;
    }
    env_storage.emplace_back(entry);
  }
  env_storage.push_back("CMF_EXECUTION_ID=" + id);
  env_storage.push_back("CMF_METRICS_FD=" + std::to_string(write_fd));
  return env_storage;
}

// Spawns PROGRAM, closes WRITE_FD, sets g_child; returns posix_spawn's error.
int SpawnChild(std::string& program, const std::vector<char*>& argv,
               const std::vector<char*>& envp, int write_fd, pid_t* pid) {
  // SIGTERM and SIGHUP wait until the child's pid is known, to be passed on.
  sigset_t forwarded, previous;
  sigemptyset(&forwarded);
  sigaddset(&forwarded, SIGTERM);
  sigaddset(&forwarded, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &forwarded, &previous);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGCHLD})
    sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setsigmask(&attr, &previous);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  int rc = ::posix_spawn(pid, program.c_str(), nullptr, &attr, argv.data(),
                         envp.data());
  if (rc == ENOEXEC) {
    // A script without "#!": run it with the shell, as execvp and shells do.
    std::vector<char*> sh_argv = {const_cast<char*>("/bin/sh"), program.data()};
    sh_argv.insert(sh_argv.end(), argv.begin() + 1, argv.end());
    rc = ::posix_spawn(pid, "/bin/sh", nullptr, &attr, sh_argv.data(),
                       envp.data());
  }
  posix_spawnattr_destroy(&attr);
  ::close(write_fd);
  if (rc == 0) g_child = *pid;
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  return rc;
}

// Waits for the child (after killing it, when KILL_FIRST) and reports how it
// ended; a wait that fails reports it as failed with no exit code.
std::optional<int> WaitChild(pid_t pid, bool kill_first, bool block) {
  if (kill_first) ::kill(pid, SIGTERM);
  for (;;) {
    int wait_status = 0;
    pid_t done = ::waitpid(pid, &wait_status, block ? 0 : WNOHANG);
    if (done == pid) return wait_status;
    if (done == 0) return std::nullopt;
    if (errno != EINTR) return -1;
  }
}

// Records the execution and its inputs; on failure stops the child PID first.
Result<Run> StartRun(Repo& repo, const RunSpec& spec,
                     const std::vector<ArtifactRef>& inputs, pid_t pid,
                     int read_fd) {
  Result<Run> started = Run::Start(repo, spec);
  if (!started.ok()) {
    WaitChild(pid, /*kill_first=*/true, /*block=*/true);
    ::close(read_fd);
    return started.status();
  }
  Run run = std::move(started).value();
  for (const ArtifactRef& ref : inputs) {
    Status st = run.LogHashed(Direction::kInput, ref);
    if (!st.ok()) {
      WaitChild(pid, true, true);
      ::close(read_fd);
      (void)run.Finish(ExecStatus::kFailed, std::nullopt, st.message());
      return st;
    }
  }
  return run;
}

// Logs metrics from READ_FD until the child PID ends; returns its wait status.
int WaitReadingMetrics(pid_t pid, int read_fd, MetricsReader* metrics,
                       SignalGuard* guard) {
  bool pipe_open = true;
  int wait_status = -1;
  for (;;) {
    if (pipe_open) {
      pollfd pfd{read_fd, POLLIN, 0};
      if (::poll(&pfd, 1, 100) > 0) pipe_open = metrics->ReadAvailable(read_fd);
    }
    std::optional<int> done = WaitChild(pid, false, /*block=*/!pipe_open);
    if (done) {
      wait_status = *done;
      break;
    }
  }
  guard->Release();  // from here on, signals reach cmf as usual
  if (pipe_open) {   // what the command wrote just before it ended, within a
                     // bound
    ::fcntl(read_fd, F_SETFL, O_NONBLOCK);
    const std::int64_t deadline = SystemClock::Get()->NowMs() + 1000;
    while (metrics->ReadAvailable(read_fd) &&
           SystemClock::Get()->NowMs() < deadline) {
    }
  }
  metrics->Finish();
  ::close(read_fd);
  return wait_status;
}

// Stores OUTPUTS; the first that fails marks OUTCOME failed and stops.
void LogOutputs(Run& run, const std::vector<fs::path>& outputs,
                ExecOutcome* outcome) {
  for (const fs::path& path : outputs) {
    Result<ArtifactRef> out = run.LogOutput(path);
    if (!out.ok()) {
      outcome->status = ExecStatus::kFailed;
      outcome->message = out.status().code() == Code::kNotFound
                             ? "output '" + path.string() + "' was not produced"
                             : "cannot store output '" + path.string() +
                                   "': " + out.status().message();
      break;
    }
  }
}

}  // namespace

Result<ExecOutcome> Exec(Repo& repo, ExecOptions options) {
  if (options.run.command.empty())
    return Status::InvalidArgument("no command to run");
  CMF_ASSIGN_OR_RETURN(std::string program,
                       FindExecutable(options.run.command.front()));

  // Everything that can be checked is checked before anything is recorded.
  CMF_ASSIGN_OR_RETURN(std::vector<ArtifactRef> inputs,
                       CheckPaths(repo, options));

  // The command starts before the execution is recorded, so that one that
  // cannot be started leaves no record; it learns its id from its environment.
  const std::int64_t started_ms = SystemClock::Get()->NowMs();
  CMF_ASSIGN_OR_RETURN(const std::string id, NewUuidV7(started_ms));

  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    return Status::IOError(std::string("cannot create a pipe: ") +
                           std::strerror(errno));
  }
  const int read_fd = pipe_fds[0];
  const int write_fd =
      pipe_fds[1];  // inherited by the command, as CMF_METRICS_FD
  ::fcntl(read_fd, F_SETFD, FD_CLOEXEC);

  std::vector<std::string> env_storage = ChildEnvironment(id, write_fd);
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = options.run.command;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  SignalGuard guard;
  pid_t pid = 0;
  int rc = SpawnChild(program, argv, envp, write_fd, &pid);
  if (rc != 0) {
    ::close(read_fd);
    return Status::IOError(fmt::format(
        "cannot run '{}': {}", options.run.command.front(), std::strerror(rc)));
  }

  options.run.id = id;
  options.run.started_ms = started_ms;
  CMF_ASSIGN_OR_RETURN(Run run,
                       StartRun(repo, options.run, inputs, pid, read_fd));

  data::CrashPoint("exec:started");  // recorded, the command running

  ExecOutcome outcome;
  outcome.id = run.id();
  MetricsReader metrics(run);
  int wait_status = WaitReadingMetrics(pid, read_fd, &metrics, &guard);
  outcome.metrics_logged = metrics.logged();

  ChildEnd end = wait_status < 0 ? ChildEnd{ExecStatus::kFailed, 1,
                                            "cannot wait for the command"}
                                 : Interpret(wait_status);
  outcome.status = end.status;
  outcome.exit_code = end.exit_code;
  outcome.message = end.message;
  outcome.signal =
      wait_status >= 0 && WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0;
  std::optional<int> recorded_code =
      wait_status < 0 ? std::nullopt : std::optional(end.exit_code);
  data::CrashPoint("exec:ended");  // the command done, nothing recorded yet
  if (end.status == ExecStatus::kOk) LogOutputs(run, options.outputs, &outcome);
  CMF_RETURN_IF_ERROR(
      run.Finish(outcome.status, recorded_code, outcome.message));
  return outcome;
}

}  // namespace cmf
