#include "json_output.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "cmf/clock.h"

namespace cmf {
namespace {

using nlohmann::json;

json ValueJson(const Value& value) {
  return std::visit([](const auto& v) { return json(v); }, value);
}

json ArtifactsJson(const std::vector<ArtifactRef>& refs) {
  json out = json::array();
  for (const ArtifactRef& a : refs) {
    out.push_back({{"path", a.path},
                   {"hash", a.hash},
                   {"size", a.size},
                   {"kind", std::string(ToString(a.kind))}});
  }
  return out;
}

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

std::string Dump(const json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false,
                json::error_handler_t::replace);
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

// A JSON string, as the JSON library writes it; ASCII text (ids, hashes,
// names, paths) is escaped here, anything else by the library.
void AppendString(std::string& out, std::string_view v) {
  // Printable ASCII without a quote or a backslash (hashes, ids, most paths
  // and names) is copied in one piece.
  const bool plain = std::all_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x80 && c != '"' && c != '\\';
  });
  if (plain) {
    out += '"';
    out.append(v);
    out += '"';
    return;
  }
  for (unsigned char c : v) {
    if (c >= 0x80) {
      out += Dump(json(std::string(v)), -1);
      return;
    }
  }
  out += '"';
  for (char c : v) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void AppendValue(std::string& out, const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    AppendString(out, *s);
  } else if (const auto* i = std::get_if<std::int64_t>(&v)) {
    char text[24];
    auto [end, ec] = std::to_chars(text, text + sizeof text, *i);
    out.append(text, end);
  } else if (const auto* b = std::get_if<bool>(&v)) {
    out += *b ? "true" : "false";
  } else {  // a real, in the JSON library's own form (1.0, not 1)
    out += Dump(ValueJson(v), -1);
  }
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
  auto artifacts = [&](const std::vector<ArtifactRef>& refs) {
    if (refs.empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    for (std::size_t n = 0; n < refs.size(); ++n) {
      const ArtifactRef& a = refs[n];
      out += i2 + "{\n" + i3 + "\"hash\": ";
      AppendString(out, a.hash);
      out += ",\n" + i3 + "\"kind\": ";
      AppendString(out, ToString(a.kind));
      out += ",\n" + i3 + "\"path\": ";
      AppendString(out, a.path);
      out +=
          ",\n" + i3 + "\"size\": " + std::to_string(a.size) + "\n" + i2 + "}";
      out += n + 1 < refs.size() ? ",\n" : "\n";
    }
    out += i1 + "]";
  };
  auto values = [&](const std::map<std::string, Value>& m) {
    if (m.empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    std::size_t n = 0;
    for (const auto& [name, value] : m) {
      out += i2;
      AppendString(out, name);
      out += ": ";
      AppendValue(out, value);
      out += ++n < m.size() ? ",\n" : "\n";
    }
    out += i1 + "}";
  };
  out += "{\n";
  key("code");
  if (r.code) {
    out += "{\n" + i2 + "\"commit\": ";
    AppendString(out, r.code->commit);
    out += ",\n" + i2 + "\"dirty\": " + (r.code->dirty ? "true" : "false");
    out += ",\n" + i2 + "\"repo\": ";
    AppendString(out, r.code->repo);
    out += "\n" + i1 + "}";
  } else {
    out += "null";
  }
  out += ",\n";
  key("command");
  if (r.command.empty()) {
    out += "[]";
  } else {
    out += "[\n";
    for (std::size_t n = 0; n < r.command.size(); ++n) {
      out += i2;
      AppendString(out, r.command[n]);
      out += n + 1 < r.command.size() ? ",\n" : "\n";
    }
    out += i1 + "]";
  }
  out += ",\n";
  key("ended");
  if (r.ended_ms) {
    AppendString(out, FormatIsoUtc(*r.ended_ms));
  } else {
    out += "null";
  }
  out += ",\n";
  key("exit_code");
  out += r.exit_code ? std::to_string(*r.exit_code) : "null";
  out += ",\n";
  key("host");
  AppendString(out, r.host);
  out += ",\n";
  key("id");
  AppendString(out, r.id);
  out += ",\n";
  key("inputs");
  artifacts(r.inputs);
  out += ",\n";
  key("message");
  AppendString(out, r.message);
  out += ",\n";
  key("outputs");
  artifacts(r.outputs);
  out += ",\n";
  key("params");
  values(r.params);
  out += ",\n";
  key("pipeline");
  AppendString(out, r.pipeline);
  out += ",\n";
  key("properties");
  values(r.properties);
  out += ",\n";
  key("site");
  AppendString(out, r.site);
  out += ",\n";
  key("stage");
  AppendString(out, r.stage);
  out += ",\n";
  key("started");
  AppendString(out, FormatIsoUtc(r.started_ms));
  out += ",\n";
  key("status");
  AppendString(out, ToString(r.status));
  out += ",\n";
  key("tags");
  if (r.tags.empty()) {
    out += "{}";
  } else {
    out += "{\n";
    std::size_t n = 0;
    for (const auto& [name, value] : r.tags) {
      out += i2;
      AppendString(out, name);
      out += ": ";
      AppendString(out, value);
      out += ++n < r.tags.size() ? ",\n" : "\n";
    }
    out += i1 + "}";
  }
  out += ",\n";
  key("user");
  AppendString(out, r.user);
  out += "\n" + indent + "}";
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view v) {
  AppendString(out, v);
}

void AppendJsonValue(std::string& out, const Value& v) { AppendValue(out, v); }

std::string ExecutionsJsonWriter::Add(
    const std::vector<ExecutionRecord>& records) {
  std::string out;
  for (const ExecutionRecord& r : records) {
    out += count_++ ? ",\n  " : "\n  ";
    AppendExecution(out, r, "  ");
  }
  return out;
}

std::string StatusJson(const StatusReport& report, int indent) {
  json changes = json::array();
  for (const Change& c : report.changes) {
    json change = {{"path", c.path},
                   {"status", std::string(ToString(c.kind))},
                   {"tracked", c.tracked}};
    if (c.cache_damaged) change["cache_damaged"] = true;
    changes.push_back(std::move(change));
  }
  return Dump({{"tracked", ArtifactsJson(report.tracked)},
               {"changes", changes},
               {"clean", report.changes.empty()},
               {"uncommitted",
                {{"executions", report.uncommitted_executions},
                 {"facts", report.uncommitted_facts}}},
               {"interrupted", report.interrupted}},
              indent);
}

std::string AddJson(const std::vector<AddResult>& results, int indent) {
  json out = json::array();
  for (const AddResult& r : results) {
    json a = ArtifactsJson({r.artifact})[0];
    a["files"] = r.files;
    a["hashed_files"] = r.hashed_files;
    a["hashed_bytes"] = r.hashed_bytes;
    a["changed"] = r.changed;
    out.push_back(std::move(a));
  }
  return Dump(out, indent);
}

std::string FsckJson(const FsckReport& report, int indent) {
  json missing = json::array();
  for (const auto& m : report.missing)
    missing.push_back({{"hash", m.hash}, {"path", m.path}});
  json quarantined = json::array();
  for (const auto& q : report.quarantined) {
    json j{{"path", q.path},
           {"site", q.site},
           {"segment", q.hash},
           {"reason", q.reason},
           {"recorded", FormatIsoUtc(q.recorded_ms)}};
    j["needs_format"] =
        q.needs_format > 0 ? json(q.needs_format) : json(nullptr);
    quarantined.push_back(std::move(j));
  }
  return Dump({{"ok", report.ok()},
               {"objects", report.objects},
               {"corrupt", report.corrupt},
               {"missing", missing},
               {"store_errors", report.store_errors},
               {"interrupted", report.interrupted},
               {"quarantined", quarantined},
               {"temporaries", report.temporaries},
               {"temporary_bytes", report.temporary_bytes}},
              indent);
}

std::string GcJson(const GcReport& report, int indent) {
  return Dump({{"unreferenced", report.unreferenced},
               {"bytes", report.bytes},
               {"removed", report.removed},
               {"stale_stat_blobs", report.stale_stat_blobs},
               {"temporaries", report.temporaries},
               {"temporary_bytes", report.temporary_bytes}},
              indent);
}

std::string CommitJson(const CommitReport& r, int indent) {
  return Dump({{"commit", r.commit.empty() ? json(nullptr) : json(r.commit)},
               {"segment", r.segment.empty() ? json(nullptr) : json(r.segment)},
               {"facts", r.facts},
               {"interrupted", r.interrupted}},
              indent);
}

std::string SyncJson(const SyncReport& r, int indent) {
  json damaged = json::array();
  for (const auto& d : r.damaged)
    damaged.push_back({{"hash", d.hash}, {"path", d.path}});
  return Dump({{"remote", r.remote},
               {"merge", r.merge},
               {"commits_sent", r.commits_sent},
               {"commits_received", r.commits_received},
               {"segments_ingested", r.segments_ingested},
               {"segments_quarantined", r.segments_quarantined},
               {"objects_sent", r.objects_sent},
               {"objects_received", r.objects_received},
               {"objects_left", r.objects_left},
               {"bytes_sent", r.bytes_sent},
               {"bytes_received", r.bytes_received},
               {"metadata_bytes_sent", r.metadata_bytes_sent},
               {"metadata_bytes_received", r.metadata_bytes_received},
               {"objects_damaged", r.damaged.size()},
               {"damaged", damaged},
               {"objects_repaired", r.objects_repaired},
               {"tries", r.tries}},
              indent);
}

std::string RemotesJson(const std::vector<RemoteSpec>& remotes, int indent) {
  json all = json::array();
  for (const RemoteSpec& r : remotes) {
    json j{{"name", r.name}};
    j["url"] = r.url.empty() ? json(nullptr) : json(RedactUrl(r.url));
    j["metadata"] =
        r.metadata.empty() ? json(nullptr) : json(RedactUrl(r.metadata));
    j["data"] = r.data.empty() ? json(nullptr) : json(RedactUrl(r.data));
    all.push_back(std::move(j));
  }
  return Dump(all, indent);
}

std::string WhereIsJson(const Whereabouts& w, int indent) {
  json places = json::array();
  for (const auto& p : w.places) {
    json j{{"id", p.id}, {"this_site", p.this_site}};
    j["remote"] = p.remote.empty() ? json(nullptr) : json(p.remote);
    places.push_back(std::move(j));
  }
  return Dump({{"hash", w.hash},
               {"path", w.path.empty() ? json(nullptr) : json(w.path)},
               {"here", w.here},
               {"locations", places}},
              indent);
}

std::string GetJson(const GetReport& r, int indent) {
  return Dump(
      {{"hash", r.hash},
       {"objects", r.objects},
       {"bytes", r.bytes},
       {"from", r.from.empty() ? json(nullptr) : json(r.from)},
       {"placed_at", r.placed_at.empty() ? json(nullptr) : json(r.placed_at)}},
      indent);
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

namespace {

// Lineage JSON, written directly into OUT, one node or edge per line (a walk
// can hold tens of thousands of nodes, and a document tree of them costs more
// than the walk); PIECE(out) is called after each node and edge.
template <typename Piece>
void EmitLineageJson(const LineageGraph& g, std::string& out, Piece piece) {
  auto put = [&out](std::string_view v) { out.append(v); };
  auto str = [&out](const std::string& v) { AppendString(out, v); };
  auto num = [&out](long long v) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
    out.append(digits, end);
  };
  put("{\"root\": ");
  str(g.root);
  put(",\n \"nodes\": [");
  bool first = true;
  for (const LineageNode& n : g.nodes) {
    put(first ? "\n  {\"id\": " : ",\n  {\"id\": ");
    first = false;
    str(n.id);
    if (n.type == LineageNode::Type::kExecution) {
      put(", \"type\": \"execution\", \"depth\": ");
      num(n.depth);
      put(", \"pipeline\": ");
      str(n.pipeline);
      put(", \"stage\": ");
      str(n.stage);
      put(", \"started\": \"");
      put(FormatIsoUtc(n.started_ms));
      put("\", \"status\": \"");
      put(ToString(n.status));
      put("\"}");
    } else {
      put(", \"type\": \"artifact\", \"depth\": ");
      num(n.depth);
      put(", \"hash\": ");
      str(n.id);
      put(", \"kind\": \"");
      put(ToString(n.kind));
      put("\", \"paths\": [");
      for (std::size_t i = 0; i < n.paths.size(); ++i) {
        if (i) put(", ");
        str(n.paths[i]);
      }
      put("]}");
    }
    piece(out);
  }
  put(first ? "],\n \"edges\": [" : "\n ],\n \"edges\": [");
  first = true;
  for (const LineageEdge& e : g.edges) {
    put(first ? "\n  {\"from\": " : ",\n  {\"from\": ");
    first = false;
    str(g.nodes[e.from].id);
    put(", \"to\": ");
    str(g.nodes[e.to].id);
    put(", \"type\": \"");
    put(ToString(e.type));
    put("\"}");
    piece(out);
  }
  put(first ? "]}" : "\n ]}");
}

}  // namespace

std::string LineageJson(const LineageGraph& g, int /*indent*/) {
  std::string out;
  out.reserve(g.nodes.size() * 220 + g.edges.size() * 190 + 64);
  EmitLineageJson(g, out, [](std::string&) {});
  return out;
}

bool WriteLineageJson(const LineageGraph& g, std::FILE* file) {
  constexpr std::size_t kPiece = 64 << 10;
  std::string out;
  out.reserve(kPiece + 4096);
  bool ok = true;
  auto write = [&](std::string& text) {
    ok = ok && std::fwrite(text.data(), 1, text.size(), file) == text.size();
    text.clear();
  };
  EmitLineageJson(g, out, [&](std::string& text) {
    if (text.size() >= kPiece) write(text);
  });
  out += '\n';
  write(out);
  return ok && std::fflush(file) == 0;
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
