#include "lammps.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace cmf::md {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

bool Executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// The first line of FILE that starts with "ERROR", or its last nonblank line.
std::string Complaint(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.rfind("ERROR", 0) == 0) return line.substr(0, 400);
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
  }
  return last.substr(0, 400);
}

// Stops the process group of PID: SIGTERM, a moment's grace, then SIGKILL.
void StopGroup(pid_t pid) {
  ::kill(-pid, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      ::kill(-pid, SIGKILL);  // whatever of the group outlived its leader
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace

std::string FindProgram(const std::string& program) {
  if (program.empty()) return "";
  if (program.find('/') != std::string::npos)
    return Executable(program) ? std::filesystem::absolute(program).string()
                               : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (Executable(candidate)) return candidate;
    start = end + 1;
  }
  return "";
}

void RunLammps(const LammpsJob& job) {
  std::vector<std::string> argv;
  if (job.mpi_ranks > 1) {
    if (job.mpirun.empty()) Fail("no MPI launcher given");
    std::string launcher = FindProgram(job.mpirun[0]);
    if (launcher.empty())
      Fail("cannot run LAMMPS under MPI: '" + job.mpirun[0] +
           "' is not an executable in PATH (install Debian's mpi-default-bin, "
           "or pass --mpirun)");
    argv.push_back(launcher);
    argv.insert(argv.end(), job.mpirun.begin() + 1, job.mpirun.end());
    argv.push_back("-np");
    argv.push_back(std::to_string(job.mpi_ranks));
  }
  argv.push_back(job.lammps);
  argv.insert(argv.end(),
              {"-in", job.input.string(), "-log", job.log.string(), "-nocite"});
  const std::filesystem::path screen = job.workdir / "screen.txt";
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  // The child writes exec's errno here when it cannot start the program;
  // close-on-exec makes a successful start read as end of file.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    Fail(std::string("cannot start LAMMPS: ") + std::strerror(errno));
  const pid_t cmf_pid = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(report[0]);
    ::close(report[1]);
    Fail(std::string("cannot start LAMMPS: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(report[0]);
    // Its own process group: the terminal's Ctrl-C goes to cmf, which stops
    // the whole group (mpirun and its ranks) itself.
    ::setpgid(0, 0);
    // Should cmf itself be killed (a second Ctrl-C, kill -9), LAMMPS (or
    // mpirun, which passes it on to its ranks) is told to end too.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != cmf_pid) ::_exit(126);  // cmf is gone already
    if (::chdir(job.workdir.c_str()) != 0) ::_exit(126);
    int out = ::open(screen.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = ::open("/dev/null", O_RDONLY);
    if (out < 0 || in < 0) {
      int e = errno;
      (void)!::write(report[1], &e, sizeof e);
      ::_exit(126);
    }
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    // One OpenMP thread per rank unless the user chose otherwise: the ranks
    // are the parallelism.
    ::setenv("OMP_NUM_THREADS", "1", 0);
    ::execv(args[0], args.data());
    int e = errno;
    (void)!::write(report[1], &e, sizeof e);
    ::_exit(127);
  }
  ::close(report[1]);
  ::setpgid(pid, pid);
  int exec_errno = 0;
  ssize_t got;
  do {
    got = ::read(report[0], &exec_errno, sizeof exec_errno);
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == static_cast<ssize_t>(sizeof exec_errno)) {
    ::waitpid(pid, nullptr, 0);
    Fail("cannot start '" + argv[0] + "': " + std::strerror(exec_errno));
  }
  int status = 0;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR)
      Fail(std::string("cannot wait for LAMMPS: ") + std::strerror(errno));
    if (job.cancelled && job.cancelled()) {
      StopGroup(pid);
      Fail("interrupted: LAMMPS was stopped");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(-pid, SIGKILL);  // no rank of a failed mpirun may linger
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
  std::string why;
  if (WIFEXITED(status))
    why = "exit status " + std::to_string(WEXITSTATUS(status));
  else
    why = std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  std::string complaint = Complaint(screen);
  if (complaint.empty()) complaint = Complaint(job.log);
  Fail("LAMMPS failed (" + why + ")" +
       (complaint.empty() ? "" : ": " + complaint));
}

}  // namespace cmf::md
