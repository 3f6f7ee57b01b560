// Helpers shared by the benchmarks: wall time, and running a command the way a
// user would, with its output discarded.
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;

namespace cmf::bench {

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct ProcessCost {
  double seconds = 0;
  long max_rss_kib = 0;  // 0 when GNU time is not installed
  int exit_code = -1;
};

// Runs ARGV in CWD with its output sent to /dev/null; wall time, exit code and
// peak memory. The memory is read by GNU time (/usr/bin/time, Debian package
// "time"): a child's own rusage would start from this process's size.
inline ProcessCost RunQuiet(const std::vector<std::string>& argv,
                            const std::filesystem::path& cwd) {
  static const bool have_time = ::access("/usr/bin/time", X_OK) == 0;
  std::filesystem::path rss_file = std::filesystem::temp_directory_path() /
                                   fmt::format("cmf-bench-rss-{}", ::getpid());
  std::vector<std::string> args = {"/bin/sh", "-c",
                                   "cd \"$0\" && exec \"$@\" >/dev/null 2>&1",
                                   cwd.string()};
  if (have_time) {
    args.insert(args.end(),
                {"/usr/bin/time", "-q", "-f", "%M", "-o", rss_file.string()});
  }
  args.insert(args.end(), argv.begin(), argv.end());
  std::vector<char*> p;
  for (auto& a : args) p.push_back(a.data());
  p.push_back(nullptr);
  auto start = Clock::now();
  pid_t pid = 0;
  ProcessCost cost;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, p.data(), environ) != 0)
    return cost;
  int status = 0;
  waitpid(pid, &status, 0);
  cost.seconds = SecondsSince(start);
  cost.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (have_time) {
    std::ifstream in(rss_file);
    in >> cost.max_rss_kib;
    std::error_code ec;
    std::filesystem::remove(rss_file, ec);
  }
  return cost;
}

// The wall time of ARGV in CWD, or a negative value when it failed.
inline double Timed(const std::vector<std::string>& argv,
                    const std::filesystem::path& cwd) {
  ProcessCost c = RunQuiet(argv, cwd);
  return c.exit_code == 0 ? c.seconds : -1;
}

// Runs ARGV in CWD directly (no shell, no GNU time in between: for commands
// of a few milliseconds those add a few more), output to /dev/null. The wall
// time in seconds, or a negative value when it could not run or failed.
inline double SpawnTimed(const std::vector<std::string>& argv,
                         const std::filesystem::path& cwd) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> args = argv;
  std::vector<char*> p;
  for (auto& a : args) p.push_back(a.data());
  p.push_back(nullptr);
  auto start = Clock::now();
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, p[0], &actions, nullptr, p.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  double seconds = SecondsSince(start);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? seconds : -1;
}

// Runs ARGV in CWD directly, as SpawnTimed does, with its standard output
// written to OUT and its standard error to ERR. True when it ran and exited
// 0.
inline bool SpawnToFile(const std::vector<std::string>& argv,
                        const std::filesystem::path& cwd,
                        const std::filesystem::path& out,
                        const std::filesystem::path& err = "/dev/null") {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> args = argv;
  std::vector<char*> p;
  for (auto& a : args) p.push_back(a.data());
  p.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, p[0], &actions, nullptr, p.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return false;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// True when PROGRAM is on the PATH.
inline bool Have(const std::string& program) {
  return Timed({"sh", "-c", "command -v " + program}, "/") >= 0;
}

// One phase of a cmf command, as it tells it with CMF_TRACE_PHASES set
// ("cmf: phase: NAME MS ms").
struct Phase {
  std::string name;
  double ms = 0;
};

// Runs ARGV in CWD once with CMF_TRACE_PHASES=1: its phases in the order
// they first ended (a phase met again, as each scanned path's, is summed)
// and its wall time in *SECONDS; empty when it failed.
inline std::vector<Phase> TracedPhases(const std::vector<std::string>& argv,
                                       const std::filesystem::path& cwd,
                                       double* seconds) {
  const std::filesystem::path err =
      std::filesystem::temp_directory_path() /
      fmt::format("cmf-bench-phases-{}.err", ::getpid());
  ::setenv("CMF_TRACE_PHASES", "1", 1);
  const auto start = Clock::now();
  const bool ran = SpawnToFile(argv, cwd, "/dev/null", err);
  *seconds = SecondsSince(start);
  ::unsetenv("CMF_TRACE_PHASES");
  std::vector<Phase> phases;
  std::ifstream in(err);
  for (std::string line; ran && std::getline(in, line);) {
    constexpr std::string_view kLead = "cmf: phase: ";
    const std::size_t ms_at = line.rfind(" ms");
    if (line.rfind(kLead, 0) != 0 || ms_at == std::string::npos) continue;
    const std::size_t space = line.rfind(' ', ms_at - 1);
    if (space == std::string::npos || space < kLead.size()) continue;
    const std::string name = line.substr(kLead.size(), space - kLead.size());
    const double ms = std::atof(line.c_str() + space + 1);
    auto it = std::find_if(phases.begin(), phases.end(),
                           [&](const Phase& p) { return p.name == name; });
    if (it == phases.end()) {
      phases.push_back({name, ms});
    } else {
      it->ms += ms;
    }
  }
  in.close();
  std::filesystem::remove(err);
  return phases;
}

// Prints the phases of ARGV in CWD: RUNS runs with CMF_TRACE_PHASES (PREPARE
// called before each, to set up what the run needs), the one of median wall
// time on one line, with what lies outside every phase (starting and ending
// the process) last.
template <typename Prepare>
void PrintTracedPhases(const std::vector<std::string>& argv,
                       const std::filesystem::path& cwd, int runs,
                       Prepare prepare) {
  std::vector<std::pair<double, std::vector<Phase>>> traced;
  for (int r = 0; r < runs; ++r) {
    prepare();
    double seconds = 0;
    std::vector<Phase> phases = TracedPhases(argv, cwd, &seconds);
    if (phases.empty()) return;  // not a cmf that tells its phases
    traced.emplace_back(seconds, std::move(phases));
  }
  std::sort(traced.begin(), traced.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  const auto& [seconds, phases] = traced[traced.size() / 2];
  std::string line;
  double inside = 0;
  for (const Phase& p : phases) {
    line += fmt::format("{} {:.1f}, ", p.name, p.ms);
    inside += p.ms;
  }
  fmt::print(
      "      phases (ms, a traced run of {:.3f} s): {}start and exit {:.1f}\n",
      seconds, line, seconds * 1e3 - inside);
}

inline void PrintTracedPhases(const std::vector<std::string>& argv,
                              const std::filesystem::path& cwd, int runs = 3) {
  PrintTracedPhases(argv, cwd, runs, [] {});
}

}  // namespace cmf::bench
