// cmf plugins [--json]: the plugins found, their stages and parameter schemas.
#include <fmt/format.h>

#include <algorithm>

#include "../json_output.h"
#include "../verb.h"
#include "cmf/plugin_host.h"

namespace cmf::cli {
namespace {

class PluginsVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_flag("--json", json_, "Print the plugins as JSON");
    app.add_flag("-v,--verbose", verbose_,
                 "List every stage's parameters too, and where modules were "
                 "looked for");
  }

  int Run(Context&) override {
    std::vector<std::filesystem::path> search = PluginSearchPath();
    PluginCatalog catalog = LoadPlugins(search);
    for (const std::string& w : catalog.warnings)
      fmt::print(stderr, "cmf: warning: {}\n", w);
    if (json_) {
      fmt::print("{}\n", PluginsJson(catalog, search));
      return kExitOk;
    }
    if (catalog.plugins.empty()) {
      fmt::print("No plugins found");
      if (search.empty())
        fmt::print(" (no plugin folder exists; set CMF_PLUGIN_PATH)");
      fmt::print(".\n");
      return kExitOk;
    }
    // Stage names in one column, as wide as the longest.
    std::size_t width = 16;
    for (const PluginModule& m : catalog.plugins)
      for (const std::string& name : m.stages)
        width = std::max(width, name.size());
    for (const PluginModule& m : catalog.plugins) {
      fmt::print("{} {}  {}\n", m.name, m.version, m.summary);
      if (verbose_) fmt::print("  module: {}\n", m.path.string());
      for (const std::string& name : m.stages) {
        const PluginStage& s = *catalog.FindStage(name);
        fmt::print("  {:<{}} {}\n", s.name, width, s.summary);
        if (!verbose_) continue;
        for (const PluginParam& p : s.params) {
          fmt::print("      --{} {}{}{}\n", p.name, ParamTypeName(p.type),
                     p.multiple ? " ..." : "",
                     p.default_value ? " = " + *p.default_value
                                     : (p.required ? " (required)" : ""));
        }
      }
    }
    if (verbose_) {
      fmt::print("\nSearched:\n");
      for (const auto& p : search) fmt::print("  {}\n", p.string());
    }
    return kExitOk;
  }

 private:
  bool json_ = false;
  bool verbose_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakePluginsVerb() {
  return std::make_unique<PluginsVerb>();
}

}  // namespace cmf::cli
