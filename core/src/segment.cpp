#include "cmf/segment.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "fact_check.h"

namespace cmf {

using json = nlohmann::json;

std::string SegmentHeader::Line() const {
  return json{{"format", kSegmentFormat},
              {"version", version},
              {"site", site},
              {"seq", seq}}
      .dump();
}

Result<SegmentHeader> SegmentHeader::Parse(std::string_view line,
                                           int* newer_version) {
  Result<json> parsed =
      facts::ParseJson(line, facts::kMaxFactLineBytes, "the header line");
  if (!parsed.ok()) {
    return Status::Corruption("not a cmf segment (" +
                              parsed.status().message() + ")");
  }
  const json& j = *parsed;
  SegmentHeader h;
  try {
    if (facts::Text(j, "format") != kSegmentFormat) {
      throw facts::FactError("'format' is not \"cmf-segment\"");
    }
    h.version = static_cast<int>(
        facts::Int(j, "version", 1, std::numeric_limits<int>::max()));
    if (h.version > kSegmentVersion) {
      if (newer_version) *newer_version = h.version;
      return Status::InvalidArgument(
          "needs cmf segment format " + std::to_string(h.version) +
          "; this cmf reads up to " + std::to_string(kSegmentVersion));
    }
    h.site = facts::Site(j, "site");
    h.seq = facts::Int(j, "seq", 0, std::numeric_limits<std::int64_t>::max());
  } catch (const facts::FactError& e) {
    return Status::Corruption(std::string("not a cmf segment (bad header "
                                          "line: ") +
                              e.what() + ")");
  }
  return h;
}

std::string SegmentPath(const std::string& site, const std::string& hash) {
  return "segments/" + site + "/" + hash.substr(0, 2) + "/" + hash + ".jsonl";
}

bool IsValidSiteId(std::string_view site) { return facts::IsSiteId(site); }

Result<std::vector<std::string>> SegmentArtifacts(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = text.find('\n');
  if (pos == std::string_view::npos) return out;
  ++pos;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    Result<json> parsed = facts::ParseJson(text.substr(pos, end - pos),
                                           facts::kMaxFactLineBytes, "a line");
    pos = end + 1;
    if (!parsed.ok() || !parsed->is_object()) {
      return Status::Corruption("a segment holds a line that is not JSON");
    }
    const json& j = *parsed;
    auto it = j.find("t");
    if (it == j.end() || !it->is_string()) continue;
    const std::string& t = it->get_ref<const std::string&>();
    auto add = [&](const char* key) {
      auto h = j.find(key);
      if (h != j.end() && h->is_string() &&
          facts::IsSha256Hex(h->get_ref<const std::string&>())) {
        out.push_back(h->get<std::string>());
      }
    };
    if (t == "artifact" || t == "location") add("hash");
    if (t == "event") add("artifact");
    if (t == "derived_from") {
      add("artifact");
      add("parent");
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace cmf
