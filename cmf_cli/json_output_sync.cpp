// The JSON of the metadata log and the remotes: cmf commit, push, pull,
// fetch, remote -v, whereis, get and import.
#include <fmt/format.h>

#include "json_output.h"
#include "json_output_impl.h"

namespace cmf {

using json_impl::Dump;
using json_impl::json;

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

std::string ImportReportJson(const ImportReport& report) {
  return fmt::format(
      "{{\"executions\": {}, \"artifacts\": {}, \"events\": {}, \"facts\": "
      "{}}}",
      report.executions, report.artifacts, report.events, report.facts);
}

}  // namespace cmf
