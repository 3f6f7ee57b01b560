// Lineage: the graph of artifacts and executions joined by events (an
// execution used or made an artifact) and derived_from edges (a slice from its
// file, a model from its seed), walked up (where did this come from) or down
// (what was made from this).
//
// A walk is one recursive SQL query per direction over the indexed event and
// derived_from tables, whatever the number of nodes; an edge is followed once,
// so cycles (which an import can bring) end a walk. The graph holds the edges
// the walk followed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cmf/records.h"
#include "cmf/status.h"

namespace cmf {

class Store;

struct LineageOptions {
  bool up = true;            // ancestors
  bool down = false;         // descendants
  std::optional<int> depth;  // edges from the target; absent: no limit
};

struct LineageNode {
  enum class Type { kExecution, kArtifact };
  Type type = Type::kArtifact;
  std::string id;  // an execution's uuid, an artifact's hash
  int depth = 0;   // edges from the target: negative up, positive down
  // artifacts
  ArtifactKind kind = ArtifactKind::kFile;
  std::vector<std::string> paths;  // every path it was seen at, sorted
  // executions
  std::string pipeline;
  std::string stage;
  std::int64_t started_ms = 0;
  ExecStatus status = ExecStatus::kRunning;
  // CollapseRuns: the executions this node stands for (more than one: a run
  // of executions of one stage, each using what the one before made; id is
  // the first's, status the last's), first to last.
  std::vector<std::string> collapsed;
};

struct LineageEdge {
  enum class Type { kInput, kOutput, kDerivedFrom };
  // Indices into LineageGraph::nodes. input: artifact -> execution; output:
  // execution -> artifact; derived_from: parent -> child.
  std::size_t from = 0;
  std::size_t to = 0;
  Type type = Type::kInput;
};

struct LineageGraph {
  std::string root;                // the target's id
  std::vector<LineageNode> nodes;  // the target first, then by depth
  std::vector<LineageEdge> edges;  // by their ends' ids, then type
};

// GRAPH with every run of at least MIN_RUN executions of one pipeline and
// stage, each using an artifact that only the one before made and only it
// used (an active-learning loop recorded a step an execution, as cmflib's
// users do), drawn as one execution node whose `collapsed` lists them; the
// artifacts between them are left out and the run's other edges lead to its
// node. A run whose first execution's id is in EXPANDED stays as it was.
LineageGraph CollapseRuns(const LineageGraph& graph, std::size_t min_run,
                          const std::set<std::string>& expanded = {});

// "input", "output", "derived_from".
std::string_view ToString(LineageEdge::Type type);

// Resolves TARGET to a node: a path the store records (as given relative to
// the workspace), an execution id or unique prefix, an artifact hash or
// unique prefix, or @NAME=VALUE (@NAME: any value), the execution or artifact
// most recently tagged so (cmf tag). NotFound when nothing matches;
// InvalidArgument when it is ambiguous.
struct LineageTarget {
  LineageNode::Type type = LineageNode::Type::kArtifact;
  std::string id;
};
Result<LineageTarget> ResolveLineageTarget(Store& store,
                                           const std::string& workspace_path,
                                           const std::string& text);

// Walks the lineage of TARGET.
Result<LineageGraph> Lineage(Store& store, const LineageTarget& target,
                             const LineageOptions& options);

// The graph as Graphviz DOT, and as an indented text tree.
// LINK, when given, makes each node a link to the address it returns (an
// attribute URL; Graphviz's SVG wraps the node in <a xlink:href>); a node
// for which it returns "" is not a link.
using LineageLink = std::function<std::string(const LineageNode&)>;
std::string LineageDot(const LineageGraph& graph,
                       const LineageLink& link = nullptr);
std::string LineageText(const LineageGraph& graph,
                        const LineageOptions& options);

// The graph laid out by Graphviz's `dot` as SVG (from LineageDot: the same
// nodes, labels and edges), each node a <g class="node"> whose <title> is its
// full id or hash. Graphviz is the module cmf-graphviz.so, loaded here on first
// use: IOError when it is not installed. A graph of more than
// kLineageSvgMaxNodes nodes is InvalidArgument (narrow it with a depth): the
// layout's time grows faster than the graph.
inline constexpr std::size_t kLineageSvgMaxNodes = 2000;
Result<std::string> LineageSvg(const LineageGraph& graph,
                               const LineageLink& link = nullptr);

}  // namespace cmf
