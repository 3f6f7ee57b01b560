#include "fact_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "cmf/byte_strings.h"

namespace cmf::facts {
namespace {

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

// The deepest nesting of arrays and objects in TEXT, counted outside strings,
// stopping as soon as it passes LIMIT (so that nothing recurses into it).
bool DepthWithin(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

[[noreturn]] void Fail(std::string message) {
  throw FactError(std::move(message));
}

}  // namespace

std::string Printable(std::string_view text, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (text.size() > max) out += "...";
  return out;
}

Result<json> ParseJson(std::string_view text, std::size_t max_bytes,
                       std::string_view what) {
  if (text.size() > max_bytes) {
    return Status::InvalidArgument(
        fmt::format("{} is larger than {} bytes", what, max_bytes));
  }
  if (!IsUtf8(text)) {
    return Status::InvalidArgument(
        fmt::format("{} holds bytes that are not UTF-8", what));
  }
  if (!DepthWithin(text, kMaxJsonDepth)) {
    return Status::InvalidArgument(fmt::format(
        "{} nests arrays or objects deeper than {}", what, kMaxJsonDepth));
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status::InvalidArgument(fmt::format("{} is not JSON", what));
  }
  return j;
}

bool IsSha256Hex(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), IsLowerHex);
}

bool IsArtifactHash(std::string_view hash, std::string_view algorithm) {
  if (algorithm == "sha256") return IsSha256Hex(hash);
  if (algorithm != "md5") return false;
  if (hash.empty() || hash.size() > 128) return false;
  auto alnum = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z');
  };
  return alnum(hash[0]) && std::all_of(hash.begin(), hash.end(), [&](char c) {
           return alnum(c) || c == '.' || c == '-' || c == '_';
         });
}

bool IsExecutionId(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !IsLowerHex(text[i])) return false;
  }
  return true;
}

bool IsSiteId(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  return std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

bool IsName(std::string_view text) {
  return !text.empty() && text.size() <= kMaxNameBytes && IsPlainText(text);
}

bool IsPlainText(std::string_view text) {
  return std::none_of(text.begin(), text.end(), [](char c) {
    return IsControl(static_cast<unsigned char>(c));
  });
}

const json& Member(const json& j, const char* key) {
  if (!j.is_object()) Fail(fmt::format("not an object where '{}' is", key));
  auto it = j.find(key);
  if (it == j.end()) Fail(fmt::format("no '{}'", key));
  return *it;
}

std::string StringOf(const json& v, std::string_view what) {
  // Plain text, or bytes that are not UTF-8 written as {"hex": …}
  // (cmf/byte_strings.h).
  std::optional<std::string> bytes = DecodeByteString(v);
  if (!bytes) Fail(fmt::format("'{}' is not a string", what));
  std::string s = std::move(*bytes);
  if (s.find('\0') != std::string::npos) {
    Fail(fmt::format("'{}' holds a NUL character", what));
  }
  return s;
}

std::string Text(const json& j, const char* key) {
  return StringOf(Member(j, key), key);
}

std::string PlainText(const json& j, const char* key) {
  std::string s = Text(j, key);
  if (!IsPlainText(s)) {
    Fail(fmt::format("'{}' holds a control character", key));
  }
  return s;
}

std::string Name(const json& j, const char* key) {
  std::string s = Text(j, key);
  if (!IsName(s)) {
    Fail(
        fmt::format("'{}' is not a name (1 to {} bytes, no control "
                    "characters)",
                    key, kMaxNameBytes));
  }
  return s;
}

std::string Site(const json& j, const char* key) {
  std::string s = Text(j, key);
  if (!IsSiteId(s)) Fail(fmt::format("'{}' is not a site id", key));
  return s;
}

std::string ExecutionId(const json& j, const char* key) {
  std::string s = Text(j, key);
  if (!IsExecutionId(s)) {
    Fail(fmt::format("'{}' is not an execution id (a lowercase uuid)", key));
  }
  return s;
}

std::string Hash(const json& j, const char* key, std::string_view algorithm) {
  std::string s = Text(j, key);
  if (!IsArtifactHash(s, algorithm)) {
    Fail(algorithm == "sha256"
             ? fmt::format("'{}' is not a hash (64 lowercase hex digits)", key)
             : fmt::format("'{}' is not an {} artifact name", key, algorithm));
  }
  return s;
}

std::string ArtifactName(const json& j, const char* key) {
  std::string s = Text(j, key);
  if (!IsArtifactHash(s, "sha256") && !IsArtifactHash(s, "md5")) {
    Fail(fmt::format("'{}' is not an artifact's hash", key));
  }
  return s;
}

std::string OneOf(const json& j, const char* key,
                  std::initializer_list<std::string_view> choices) {
  std::string s = Text(j, key);
  if (std::find(choices.begin(), choices.end(), s) == choices.end()) {
    Fail(fmt::format("'{}' is not one of {}", key, fmt::join(choices, ", ")));
  }
  return s;
}

std::int64_t IntOf(const json& v, std::string_view what, std::int64_t min,
                   std::int64_t max) {
  std::int64_t n = 0;
  if (v.is_number_unsigned()) {
    std::uint64_t u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(max)) {
      Fail(fmt::format("'{}' is out of range", what));
    }
    n = static_cast<std::int64_t>(u);
  } else if (v.is_number_integer()) {
    n = v.get<std::int64_t>();
  } else {
    Fail(fmt::format("'{}' is not an integer", what));
  }
  if (n < min || n > max) Fail(fmt::format("'{}' is out of range", what));
  return n;
}

std::int64_t Int(const json& j, const char* key, std::int64_t min,
                 std::int64_t max) {
  return IntOf(Member(j, key), key, min, max);
}

std::optional<std::int64_t> OptInt(const json& j, const char* key,
                                   std::int64_t min, std::int64_t max) {
  if (!j.is_object()) Fail(fmt::format("not an object where '{}' is", key));
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return Int(j, key, min, max);
}

bool Bool(const json& j, const char* key) {
  const json& v = Member(j, key);
  if (!v.is_boolean()) Fail(fmt::format("'{}' is not true or false", key));
  return v.get<bool>();
}

std::int64_t Hlc(const json& j, const char* key, std::int64_t now_ms) {
  std::int64_t hlc = Int(j, key, 0, std::numeric_limits<std::int64_t>::max());
  if ((hlc >> 16) > now_ms + kMaxClockAheadMs) {
    Fail(fmt::format(
        "'{}' {} is a clock more than {} h ahead of this site's ({} ms)", key,
        hlc, kMaxClockAheadMs / 3600000, now_ms));
  }
  return hlc;
}

}  // namespace cmf::facts
