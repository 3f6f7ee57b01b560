// The JSON of the workspace's reports: cmf status, add, fsck and gc.
#include "json_output.h"
#include "json_output_impl.h"

namespace cmf {

using json_impl::ArtifactsJson;
using json_impl::Dump;
using json_impl::json;

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

}  // namespace cmf
