// Internal: checking what another site sends (doc/federation.md, "Trust").
//
// Every foreign JSON document (a line of a segment, a cmf export) is parsed by
// ParseJson, with limits on its size and nesting depth and without exceptions,
// and every field of a fact is read through the accessors below, which check
// its type and its shape (a hash is 64 lowercase hex digits, a name holds no
// control character, a clock value is not far in the future...). Segment
// ingest and cmf import share them, so both accept exactly the same facts.
//
// The accessors throw FactError; their callers catch it in one place and turn
// it into a Status. Nothing else escapes them: no nlohmann exception, and no
// assertion (they never use operator[] on a missing key).
//
// Strings are read by one function, StringOf, which also takes the {"hex": …}
// form of bytes that are not UTF-8 (cmf/byte_strings.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "cmf/status.h"

namespace cmf::facts {

using json = nlohmann::json;

// The deepest nesting of arrays and objects a foreign document may have (a
// fact needs 3).
inline constexpr int kMaxJsonDepth = 64;
// The largest line of a segment, and the largest segment.
inline constexpr std::size_t kMaxFactLineBytes = std::size_t{64} << 20;
inline constexpr std::size_t kMaxSegmentBytes = std::size_t{512} << 20;
// The largest document cmf import json reads.
inline constexpr std::size_t kMaxExportBytes = std::size_t{1} << 30;
// The longest name (of a pipeline, stage, series, parameter or property).
inline constexpr std::size_t kMaxNameBytes = 1024;
// How far ahead of this site's wall clock the physical part of a received
// hybrid logical clock value may be: a fact stamped later than that is
// refused, so that no site can push every other's clock to the end of time.
inline constexpr std::int64_t kMaxClockAheadMs = 24 * 3600 * 1000;

class FactError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// TEXT parsed as one JSON value. InvalidArgument, whose message starts with
// WHAT ("the export", "a line"), when it is longer than MAX_BYTES, is not
// UTF-8, nests deeper than kMaxJsonDepth, or is not JSON.
Result<json> ParseJson(std::string_view text, std::size_t max_bytes,
                       std::string_view what);

// TEXT for a message or a listing: printable ASCII as it is, every other byte
// as \xNN, at most MAX bytes of it (then "...").
std::string Printable(std::string_view text, std::size_t max = 160);

// True for 64 lowercase hex digits: a SHA-256 as cmf writes it.
bool IsSha256Hex(std::string_view text);
// True when HASH may name an artifact hashed with ALGORITHM: a SHA-256 for
// "sha256"; for "md5" (what cmflib recorded: an md5, "<md5>.dir", a uuid) 1
// to 128 letters, digits, '.', '-' or '_', starting with a letter or digit.
bool IsArtifactHash(std::string_view hash, std::string_view algorithm);
// True for an execution id: a UUID as 36 lowercase characters,
// 8-4-4-4-12 hex digits with dashes.
bool IsExecutionId(std::string_view text);
// True for a name: 1 to kMaxNameBytes bytes, none of them a control character.
bool IsName(std::string_view text);
// A site id (cmf/segment.h's IsValidSiteId): 1 to 64 of [A-Za-z0-9_-].
bool IsSiteId(std::string_view text);
// True when TEXT holds no control character (it may be empty).
bool IsPlainText(std::string_view text);

// --- accessors: each throws FactError naming KEY when the member is absent
// or not what it must be.

// The member KEY of object J.
const json& Member(const json& j, const char* key);
// V as a string (the one place strings are read from foreign JSON); WHAT
// names it in the error. A string holding a NUL byte is refused.
std::string StringOf(const json& v, std::string_view what);
// A string member (any text but NUL).
std::string Text(const json& j, const char* key);
// A string member without control characters (may be empty).
std::string PlainText(const json& j, const char* key);
// A name member (IsName).
std::string Name(const json& j, const char* key);
// A site id member (IsValidSiteId).
std::string Site(const json& j, const char* key);
// An execution id member (IsExecutionId).
std::string ExecutionId(const json& j, const char* key);
// An artifact hash member (IsArtifactHash for ALGORITHM).
std::string Hash(const json& j, const char* key,
                 std::string_view algorithm = "sha256");
// A member naming an artifact (a hash of any algorithm IsArtifactHash knows;
// the store holds which it is).
std::string ArtifactName(const json& j, const char* key);
// A string member that is one of CHOICES.
std::string OneOf(const json& j, const char* key,
                  std::initializer_list<std::string_view> choices);
// V as an integer in [MIN, MAX] (WHAT names it in the error).
std::int64_t IntOf(const json& v, std::string_view what, std::int64_t min,
                   std::int64_t max);
// An integer member in [MIN, MAX].
std::int64_t Int(const json& j, const char* key, std::int64_t min,
                 std::int64_t max);
// As Int, or nullopt when KEY is absent or null.
std::optional<std::int64_t> OptInt(const json& j, const char* key,
                                   std::int64_t min, std::int64_t max);
// A boolean member.
bool Bool(const json& j, const char* key);
// A hybrid logical clock member: not negative, and its physical part (the
// milliseconds above the low 16 bits) at most kMaxClockAheadMs after NOW_MS.
std::int64_t Hlc(const json& j, const char* key, std::int64_t now_ms);

}  // namespace cmf::facts
