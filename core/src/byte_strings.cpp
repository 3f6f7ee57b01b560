#include "cmf/byte_strings.h"

#include <cstdint>

namespace cmf {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The length of the well-formed UTF-8 sequence at the start of TEXT, or 0
// when it starts with a byte that cannot begin one (RFC 3629, table 3-7 of
// the Unicode standard).
std::size_t Utf8SequenceLength(std::string_view text) {
  const auto b = [&](std::size_t i) {
    return static_cast<unsigned char>(text[i]);
  };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlong forms
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;  // no overlong forms
    if (c == 0xf4) hi = 0x8f;  // nothing past U+10FFFF
  } else {
    return 0;
  }
  if (text.size() < n) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xbf) return 0;
  }
  return n;
}

}  // namespace

bool IsUtf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    // ASCII runs are the common case.
    if (static_cast<unsigned char>(text[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = Utf8SequenceLength(text.substr(i));
    if (n == 0) return false;
    i += n;
  }
  return true;
}

int EncodeByteStrings(nlohmann::json& j) {
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (IsUtf8(s)) return 0;
    std::string hex;
    hex.reserve(s.size() * 2);
    for (unsigned char c : s) {
      hex += kHexDigits[c >> 4];
      hex += kHexDigits[c & 0xf];
    }
    j = nlohmann::json{{"hex", std::move(hex)}};
    return 1;
  }
  int replaced = 0;
  if (j.is_object() || j.is_array()) {
    for (auto& child : j) replaced += EncodeByteStrings(child);
  }
  return replaced;
}

std::optional<std::string> DecodeByteString(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (!j.is_object() || j.size() != 1) return std::nullopt;
  auto it = j.find("hex");
  if (it == j.end() || !it->is_string()) return std::nullopt;
  const std::string& hex = it->get_ref<const std::string&>();
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = HexValue(hex[i]), lo = HexValue(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string EscapeForDisplay(std::string_view text) {
  // Which bytes need an escape: none, for almost every name.
  const auto plain = [&](std::size_t i, std::size_t* n) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      *n = Utf8SequenceLength(text.substr(i));
      return *n > 0;
    }
    *n = 1;
    return c >= 0x20 && c != 0x7f && c != '\\' && c != '"';
  };
  std::size_t n = 0;
  std::size_t i = 0;
  while (i < text.size() && plain(i, &n)) i += n;
  if (i == text.size()) return std::string(text);

  std::string out = "\"";
  out.append(text.substr(0, i));
  while (i < text.size()) {
    if (plain(i, &n)) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(text[i++]);
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out += "\\x";
        out += kHexDigits[c >> 4];
        out += kHexDigits[c & 0xf];
    }
  }
  out += '"';
  return out;
}

}  // namespace cmf
