#include "json_output.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "json_output_impl.h"

// The helpers every JSON writer shares (json_output_impl.h), and the strings
// and values written directly (AppendJsonString, AppendJsonValue). The
// writers themselves are by subject: json_output_records.cpp (executions,
// metrics, artifacts, tags, lineage), json_output_workspace.cpp,
// json_output_sync.cpp, json_output_diff.cpp and json_output_plugins.cpp.

namespace cmf {
namespace json_impl {

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

std::string Dump(const json& j, int indent) {
  return j.dump(indent, ' ', /*ensure_ascii=*/false,
                json::error_handler_t::replace);
}

}  // namespace json_impl

using json_impl::Dump;
using json_impl::json;
using json_impl::ValueJson;

// A JSON string, as the JSON library writes it; ASCII text (ids, hashes,
// names, paths) is escaped here, anything else by the library.
void AppendJsonString(std::string& out, std::string_view v) {
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

void AppendJsonValue(std::string& out, const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    AppendJsonString(out, *s);
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

}  // namespace cmf
