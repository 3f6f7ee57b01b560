// Helpers shared by the unit and end-to-end tests: temporary folders, files,
// and running the real cmf binary.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace cmf::test {

// A fresh folder under the system's temporary directory, removed with
// everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const {
    return path_ / name;
  }

 private:
  std::filesystem::path path_;
};

void WriteFile(const std::filesystem::path& path, const std::string& content);
// The number of regular files below ROOT (0 when it does not exist).
std::size_t CountFiles(const std::filesystem::path& root);
std::string ReadFile(const std::filesystem::path& path);

struct Outcome {
  int exit_code = -1;  // 128 + signal when a signal ended it, as a shell says
  int signal = 0;      // the signal that ended it, if one did
  std::string out;
  std::string err;
};

// Runs ARGV (argv[0] found in PATH) in CWD with ENV added to the environment (a
// value of
// "\x01unset" removes the variable); waits and captures its output.
Outcome RunProcess(const std::vector<std::string>& argv,
                   const std::filesystem::path& cwd,
                   const std::map<std::string, std::string>& env = {});

// The cmf binary under test (CMF_BINARY, set by meson test).
std::string CmfBinary();

// ../shared/data beside the checkout (CMF_SOURCE_ROOT's parent): the real
// data that some tests read.
std::filesystem::path SharedDataDir();
// True when PATH exists. When it does not (a user's clone without ../shared
// beside it), the caller returns and the test is reported skipped, with the
// reason; with CI=true its absence fails the test.
bool HaveSharedData(const std::filesystem::path& path);

// True when O's standard error starts "cmf: error: " and holds FRAGMENT.
bool IsError(const Outcome& o, const std::string& fragment);

// Runs cmf with ARGS in CWD.
Outcome Cmf(const std::vector<std::string>& args,
            const std::filesystem::path& cwd,
            const std::map<std::string, std::string>& env = {});

}  // namespace cmf::test
