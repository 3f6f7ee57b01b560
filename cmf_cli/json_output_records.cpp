// The JSON of executions (cmf log, show, query), metric series, artifacts and
// tags.
#include <cmath>

#include "cmf/clock.h"
#include "json_output.h"
#include "json_output_impl.h"

namespace cmf {
namespace {

using json_impl::ArtifactsJson;
using json_impl::Dump;
using json_impl::json;
using json_impl::ValueJson;

json ToJson(const ExecutionRecord& r) {
  json params = json::object();
  for (const auto& [name, value] : r.params) params[name] = ValueJson(value);
  json properties = json::object();
  for (const auto& [name, value] : r.properties)
    properties[name] = ValueJson(value);
  json code = nullptr;
  if (r.code)
    code = {{"commit", r.code->commit},
            {"dirty", r.code->dirty},
            {"repo", r.code->repo}};
  json out = {
      {"id", r.id},
      {"pipeline", r.pipeline},
      {"stage", r.stage},
      {"command", r.command},
      {"status", std::string(ToString(r.status))},
      {"exit_code", r.exit_code ? json(*r.exit_code) : json(nullptr)},
      {"started", FormatIsoUtc(r.started_ms)},
      {"ended", r.ended_ms ? json(FormatIsoUtc(*r.ended_ms)) : json(nullptr)},
      {"params", params},
      {"properties", properties},
      {"code", code},
      {"host", r.host},
      {"user", r.user},
      {"site", r.site},
      {"tags", r.tags},
      {"message", r.message},
      {"inputs", ArtifactsJson(r.inputs)},
      {"outputs", ArtifactsJson(r.outputs)},
  };
  return out;
}

}  // namespace

std::string ExecutionJson(const ExecutionRecord& record, int indent) {
  return Dump(ToJson(record), indent);
}

std::string ExecutionsJson(const std::vector<ExecutionRecord>& records,
                           int indent) {
  json out = json::array();
  for (const ExecutionRecord& r : records) out.push_back(ToJson(r));
  return Dump(out, indent);
}

namespace {

// The pieces of AppendExecution: each writes one value of a key at indent
// I1, its elements at I2 (and theirs at I3).
void AppendArtifactList(std::string& out, const std::vector<ArtifactRef>& refs,
                        const std::string& i1, const std::string& i2,
                        const std::string& i3) {
  if (refs.empty()) {
    out += "[]";
    return;
  }
  out += "[\n";
  for (std::size_t n = 0; n < refs.size(); ++n) {
    const ArtifactRef& a = refs[n];
    out += i2 + "{\n" + i3 + "\"hash\": ";
    AppendJsonString(out, a.hash);
    out += ",\n" + i3 + "\"kind\": ";
    AppendJsonString(out, ToString(a.kind));
    out += ",\n" + i3 + "\"path\": ";
    AppendJsonString(out, a.path);
    out += ",\n" + i3 + "\"size\": " + std::to_string(a.size) + "\n" + i2 + "}";
    out += n + 1 < refs.size() ? ",\n" : "\n";
  }
  out += i1 + "]";
}

// M as a JSON object, its members indented by I2 and its brace closed at I1;
// APPEND writes a member's value.
template <typename V, typename Append>
void AppendMap(std::string& out, const std::map<std::string, V>& m,
               const std::string& i1, const std::string& i2, Append append) {
  if (m.empty()) {
    out += "{}";
    return;
  }
  out += "{\n";
  std::size_t n = 0;
  for (const auto& [name, value] : m) {
    out += i2;
    AppendJsonString(out, name);
    out += ": ";
    append(out, value);
    out += ++n < m.size() ? ",\n" : "\n";
  }
  out += i1 + "}";
}

void AppendStringList(std::string& out, const std::vector<std::string>& list,
                      const std::string& i1, const std::string& i2) {
  if (list.empty()) {
    out += "[]";
    return;
  }
  out += "[\n";
  for (std::size_t n = 0; n < list.size(); ++n) {
    out += i2;
    AppendJsonString(out, list[n]);
    out += n + 1 < list.size() ? ",\n" : "\n";
  }
  out += i1 + "]";
}

void AppendCode(std::string& out, const std::optional<CodeVersion>& code,
                const std::string& i1, const std::string& i2) {
  if (!code) {
    out += "null";
    return;
  }
  out += "{\n" + i2 + "\"commit\": ";
  AppendJsonString(out, code->commit);
  out += ",\n" + i2 + "\"dirty\": " + (code->dirty ? "true" : "false");
  out += ",\n" + i2 + "\"repo\": ";
  AppendJsonString(out, code->repo);
  out += "\n" + i1 + "}";
}

// One execution as ExecutionJson writes it (keys sorted, indent 2), INDENT
// spaces deeper: written directly, since a listing of thousands would spend
// more on building documents than on reading the store.
void AppendExecution(std::string& out, const ExecutionRecord& r,
                     const std::string& indent) {
  const std::string i1 = indent + "  ", i2 = indent + "    ",
                    i3 = indent + "      ";
  auto key = [&](const char* k) {
    out += i1;
    out += '"';
    out += k;
    out += "\": ";
  };
  out += "{\n";
  key("code");
  AppendCode(out, r.code, i1, i2);
  out += ",\n";
  key("command");
  AppendStringList(out, r.command, i1, i2);
  out += ",\n";
  key("ended");
  if (r.ended_ms) {
    AppendJsonString(out, FormatIsoUtc(*r.ended_ms));
  } else {
    out += "null";
  }
  out += ",\n";
  key("exit_code");
  out += r.exit_code ? std::to_string(*r.exit_code) : "null";
  out += ",\n";
  key("host");
  AppendJsonString(out, r.host);
  out += ",\n";
  key("id");
  AppendJsonString(out, r.id);
  out += ",\n";
  key("inputs");
  AppendArtifactList(out, r.inputs, i1, i2, i3);
  out += ",\n";
  key("message");
  AppendJsonString(out, r.message);
  out += ",\n";
  key("outputs");
  AppendArtifactList(out, r.outputs, i1, i2, i3);
  out += ",\n";
  key("params");
  AppendMap(out, r.params, i1, i2, AppendJsonValue);
  out += ",\n";
  key("pipeline");
  AppendJsonString(out, r.pipeline);
  out += ",\n";
  key("properties");
  AppendMap(out, r.properties, i1, i2, AppendJsonValue);
  out += ",\n";
  key("site");
  AppendJsonString(out, r.site);
  out += ",\n";
  key("stage");
  AppendJsonString(out, r.stage);
  out += ",\n";
  key("started");
  AppendJsonString(out, FormatIsoUtc(r.started_ms));
  out += ",\n";
  key("status");
  AppendJsonString(out, ToString(r.status));
  out += ",\n";
  key("tags");
  AppendMap(out, r.tags, i1, i2, AppendJsonString);
  out += ",\n";
  key("user");
  AppendJsonString(out, r.user);
  out += "\n" + indent + "}";
}

}  // namespace

std::string ExecutionsJsonWriter::Add(
    const std::vector<ExecutionRecord>& records) {
  std::string out;
  for (const ExecutionRecord& r : records) {
    out += count_++ ? ",\n  " : "\n  ";
    AppendExecution(out, r, "  ");
  }
  return out;
}

std::string MetricsJson(const MetricSeries& series, int indent) {
  json all = json::object();
  for (const auto& [name, points] : series) {
    json rows = json::array();
    for (const MetricPoint& p : points) {
      rows.push_back(
          {p.step, std::isfinite(p.value) ? json(p.value) : json(nullptr)});
    }
    all[name] = std::move(rows);
  }
  return Dump(json{{"series", all}}, indent);
}

std::string ArtifactRowsJson(const std::vector<Store::ArtifactRow>& rows,
                             int indent) {
  json out = json::array();
  for (const auto& r : rows) {
    out.push_back({{"hash", r.ref.hash},
                   {"kind", std::string(ToString(r.ref.kind))},
                   {"size", r.ref.size},
                   {"paths", r.paths}});
  }
  return Dump(out, indent);
}

std::string ArtifactJson(const ArtifactRef& artifact,
                         const std::map<std::string, std::string>& tags,
                         const std::map<std::string, Value>& properties,
                         const std::vector<std::string>& locations,
                         const LineageGraph& lineage, int indent) {
  json props = json::object();
  for (const auto& [name, value] : properties) props[name] = ValueJson(value);
  json out = {{"hash", artifact.hash},
              {"kind", std::string(ToString(artifact.kind))},
              {"size", artifact.size},
              {"tags", tags},
              {"properties", props},
              {"locations", locations},
              {"lineage", json::parse(LineageJson(lineage))}};
  return Dump(out, indent);
}

std::string TagsJson(const std::map<std::string, std::string>& tags,
                     int indent) {
  json out = tags;
  return out.dump(indent);
}

}  // namespace cmf
