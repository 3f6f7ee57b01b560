// Segments: the unit of committed metadata (doc/federation.md).
//
// A segment is a text file: a header line, then one JSON object per fact, keys
// sorted, lines sorted. Its name is the SHA-256 of its text, and it lives in
// the metadata log at segments/<site>/<first two hex digits>/<hash>.jsonl, a
// path no other site can ever write, so that merging two logs is a union of
// their trees.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/status.h"

namespace cmf {

inline constexpr char kSegmentFormat[] = "cmf-segment";
// The newest segment format this cmf reads and writes. Version 2 added strings
// that are not UTF-8 ({"hex": …}, cmf/byte_strings.h); a segment without one
// is written as version 1, so that older sites keep reading it.
inline constexpr int kSegmentVersion = 2;
inline constexpr int kSegmentVersionPlain = 1;

struct SegmentHeader {
  std::string site;
  std::int64_t seq = 0;  // the site's segment number, from 1
  int version = kSegmentVersion;

  // The header line, without its newline.
  std::string Line() const;
  // Corruption when LINE is not a segment header; InvalidArgument ("needs cmf
  // segment format N; this cmf reads up to M") when it is from a newer format,
  // whose version then goes to *NEWER_VERSION when given.
  static Result<SegmentHeader> Parse(std::string_view line,
                                     int* newer_version = nullptr);
};

// The path of a segment in the metadata log's tree.
std::string SegmentPath(const std::string& site, const std::string& hash);

// True when a site id is safe as one path component (hex, letters, digits,
// '-', '_'; 1 to 64 characters).
bool IsValidSiteId(std::string_view site);

// Every artifact hash a segment's facts name (artifacts, events, derived_from
// edges, locations), sorted and unique.
Result<std::vector<std::string>> SegmentArtifacts(std::string_view text);

}  // namespace cmf
