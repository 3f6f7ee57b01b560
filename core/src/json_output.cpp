#include "cmf/json_output.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "cmf/clock.h"
#include "cmf/data/transport.h"

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

std::string ExecutionsJsonWriter::Add(
    const std::vector<ExecutionRecord>& records) {
  std::string out;
  for (const ExecutionRecord& r : records) {
    out += count_++ ? ",\n  " : "\n  ";
    std::string element = Dump(ToJson(r), 2);
    for (char c : element) {  // one level deeper than a top-level object
      out += c;
      if (c == '\n') out += "  ";
    }
  }
  return out;
}

std::string StatusJson(const StatusReport& report, int indent) {
  json changes = json::array();
  for (const Change& c : report.changes) {
    changes.push_back({{"path", c.path},
                       {"status", std::string(ToString(c.kind))},
                       {"tracked", c.tracked}});
  }
  return Dump({{"tracked", ArtifactsJson(report.tracked)},
               {"changes", changes},
               {"clean", report.changes.empty()},
               {"uncommitted",
                {{"executions", report.uncommitted_executions},
                 {"facts", report.uncommitted_facts}}}},
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
  return Dump({{"ok", report.ok()},
               {"objects", report.objects},
               {"corrupt", report.corrupt},
               {"missing", missing}},
              indent);
}

std::string GcJson(const GcReport& report, int indent) {
  return Dump({{"unreferenced", report.unreferenced},
               {"bytes", report.bytes},
               {"removed", report.removed}},
              indent);
}

std::string CommitJson(const CommitReport& r, int indent) {
  return Dump({{"commit", r.commit.empty() ? json(nullptr) : json(r.commit)},
               {"segment", r.segment.empty() ? json(nullptr) : json(r.segment)},
               {"facts", r.facts}},
              indent);
}

std::string SyncJson(const SyncReport& r, int indent) {
  return Dump({{"remote", r.remote},
               {"merge", r.merge},
               {"commits_sent", r.commits_sent},
               {"commits_received", r.commits_received},
               {"segments_ingested", r.segments_ingested},
               {"objects_sent", r.objects_sent},
               {"objects_received", r.objects_received},
               {"objects_left", r.objects_left},
               {"bytes_sent", r.bytes_sent},
               {"bytes_received", r.bytes_received},
               {"metadata_bytes_sent", r.metadata_bytes_sent},
               {"metadata_bytes_received", r.metadata_bytes_received},
               {"tries", r.tries}},
              indent);
}

std::string RemotesJson(const std::vector<RemoteSpec>& remotes, int indent) {
  json all = json::array();
  for (const RemoteSpec& r : remotes) {
    json j{{"name", r.name}};
    j["url"] = r.url.empty() ? json(nullptr) : json(data::RedactUrl(r.url));
    j["metadata"] =
        r.metadata.empty() ? json(nullptr) : json(data::RedactUrl(r.metadata));
    j["data"] = r.data.empty() ? json(nullptr) : json(data::RedactUrl(r.data));
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

std::string LineageJson(const LineageGraph& g, int indent) {
  json nodes = json::array();
  for (const LineageNode& n : g.nodes) {
    json j{{"id", n.id}, {"depth", n.depth}};
    if (n.type == LineageNode::Type::kExecution) {
      j["type"] = "execution";
      j["pipeline"] = n.pipeline;
      j["stage"] = n.stage;
      j["started"] = FormatIsoUtc(n.started_ms);
      j["status"] = std::string(ToString(n.status));
    } else {
      j["type"] = "artifact";
      j["hash"] = n.id;
      j["kind"] = std::string(ToString(n.kind));
      j["paths"] = n.paths;
    }
    nodes.push_back(std::move(j));
  }
  json edges = json::array();
  for (const LineageEdge& e : g.edges) {
    edges.push_back({{"from", e.from},
                     {"to", e.to},
                     {"type", std::string(ToString(e.type))}});
  }
  return Dump({{"root", g.root}, {"nodes", nodes}, {"edges", edges}}, indent);
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

}  // namespace cmf
