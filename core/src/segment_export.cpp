// Commit and export: the facts of this store as segment lines, and a segment
// made of the facts not committed yet (doc/federation.md). The other way,
// applying segments, is segment_ingest.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "cmf/byte_strings.h"
#include "cmf/data/hash.h"
#include "cmf/segment.h"
#include "store_impl.h"

namespace cmf {
namespace {

using json = nlohmann::json;

json ValueJson(const Value& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

json RealJson(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

// A fact line and where it sorts: by kind first (so that a record comes before
// the facts that name it), then by its text.
struct Line {
  int rank;
  std::string text;
  bool bytes = false;  // holds a {"hex": …} string (cmf/byte_strings.h)
  bool operator<(const Line& o) const {
    return std::tie(rank, text) < std::tie(o.rank, o.text);
  }
};

// The line of the fact J, whose strings that are not UTF-8 become {"hex": …}.
Line MakeLine(int rank, json j) {
  const bool bytes = EncodeByteStrings(j) > 0;
  return {rank, j.dump(), bytes};
}

// The step metrics not yet in a segment (alias x): of each series with a
// pending_from (schema version 8: there is no index of the steps by seg),
// the steps from it on whose seg is NULL, found by ranges of the primary key.
constexpr char kPendingMetric[] =
    "(x.execution_id, x.series_id, x.step) IN (SELECT m.execution_id, "
    "m.series_id, m.step FROM metric_summary p JOIN metric m ON "
    "m.execution_id = p.execution_id AND m.series_id = p.series_id AND "
    "m.step >= p.pending_from WHERE p.pending_from IS NOT NULL AND m.seg IS "
    "NULL)";

// Which facts FactReader reads: an SQL condition per table (aliases as in
// its queries).
struct FactScope {
  bool locations_only = false;
  std::string location, artifacts, execution, state, event, derived, metric,
      property, tag;

  // The facts made here and not yet committed.
  static FactScope Pending(bool locations_only) {
    FactScope f;
    f.locations_only = locations_only;
    f.location = "l.seg IS NULL";
    // Every artifact a fact names goes in as well, committed before or not,
    // so that a segment never depends on another for its artifacts (the most
    // specific kind wins, so repeating one is harmless).
    f.artifacts =
        "id IN (SELECT artifact_id FROM location WHERE seg IS NULL" +
        std::string(
            locations_only
                ? ")"
                : " UNION SELECT id FROM artifact WHERE seg IS NULL "
                  "UNION SELECT artifact_id FROM event WHERE seg IS NULL "
                  "UNION SELECT artifact_id FROM derived_from WHERE seg "
                  "IS NULL UNION SELECT parent_id FROM derived_from "
                  "WHERE seg IS NULL UNION SELECT target_id FROM property "
                  "WHERE seg IS NULL AND target_type = 'artifact' UNION "
                  "SELECT target_id FROM tag WHERE seg IS NULL AND "
                  "target_type = 'artifact')");
    f.execution = "e.seg IS NULL";
    f.state = f.event = f.property = f.tag = "x.seg IS NULL";
    f.metric = kPendingMetric;
    f.derived = "d.seg IS NULL";
    return f;
  }
  // Every fact, or those of the executions in temp.export_exec and the
  // artifacts in temp.export_art.
  static FactScope Export(bool pipeline) {
    FactScope f;
    if (!pipeline) {
      f.location = f.artifacts = f.execution = f.state = f.event = f.derived =
          f.metric = f.property = f.tag = "1";
      return f;
    }
    const std::string execs = "(SELECT id FROM temp.export_exec)";
    const std::string arts = "(SELECT id FROM temp.export_art)";
    f.location = "l.artifact_id IN " + arts;
    f.artifacts = "id IN " + arts;
    f.execution = "e.id IN " + execs;
    f.state = f.event = f.metric = "x.execution_id IN " + execs;
    f.derived = "d.artifact_id IN " + arts + " AND d.parent_id IN " + arts;
    f.property = "((x.target_type = 'execution' AND x.target_id IN " + execs +
                 ") OR (x.target_type = 'artifact' AND x.target_id IN " + arts +
                 ") OR (x.target_type = 'pipeline' AND x.target_id = (SELECT "
                 "pipeline FROM temp.export_pipeline)) OR (x.target_type = "
                 "'stage' AND x.target_id IN (SELECT id FROM stage WHERE "
                 "pipeline_id = (SELECT pipeline FROM temp.export_pipeline))))";
    f.tag = "((x.target_type = 'execution' AND x.target_id IN " + execs +
            ") OR (x.target_type = 'artifact' AND x.target_id IN " + arts +
            "))";
    return f;
  }
};

}  // namespace

// Reads the facts a FactScope selects, as segment lines: one query per kind
// of fact.
class Store::FactReader {
 public:
  FactReader(Impl& m, const FactScope& scope, std::vector<Line>& lines)
      : m_(m), scope_(scope), lines_(lines) {}

  // Appends the facts to the lines.
  Status ReadAll() {
    CMF_RETURN_IF_ERROR(Locations());
    CMF_RETURN_IF_ERROR(Artifacts());
    if (scope_.locations_only) return Status::Ok();
    CMF_RETURN_IF_ERROR(Executions());
    CMF_RETURN_IF_ERROR(States());
    CMF_RETURN_IF_ERROR(Events());
    CMF_RETURN_IF_ERROR(DerivedFrom());
    CMF_RETURN_IF_ERROR(Metrics());
    CMF_RETURN_IF_ERROR(Properties());
    return Tags();
  }

 private:
  // Runs SQL, hands each row to EMIT.
  Status Each(const std::string& sql,
              const std::function<void(sql::Stmt&)>& emit) {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, m_.Prepare(sql));
    Status st;
    while (s.Step(&st)) emit(s);
    s.Reset();
    return st;
  }

  void Add(int rank, json j) { lines_.push_back(MakeLine(rank, std::move(j))); }

  Status Locations() {
    return Each(
        "SELECT a.hash, l.site FROM location l JOIN artifact a ON "
        "a.id = l.artifact_id WHERE " +
            scope_.location,
        [&](sql::Stmt& s) {
          Add(7,
              json{{"t", "location"}, {"hash", s.Text(0)}, {"at", s.Text(1)}});
        });
  }

  // Every artifact a sealed fact names goes in as well, committed before or
  // not, so that a segment never depends on another for its artifacts (the
  // most specific kind wins, so repeating one is harmless).
  Status Artifacts() {
    return Each("SELECT hash, algorithm, kind, size FROM artifact WHERE " +
                    scope_.artifacts,
                [&](sql::Stmt& s) {
                  Add(0, json{{"t", "artifact"},
                              {"hash", s.Text(0)},
                              {"algorithm", s.Text(1)},
                              {"kind", s.Text(2)},
                              {"size", s.Int(3)}});
                });
  }

  // An execution's line holds its parameters.
  Status Executions() {
    std::map<RowId, json> executions;
    CMF_RETURN_IF_ERROR(
        Each("SELECT e.id, e.uuid, p.name, s.name, e.command, e.code_commit, "
             "e.code_dirty, e.code_repo, e.host, e.user, e.site, e.started_ms "
             "FROM execution e JOIN stage s ON s.id = e.stage_id "
             "JOIN pipeline p ON p.id = s.pipeline_id WHERE " +
                 scope_.execution,
             [&](sql::Stmt& s) {
               json e{{"t", "execution"},
                      {"id", s.Text(1)},
                      {"pipeline", s.Text(2)},
                      {"stage", s.Text(3)},
                      {"command", json::parse(s.Text(4), nullptr, false)},
                      {"host", s.Text(8)},
                      {"user", s.Text(9)},
                      {"site", s.Text(10)},
                      {"started_ms", s.Int(11)},
                      {"params", json::object()}};
               if (!s.IsNull(5)) {
                 e["code"] = {{"commit", s.Text(5)},
                              {"dirty", s.Int(6) != 0},
                              {"repo", s.Text(7)}};
               } else {
                 e["code"] = nullptr;
               }
               executions.emplace(s.Int(0), std::move(e));
             }));
    if (!executions.empty()) {
      CMF_RETURN_IF_ERROR(
          Each("SELECT x.execution_id, x.name, x.type, x.value FROM param x "
               "JOIN execution e ON e.id = x.execution_id WHERE " +
                   scope_.execution,
               [&](sql::Stmt& s) {
                 auto it = executions.find(s.Int(0));
                 if (it == executions.end()) return;
                 it->second["params"][s.Text(1)] = {
                     {"type", s.Text(2)},
                     {"value", ValueJson(s.ValueAs(3, s.Text(2)))}};
               }));
    }
    for (auto& [id, e] : executions) Add(1, e);
    return Status::Ok();
  }

  Status States() {
    return Each(
        "SELECT e.uuid, x.hlc, x.site, x.status, x.exit_code, x.ended_ms, "
        "x.message FROM execution_state x JOIN execution e ON "
        "e.id = x.execution_id WHERE " +
            scope_.state,
        [&](sql::Stmt& s) {
          json j{{"t", "state"},        {"execution", s.Text(0)},
                 {"hlc", s.Int(1)},     {"site", s.Text(2)},
                 {"status", s.Text(3)}, {"message", s.Text(6)}};
          j["exit_code"] = s.IsNull(4) ? json(nullptr) : json(s.Int(4));
          j["ended_ms"] = s.IsNull(5) ? json(nullptr) : json(s.Int(5));
          Add(2, std::move(j));
        });
  }

  Status Events() {
    return Each(
        "SELECT e.uuid, x.direction, x.position, a.hash, x.path FROM event x "
        "JOIN execution e ON e.id = x.execution_id JOIN artifact a ON "
        "a.id = x.artifact_id WHERE " +
            scope_.event,
        [&](sql::Stmt& s) {
          Add(3, json{{"t", "event"},
                      {"execution", s.Text(0)},
                      {"direction", s.Int(1) == 0 ? "input" : "output"},
                      {"position", s.Int(2)},
                      {"artifact", s.Text(3)},
                      {"path", s.Text(4)}});
        });
  }

  Status DerivedFrom() {
    return Each(
        "SELECT c.hash, p.hash FROM derived_from d JOIN artifact c ON "
        "c.id = d.artifact_id JOIN artifact p ON p.id = d.parent_id "
        "WHERE " +
            scope_.derived,
        [&](sql::Stmt& s) {
          Add(4, json{{"t", "derived_from"},
                      {"artifact", s.Text(0)},
                      {"parent", s.Text(1)}});
        });
  }

  // One line per series of an execution, steps ascending.
  Status Metrics() {
    json current;
    std::pair<std::string, std::string> key;
    auto flush = [&] {
      if (!current.is_null()) Add(5, current);
      current = nullptr;
    };
    CMF_RETURN_IF_ERROR(
        Each("SELECT e.uuid, r.name, x.step, x.value FROM metric x "
             "JOIN execution e ON e.id = x.execution_id JOIN series r ON "
             "r.id = x.series_id WHERE " +
                 scope_.metric + " ORDER BY e.uuid, r.name, x.step",
             [&](sql::Stmt& s) {
               std::pair<std::string, std::string> k{s.Text(0), s.Text(1)};
               if (current.is_null() || k != key) {
                 flush();
                 key = k;
                 current = {{"t", "metrics"},
                            {"execution", k.first},
                            {"series", k.second},
                            {"steps", json::array()},
                            {"values", json::array()}};
               }
               current["steps"].push_back(s.Int(2));
               current["values"].push_back(RealJson(s.Real(3)));
             }));
    flush();
    return Status::Ok();
  }

  Status Properties() {
    return Each(
        "SELECT x.target_type, CASE x.target_type "
        "WHEN 'pipeline' THEN (SELECT name FROM pipeline WHERE id = "
        "x.target_id) "
        "WHEN 'stage' THEN (SELECT p.name || '/' || s.name FROM stage s JOIN "
        "pipeline p ON p.id = s.pipeline_id WHERE s.id = x.target_id) "
        "WHEN 'execution' THEN (SELECT uuid FROM execution WHERE id = "
        "x.target_id) "
        "ELSE (SELECT hash FROM artifact WHERE id = x.target_id) END, "
        "x.name, x.hlc, x.site, x.type, x.value FROM property x "
        "WHERE " +
            scope_.property,
        [&](sql::Stmt& s) {
          json j{{"t", "property"},     {"target_type", s.Text(0)},
                 {"target", s.Text(1)}, {"name", s.Text(2)},
                 {"hlc", s.Int(3)},     {"site", s.Text(4)},
                 {"type", s.Text(5)}};
          j["value"] = ValueJson(s.ValueAs(6, s.Text(5)));
          Add(6, std::move(j));
        });
  }

  Status Tags() {
    return Each(
        "SELECT x.target_type, CASE x.target_type WHEN 'execution' THEN "
        "(SELECT uuid FROM execution WHERE id = x.target_id) ELSE (SELECT "
        "hash FROM artifact WHERE id = x.target_id) END, x.name, x.hlc, "
        "x.site, x.value FROM tag x WHERE " +
            scope_.tag,
        [&](sql::Stmt& s) {
          json j{{"t", "tag"},          {"target_type", s.Text(0)},
                 {"target", s.Text(1)}, {"name", s.Text(2)},
                 {"hlc", s.Int(3)},     {"site", s.Text(4)}};
          j["value"] = s.IsNull(5) ? json(nullptr) : json(s.Text(5));
          Add(8, std::move(j));
        });
  }

  Impl& m_;
  const FactScope& scope_;
  std::vector<Line>& lines_;
};

Result<Store::Pending> Store::CountPending() {
  Impl& m = *impl_;
  Pending total;
  for (const char* table :
       {"execution", "execution_state", "artifact", "event", "derived_from",
        "metric", "property", "location", "tag"}) {
    const bool metric = std::string_view(table) == "metric";
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(fmt::format("SELECT count(*) FROM {} x WHERE {}", table,
                              metric ? kPendingMetric : "x.seg IS NULL")));
    Status st;
    if (s.Step(&st)) {
      total.facts += s.Int(0);
      if (std::string_view(table) == "execution") total.executions = s.Int(0);
    }
    s.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  return total;
}

Result<Store::Segment> Store::CommitPending(
    const CommitOptions& options,
    const std::function<Status(const Segment&)>& seal) {
  Impl& m = *impl_;
  Segment segment;
  Status done = m.InWrite([&]() -> Status {
    std::vector<Line> lines;
    Status st;
    // Run SQL, hand each row to EMIT.
    auto each = [&](const std::string& sql,
                    const std::function<void(sql::Stmt&)>& emit) -> Status {
      CMF_ASSIGN_OR_RETURN(sql::Stmt s, m.Prepare(sql));
      while (s.Step(&st)) emit(s);
      s.Reset();
      return st;
    };

    if (options.held && !options.locations_only) {
      std::vector<std::string> fresh;
      CMF_RETURN_IF_ERROR(
          each("SELECT hash FROM artifact WHERE seg IS NULL",
               [&](sql::Stmt& s) { fresh.push_back(s.Text(0)); }));
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt add,
          m.Prepare("INSERT OR IGNORE INTO location(artifact_id, site) "
                    "SELECT id, ?2 FROM artifact WHERE hash = ?1"));
      for (const std::string& hash : fresh) {
        if (!options.held(hash)) continue;
        CMF_RETURN_IF_ERROR(add.Bind(1, hash).Bind(2, m.options.site).Run());
      }
    }

    CMF_RETURN_IF_ERROR(
        FactReader(m, FactScope::Pending(options.locations_only), lines)
            .ReadAll());
    if (lines.empty()) return Status::Ok();
    std::sort(lines.begin(), lines.end());

    CMF_ASSIGN_OR_RETURN(sql::Stmt get_seq,
                         m.Prepare("SELECT value FROM meta WHERE key = 'seq'"));
    std::int64_t seq = get_seq.Step(&st) ? get_seq.Int(0) + 1 : 1;
    get_seq.Reset();
    CMF_RETURN_IF_ERROR(st);

    const bool bytes = std::any_of(lines.begin(), lines.end(),
                                   [](const Line& l) { return l.bytes; });
    std::string text =
        SegmentHeader{m.options.site, seq,
                      bytes ? kSegmentVersion : kSegmentVersionPlain}
            .Line() +
        "\n";
    for (const Line& line : lines) (text += line.text) += '\n';
    segment.text = std::move(text);
    segment.hash = data::HashBytes(segment.text);
    segment.facts = static_cast<std::int64_t>(lines.size());
    segment.seq = seq;
    CMF_RETURN_IF_ERROR(seal(segment));

    CMF_ASSIGN_OR_RETURN(
        sql::Stmt put_seq,
        m.Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('seq', ?1)"));
    CMF_RETURN_IF_ERROR(put_seq.Bind(1, seq).Run());
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt ins,
        m.Prepare(
            "INSERT OR IGNORE INTO segment(hash, site, seq, local, facts, "
            "recorded_ms) VALUES(?1, ?2, ?3, 1, ?4, ?5)"));
    CMF_RETURN_IF_ERROR(ins.Bind(1, segment.hash)
                            .Bind(2, m.options.site)
                            .Bind(3, seq)
                            .Bind(4, segment.facts)
                            .Bind(5, m.options.clock->NowMs())
                            .Run());
    CMF_ASSIGN_OR_RETURN(sql::Stmt id,
                         m.Prepare("SELECT id FROM segment WHERE hash = ?1"));
    std::int64_t seg = id.Bind(1, segment.hash).Step(&st) ? id.Int(0) : 0;
    id.Reset();
    CMF_RETURN_IF_ERROR(st);
    std::vector<const char*> tables = {"location"};
    if (!options.locations_only) {
      tables.insert(tables.end(),
                    {"artifact", "execution", "execution_state", "event",
                     "derived_from", "metric", "property", "tag"});
    }
    for (const char* table : tables) {
      const bool metric = std::string_view(table) == "metric";
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt mark,
          m.Prepare(fmt::format("UPDATE {} AS x SET seg = ?1 WHERE {}", table,
                                metric ? kPendingMetric : "x.seg IS NULL")));
      CMF_RETURN_IF_ERROR(mark.Bind(1, seg).Run());
    }
    if (!options.locations_only) {
      CMF_RETURN_IF_ERROR(m.Exec(
          "UPDATE metric_summary SET pending_from = NULL WHERE pending_from IS "
          "NOT NULL"));
    }
    return Status::Ok();
  });
  if (!done.ok()) return done;
  return segment;
}

Result<std::vector<std::string>> Store::ExportFacts(
    const std::optional<std::string>& pipeline, bool* byte_strings) {
  Impl& m = *impl_;
  // One snapshot for the whole export.
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());
  if (pipeline) {
    CMF_RETURN_IF_ERROR(m.Exec(
        "CREATE TEMP TABLE IF NOT EXISTS export_exec(id INTEGER PRIMARY KEY);"
        "CREATE TEMP TABLE IF NOT EXISTS export_art(id INTEGER PRIMARY KEY);"
        "CREATE TEMP TABLE IF NOT EXISTS export_pipeline(pipeline INTEGER);"
        "DELETE FROM temp.export_exec; DELETE FROM temp.export_art;"
        "DELETE FROM temp.export_pipeline;"));
    CMF_ASSIGN_OR_RETURN(sql::Stmt p,
                         m.Prepare("INSERT INTO temp.export_pipeline "
                                   "SELECT id FROM pipeline WHERE name = ?1"));
    CMF_RETURN_IF_ERROR(p.Bind(1, *pipeline).Run());
    if (sqlite3_changes(m.db) == 0) {
      return Status::NotFound("no pipeline '" + *pipeline + "'");
    }
    CMF_RETURN_IF_ERROR(m.Exec(
        "INSERT INTO temp.export_exec SELECT e.id FROM execution e JOIN stage "
        "s "
        "ON s.id = e.stage_id WHERE s.pipeline_id = (SELECT pipeline FROM "
        "temp.export_pipeline);"
        "INSERT OR IGNORE INTO temp.export_art SELECT artifact_id FROM event "
        "WHERE execution_id IN (SELECT id FROM temp.export_exec);"
        "INSERT OR IGNORE INTO temp.export_art SELECT parent_id FROM "
        "derived_from WHERE artifact_id IN (SELECT id FROM temp.export_art);"));
  }
  std::vector<Line> lines;
  CMF_RETURN_IF_ERROR(
      FactReader(m, FactScope::Export(pipeline.has_value()), lines).ReadAll());
  std::sort(lines.begin(), lines.end());
  std::vector<std::string> out;
  out.reserve(lines.size());
  if (byte_strings) *byte_strings = false;
  for (Line& l : lines) {
    if (byte_strings && l.bytes) *byte_strings = true;
    out.push_back(std::move(l.text));
  }
  return out;
}

}  // namespace cmf
