#include "cmf/lineage.h"

#include <fmt/format.h>

#include <functional>
#include <set>
#include <tuple>
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

LineageGraph CollapseRuns(const LineageGraph& g, std::size_t min_run,
                          const std::set<std::string>& expanded) {
  const std::size_t n = g.nodes.size();
  std::vector<std::vector<const LineageEdge*>> in(n), out(n);
  for (const LineageEdge& e : g.edges) {
    out[e.from].push_back(&e);
    in[e.to].push_back(&e);
  }
  auto is_exec = [&](std::size_t i) {
    return g.nodes[i].type == LineageNode::Type::kExecution;
  };
  // next[x] = y when x made an artifact that only x made and only y used,
  // y of the same pipeline and stage, and that is the one such y of x (and
  // x the one such of y); between[x] is that artifact.
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::size_t> next(n, kNone), prev(n, kNone), between(n, kNone);
  std::vector<int> nexts(n, 0), prevs(n, 0);
  for (std::size_t a = 0; a < n; ++a) {
    if (is_exec(a) || in[a].size() != 1 || out[a].size() != 1) continue;
    const LineageEdge& made = *in[a][0];
    const LineageEdge& used = *out[a][0];
    if (made.type != LineageEdge::Type::kOutput ||
        used.type != LineageEdge::Type::kInput) {
      continue;
    }
    const std::size_t x = made.from, y = used.to;
    if (x == y || g.nodes[x].pipeline != g.nodes[y].pipeline ||
        g.nodes[x].stage != g.nodes[y].stage) {
      continue;
    }
    ++nexts[x];
    ++prevs[y];
    next[x] = y;
    prev[y] = x;
    between[x] = a;
  }
  // Runs: from each execution with no unique predecessor, along unique links.
  std::vector<std::size_t> group(n, kNone);  // node -> its run's first node
  std::vector<std::vector<std::size_t>> runs;
  for (std::size_t x = 0; x < n; ++x) {
    if (!is_exec(x) || (prevs[x] == 1 && nexts[prev[x]] == 1)) continue;
    std::vector<std::size_t> run = {x};
    std::vector<std::size_t> inside;
    std::size_t at = x;
    while (nexts[at] == 1 && prevs[next[at]] == 1 && run.size() < n) {
      inside.push_back(between[at]);
      at = next[at];
      run.push_back(at);
    }
    if (run.size() < min_run || expanded.count(g.nodes[x].id)) continue;
    for (std::size_t i : run) group[i] = runs.size();
    for (std::size_t i : inside) group[i] = runs.size();
    runs.push_back(std::move(run));
  }
  if (runs.empty()) return g;
  // The new nodes: each node not in a run, and each run's first execution
  // standing for it.
  LineageGraph c;
  c.root = g.root;
  std::vector<std::size_t> to_new(n, kNone);
  for (std::size_t i = 0; i < n; ++i) {
    if (group[i] != kNone && runs[group[i]].front() != i) continue;
    to_new[i] = c.nodes.size();
    LineageNode node = g.nodes[i];
    if (group[i] != kNone) {
      const std::vector<std::size_t>& run = runs[group[i]];
      node.status = g.nodes[run.back()].status;
      for (std::size_t k : run) node.collapsed.push_back(g.nodes[k].id);
      // The root inside a run is the run's node.
      for (std::size_t k : run) {
        if (g.nodes[k].id == g.root) c.root = node.id;
      }
    }
    c.nodes.push_back(std::move(node));
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (to_new[i] == kNone) to_new[i] = to_new[runs[group[i]].front()];
  }
  std::set<std::tuple<std::size_t, std::size_t, int>> seen;
  for (const LineageEdge& e : g.edges) {
    // Edges within a run (to and from the artifacts between) are left out.
    if (group[e.from] != kNone && group[e.from] == group[e.to]) continue;
    LineageEdge ne = e;
    ne.from = to_new[e.from];
    ne.to = to_new[e.to];
    if (seen.insert({ne.from, ne.to, static_cast<int>(ne.type)}).second) {
      c.edges.push_back(ne);
    }
  }
  return c;
}

std::string LineageDot(const LineageGraph& g, const LineageLink& link) {
  std::string out =
      "digraph lineage {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n";
  for (const LineageNode& n : g.nodes) {
    bool exec = n.type == LineageNode::Type::kExecution;
    // Names and paths come from other sites and from file names: shown as
    // valid UTF-8 (bytes that are not are written \xNN), as everywhere.
    std::string label =
        exec && n.collapsed.size() > 1
            ? fmt::format("{}/{}\n{} runs: {} .. {}\n{}",
                          EscapeForDisplay(n.pipeline),
                          EscapeForDisplay(n.stage), n.collapsed.size(),
                          Short(n.collapsed.front()), Short(n.collapsed.back()),
                          ToString(n.status))
        : exec
            ? fmt::format("{}/{}\n{}\n{}", EscapeForDisplay(n.pipeline),
                          EscapeForDisplay(n.stage), Short(n.id),
                          ToString(n.status))
            : fmt::format("{}\n{} {}",
                          n.paths.empty() ? Short(n.id)
                                          : EscapeForDisplay(n.paths.front()),
                          ToString(n.kind), Short(n.id));
    const std::string url = link ? link(n) : std::string();
    out += fmt::format(
        "  {} [shape={}, label={}{}{}];\n", DotQuote(n.id),
        exec ? (n.collapsed.size() > 1 ? "box3d" : "box") : "ellipse",
        DotQuote(label), n.id == g.root ? ", penwidth=2" : "",
        url.empty() ? "" : ", URL=" + DotQuote(url) + ", target=\"_top\"");
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
