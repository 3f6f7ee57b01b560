#include "cmf/data/module_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <string_view>
#include <vector>

#include "cmf/data/executable.h"
#include "cmf_build_id.h"
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
    // The ABI number first: an older module's header may end before the id.
    std::string differs;
    if (module == nullptr) {
      differs = std::string("it has no entry point ") + spec.entry;
    } else if (module->abi != spec.abi) {
      differs = "its module ABI is " + std::to_string(module->abi) +
                ", this cmf's is " + std::to_string(spec.abi);
    } else if (module->build_id == nullptr ||
               std::string_view(module->build_id) != CMF_BUILD_ID) {
      differs = std::string("its build id is ") +
                (module->build_id ? module->build_id : "none") +
                ", this cmf's is " + CMF_BUILD_ID;
    }
    if (!differs.empty()) {
      return Status::IOError("the " + std::string(spec.what) + " module " +
                             path.string() + " is not from this build of cmf " +
                             CMF_VERSION + " (" + differs +
                             "): rebuild it (ninja -C <build folder>) or "
                             "reinstall cmf");
    }
    return module;
  }
  return Status::IOError(std::string(spec.what) +
                         " support is not installed: no " + spec.file +
                         " (looked at " + tried + ")");
}

}  // namespace cmf::data
