#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "../verb.h"
#include "cmf_config.h"

namespace fs = std::filesystem;

namespace cmf::cli {
namespace {

// Where the page named PAGE (e.g. "cmf-log") is: the install tree (also found
// relative to the executable, for a moved install), then the source tree the
// binary was built from.
std::optional<fs::path> FindPage(const std::string& page) {
  std::vector<fs::path> dirs = {fs::path(CMF_MANDIR) / "man1"};
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    dirs.push_back(exe.parent_path().parent_path() / "share" / "man" / "man1");
  dirs.push_back(fs::path(CMF_SOURCE_MANDIR));
  for (const fs::path& dir : dirs) {
    fs::path candidate = dir / (page + ".1");
    if (fs::is_regular_file(candidate, ec)) return candidate;
  }
  return std::nullopt;
}

bool HaveMan() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/man";
    if (::access(candidate.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  return false;
}

class HelpVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("verb", verb_,
                   "The verb whose page to show (default: cmf's own)");
  }

  int Run(Context& ctx) override {
    CLI::App* root = ctx.app->get_parent();
    CLI::App* subject = root;
    std::string page = "cmf";
    if (!verb_.empty()) {
      if (FindVerb(verb_) == nullptr) {
        return UsageError(
            fmt::format("'{}' is not a cmf verb; see 'cmf --help'", verb_));
      }
      subject = root->get_subcommand(verb_);
      page = "cmf-" + verb_;
    }
    std::optional<fs::path> path = FindPage(page);
    if (path && HaveMan()) {
      std::string file = path->string();
      std::fflush(stdout);
      ::execlp("man", "man", "-l", file.c_str(), static_cast<char*>(nullptr));
    }
    // No man page viewer here (or no page): the built-in help says the
    // essentials.
    fmt::print("{}", subject->help());
    if (path) fmt::print("\nThe full manual page is {}.\n", path->string());
    return kExitOk;
  }

 private:
  std::string verb_;
};

}  // namespace

std::unique_ptr<Verb> MakeHelpVerb() { return std::make_unique<HelpVerb>(); }

}  // namespace cmf::cli
