// Loading one of cmf's optional modules (cmf-hdf5.so, cmf-git.so) on first
// use, so that commands which do not need HDF5 or libgit2 do not load them and
// the libraries they pull in.
//
// A module is looked for in the file the environment variable ENV names, else
// beside the running binary's build tree (<exe>/../BUILD_DIR/FILE), else where
// `meson install` puts it (<libdir>/cmf/FILE). It exports one C function,
// ENTRY, returning a static table that begins with a ModuleHeader; the table
// is accepted only when its ABI number and build id match this build's (the
// id changes with the headers, the compiler and the build options:
// dvc_like/module_build_id.py), so a module left from another build is
// refused with the file to rebuild, never called with other types.
#pragma once

#include <mutex>
#include <string>

#include "cmf/status.h"

namespace cmf::data {

// The first members of every module's table.
struct ModuleHeader {
  int abi;
  const char* version;   // CMF_VERSION of the build that made the module
  const char* build_id;  // its CMF_BUILD_ID (read only when ABI matches)
};

struct ModuleSpec {
  const char* what;       // "HDF5", for messages
  const char* env;        // "CMF_HDF5_MODULE"
  const char* build_dir;  // "dvc_like"
  const char* file;       // "cmf-hdf5.so"
  const char* entry;      // "cmf_hdf5_module"
  int abi;
};

// The module's table (to be cast to its own type). IOError, naming every file
// tried, when no module is found, it cannot be loaded or it is not from this
// build. Thread-safe; a module stays loaded until the process ends.
Result<const ModuleHeader*> LoadModule(const ModuleSpec& spec);

// LoadModule's table as the module's own type TABLE (whose first member is
// its ModuleHeader), loaded at the first call only; later calls return the
// first's result.
template <typename Table>
Result<const Table*> LoadModuleOnce(const ModuleSpec& spec) {
  static std::once_flag once;
  static Result<const Table*> loaded = Status::IOError("not loaded");
  std::call_once(once, [&] {
    Result<const ModuleHeader*> module = LoadModule(spec);
    if (module.ok()) {
      loaded = reinterpret_cast<const Table*>(*module);
    } else {
      loaded = module.status();
    }
  });
  return loaded;
}

}  // namespace cmf::data
