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

// Sets the parent's signal handling for the time a child runs, and restores it.
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
  }
  ~SignalGuard() {
    g_child = 0;
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGQUIT, &old_quit_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGHUP, &old_hup_, nullptr);
  }

 private:
  struct sigaction old_int_ {
  }, old_quit_{}, old_term_{}, old_hup_{};
};

// Reads "SERIES STEP VALUE" lines from a pipe and logs them in one transaction
// per series per read, so that a command logging thousands of steps a second
// costs few commits.
class MetricsReader {
 public:
  explicit MetricsReader(Run& run) : run_(run) {}

  // Consumes the bytes available; returns false at end of file or error.
  bool ReadAvailable(int fd) {
    char buf[65536];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      return true;  // EAGAIN (drained) ends a read loop
    if (n <= 0) return false;
    pending_.append(buf, static_cast<std::size_t>(n));
    std::map<std::string, std::vector<MetricPoint>> batch;
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending_.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string_view line(pending_.data() + start, nl - start);
      std::string series;
      MetricPoint point;
      if (ParseMetricLine(line, &series, &point)) {
        batch[series].push_back(point);
      } else if (!line.empty()) {
        fmt::print(stderr,
                   "cmf: warning: ignoring metrics line '{}' (want: SERIES "
                   "STEP VALUE)\n",
                   line);
      }
    }
    pending_.erase(0, start);
    for (const auto& [series, points] : batch) {
      Status st = run_.LogMetrics(series, points);
      if (!st.ok()) {
        fmt::print(stderr, "cmf: warning: cannot log metrics: {}\n",
                   st.message());
      } else {
        logged_ += static_cast<int>(points.size());
      }
    }
    return true;
  }

  int logged() const { return logged_; }

 private:
  Run& run_;
  std::string pending_;
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

Result<ExecOutcome> Exec(Repo& repo, ExecOptions options) {
  if (options.run.command.empty())
    return Status::InvalidArgument("no command to run");
  CMF_ASSIGN_OR_RETURN(std::string program,
                       FindExecutable(options.run.command.front()));

  // Everything that can be checked is checked before anything is recorded.
  std::vector<ArtifactRef> inputs;
  for (const fs::path& path : options.inputs) {
    CMF_ASSIGN_OR_RETURN(std::string event_path, EventPath(repo, path));
    Result<data::ObjectInfo> info = repo.objects().Hash(path);
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

  CMF_ASSIGN_OR_RETURN(Run run, Run::Start(repo, options.run));
  for (const ArtifactRef& ref : inputs)
    CMF_RETURN_IF_ERROR(run.LogHashed(Direction::kInput, ref));

  ExecOutcome outcome;
  outcome.id = run.id();

  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) {
    Status st = Status::IOError(std::string("cannot create a pipe: ") +
                                std::strerror(errno));
    (void)run.Finish(ExecStatus::kFailed, std::nullopt, st.message());
    return st;
  }
  const int read_fd = pipe_fds[0];
  const int write_fd =
      pipe_fds[1];  // inherited by the command, as CMF_METRICS_FD
  ::fcntl(read_fd, F_SETFD, FD_CLOEXEC);

  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("CMF_EXECUTION_ID=") ||
        entry.starts_with("CMF_METRICS_FD="))
      continue;
    env_storage.emplace_back(entry);
  }
  env_storage.push_back("CMF_EXECUTION_ID=" + run.id());
  env_storage.push_back("CMF_METRICS_FD=" + std::to_string(write_fd));
  std::vector<char*> envp;
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (std::string& a : options.run.command) argv.push_back(a.data());
  argv.push_back(nullptr);

  SignalGuard guard;
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGQUIT, SIGTERM, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, program.c_str(), nullptr, &attr, argv.data(),
                         envp.data());
  posix_spawnattr_destroy(&attr);
  ::close(write_fd);
  if (rc != 0) {
    ::close(read_fd);
    outcome.exit_code = 127;
    outcome.message = fmt::format(
        "cannot run '{}': {}", options.run.command.front(), std::strerror(rc));
    CMF_RETURN_IF_ERROR(
        run.Finish(ExecStatus::kFailed, std::nullopt, outcome.message));
    return outcome;
  }
  g_child = pid;

  MetricsReader metrics(run);
  bool pipe_open = true;
  int wait_status = 0;
  for (;;) {
    if (pipe_open) {
      pollfd pfd{read_fd, POLLIN, 0};
      if (::poll(&pfd, 1, 100) > 0) pipe_open = metrics.ReadAvailable(read_fd);
    }
    pid_t done = ::waitpid(pid, &wait_status, pipe_open ? WNOHANG : 0);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {
      wait_status = 0;
      break;
    }
  }
  if (pipe_open) {  // what the command wrote just before it ended
    ::fcntl(read_fd, F_SETFL, O_NONBLOCK);
    while (metrics.ReadAvailable(read_fd)) {
    }
  }
  ::close(read_fd);
  outcome.metrics_logged = metrics.logged();

  ChildEnd end = Interpret(wait_status);
  outcome.status = end.status;
  outcome.exit_code = end.exit_code;
  outcome.message = end.message;
  if (end.status == ExecStatus::kOk) {
    for (const fs::path& path : options.outputs) {
      Result<ArtifactRef> out = run.LogOutput(path);
      if (!out.ok()) {
        outcome.status = ExecStatus::kFailed;
        outcome.message =
            out.status().code() == Code::kNotFound
                ? "output '" + path.string() + "' was not produced"
                : "cannot store output '" + path.string() +
                      "': " + out.status().message();
        break;
      }
    }
  }
  CMF_RETURN_IF_ERROR(
      run.Finish(outcome.status, outcome.exit_code, outcome.message));
  return outcome;
}

}  // namespace cmf
