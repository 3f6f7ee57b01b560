// Lineage walks: one recursive query per direction that returns the nodes,
// their details and the edges followed.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string_view>
#include <tuple>
#include <unordered_map>

#include "cmf/lineage.h"
#include "store_impl.h"

namespace cmf {
namespace {

// Node keys in SQL: (t, id) with t = 0 for an artifact row, 1 for an
// execution row.
constexpr int kArtifact = 0;
constexpr int kExecution = 1;

// How the walk reached a node: the edge it followed (0 for the target).
constexpr int kByInput = 1;    // an input event
constexpr int kByOutput = 2;   // an output event
constexpr int kByDerived = 3;  // a derived_from edge

// One statement for a walk and everything it shows. The recursive part,
// `walk`, has a row per edge followed: the node reached (t, id) and `via`,
// the node it was reached from and how, packed as fid * 8 + ft * 4 + how (0
// for the target; three columns make the walk's set of rows cheaper to keep
// than five); UP follows edges backwards. A row that was seen before is not
// followed again, so a walk ends on cycles. The
// statement returns, told apart by the first column (a node reached by
// several edges comes as often: a set of distinct nodes costs more than the
// few repeated lookups):
//   0  an artifact node:  id, hash, kind
//   1  an execution node: id, uuid, stage_id, started_ms, status
//   2  a path an artifact was seen at: artifact id, path
//   3  an edge of the walk: t, id, via
// With LIMITED, rows carry their depth, bounded by ?3.
std::string WalkQuery(bool up, bool limited) {
  const std::string cols = limited ? "t, id, via, depth" : "t, id, via";
  const std::string more = limited ? " AND w.depth < ?3" : "";
  const std::string next = limited ? ", w.depth + 1" : "";
  auto step = [&](const std::string& select, const std::string& from,
                  const std::string& where) {
    return " UNION SELECT " + select + next + " FROM walk w " + from +
           " WHERE " + where + more;
  };
  std::string steps;
  if (up) {
    steps =
        // an artifact comes from the executions that made it ...
        step("1, x.execution_id, w.id * 8 + 2",
             "JOIN event x ON x.artifact_id = w.id AND x.direction = 1",
             "w.t = 0") +
        // ... and from the artifacts it was derived from
        step("0, d.parent_id, w.id * 8 + 3",
             "JOIN derived_from d ON d.artifact_id = w.id", "w.t = 0") +
        // an execution comes from its inputs
        step("0, x.artifact_id, w.id * 8 + 4 + 1",
             "JOIN event x ON x.execution_id = w.id AND x.direction = 0",
             "w.t = 1");
  } else {
    steps =
        // an artifact is used by executions ...
        step("1, x.execution_id, w.id * 8 + 1",
             "JOIN event x ON x.artifact_id = w.id AND x.direction = 0",
             "w.t = 0") +
        // ... and artifacts are derived from it
        step("0, d.artifact_id, w.id * 8 + 3",
             "JOIN derived_from d ON d.parent_id = w.id", "w.t = 0") +
        // an execution makes its outputs
        step("0, x.artifact_id, w.id * 8 + 4 + 2",
             "JOIN event x ON x.execution_id = w.id AND x.direction = 1",
             "w.t = 1");
  }
  return "WITH RECURSIVE walk(" + cols + ") AS (SELECT ?1, ?2, 0" +
         (limited ? ", 0" : "") + steps +
         ") SELECT 0, a.id, a.hash, a.kind, NULL, NULL FROM walk n "
         "CROSS JOIN artifact a ON a.id = n.id WHERE n.t = 0 "
         "UNION ALL SELECT 1, e.id, e.uuid, e.stage_id, e.started_ms, "
         "(SELECT s.status FROM execution_state s WHERE s.execution_id = e.id "
         "ORDER BY s.hlc DESC, s.site DESC LIMIT 1) FROM walk n "
         "CROSS JOIN execution e ON e.id = n.id WHERE n.t = 1 "
         "UNION ALL SELECT 2, x.artifact_id, x.path, NULL, NULL, NULL "
         "FROM walk n CROSS JOIN event x INDEXED BY event_by_artifact "
         "ON x.artifact_id = n.id WHERE n.t = 0 "
         "UNION ALL SELECT 2, k.artifact_id, k.path, NULL, NULL, NULL "
         "FROM walk n CROSS JOIN tracked k INDEXED BY tracked_by_artifact "
         "ON k.artifact_id = n.id WHERE n.t = 0 "
         "UNION ALL SELECT 3, t, id, via, NULL, NULL FROM walk WHERE via > 0";
}

// Pipeline and stage names by stage id.
using StageNames =
    std::unordered_map<RowId, std::pair<std::string, std::string>>;

// The row key of a node: id * 2 + t.
constexpr std::int64_t NodeKey(std::int64_t t, std::int64_t id) {
  return id * 2 + t;
}

struct RawEdge {
  RowId from, to;  // row keys
  LineageEdge::Type type;
  bool operator<(const RawEdge& o) const {
    return std::tie(from, to, type) < std::tie(o.from, o.to, o.type);
  }
  bool operator==(const RawEdge& o) const = default;
};

// What the walks return. Nodes are indexed by row key (id * 2 + t); edges and
// paths are gathered by row keys and resolved to node indices once every row
// is in.
struct WalkRows {
  std::vector<LineageNode> nodes;
  std::unordered_map<RowId, std::uint32_t> index;
  std::vector<RawEdge> raw_edges;
  std::vector<std::pair<RowId, std::string>> raw_paths;
};

// The row id of TARGET (IS_EXEC: an execution's), or NotFound. The
// templates take IMPL, the Store::Impl: a type private to Store, which they
// cannot name.
template <typename Impl>
Result<RowId> FindRoot(Impl& impl, const LineageTarget& target, bool is_exec) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt q,
      impl.Prepare(is_exec ? "SELECT id FROM execution WHERE uuid = ?1"
                           : "SELECT id FROM artifact WHERE hash = ?1"));
  Status st;
  bool found = q.Bind(1, target.id).Step(&st);
  RowId root = found ? q.Int(0) : 0;
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (!found) {
    return Status::NotFound(fmt::format(
        "no {} '{}'", is_exec ? "execution" : "artifact", target.id));
  }
  return root;
}

// Pipeline and stage names by stage id, into STAGES: a handful, read once.
template <typename Impl>
Status ReadStageNames(Impl& impl, StageNames& stages) {
  CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                       impl.Prepare("SELECT g.id, p.name, g.name FROM stage g "
                                    "JOIN pipeline p ON p.id = g.pipeline_id"));
  Status st;
  while (s.Step(&st)) stages[s.Int(0)] = {s.Text(1), s.Text(2)};
  s.Reset();
  return st;
}

// Adds the rows of S, a WalkQuery(UP, ...), to ROWS: a node reached again is
// kept once.
Status ReadWalkRows(sql::Stmt& s, bool up, const StageNames& stages,
                    WalkRows& rows) {
  Status st;
  while (s.Step(&st)) {
    switch (s.Int(0)) {
      case 0:
      case 1: {
        const bool exec = s.Int(0) == 1;
        auto [it, fresh] = rows.index.try_emplace(
            NodeKey(exec ? kExecution : kArtifact, s.Int(1)),
            static_cast<std::uint32_t>(rows.nodes.size()));
        if (!fresh) break;  // reached again
        LineageNode& node = rows.nodes.emplace_back();
        node.id = s.Text(2);
        if (exec) {
          node.type = LineageNode::Type::kExecution;
          if (auto g = stages.find(s.Int(3)); g != stages.end()) {
            node.pipeline = g->second.first;
            node.stage = g->second.second;
          }
          node.started_ms = s.Int(4);
          node.status =
              ParseExecStatus(s.Text(5)).value_or(ExecStatus::kRunning);
        } else {
          node.type = LineageNode::Type::kArtifact;
          node.kind =
              ParseArtifactKind(s.Text(3)).value_or(ArtifactKind::kFile);
        }
        break;
      }
      case 2:
        rows.raw_paths.emplace_back(NodeKey(kArtifact, s.Int(1)), s.Text(2));
        break;
      case 3: {
        RowId reached = NodeKey(s.Int(1), s.Int(2));
        const std::int64_t via = s.Int(3);
        RowId from = NodeKey((via >> 2) & 1, via >> 3);
        const std::int64_t how = via & 3;
        const LineageEdge::Type type =
            how == kByInput    ? LineageEdge::Type::kInput
            : how == kByOutput ? LineageEdge::Type::kOutput
                               : LineageEdge::Type::kDerivedFrom;
        // Walking down, edges point the way the walk went; up, against it.
        if (up) std::swap(reached, from);
        rows.raw_edges.push_back({from, reached, type});
        break;
      }
    }
  }
  s.Reset();
  return st;
}

// Gives each node of ROWS its paths (moved out of ROWS), sorted and unique.
void AttachPaths(WalkRows& rows) {
  for (auto& [artifact, path] : rows.raw_paths) {
    auto it = rows.index.find(artifact);
    if (it != rows.index.end()) {
      rows.nodes[it->second].paths.push_back(std::move(path));
    }
  }
  for (LineageNode& node : rows.nodes) {
    if (node.paths.size() < 2) continue;
    std::sort(node.paths.begin(), node.paths.end());
    node.paths.erase(std::unique(node.paths.begin(), node.paths.end()),
                     node.paths.end());
  }
}

// The edges of ROWS between node indices, each once (ROWS' raw edges are
// sorted and made unique on the way).
std::vector<LineageEdge> ResolveEdges(WalkRows& rows) {
  std::vector<RawEdge>& raw_edges = rows.raw_edges;
  // An edge followed at several depths of a bounded walk is one edge.
  std::sort(raw_edges.begin(), raw_edges.end());
  raw_edges.erase(std::unique(raw_edges.begin(), raw_edges.end()),
                  raw_edges.end());
  std::vector<LineageEdge> edges;
  edges.reserve(raw_edges.size());
  for (const RawEdge& e : raw_edges) {
    // A fact naming a record the store lacks (a damaged store) loses its
    // edge rather than the walk.
    auto from = rows.index.find(e.from), to = rows.index.find(e.to);
    if (from == rows.index.end() || to == rows.index.end()) continue;
    edges.push_back({from->second, to->second, e.type});
  }
  return edges;
}

// Sets the depth of NODES: the shortest number of EDGES from the target
// (ROOT_INDEX), walking the same way as the query (up: against the edges,
// negative; down: along them).
void SetDepths(const std::vector<LineageEdge>& edges, std::uint32_t root_index,
               const LineageOptions& options, std::vector<LineageNode>& nodes) {
  const std::size_t n = nodes.size();
  // Adjacency in compressed rows, both ways.
  std::vector<std::uint32_t> out_start(n + 1, 0), in_start(n + 1, 0);
  for (const LineageEdge& e : edges) {
    ++out_start[e.from + 1];
    ++in_start[e.to + 1];
  }
  for (std::size_t i = 0; i < n; ++i) {
    out_start[i + 1] += out_start[i];
    in_start[i + 1] += in_start[i];
  }
  std::vector<std::uint32_t> out_adj(edges.size()), in_adj(edges.size());
  {
    std::vector<std::uint32_t> o(out_start.begin(), out_start.end() - 1),
        i(in_start.begin(), in_start.end() - 1);
    for (const LineageEdge& e : edges) {
      out_adj[o[e.from]++] = static_cast<std::uint32_t>(e.to);
      in_adj[i[e.to]++] = static_cast<std::uint32_t>(e.from);
    }
  }
  constexpr int kUnseen = std::numeric_limits<int>::min();
  std::vector<int> depth(n, kUnseen);
  depth[root_index] = 0;
  for (int sign : {-1, 1}) {
    if ((sign < 0 && !options.up) || (sign > 0 && !options.down)) continue;
    const auto& start = sign < 0 ? in_start : out_start;
    const auto& adj = sign < 0 ? in_adj : out_adj;
    std::vector<std::uint32_t> frontier{root_index}, more;
    for (int d = 1; !frontier.empty(); ++d) {
      more.clear();
      for (std::uint32_t i : frontier) {
        for (std::uint32_t k = start[i]; k < start[i + 1]; ++k) {
          if (depth[adj[k]] != kUnseen) continue;
          depth[adj[k]] = sign * d;
          more.push_back(adj[k]);
        }
      }
      frontier.swap(more);
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (depth[i] != kUnseen) nodes[i].depth = depth[i];
  }
}

// The graph of NODES (moved out) and EDGES around the target ROOT (its id)
// at ROOT_INDEX, in order. Nodes: the target, then by distance, up before
// down, then by id. Edges: by their ends' ids, then type. Both are sorted as
// 64-bit keys built from each node's rank by id, then moved once.
LineageGraph SortedGraph(const std::string& root, std::uint32_t root_index,
                         std::vector<LineageNode>& nodes,
                         const std::vector<LineageEdge>& edges) {
  const std::size_t n = nodes.size();
  std::vector<std::pair<std::string_view, std::uint32_t>> by_id(n);
  for (std::uint32_t i = 0; i < n; ++i) by_id[i] = {nodes[i].id, i};
  std::sort(by_id.begin(), by_id.end());
  std::vector<std::uint64_t> rank(n), keys(n);
  for (std::uint32_t r = 0; r < n; ++r) rank[by_id[r].second] = r;
  for (std::uint32_t i = 0; i < n; ++i) {
    // not the target (1 bit), distance (22), down rather than up (1), rank
    // (32)
    const int d = nodes[i].depth;
    const std::uint64_t distance = std::min<std::uint64_t>(
        static_cast<std::uint64_t>(std::abs(d)), (1u << 22) - 1);
    keys[i] = std::uint64_t{i != root_index} << 55 | distance << 33 |
              std::uint64_t{d > 0} << 32 | rank[i];
  }
  std::sort(keys.begin(), keys.end());
  std::vector<std::uint32_t> position(n);
  LineageGraph graph;
  graph.root = root;
  graph.nodes.reserve(n);
  for (std::uint64_t k : keys) {
    const std::uint32_t i = by_id[k & 0xffffffffu].second;
    position[i] = static_cast<std::uint32_t>(graph.nodes.size());
    graph.nodes.push_back(std::move(nodes[i]));
  }
  // An edge is unique by its ends and type: its key says all of it.
  std::vector<std::uint64_t> edge_keys;
  edge_keys.reserve(edges.size());
  for (const LineageEdge& e : edges) {
    edge_keys.push_back(rank[e.from] << 34 | rank[e.to] << 2 |
                        static_cast<std::uint64_t>(e.type));
  }
  std::sort(edge_keys.begin(), edge_keys.end());
  graph.edges.reserve(edge_keys.size());
  for (std::uint64_t k : edge_keys) {
    graph.edges.push_back({position[by_id[k >> 34].second],
                           position[by_id[(k >> 2) & 0xffffffffu].second],
                           static_cast<LineageEdge::Type>(k & 3)});
  }
  return graph;
}

}  // namespace

std::string_view ToString(LineageEdge::Type type) {
  switch (type) {
    case LineageEdge::Type::kInput:
      return "input";
    case LineageEdge::Type::kOutput:
      return "output";
    case LineageEdge::Type::kDerivedFrom:
      return "derived_from";
  }
  return "input";
}

Result<LineageGraph> Store::WalkLineage(const LineageTarget& target,
                                        const LineageOptions& options) {
  Impl& m = *impl_;
  // A large walk reads the same pages of the event table and its index again
  // and again: with SQLite's default cache of 2 MiB the walk up from a
  // meta-model over 2,000 task runs (200,000 nodes, bench_lineage) read
  // 612,000 pages and took 3.3 s; with 32 MiB, 1.45 s. The cache only grows
  // as pages are read (a small walk stays small), and goes back to the
  // size it had after the walk.
  CMF_ASSIGN_OR_RETURN(sql::Stmt size, m.Prepare("PRAGMA cache_size"));
  Status st;
  const std::int64_t before = size.Step(&st) ? size.Int(0) : -2000;
  size.Reset();
  CMF_RETURN_IF_ERROR(st);
  CMF_RETURN_IF_ERROR(m.Exec("PRAGMA cache_size=-32768"));
  struct RestoreCache {
    Impl& m;
    std::int64_t size;
    ~RestoreCache() {
      static_cast<void>(
          m.Exec(fmt::format("PRAGMA cache_size={}", size).c_str()));
    }
  } restore{m, before};
  // One read snapshot for the whole walk.
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());

  const bool is_exec = target.type == LineageNode::Type::kExecution;
  CMF_ASSIGN_OR_RETURN(const RowId root, FindRoot(m, target, is_exec));
  StageNames stages;
  CMF_RETURN_IF_ERROR(ReadStageNames(m, stages));

  WalkRows rows;
  const bool limited = options.depth.has_value();
  for (bool up : {true, false}) {
    if ((up && !options.up) || (!up && !options.down)) continue;
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, m.Prepare(WalkQuery(up, limited)));
    s.Bind(1, is_exec ? kExecution : kArtifact).Bind(2, root);
    if (limited) s.Bind(3, std::max(0, *options.depth));
    CMF_RETURN_IF_ERROR(ReadWalkRows(s, up, stages, rows));
  }
  const std::uint32_t root_index =
      rows.index.at(NodeKey(is_exec ? kExecution : kArtifact, root));
  AttachPaths(rows);
  const std::vector<LineageEdge> edges = ResolveEdges(rows);
  SetDepths(edges, root_index, options, rows.nodes);
  return SortedGraph(target.id, root_index, rows.nodes, edges);
}

}  // namespace cmf
