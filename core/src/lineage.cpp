#include "cmf/lineage.h"

#include <fmt/format.h>

#include <functional>
#include <vector>

#include "cmf/byte_strings.h"
#include "cmf/clock.h"
#include "cmf/store.h"
#include "graphviz_module.h"

namespace cmf {
namespace {

// An id as people read it and type it back: an execution's short form
// (ShortId, its last 12 digits, which are random), an artifact hash's first
// 12 digits.
std::string Short(const std::string& id) {
  return id.size() == 36 && id[8] == '-' ? ShortId(id) : id.substr(0, 12);
}

std::string Label(const LineageNode& n) {
  if (n.type == LineageNode::Type::kExecution) {
    return fmt::format("{}/{}  {}  {}  {}", n.pipeline, n.stage, Short(n.id),
                       ToString(n.status), FormatHumanUtc(n.started_ms));
  }
  std::string name =
      n.paths.empty() ? Short(n.id) : EscapeForDisplay(n.paths.front());
  if (n.paths.size() > 1)
    name += fmt::format(" (+{} paths)", n.paths.size() - 1);
  return fmt::format("{}  [{} {}]", name, ToString(n.kind), Short(n.id));
}

std::string DotQuote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

Result<LineageTarget> ResolveLineageTarget(Store& store,
                                           const std::string& workspace_path,
                                           const std::string& text) {
  // @NAME=VALUE or @NAME: the record most recently tagged so (an alias).
  if (!text.empty() && text[0] == '@') {
    const auto eq = text.find('=');
    const std::string name =
        text.substr(1, eq == std::string::npos ? std::string::npos : eq - 1);
    std::optional<std::string> value;
    if (eq != std::string::npos) value = text.substr(eq + 1);
    if (name.empty()) {
      return Status::InvalidArgument("'" + text +
                                     "' names no tag (@NAME or @NAME=VALUE)");
    }
    CMF_ASSIGN_OR_RETURN(std::vector<Store::Tagged> tagged,
                         store.FindTagged(name, value));
    if (tagged.empty()) {
      return Status::NotFound("no execution or artifact is tagged '" +
                              text.substr(1) + "'");
    }
    return LineageTarget{tagged.front().type == RecordType::kExecution
                             ? LineageNode::Type::kExecution
                             : LineageNode::Type::kArtifact,
                         tagged.front().key};
  }
  // An id or a hash first when it looks like one (hex digits and dashes), a
  // path first otherwise; each falls back to the other.
  const bool looks_like_id =
      text.size() >= 4 &&
      text.find_first_not_of("0123456789abcdefABCDEF-") == std::string::npos;
  Result<std::string> execution = Status::NotFound("");
  Result<std::string> artifact = Status::NotFound("");
  if (looks_like_id) {
    execution = store.ResolveExecution(text);
    artifact = store.ResolveArtifact(text);
  }
  if (!execution.ok() && !artifact.ok() && !workspace_path.empty()) {
    Result<std::string> at = store.ArtifactAtPath(workspace_path);
    if (at.ok()) return LineageTarget{LineageNode::Type::kArtifact, *at};
  }
  if (!looks_like_id) {
    execution = store.ResolveExecution(text);
    artifact = store.ResolveArtifact(text);
  }
  if (execution.ok() && artifact.ok()) {
    return Status::InvalidArgument("'" + text +
                                   "' names both an execution and an artifact; "
                                   "give more digits");
  }
  if (execution.ok())
    return LineageTarget{LineageNode::Type::kExecution, *execution};
  if (artifact.ok())
    return LineageTarget{LineageNode::Type::kArtifact, *artifact};
  // An ambiguous prefix says so; otherwise nothing has that name.
  for (const Status* st : {&execution.status(), &artifact.status()}) {
    if (st->message().find("ambiguous") != std::string::npos) return *st;
  }
  return Status::NotFound("no recorded path, execution or artifact '" + text +
                          "'");
}

Result<LineageGraph> Lineage(Store& store, const LineageTarget& target,
                             const LineageOptions& options) {
  return store.WalkLineage(target, options);
}

std::string LineageDot(const LineageGraph& g, const LineageLink& link) {
  std::string out =
      "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
  for (const LineageNode& n : g.nodes) {
    bool exec = n.type == LineageNode::Type::kExecution;
    // Names and paths come from other sites and from file names: shown as
    // valid UTF-8 (bytes that are not are written \xNN), as everywhere.
    std::string label =
        exec ? fmt::format("{}/{}\n{}\n{}", EscapeForDisplay(n.pipeline),
                           EscapeForDisplay(n.stage), Short(n.id),
                           ToString(n.status))
             : fmt::format("{}\n{} {}",
                           n.paths.empty() ? Short(n.id)
                                           : EscapeForDisplay(n.paths.front()),
                           ToString(n.kind), Short(n.id));
    out += fmt::format(
        "  {} [shape={}, label={}{}{}];\n", DotQuote(n.id),
        exec ? "box" : "ellipse", DotQuote(label),
        n.id == g.root ? ", penwidth=2" : "",
        link ? ", URL=" + DotQuote(link(n)) + ", target=\"_top\"" : "");
  }
  for (const LineageEdge& e : g.edges) {
    out += fmt::format("  {} -> {}{};\n", DotQuote(g.nodes[e.from].id),
                       DotQuote(g.nodes[e.to].id),
                       e.type == LineageEdge::Type::kDerivedFrom
                           ? " [style=dashed, label=\"derived from\"]"
                           : "");
  }
  return out + "}\n";
}

Result<std::string> LineageSvg(const LineageGraph& g, const LineageLink& link) {
  if (g.nodes.size() > kLineageSvgMaxNodes) {
    return Status::InvalidArgument(fmt::format(
        "the lineage has {} nodes; an SVG is drawn for at most {}: narrow it "
        "with --depth",
        g.nodes.size(), kLineageSvgMaxNodes));
  }
  CMF_ASSIGN_OR_RETURN(
      const GraphvizModule* graphviz,
      data::LoadModuleOnce<GraphvizModule>(
          {"Graphviz", "CMF_GRAPHVIZ_MODULE", "core", "cmf-graphviz.so",
           "cmf_graphviz_module", kGraphvizModuleAbi}));
  return graphviz->render(LineageDot(g, link), "svg");
}

std::string LineageText(const LineageGraph& g, const LineageOptions& options) {
  // Edges by node, each way, in the graph's order.
  std::vector<std::vector<const LineageEdge*>> into(g.nodes.size()),
      out_of(g.nodes.size());
  for (const LineageEdge& e : g.edges) {
    into[e.to].push_back(&e);
    out_of[e.from].push_back(&e);
  }
  std::string out;
  std::size_t root = 0;
  while (root < g.nodes.size() && g.nodes[root].id != g.root) ++root;
  if (root == g.nodes.size()) return out;
  out += Label(g.nodes[root]) + "\n";
  for (bool up : {true, false}) {
    if ((up && !options.up) || (!up && !options.down)) continue;
    if (options.up && options.down) out += up ? "up:\n" : "down:\n";
    std::vector<bool> shown(g.nodes.size(), false);
    shown[root] = true;
    // Depth-first, each node once; a node met again says so.
    std::function<void(std::size_t, const std::string&)> walk =
        [&](std::size_t node, const std::string& indent) {
          const auto& edges = up ? into[node] : out_of[node];
          for (std::size_t i = 0; i < edges.size(); ++i) {
            const LineageEdge& e = *edges[i];
            const std::size_t other = up ? e.from : e.to;
            bool last = i + 1 == edges.size();
            std::string how;
            switch (e.type) {
              case LineageEdge::Type::kInput:
                how = up ? "input " : "used by ";
                break;
              case LineageEdge::Type::kOutput:
                how = up ? "made by " : "output ";
                break;
              case LineageEdge::Type::kDerivedFrom:
                how = up ? "derived from " : "derived into ";
                break;
            }
            bool again = shown[other];
            shown[other] = true;
            out += indent + (last ? "└─ " : "├─ ") + how +
                   Label(g.nodes[other]) + (again ? "  (shown above)" : "") +
                   "\n";
            if (!again) walk(other, indent + (last ? "   " : "│  "));
          }
        };
    walk(root, "");
  }
  return out;
}

}  // namespace cmf
