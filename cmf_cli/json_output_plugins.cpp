// The JSON of the plugins (cmf plugins) and of an HDF5 file's datasets (cmf
// slice --list).
#include "json_output.h"
#include "json_output_impl.h"

namespace cmf {

using json_impl::json;

std::string PluginsJson(const PluginCatalog& catalog,
                        const std::vector<std::filesystem::path>& search,
                        int indent) {
  json out;
  out["search_path"] = json::array();
  for (const auto& p : search) out["search_path"].push_back(p.string());
  out["plugins"] = json::array();
  for (const PluginModule& m : catalog.plugins) {
    json plugin = {{"name", m.name},
                   {"version", m.version},
                   {"summary", m.summary},
                   {"path", m.path.string()},
                   {"stages", json::array()}};
    for (const std::string& name : m.stages) {
      const PluginStage& s = *catalog.FindStage(name);
      json stage = {
          {"name", s.name}, {"summary", s.summary}, {"params", json::array()}};
      for (const PluginParam& p : s.params) {
        json param = {{"name", p.name},         {"type", ParamTypeName(p.type)},
                      {"help", p.help},         {"multiple", p.multiple},
                      {"required", p.required}, {"allowed", p.allowed}};
        param["default"] =
            p.default_value ? json(*p.default_value) : json(nullptr);
        param["short"] =
            p.short_name ? json(std::string(1, p.short_name)) : json(nullptr);
        stage["params"].push_back(std::move(param));
      }
      plugin["stages"].push_back(std::move(stage));
    }
    out["plugins"].push_back(std::move(plugin));
  }
  out["warnings"] = catalog.warnings;
  return out.dump(indent);
}

std::string DatasetsJson(const std::vector<data::DatasetInfo>& sets,
                         int indent) {
  json out = json::array();
  for (const auto& d : sets) {
    out.push_back(
        {{"path", d.path},
         {"shape", d.shape},
         {"dtype", d.dtype},
         {"chunks", d.chunks.empty() ? json(nullptr) : json(d.chunks)},
         {"compression", d.compression}});
  }
  return out.dump(indent);
}

}  // namespace cmf
