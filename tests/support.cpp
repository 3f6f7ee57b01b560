#include "support.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace fs = std::filesystem;

namespace cmf::test {

TempDir::TempDir() {
  std::string pattern =
      (fs::temp_directory_path() / "cmf-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("mkdtemp failed");
  path_ = fs::canonical(pattern);
}

TempDir::~TempDir() {
  std::error_code ec;
  // Objects are read-only; make everything writable so that it can be removed.
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add,
                    ec);
  }
  fs::remove_all(path_, ec);
}

void WriteFile(const fs::path& path, const std::string& content) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::size_t CountFiles(const fs::path& root) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) ++n;
  }
  return n;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Outcome RunProcess(const std::vector<std::string>& argv, const fs::path& cwd,
                   const std::map<std::string, std::string>& env) {
  TempDir capture;
  fs::path out_path = capture / "out", err_path = capture / "err";

  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (env.count(name)) continue;
    // The user's own repository and a surrounding cmf exec must not leak in.
    if (name == "CMF_DIR" || name == "CMF_METRICS_FD" ||
        name == "CMF_EXECUTION_ID")
      continue;
    env_storage.push_back(entry);
  }
  for (const auto& [name, value] : env) {
    if (value != "\x01unset") env_storage.push_back(name + "=" + value);
  }
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& a : args) argp.push_back(a.data());
  argp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // The working directory is changed by a small shell so that this works on
  // every glibc.
  std::vector<std::string> shell = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"",
                                    cwd.string()};
  for (auto& a : args) shell.push_back(a);
  std::vector<char*> shellp;
  for (auto& a : shell) shellp.push_back(a.data());
  shellp.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, shellp.data(),
                         envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(rc));
  int status = 0;
  ::waitpid(pid, &status, 0);
  Outcome o;
  o.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  o.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  o.out = ReadFile(out_path);
  o.err = ReadFile(err_path);
  // Under tests/sanitize.sh, an UndefinedBehaviorSanitizer report that a child
  // printed is kept where the script looks for reports (built together with
  // AddressSanitizer, UBSan writes to standard error whatever log_path says).
  const char* reports = std::getenv("CMF_SANITIZER_REPORTS");
  if (reports && *reports &&
      o.err.find("runtime error: ") != std::string::npos) {
    std::string what;
    for (const auto& a : argv) what += a + " ";
    WriteFile(fs::path(reports) / ("child-" + std::to_string(pid) + ".txt"),
              what + "\n" + o.err);
  }
  return o;
}

std::string CmfBinary() {
  const char* bin = std::getenv("CMF_BINARY");
  if (!bin || !*bin)
    throw std::runtime_error(
        "CMF_BINARY is not set (run the tests with meson test)");
  return bin;
}

std::filesystem::path SharedDataDir() {
  const char* root = std::getenv("CMF_SOURCE_ROOT");
  if (!root || !*root)
    throw std::runtime_error(
        "CMF_SOURCE_ROOT is not set (run the tests with meson test)");
  std::filesystem::path checkout =
      std::filesystem::path(root).lexically_normal();
  if (!checkout.has_filename()) checkout = checkout.parent_path();  // "x/"
  return checkout.parent_path() / "shared" / "data";
}

bool HaveSharedData(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return true;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") {
    FAIL("CI=true and "
         << path.string()
         << " is missing: ../shared must sit beside the checkout");
  }
  MESSAGE("skipped: " << path.string()
                      << " is not here (the real data of ../shared/data, "
                         "beside the checkout; see README)");
  return false;
}

bool IsError(const Outcome& o, const std::string& fragment) {
  return o.err.rfind("cmf: error: ", 0) == 0 &&
         o.err.find(fragment) != std::string::npos;
}

Outcome Cmf(const std::vector<std::string>& args, const fs::path& cwd,
            const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {CmfBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, cwd, env);
}

}  // namespace cmf::test
