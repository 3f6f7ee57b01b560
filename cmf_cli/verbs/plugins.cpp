// cmf plugins [--json]: the plugins found, their stages and parameter schemas.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "cmf/plugin_host.h"
#include "../verb.h"

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
      nlohmann::json out;
      out["search_path"] = nlohmann::json::array();
      for (const auto& p : search) out["search_path"].push_back(p.string());
      out["plugins"] = nlohmann::json::array();
      for (const PluginModule& m : catalog.plugins) {
        nlohmann::json plugin = {{"name", m.name},
                                 {"version", m.version},
                                 {"summary", m.summary},
                                 {"path", m.path.string()},
                                 {"stages", nlohmann::json::array()}};
        for (const std::string& name : m.stages) {
          const PluginStage& s = *catalog.FindStage(name);
          nlohmann::json stage = {{"name", s.name},
                                  {"summary", s.summary},
                                  {"params", nlohmann::json::array()}};
          for (const PluginParam& p : s.params) {
            nlohmann::json param = {{"name", p.name},
                                    {"type", ParamTypeName(p.type)},
                                    {"help", p.help},
                                    {"multiple", p.multiple},
                                    {"required", p.required},
                                    {"allowed", p.allowed}};
            param["default"] = p.default_value ? nlohmann::json(*p.default_value)
                                               : nlohmann::json(nullptr);
            param["short"] = p.short_name ? nlohmann::json(std::string(1, p.short_name))
                                          : nlohmann::json(nullptr);
            stage["params"].push_back(std::move(param));
          }
          plugin["stages"].push_back(std::move(stage));
        }
        out["plugins"].push_back(std::move(plugin));
      }
      out["warnings"] = catalog.warnings;
      fmt::print("{}\n", out.dump(2));
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
      for (const std::string& name : m.stages) width = std::max(width, name.size());
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
