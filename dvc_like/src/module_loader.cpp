#include "cmf/data/module_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <vector>

#include "cmf/data/executable.h"
#include "cmf_config.h"

namespace fs = std::filesystem;

namespace cmf::data {
namespace {

std::vector<fs::path> Candidates(const ModuleSpec& spec) {
  std::vector<fs::path> out;
  if (const char* env = std::getenv(spec.env); env && *env) {
    out.emplace_back(env);
    return out;
  }
  if (fs::path exe = ExecutableDir(); !exe.empty())
    out.push_back(exe.parent_path() / spec.build_dir / spec.file);
  out.push_back(fs::path(CMF_MODULEDIR) / spec.file);
  return out;
}

}  // namespace

Result<const ModuleHeader*> LoadModule(const ModuleSpec& spec) {
  std::string tried;
  std::error_code ec;
  for (const fs::path& path : Candidates(spec)) {
    tried += (tried.empty() ? "" : ", ") + path.string();
    if (!fs::exists(path, ec)) continue;
    void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = ::dlerror();
      return Status::IOError("cannot load the " + std::string(spec.what) +
                             " module " + path.string() + ": " +
                             (why ? why : "?"));
    }
    auto entry = reinterpret_cast<const ModuleHeader* (*)()>(
        ::dlsym(handle, spec.entry));
    const ModuleHeader* module = entry ? entry() : nullptr;
    if (!module || module->abi != spec.abi ||
        std::string_view(module->version) != CMF_VERSION) {
      return Status::IOError("the " + std::string(spec.what) + " module " +
                             path.string() + " is not from this build of cmf " +
                             CMF_VERSION);
    }
    return module;
  }
  return Status::IOError(std::string(spec.what) +
                         " support is not installed: no " + spec.file +
                         " (looked at " + tried + ")");
}

}  // namespace cmf::data
