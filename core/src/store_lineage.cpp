// Lineage walks: one recursive query for the nodes, then a fixed number of
// queries for their edges and details.
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <string_view>
#include <unordered_map>

#include "cmf/lineage.h"
#include "store_impl.h"

namespace cmf {
namespace {

// Node keys in SQL: (t, id) with t = 0 for an artifact row, 1 for an
// execution row.
constexpr int kArtifact = 0;
constexpr int kExecution = 1;

// The steps of a walk, as the recursive parts of a query over the CTE named
// `walk` (columns t, id, depth). UP follows edges backwards.
std::string Steps(bool up, bool limited) {
  const std::string more = limited ? " AND w.depth < ?3" : "";
  const std::string next = limited ? ", w.depth + 1" : "";
  if (up) {
    return
        // an artifact comes from the executions that made it ...
        "SELECT 1, x.execution_id" + next +
        " FROM walk w JOIN event x ON x.artifact_id = w.id AND x.direction = 1 "
        "WHERE w.t = 0" +
        more +
        // ... and from the artifacts it was derived from
        " UNION SELECT 0, d.parent_id" + next +
        " FROM walk w JOIN derived_from d ON d.artifact_id = w.id WHERE w.t = "
        "0" +
        more +
        // an execution comes from its inputs
        " UNION SELECT 0, x.artifact_id" + next +
        " FROM walk w JOIN event x ON x.execution_id = w.id AND x.direction = "
        "0 "
        "WHERE w.t = 1" +
        more;
  }
  return
      // an artifact is used by executions ...
      "SELECT 1, x.execution_id" + next +
      " FROM walk w JOIN event x ON x.artifact_id = w.id AND x.direction = 0 "
      "WHERE w.t = 0" +
      more +
      // ... and artifacts are derived from it
      " UNION SELECT 0, d.artifact_id" + next +
      " FROM walk w JOIN derived_from d ON d.parent_id = w.id WHERE w.t = 0" +
      more +
      // an execution makes its outputs
      " UNION SELECT 0, x.artifact_id" + next +
      " FROM walk w JOIN event x ON x.execution_id = w.id AND x.direction = 1 "
      "WHERE w.t = 1" +
      more;
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
  // One read snapshot for the whole walk.
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());

  const bool is_exec = target.type == LineageNode::Type::kExecution;
  RowId root = 0;
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt q,
        m.Prepare(is_exec ? "SELECT id FROM execution WHERE uuid = ?1"
                          : "SELECT id FROM artifact WHERE hash = ?1"));
    Status st;
    bool found = q.Bind(1, target.id).Step(&st);
    root = found ? q.Int(0) : 0;
    q.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (!found) {
      return Status::NotFound(fmt::format(
          "no {} '{}'", is_exec ? "execution" : "artifact", target.id));
    }
  }

  CMF_RETURN_IF_ERROR(m.Exec(
      "CREATE TEMP TABLE IF NOT EXISTS lineage_node(t INTEGER, id INTEGER, "
      "depth INTEGER, PRIMARY KEY (t, id)) WITHOUT ROWID"));
  CMF_RETURN_IF_ERROR(m.Exec("DELETE FROM temp.lineage_node"));
  const bool limited = options.depth.has_value();
  for (bool up : {true, false}) {
    if ((up && !options.up) || (!up && !options.down)) continue;
    // Without a depth limit a row is a node, so UNION visits each node once
    // (and a cycle ends); with one, a row carries its depth, bounded by it.
    const std::string sql =
        limited
            ? "WITH RECURSIVE walk(t, id, depth) AS (SELECT ?1, ?2, 0 UNION " +
                  Steps(up, true) +
                  ") INSERT OR IGNORE INTO temp.lineage_node(t, id, depth) "
                  "SELECT t, id, 0 FROM walk"
            : "WITH RECURSIVE walk(t, id) AS (SELECT ?1, ?2 UNION " +
                  Steps(up, false) +
                  ") INSERT OR IGNORE INTO temp.lineage_node(t, id, depth) "
                  "SELECT t, id, 0 FROM walk";
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, m.Prepare(sql));
    s.Bind(1, is_exec ? kExecution : kArtifact).Bind(2, root);
    if (limited) s.Bind(3, std::max(0, *options.depth));
    CMF_RETURN_IF_ERROR(s.Run());
  }
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare("INSERT OR IGNORE INTO temp.lineage_node(t, id, depth) "
                  "VALUES(?1, ?2, 0)"));
    CMF_RETURN_IF_ERROR(
        s.Bind(1, is_exec ? kExecution : kArtifact).Bind(2, root).Run());
  }

  LineageGraph graph;
  graph.root = target.id;
  std::unordered_map<RowId, std::size_t> artifacts, executions;
  Status st;
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(
            "SELECT n.depth, a.id, a.hash, a.kind FROM temp.lineage_node n "
            "CROSS JOIN artifact a ON a.id = n.id WHERE n.t = 0"));
    while (s.Step(&st)) {
      LineageNode node;
      node.type = LineageNode::Type::kArtifact;
      node.depth = static_cast<int>(s.Int(0));
      node.id = s.Text(2);
      node.kind = ParseArtifactKind(s.Text(3)).value_or(ArtifactKind::kFile);
      artifacts.emplace(s.Int(1), graph.nodes.size());
      graph.nodes.push_back(std::move(node));
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(
            "SELECT n.depth, e.id, e.uuid, p.name, g.name, e.started_ms, "
            "(SELECT x.status FROM execution_state x WHERE x.execution_id = "
            "e.id "
            "ORDER BY x.hlc DESC, x.site DESC LIMIT 1) "
            "FROM temp.lineage_node n CROSS JOIN execution e ON e.id = n.id "
            "JOIN stage g ON g.id = e.stage_id JOIN pipeline p ON p.id = "
            "g.pipeline_id "
            "WHERE n.t = 1"));
    while (s.Step(&st)) {
      LineageNode node;
      node.type = LineageNode::Type::kExecution;
      node.depth = static_cast<int>(s.Int(0));
      node.id = s.Text(2);
      node.pipeline = s.Text(3);
      node.stage = s.Text(4);
      node.started_ms = s.Int(5);
      node.status = ParseExecStatus(s.Text(6)).value_or(ExecStatus::kRunning);
      executions.emplace(s.Int(1), graph.nodes.size());
      graph.nodes.push_back(std::move(node));
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  {  // the paths each artifact was seen at
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(
            "SELECT x.artifact_id, x.path FROM temp.lineage_node n "
            "CROSS JOIN event x INDEXED BY event_by_artifact ON "
            "x.artifact_id = n.id WHERE n.t = 0 "
            "UNION ALL SELECT k.artifact_id, k.path FROM temp.lineage_node n "
            "CROSS JOIN tracked k ON k.artifact_id = n.id WHERE n.t = 0"));
    while (s.Step(&st)) {
      auto it = artifacts.find(s.Int(0));
      if (it != artifacts.end())
        graph.nodes[it->second].paths.push_back(s.Text(1));
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  {  // events between nodes of the walk
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(
            "SELECT x.execution_id, x.direction, x.artifact_id FROM "
            "temp.lineage_node n CROSS JOIN event x ON x.execution_id = n.id "
            "WHERE n.t = 1 AND EXISTS (SELECT 1 FROM temp.lineage_node o "
            "WHERE o.t = 0 AND o.id = x.artifact_id)"));
    while (s.Step(&st)) {
      const std::string& e = graph.nodes[executions.at(s.Int(0))].id;
      const std::string& a = graph.nodes[artifacts.at(s.Int(2))].id;
      if (s.Int(1) == 0) {
        graph.edges.push_back({a, e, LineageEdge::Type::kInput});
      } else {
        graph.edges.push_back({e, a, LineageEdge::Type::kOutput});
      }
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(
            "SELECT d.parent_id, d.artifact_id FROM temp.lineage_node n "
            "CROSS JOIN derived_from d ON d.artifact_id = n.id WHERE n.t = 0 "
            "AND EXISTS (SELECT 1 FROM temp.lineage_node o WHERE o.t = 0 AND "
            "o.id = d.parent_id)"));
    while (s.Step(&st)) {
      graph.edges.push_back({graph.nodes[artifacts.at(s.Int(0))].id,
                             graph.nodes[artifacts.at(s.Int(1))].id,
                             LineageEdge::Type::kDerivedFrom});
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  // Depths: the shortest number of edges from the target, walking the same
  // way as the query (up: against the edges, negative; down: along them), by
  // node index.
  {
    std::unordered_map<std::string_view, std::size_t> index;
    index.reserve(graph.nodes.size());
    for (std::size_t i = 0; i < graph.nodes.size(); ++i)
      index.emplace(graph.nodes[i].id, i);
    std::vector<std::vector<std::size_t>> parents(graph.nodes.size()),
        children(graph.nodes.size());
    for (const auto& e : graph.edges) {
      std::size_t from = index.at(e.from), to = index.at(e.to);
      parents[to].push_back(from);
      children[from].push_back(to);
    }
    constexpr int kUnseen = std::numeric_limits<int>::min();
    std::vector<int> depth(graph.nodes.size(), kUnseen);
    const std::size_t root_index = index.at(graph.root);
    depth[root_index] = 0;
    for (int sign : {-1, 1}) {
      if ((sign < 0 && !options.up) || (sign > 0 && !options.down)) continue;
      const auto& next = sign < 0 ? parents : children;
      std::vector<std::size_t> frontier{root_index};
      for (int d = 1; !frontier.empty(); ++d) {
        std::vector<std::size_t> more;
        for (std::size_t i : frontier) {
          for (std::size_t j : next[i]) {
            if (depth[j] != kUnseen) continue;
            depth[j] = sign * d;
            more.push_back(j);
          }
        }
        frontier = std::move(more);
      }
    }
    for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
      if (depth[i] != kUnseen) graph.nodes[i].depth = depth[i];
    }
  }
  for (auto& node : graph.nodes) {
    std::sort(node.paths.begin(), node.paths.end());
    node.paths.erase(std::unique(node.paths.begin(), node.paths.end()),
                     node.paths.end());
  }
  std::sort(graph.nodes.begin(), graph.nodes.end(),
            [&](const auto& a, const auto& b) {
              bool ra = a.id == graph.root, rb = b.id == graph.root;
              if (ra != rb) return ra;
              if (std::abs(a.depth) != std::abs(b.depth))
                return std::abs(a.depth) < std::abs(b.depth);
              if (a.depth != b.depth) return a.depth < b.depth;
              return a.id < b.id;
            });
  std::sort(
      graph.edges.begin(), graph.edges.end(), [](const auto& a, const auto& b) {
        return std::tie(a.from, a.to, a.type) < std::tie(b.from, b.to, b.type);
      });
  return graph;
}

}  // namespace cmf
