// ListDatasets and WriteSlice for cmf itself: they load the HDF5 module on
// first use. The module is looked for beside the running binary's build tree
// (<exe>/../dvc_like/cmf-hdf5.so), then where `meson install` puts it
// (<libdir>/cmf/cmf-hdf5.so); CMF_HDF5_MODULE names another file.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "cmf/data/executable.h"
#include "cmf/data/hdf5_slice.h"
#include "cmf_config.h"
#include "hdf5_module.h"

namespace fs = std::filesystem;

namespace cmf::data {
namespace {

std::vector<fs::path> Candidates() {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("CMF_HDF5_MODULE"); env && *env) {
    out.emplace_back(env);
    return out;
  }
  if (fs::path exe = ExecutableDir(); !exe.empty())
    out.push_back(exe.parent_path() / "dvc_like" / "cmf-hdf5.so");
  out.push_back(fs::path(CMF_MODULEDIR) / "cmf-hdf5.so");
  return out;
}

Result<const Hdf5Module*> Load() {
  static std::once_flag once;
  static Result<const Hdf5Module*> loaded = Status::IOError("not loaded");
  std::call_once(once, [] {
    std::string tried;
    std::error_code ec;
    for (const fs::path& path : Candidates()) {
      tried += (tried.empty() ? "" : ", ") + path.string();
      if (!fs::exists(path, ec)) continue;
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        const char* why = ::dlerror();
        loaded = Status::IOError("cannot load the HDF5 module " +
                                 path.string() + ": " + (why ? why : "?"));
        return;
      }
      auto entry = reinterpret_cast<const Hdf5Module* (*)()>(
          ::dlsym(handle, "cmf_hdf5_module"));
      const Hdf5Module* module = entry ? entry() : nullptr;
      if (!module || module->abi != kHdf5ModuleAbi ||
          std::string_view(module->version) != CMF_VERSION) {
        loaded = Status::IOError("the HDF5 module " + path.string() +
                                 " is not from this build of cmf " +
                                 CMF_VERSION);
        return;
      }
      loaded = module;
      return;
    }
    loaded = Status::IOError(
        "HDF5 support is not installed: no cmf-hdf5.so (looked at " + tried +
        ")");
  });
  return loaded;
}

}  // namespace

Result<std::vector<DatasetInfo>> ListDatasets(const fs::path& file) {
  CMF_ASSIGN_OR_RETURN(const Hdf5Module* module, Load());
  return module->list_datasets(file);
}

Result<SliceResult> WriteSlice(const fs::path& source,
                               const std::string& dataset,
                               std::string_view selection, const fs::path& out,
                               const SliceProvenance& provenance) {
  CMF_ASSIGN_OR_RETURN(const Hdf5Module* module, Load());
  return module->write_slice(source, dataset, selection, out, provenance);
}

}  // namespace cmf::data
