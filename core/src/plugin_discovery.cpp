// Finding plugin modules and loading them (cmf/plugin_host.h): the search
// path, each module's environment file, the checks of what a module declares.
#include <dlfcn.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>

#include "cmf/data/executable.h"
#include "cmf/plugin_host.h"
#include "cmf_config.h"

namespace fs = std::filesystem;

namespace cmf {

const PluginStage* PluginCatalog::FindStage(std::string_view name) const {
  for (const PluginStage& s : stages)
    if (s.name == name) return &s;
  return nullptr;
}

namespace {

bool IsName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

bool IsModuleFile(const fs::path& p) {
  std::string name = p.filename().string();
  return name.starts_with("cmf-") && p.extension() == ".so";
}

// Candidate modules in a folder: cmf-*.so in it and one level down, sorted so
// that the order does not depend on the file system.
std::vector<fs::path> ModulesIn(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory(ec)) {
      std::error_code ec2;
      for (const fs::directory_entry& f : fs::directory_iterator(e.path(), ec2))
        if (f.is_regular_file(ec2) && IsModuleFile(f.path()))
          found.push_back(f.path());
    } else if (e.is_regular_file(ec) && IsModuleFile(e.path())) {
      found.push_back(e.path());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Applies the environment defaults of MODULE's sidecar file (cmf-NAME.env),
// where the variable is not set already. A file that is absent is nothing;
// one that is too big, or a malformed line, is a warning.
void ApplyEnvironmentFile(const fs::path& module,
                          std::vector<std::string>* warnings) {
  fs::path file = module;
  file.replace_extension(".env");
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return;
  constexpr std::uintmax_t kMaxBytes = 4096;
  if (fs::file_size(file, ec) > kMaxBytes) {
    warnings->push_back(
        fmt::format("ignoring '{}': over {} bytes", file.string(), kMaxBytes));
    return;
  }
  std::ifstream in(file);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#') continue;
    std::size_t eq = line.find('=');
    std::string_view name = std::string_view(line).substr(0, eq);
    std::string_view value = eq == std::string::npos
                                 ? std::string_view()
                                 : std::string_view(line).substr(eq + 1);
    bool good = eq != std::string::npos && !name.empty() &&
                !(name[0] >= '0' && name[0] <= '9') &&
                std::all_of(name.begin(), name.end(),
                            [](char c) {
                              return (c >= 'A' && c <= 'Z') ||
                                     (c >= '0' && c <= '9') || c == '_';
                            }) &&
                std::all_of(value.begin(), value.end(), [](char c) {
                  return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
                });
    if (!good) {
      warnings->push_back(fmt::format(
          "ignoring line {} of '{}': not NAME=VALUE", number, file.string()));
      continue;
    }
    ::setenv(std::string(name).c_str(), std::string(value).c_str(),
             /*overwrite=*/0);
  }
}

// Copies a module's description, checking what the host relies on. Returns
// the reason it is unusable, or "".
std::string Describe(const cmf_plugin& p, const fs::path& path,
                     PluginModule* module, std::vector<PluginStage>* stages) {
  if (p.name == nullptr || !IsName(p.name)) return "it has no valid name";
  if (p.stage_count > 0 && p.stages == nullptr) return "its stage list is null";
  module->name = p.name;
  module->version = p.version ? p.version : "";
  module->summary = p.summary ? p.summary : "";
  module->path = path;
  for (std::size_t i = 0; i < p.stage_count; ++i) {
    const cmf_stage& s = p.stages[i];
    if (s.name == nullptr || !IsName(s.name) || s.run == nullptr)
      return fmt::format("its stage #{} has no valid name or run function", i);
    if (s.param_count > 0 && s.params == nullptr)
      return fmt::format("stage '{}' has a null parameter list", s.name);
    PluginStage stage;
    stage.name = s.name;
    stage.summary = s.summary ? s.summary : "";
    stage.plugin = module->name;
    stage.plugin_version = module->version;
    stage.module = path;
    stage.run = s.run;
    std::set<std::string> seen;
    for (std::size_t j = 0; j < s.param_count; ++j) {
      const cmf_param& q = s.params[j];
      if (q.name == nullptr || !IsName(q.name) || !seen.insert(q.name).second)
        return fmt::format(
            "stage '{}' has a parameter without a valid, unique "
            "name",
            s.name);
      if (q.type < CMF_PARAM_INT || q.type > CMF_PARAM_PATH)
        return fmt::format("parameter '{}' of stage '{}' has an unknown type",
                           q.name, s.name);
      PluginParam param;
      param.name = q.name;
      param.type = q.type;
      if (q.default_value != nullptr && *q.default_value != '\0')
        param.default_value = q.default_value;
      param.help = q.help ? q.help : "";
      for (const char* const* a = q.allowed; a != nullptr && *a != nullptr; ++a)
        param.allowed.emplace_back(*a);
      if (q.short_name != nullptr && q.short_name[0] != '\0') {
        char c = q.short_name[0];
        if (q.short_name[1] != '\0' ||
            !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
          return fmt::format(
              "parameter '{}' of stage '{}' has a short name that is "
              "not one letter",
              q.name, s.name);
        param.short_name = c;
      }
      param.multiple = (q.flags & CMF_PARAM_MULTIPLE) != 0;
      param.required = (q.flags & CMF_PARAM_REQUIRED) != 0;
      stage.params.push_back(std::move(param));
    }
    module->stages.push_back(stage.name);
    stages->push_back(std::move(stage));
  }
  return "";
}

}  // namespace

std::vector<fs::path> PluginSearchPath() {
  std::vector<fs::path> out;
  std::error_code ec;
  if (const char* env = std::getenv("CMF_PLUGIN_PATH"); env && *env) {
    std::string_view rest = env;
    while (!rest.empty()) {
      std::size_t colon = rest.find(':');
      std::string_view part = rest.substr(0, colon);
      if (!part.empty() && fs::exists(fs::path(part), ec))
        out.emplace_back(part);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  if (fs::path exe = data::ExecutableDir(); !exe.empty()) {
    fs::path build = exe.parent_path() / "plugins";
    if (fs::is_directory(build, ec)) out.push_back(build);
  }
  fs::path installed = CMF_PLUGINDIR;
  if (fs::is_directory(installed, ec)) out.push_back(installed);
  return out;
}

PluginCatalog LoadPlugins(std::span<const fs::path> search_path) {
  PluginCatalog catalog;
  std::vector<fs::path> modules;
  for (const fs::path& entry : search_path) {
    std::error_code ec;
    if (fs::is_directory(entry, ec)) {
      std::vector<fs::path> in = ModulesIn(entry);
      modules.insert(modules.end(), in.begin(), in.end());
    } else {
      modules.push_back(entry);
    }
  }
  // Every module's defaults before the first is loaded: a library that one
  // loads (OpenMP, with LibTorch) reads its environment once, then.
  for (const fs::path& path : modules)
    ApplyEnvironmentFile(path, &catalog.warnings);
  std::set<fs::path> loaded;
  {
    std::error_code ec;
    for (const fs::path& path : modules) {
      fs::path real = fs::weakly_canonical(path, ec);
      if (!loaded.insert(ec ? path : real).second) continue;
      auto skip = [&](const std::string& why) {
        catalog.warnings.push_back(
            fmt::format("skipping plugin '{}': {}", path.string(), why));
      };
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        const char* why = ::dlerror();
        skip(why ? why : "it cannot be loaded");
        continue;
      }
      auto entry_fn = reinterpret_cast<cmf_plugin_entry_fn>(
          ::dlsym(handle, CMF_PLUGIN_ENTRY_SYMBOL));
      if (entry_fn == nullptr) {
        skip("it has no entry point " CMF_PLUGIN_ENTRY_SYMBOL);
        continue;  // left loaded: unloading foreign code is not always safe
      }
      const cmf_plugin* plugin = entry_fn(CMF_PLUGIN_ABI_VERSION);
      if (plugin == nullptr) {
        skip(fmt::format("it declined to serve plugin ABI version {}",
                         CMF_PLUGIN_ABI_VERSION));
        continue;
      }
      if (plugin->abi_version != CMF_PLUGIN_ABI_VERSION) {
        skip(fmt::format("it was built for plugin ABI version {}, cmf has {}",
                         plugin->abi_version, CMF_PLUGIN_ABI_VERSION));
        continue;
      }
      PluginModule module;
      std::vector<PluginStage> stages;
      if (std::string why = Describe(*plugin, path, &module, &stages);
          !why.empty()) {
        skip(why);
        continue;
      }
      auto same = std::find_if(
          catalog.plugins.begin(), catalog.plugins.end(),
          [&](const PluginModule& m) { return m.name == module.name; });
      if (same != catalog.plugins.end()) {
        skip(fmt::format("plugin '{}' is already loaded from '{}'", module.name,
                         same->path.string()));
        continue;
      }
      module.stages.clear();
      for (PluginStage& s : stages) {
        if (const PluginStage* other = catalog.FindStage(s.name)) {
          catalog.warnings.push_back(fmt::format(
              "ignoring stage '{}' of plugin '{}': plugin '{}' has it already",
              s.name, module.name, other->plugin));
          continue;
        }
        module.stages.push_back(s.name);
        catalog.stages.push_back(std::move(s));
      }
      catalog.plugins.push_back(std::move(module));
    }
  }
  return catalog;
}

}  // namespace cmf
