// The JSON of a lineage walk (cmf lineage --format json, cmf show
// --artifact), written directly rather than through a JSON document.
#include <charconv>
#include <cstdio>

#include "cmf/clock.h"
#include "json_output.h"

namespace cmf {
namespace {

// Lineage JSON, written directly into OUT, one node or edge per line (a walk
// can hold tens of thousands of nodes, and a document tree of them costs more
// than the walk); PIECE(out) is called after each node and edge.
template <typename Piece>
void EmitLineageJson(const LineageGraph& g, std::string& out, Piece piece) {
  auto put = [&out](std::string_view v) { out.append(v); };
  auto str = [&out](const std::string& v) { AppendJsonString(out, v); };
  auto num = [&out](long long v) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, v);
    out.append(digits, end);
  };
  put("{\"root\": ");
  str(g.root);
  put(",\n \"nodes\": [");
  bool first = true;
  for (const LineageNode& n : g.nodes) {
    put(first ? "\n  {\"id\": " : ",\n  {\"id\": ");
    first = false;
    str(n.id);
    if (n.type == LineageNode::Type::kExecution) {
      put(", \"type\": \"execution\", \"depth\": ");
      num(n.depth);
      put(", \"pipeline\": ");
      str(n.pipeline);
      put(", \"stage\": ");
      str(n.stage);
      put(", \"started\": \"");
      put(FormatIsoUtc(n.started_ms));
      put("\", \"status\": \"");
      put(ToString(n.status));
      put("\"}");
    } else {
      put(", \"type\": \"artifact\", \"depth\": ");
      num(n.depth);
      put(", \"hash\": ");
      str(n.id);
      put(", \"kind\": \"");
      put(ToString(n.kind));
      put("\", \"paths\": [");
      for (std::size_t i = 0; i < n.paths.size(); ++i) {
        if (i) put(", ");
        str(n.paths[i]);
      }
      put("]}");
    }
    piece(out);
  }
  put(first ? "],\n \"edges\": [" : "\n ],\n \"edges\": [");
  first = true;
  for (const LineageEdge& e : g.edges) {
    put(first ? "\n  {\"from\": " : ",\n  {\"from\": ");
    first = false;
    str(g.nodes[e.from].id);
    put(", \"to\": ");
    str(g.nodes[e.to].id);
    put(", \"type\": \"");
    put(ToString(e.type));
    put("\"}");
    piece(out);
  }
  put(first ? "]}" : "\n ]}");
}

}  // namespace

std::string LineageJson(const LineageGraph& g, int /*indent*/) {
  std::string out;
  out.reserve(g.nodes.size() * 220 + g.edges.size() * 190 + 64);
  EmitLineageJson(g, out, [](std::string&) {});
  return out;
}

bool WriteLineageJson(const LineageGraph& g, std::FILE* file) {
  constexpr std::size_t kPiece = 64 << 10;
  std::string out;
  out.reserve(kPiece + 4096);
  bool ok = true;
  auto write = [&](std::string& text) {
    ok = ok && std::fwrite(text.data(), 1, text.size(), file) == text.size();
    text.clear();
  };
  EmitLineageJson(g, out, [&](std::string& text) {
    if (text.size() >= kPiece) write(text);
  });
  out += '\n';
  write(out);
  return ok && std::fflush(file) == 0;
}

}  // namespace cmf
