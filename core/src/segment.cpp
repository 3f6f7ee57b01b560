#include "cmf/segment.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace cmf {

using json = nlohmann::json;

std::string SegmentHeader::Line() const {
  return json{{"format", kSegmentFormat},
              {"version", version},
              {"site", site},
              {"seq", seq}}
      .dump();
}

Result<SegmentHeader> SegmentHeader::Parse(std::string_view line) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("format", "") != kSegmentFormat ||
      !j.contains("version") || !j["version"].is_number_integer() ||
      !j.contains("site") || !j["site"].is_string() || !j.contains("seq") ||
      !j["seq"].is_number_integer()) {
    return Status::Corruption("not a cmf segment (bad header line)");
  }
  SegmentHeader h;
  h.version = j["version"].get<int>();
  if (h.version > kSegmentVersion) {
    return Status::InvalidArgument(
        "a segment has format version " + std::to_string(h.version) +
        ", newer than this cmf understands; upgrade cmf");
  }
  h.site = j["site"].get<std::string>();
  h.seq = j["seq"].get<std::int64_t>();
  if (!IsValidSiteId(h.site)) {
    return Status::Corruption("a segment names an invalid site '" + h.site +
                              "'");
  }
  return h;
}

std::string SegmentPath(const std::string& site, const std::string& hash) {
  return "segments/" + site + "/" + hash.substr(0, 2) + "/" + hash + ".jsonl";
}

bool IsValidSiteId(std::string_view site) {
  if (site.empty() || site.size() > 64) return false;
  return std::all_of(site.begin(), site.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

Result<std::vector<std::string>> SegmentArtifacts(std::string_view text) {
  std::vector<std::string> out;
  std::size_t pos = text.find('\n');
  if (pos == std::string_view::npos) return out;
  ++pos;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    json j = json::parse(text.substr(pos, end - pos), nullptr, false);
    pos = end + 1;
    if (!j.is_object()) {
      return Status::Corruption("a segment holds a line that is not JSON");
    }
    const std::string t = j.value("t", "");
    auto add = [&](const char* key) {
      auto it = j.find(key);
      if (it != j.end() && it->is_string())
        out.push_back(it->get<std::string>());
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
