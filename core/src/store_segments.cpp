// Commit and ingest: turning uncommitted facts into a segment, and applying
// the segments of other sites (doc/federation.md).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
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

// A typed value back from JSON with its type name. InvalidArgument when the
// two disagree.
Result<Value> ValueFromJson(const json& j, std::string_view type) {
  if (type == "int" && j.is_number_integer())
    return Value(j.get<std::int64_t>());
  if (type == "real" && j.is_number()) return Value(j.get<double>());
  if (type == "real" && j.is_null()) return Value(std::nan(""));
  if (type == "bool" && j.is_boolean()) return Value(j.get<bool>());
  if (type == "string") {
    if (auto bytes = DecodeByteString(j)) return Value(std::move(*bytes));
  }
  return Status::InvalidArgument(
      fmt::format("a value of type '{}' cannot be {}", type, j.dump()));
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

// A string member: plain text, or bytes written as {"hex": …}.
std::string Get(const json& j, const char* key) {
  auto it = j.find(key);
  std::optional<std::string> bytes;
  if (it != j.end()) bytes = DecodeByteString(*it);
  if (!bytes) {
    throw std::invalid_argument(std::string("no string '") + key + "'");
  }
  return std::move(*bytes);
}

std::int64_t GetInt(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) {
    throw std::invalid_argument(std::string("no integer '") + key + "'");
  }
  return it->get<std::int64_t>();
}

std::optional<std::int64_t> GetOptInt(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) {
    throw std::invalid_argument(std::string("no integer '") + key + "'");
  }
  return it->get<std::int64_t>();
}

// Which facts CollectFacts reads: an SQL condition per table (aliases as in
// its queries).
struct FactScope {
  bool locations_only = false;
  std::string location, artifacts, execution, state, event, derived, metric,
      property;

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
                  "WHERE seg IS NULL AND target_type = 'artifact')");
    f.execution = "e.seg IS NULL";
    f.state = f.event = f.metric = f.property = "x.seg IS NULL";
    f.derived = "d.seg IS NULL";
    return f;
  }
  // Every fact, or those of the executions in temp.export_exec and the
  // artifacts in temp.export_art.
  static FactScope Export(bool pipeline) {
    FactScope f;
    if (!pipeline) {
      f.location = f.artifacts = f.execution = f.state = f.event = f.derived =
          f.metric = f.property = "1";
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
    return f;
  }
};

// Appends to LINES the facts SCOPE selects, as segment lines. (A template, so
// that it takes Store's private state without naming it.)
template <typename StoreState>
Status CollectFacts(StoreState& m, const FactScope& scope,
                    std::vector<Line>& lines) {
  Status st;
  // Run SQL, hand each row to EMIT.
  auto each = [&](const std::string& sql,
                  const std::function<void(sql::Stmt&)>& emit) -> Status {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s, m.Prepare(sql));
    while (s.Step(&st)) emit(s);
    s.Reset();
    return st;
  };
  CMF_RETURN_IF_ERROR(each(
      "SELECT a.hash, l.site FROM location l JOIN artifact a ON "
      "a.id = l.artifact_id WHERE " +
          scope.location,
      [&](sql::Stmt& s) {
        lines.push_back(MakeLine(7, json{{"t", "location"}, {"hash", s.Text(0)}, {"at", s.Text(1)}}
                    ));
      }));
  // Every artifact a sealed fact names goes in as well, committed before or
  // not, so that a segment never depends on another for its artifacts (the
  // most specific kind wins, so repeating one is harmless).
  const std::string artifacts_sql =
      "SELECT hash, algorithm, kind, size FROM artifact WHERE " +
      scope.artifacts;
  CMF_RETURN_IF_ERROR(each(artifacts_sql, [&](sql::Stmt& s) {
    lines.push_back(MakeLine(0, json{{"t", "artifact"},
                             {"hash", s.Text(0)},
                             {"algorithm", s.Text(1)},
                             {"kind", s.Text(2)},
                             {"size", s.Int(3)}}
                            ));
  }));
  if (!scope.locations_only) {
    std::map<RowId, json> executions;
    CMF_RETURN_IF_ERROR(
        each("SELECT e.id, e.uuid, p.name, s.name, e.command, e.code_commit, "
             "e.code_dirty, e.code_repo, e.host, e.user, e.site, e.started_ms "
             "FROM execution e JOIN stage s ON s.id = e.stage_id "
             "JOIN pipeline p ON p.id = s.pipeline_id WHERE " +
                 scope.execution,
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
          each("SELECT x.execution_id, x.name, x.type, x.value FROM param x "
               "JOIN execution e ON e.id = x.execution_id WHERE " +
                   scope.execution,
               [&](sql::Stmt& s) {
                 auto it = executions.find(s.Int(0));
                 if (it == executions.end()) return;
                 it->second["params"][s.Text(1)] = {
                     {"type", s.Text(2)},
                     {"value", ValueJson(s.ValueAs(3, s.Text(2)))}};
               }));
    }
    for (auto& [id, e] : executions) lines.push_back(MakeLine(1, e));
    CMF_RETURN_IF_ERROR(
        each("SELECT e.uuid, x.hlc, x.site, x.status, x.exit_code, x.ended_ms, "
             "x.message FROM execution_state x JOIN execution e ON "
             "e.id = x.execution_id WHERE " +
                 scope.state,
             [&](sql::Stmt& s) {
               json j{{"t", "state"},        {"execution", s.Text(0)},
                      {"hlc", s.Int(1)},     {"site", s.Text(2)},
                      {"status", s.Text(3)}, {"message", s.Text(6)}};
               j["exit_code"] = s.IsNull(4) ? json(nullptr) : json(s.Int(4));
               j["ended_ms"] = s.IsNull(5) ? json(nullptr) : json(s.Int(5));
               lines.push_back(MakeLine(2, j));
             }));
    CMF_RETURN_IF_ERROR(each(
        "SELECT e.uuid, x.direction, x.position, a.hash, x.path FROM event x "
        "JOIN execution e ON e.id = x.execution_id JOIN artifact a ON "
        "a.id = x.artifact_id WHERE " +
            scope.event,
        [&](sql::Stmt& s) {
          lines.push_back(MakeLine(3, json{{"t", "event"},
                       {"execution", s.Text(0)},
                       {"direction", s.Int(1) == 0 ? "input" : "output"},
                       {"position", s.Int(2)},
                       {"artifact", s.Text(3)},
                       {"path", s.Text(4)}}
                      ));
        }));
    CMF_RETURN_IF_ERROR(
        each("SELECT c.hash, p.hash FROM derived_from d JOIN artifact c ON "
             "c.id = d.artifact_id JOIN artifact p ON p.id = d.parent_id "
             "WHERE " +
                 scope.derived,
             [&](sql::Stmt& s) {
               lines.push_back(MakeLine(4, json{{"t", "derived_from"},
                                        {"artifact", s.Text(0)},
                                        {"parent", s.Text(1)}}
                                       ));
             }));
    {  // one line per series of an execution, steps ascending
      json current;
      std::pair<std::string, std::string> key;
      auto flush = [&] {
        if (!current.is_null()) lines.push_back(MakeLine(5, current));
        current = nullptr;
      };
      CMF_RETURN_IF_ERROR(
          each("SELECT e.uuid, r.name, x.step, x.value FROM metric x "
               "JOIN execution e ON e.id = x.execution_id JOIN series r ON "
               "r.id = x.series_id WHERE " +
                   scope.metric +
                   " "
                   "ORDER BY e.uuid, r.name, x.step",
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
    }
    CMF_RETURN_IF_ERROR(each(
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
            scope.property,
        [&](sql::Stmt& s) {
          json j{{"t", "property"},     {"target_type", s.Text(0)},
                 {"target", s.Text(1)}, {"name", s.Text(2)},
                 {"hlc", s.Int(3)},     {"site", s.Text(4)},
                 {"type", s.Text(5)}};
          j["value"] = ValueJson(s.ValueAs(6, s.Text(5)));
          lines.push_back(MakeLine(6, j));
        }));
  }
  return Status::Ok();
}

}  // namespace

Result<Store::Pending> Store::CountPending() {
  Impl& m = *impl_;
  Pending total;
  for (const char* table : {"execution", "execution_state", "artifact", "event",
                            "derived_from", "metric", "property", "location"}) {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s, m.Prepare(fmt::format(
                         "SELECT count(*) FROM {} WHERE seg IS NULL", table)));
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
        CollectFacts(m, FactScope::Pending(options.locations_only), lines));
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
                     "derived_from", "metric", "property"});
    }
    for (const char* table : tables) {
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt mark,
          m.Prepare(
              fmt::format("UPDATE {} SET seg = ?1 WHERE seg IS NULL", table)));
      CMF_RETURN_IF_ERROR(mark.Bind(1, seg).Run());
    }
    return Status::Ok();
  });
  if (!done.ok()) return done;
  return segment;
}

Result<std::string> Store::IngestedTip() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT value FROM meta WHERE key = 'ingested'"));
  Status st;
  std::string tip = s.Step(&st) ? s.Text(0) : "";
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return tip;
}

Status Store::SetIngestedTip(const std::string& commit) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('ingested', ?1)"));
    return s.Bind(1, commit).Run();
  });
}

Result<std::vector<ArtifactRef>> Store::Wanted() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT a.hash, a.size, a.kind FROM wanted w JOIN artifact a "
          "ON a.id = w.artifact_id ORDER BY a.hash"));
  std::vector<ArtifactRef> out;
  Status st;
  while (s.Step(&st)) {
    out.push_back({"", s.Text(0), static_cast<std::uint64_t>(s.Int(1)),
                   ParseArtifactKind(s.Text(2)).value_or(ArtifactKind::kFile)});
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Status Store::DropWanted(const std::string& hash) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s, m.Prepare("DELETE FROM wanted WHERE artifact_id = "
                               "(SELECT id FROM artifact WHERE hash = ?1)"));
    return s.Bind(1, hash).Run();
  });
}

Status Store::BeginBatch() {
  Impl& m = *impl_;
  if (m.options.read_only) {
    return Status::InvalidArgument(m.Where() + " was opened for reading only");
  }
  if (m.in_batch) return Status::InvalidArgument("a batch is open already");
  int rc = sqlite3_exec(m.db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sql::Error(m.db, rc, m.Where());
  m.in_batch = true;
  return Status::Ok();
}

Status Store::EndBatch(bool commit) {
  Impl& m = *impl_;
  if (!m.in_batch) return Status::Ok();
  m.in_batch = false;
  if (commit) {
    int rc = sqlite3_exec(m.db, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return Status::Ok();
    Status st = sql::Error(m.db, rc, m.Where());
    sqlite3_exec(m.db, "ROLLBACK", nullptr, nullptr, nullptr);
    m.series_ids.clear();
    return st;
  }
  sqlite3_exec(m.db, "ROLLBACK", nullptr, nullptr, nullptr);
  m.series_ids.clear();
  return Status::Ok();
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
      CollectFacts(m, FactScope::Export(pipeline.has_value()), lines));
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

Result<bool> Store::HasSegment(const std::string& hash) {
  CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                       impl_->Prepare("SELECT 1 FROM segment WHERE hash = ?1"));
  Status st;
  bool found = s.Bind(1, hash).Step(&st);
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return found;
}

Result<bool> Store::IngestSegment(const std::string& hash,
                                  std::string_view text) {
  return ApplyFacts(hash, text, /*as_pending=*/false);
}

Status Store::ImportFacts(std::string_view text) {
  return ApplyFacts("", text, /*as_pending=*/true).status();
}

Result<bool> Store::ApplyFacts(const std::string& hash, std::string_view text,
                               bool as_pending) {
  Impl& m = *impl_;
  bool applied = false;
  const std::string where = as_pending ? std::string("the imported facts")
                                       : "segment " + hash.substr(0, 12);
  Status done = m.InWrite([&]() -> Status {
    if (!as_pending) {
      CMF_ASSIGN_OR_RETURN(bool known, HasSegment(hash));
      if (known) return Status::Ok();
    }
    auto newline = text.find('\n');
    CMF_ASSIGN_OR_RETURN(SegmentHeader header,
                         SegmentHeader::Parse(text.substr(0, newline)));
    Status st;
    // Imported facts are this site's to commit (seg null); a segment's are
    // committed already, in it.
    std::optional<std::int64_t> seg;
    if (!as_pending) {
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt ins,
          m.Prepare("INSERT INTO segment(hash, site, seq, local, facts, "
                    "recorded_ms) VALUES(?1, ?2, ?3, 0, 0, ?4)"));
      CMF_RETURN_IF_ERROR(ins.Bind(1, hash)
                              .Bind(2, header.site)
                              .Bind(3, header.seq)
                              .Bind(4, m.options.clock->NowMs())
                              .Run());
      seg = sqlite3_last_insert_rowid(m.db);
    }
    std::int64_t max_hlc = 0;
    std::int64_t facts = 0;

    // Runs SQL with BIND (a fact already known changes nothing).
    auto apply = [&](const std::string& sql,
                     const std::function<void(sql::Stmt&)>& bind) -> Status {
      CMF_ASSIGN_OR_RETURN(sql::Stmt s, m.Prepare(sql));
      bind(s);
      return s.Run();
    };
    // The row of the record KEY names (TABLE's COLUMN), which an earlier
    // line or segment must have brought.
    auto row_of = [&](const char* table, const char* column, const char* what,
                      const std::string& key) -> Result<RowId> {
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt q, m.Prepare(fmt::format("SELECT id FROM {} WHERE {} = ?1",
                                             table, column)));
      Status qs;
      bool found = q.Bind(1, key).Step(&qs);
      RowId id = found ? q.Int(0) : 0;
      q.Reset();
      CMF_RETURN_IF_ERROR(qs);
      if (!found) {
        return Status::Corruption(
            fmt::format("{} names {} '{}', which no earlier segment records",
                        where, what, key));
      }
      return id;
    };
    auto exec_id = [&](const std::string& uuid) {
      return row_of("execution", "uuid", "execution", uuid);
    };
    auto artifact_id = [&](const std::string& hash) {
      return row_of("artifact", "hash", "artifact", hash);
    };

    std::size_t pos =
        newline == std::string_view::npos ? text.size() : newline + 1;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(pos, end - pos);
      pos = end + 1;
      if (line.empty()) continue;
      ++facts;
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) {
        return Status::Corruption(where + " holds a line that is not JSON");
      }
      Status line_status;
      try {
        const std::string t = Get(j, "t");
        if (t == "artifact") {
          auto kind = ParseArtifactKind(Get(j, "kind"));
          if (!kind) throw std::invalid_argument("unknown kind");
          ArtifactRef a{"", Get(j, "hash"),
                        static_cast<std::uint64_t>(GetInt(j, "size")), *kind};
          std::string algorithm =
              j.contains("algorithm") ? Get(j, "algorithm") : "sha256";
          line_status = m.EnsureArtifact(a, seg, algorithm);
          if (line_status.ok() && !as_pending &&
              header.site != m.options.site) {
            CMF_ASSIGN_OR_RETURN(
                sql::Stmt w,
                m.Prepare("INSERT OR IGNORE INTO wanted(artifact_id) "
                          "SELECT id FROM artifact WHERE hash = ?1"));
            line_status = w.Bind(1, a.hash).Run();
          }
        } else if (t == "execution") {
          const std::string pipeline_name = Get(j, "pipeline");
          const std::string stage_name = Get(j, "stage");
          CMF_ASSIGN_OR_RETURN(
              RowId pipeline,
              m.Ensure("INSERT OR IGNORE INTO pipeline(name) VALUES(?1)",
                       "SELECT id FROM pipeline WHERE name = ?1",
                       [&](sql::Stmt& s) { s.Bind(1, pipeline_name); }));
          CMF_ASSIGN_OR_RETURN(
              RowId stage,
              m.Ensure("INSERT OR IGNORE INTO stage(pipeline_id, name) "
                       "VALUES(?1, ?2)",
                       "SELECT id FROM stage WHERE pipeline_id = ?1 AND "
                       "name = ?2",
                       [&](sql::Stmt& s) {
                         s.Bind(1, pipeline).Bind(2, stage_name);
                       }));
          CMF_ASSIGN_OR_RETURN(
              sql::Stmt e,
              m.Prepare("INSERT INTO execution(uuid, stage_id, command, "
                        "code_commit, code_dirty, code_repo, host, user, site, "
                        "started_ms, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                        "?8, ?9, ?10, ?11) ON CONFLICT(uuid) DO NOTHING"));
          const std::string uuid = Get(j, "id");
          e.Bind(1, uuid).Bind(2, stage).Bind(
              3, j.value("command", json::array()).dump());
          const json& code = j.value("code", json());
          if (code.is_object()) {
            e.Bind(4, Get(code, "commit"))
                .Bind(5, static_cast<std::int64_t>(code.value("dirty", false)))
                .Bind(6, Get(code, "repo"));
          }
          e.Bind(7, Get(j, "host"))
              .Bind(8, Get(j, "user"))
              .Bind(9, Get(j, "site"));
          e.Bind(10, GetInt(j, "started_ms")).Bind(11, seg);
          CMF_RETURN_IF_ERROR(e.Run());
          if (sqlite3_changes(m.db) > 0) {
            RowId id = sqlite3_last_insert_rowid(m.db);
            CMF_ASSIGN_OR_RETURN(
                sql::Stmt p,
                m.Prepare("INSERT OR IGNORE INTO param(execution_id, name, "
                          "type, value) VALUES(?1, ?2, ?3, ?4)"));
            const json params = j.value("params", json::object());
            for (const auto& [name, typed] : params.items()) {
              const std::string type = Get(typed, "type");
              CMF_ASSIGN_OR_RETURN(Value v,
                                   ValueFromJson(typed["value"], type));
              CMF_RETURN_IF_ERROR(p.Bind(1, id)
                                      .Bind(2, name)
                                      .Bind(3, type)
                                      .BindValue(4, v)
                                      .Run());
            }
          }
        } else if (t == "state") {
          CMF_ASSIGN_OR_RETURN(RowId e, exec_id(Get(j, "execution")));
          auto status = ParseExecStatus(Get(j, "status"));
          if (!status) throw std::invalid_argument("unknown status");
          std::int64_t hlc = GetInt(j, "hlc");
          max_hlc = std::max(max_hlc, hlc);
          line_status = apply(
              "INSERT OR IGNORE INTO execution_state(execution_id, hlc, site, "
              "status, exit_code, ended_ms, message, seg) "
              "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
              [&](sql::Stmt& s) {
                s.Bind(1, e).Bind(2, hlc).Bind(3, Get(j, "site"));
                s.Bind(4, ToString(*status))
                    .Bind(5, GetOptInt(j, "exit_code"))
                    .Bind(6, GetOptInt(j, "ended_ms"))
                    .Bind(7, Get(j, "message"))
                    .Bind(8, seg);
              });
        } else if (t == "event") {
          CMF_ASSIGN_OR_RETURN(RowId e, exec_id(Get(j, "execution")));
          CMF_ASSIGN_OR_RETURN(RowId a, artifact_id(Get(j, "artifact")));
          const std::string direction = Get(j, "direction");
          if (direction != "input" && direction != "output") {
            throw std::invalid_argument("unknown direction");
          }
          line_status = apply(
              "INSERT OR IGNORE INTO event(execution_id, direction, position, "
              "artifact_id, path, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
              [&](sql::Stmt& s) {
                s.Bind(1, e).Bind(2, direction == "input" ? 0 : 1);
                s.Bind(3, GetInt(j, "position")).Bind(4, a);
                s.Bind(5, Get(j, "path")).Bind(6, seg);
              });
        } else if (t == "derived_from") {
          CMF_ASSIGN_OR_RETURN(RowId child, artifact_id(Get(j, "artifact")));
          CMF_ASSIGN_OR_RETURN(RowId parent, artifact_id(Get(j, "parent")));
          line_status = apply(
              "INSERT OR IGNORE INTO derived_from(artifact_id, parent_id, seg) "
              "VALUES(?1, ?2, ?3)",
              [&](sql::Stmt& s) {
                s.Bind(1, child).Bind(2, parent).Bind(3, seg);
              });
        } else if (t == "metrics") {
          CMF_ASSIGN_OR_RETURN(RowId e, exec_id(Get(j, "execution")));
          CMF_ASSIGN_OR_RETURN(RowId series, m.EnsureSeries(Get(j, "series")));
          const json& steps = j.at("steps");
          const json& values = j.at("values");
          if (!steps.is_array() || !values.is_array() ||
              steps.size() != values.size()) {
            throw std::invalid_argument("steps and values differ");
          }
          CMF_ASSIGN_OR_RETURN(
              sql::Stmt s,
              m.Prepare("INSERT OR REPLACE INTO metric(execution_id, "
                        "series_id, step, value, seg) VALUES(?1, ?2, ?3, ?4, "
                        "?5)"));
          for (std::size_t i = 0; i < steps.size(); ++i) {
            double v =
                values[i].is_null() ? std::nan("") : values[i].get<double>();
            CMF_RETURN_IF_ERROR(s.Bind(1, e)
                                    .Bind(2, series)
                                    .Bind(3, steps[i].get<std::int64_t>())
                                    .Bind(4, v)
                                    .Bind(5, seg)
                                    .Run());
          }
        } else if (t == "property") {
          const std::string type_name = Get(j, "target_type");
          const std::string target = Get(j, "target");
          RowId id = 0;
          if (type_name == "execution") {
            CMF_ASSIGN_OR_RETURN(id, exec_id(target));
          } else if (type_name == "artifact") {
            CMF_ASSIGN_OR_RETURN(id, artifact_id(target));
          } else if (type_name == "pipeline") {
            CMF_ASSIGN_OR_RETURN(
                id, m.Ensure("INSERT OR IGNORE INTO pipeline(name) VALUES(?1)",
                             "SELECT id FROM pipeline WHERE name = ?1",
                             [&](sql::Stmt& s) { s.Bind(1, target); }));
          } else if (type_name == "stage") {
            auto slash = target.rfind('/');
            if (slash == std::string::npos) {
              throw std::invalid_argument("a stage target is PIPELINE/STAGE");
            }
            const std::string pname = target.substr(0, slash);
            const std::string sname = target.substr(slash + 1);
            CMF_ASSIGN_OR_RETURN(
                RowId pipeline,
                m.Ensure("INSERT OR IGNORE INTO pipeline(name) VALUES(?1)",
                         "SELECT id FROM pipeline WHERE name = ?1",
                         [&](sql::Stmt& s) { s.Bind(1, pname); }));
            CMF_ASSIGN_OR_RETURN(
                id, m.Ensure("INSERT OR IGNORE INTO stage(pipeline_id, name) "
                             "VALUES(?1, ?2)",
                             "SELECT id FROM stage WHERE pipeline_id = ?1 AND "
                             "name = ?2",
                             [&](sql::Stmt& s) {
                               s.Bind(1, pipeline).Bind(2, sname);
                             }));
          } else {
            throw std::invalid_argument("unknown target type");
          }
          const std::string type = Get(j, "type");
          CMF_ASSIGN_OR_RETURN(Value v, ValueFromJson(j["value"], type));
          std::int64_t hlc = GetInt(j, "hlc");
          max_hlc = std::max(max_hlc, hlc);
          line_status = apply(
              "INSERT OR IGNORE INTO property(target_type, target_id, name, "
              "hlc, site, type, value, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
              "?8)",
              [&](sql::Stmt& s) {
                s.Bind(1, type_name).Bind(2, id).Bind(3, Get(j, "name"));
                s.Bind(4, hlc).Bind(5, Get(j, "site")).Bind(6, type);
                s.BindValue(7, v).Bind(8, seg);
              });
        } else if (t == "location") {
          CMF_ASSIGN_OR_RETURN(RowId a, artifact_id(Get(j, "hash")));
          line_status = apply(
              "INSERT OR IGNORE INTO location(artifact_id, site, seg) "
              "VALUES(?1, ?2, ?3)",
              [&](sql::Stmt& s) {
                s.Bind(1, a).Bind(2, Get(j, "at")).Bind(3, seg);
              });
        }
        // Unknown kinds of fact come from a newer cmf: skipped, so that an
        // older site still reads what it understands.
      } catch (const std::exception& e) {
        return Status::Corruption(where + " holds a malformed fact (" +
                                  e.what() +
                                  "): " + std::string(line.substr(0, 200)));
      }
      CMF_RETURN_IF_ERROR(line_status);
    }
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt count,
        m.Prepare("UPDATE segment SET facts = ?1 WHERE id = ?2"));
    if (seg) CMF_RETURN_IF_ERROR(count.Bind(1, facts).Bind(2, *seg).Run());
    if (max_hlc > 0) {  // the clock moves past every fact seen (receive rule)
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt clock,
          m.Prepare("INSERT INTO meta(key, value) VALUES('hlc', ?1) "
                    "ON CONFLICT(key) DO UPDATE SET value = "
                    "max(value, excluded.value)"));
      CMF_RETURN_IF_ERROR(clock.Bind(1, max_hlc).Run());
    }
    applied = true;
    return Status::Ok();
  });
  if (!done.ok()) return done;
  return applied;
}

Status Store::AddLocation(const std::string& hash, const std::string& id) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare("INSERT OR IGNORE INTO location(artifact_id, site) "
                  "SELECT id, ?2 FROM artifact WHERE hash = ?1"));
    CMF_RETURN_IF_ERROR(s.Bind(1, hash).Bind(2, id).Run());
    if (sqlite3_changes(m.db) == 0) {
      CMF_ASSIGN_OR_RETURN(sql::Stmt q,
                           m.Prepare("SELECT 1 FROM artifact WHERE hash = ?1"));
      Status st;
      bool found = q.Bind(1, hash).Step(&st);
      q.Reset();
      CMF_RETURN_IF_ERROR(st);
      if (!found) return Status::NotFound("no artifact '" + hash + "'");
    }
    return Status::Ok();
  });
}

Result<std::vector<std::string>> Store::Locations(const std::string& hash) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT l.site FROM location l JOIN artifact a ON "
                     "a.id = l.artifact_id WHERE a.hash = ?1 ORDER BY l.site"));
  std::vector<std::string> out;
  Status st;
  s.Bind(1, hash);
  while (s.Step(&st)) out.push_back(s.Text(0));
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::string> Store::ArtifactAtPath(const std::string& path) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT a.hash FROM tracked t JOIN artifact a ON a.id = "
          "t.artifact_id "
          "WHERE t.path = ?1 UNION ALL "
          "SELECT * FROM (SELECT a.hash FROM event x JOIN artifact a ON "
          "a.id = x.artifact_id JOIN execution e ON e.id = x.execution_id "
          "WHERE x.path = ?1 ORDER BY x.direction DESC, e.started_ms DESC "
          "LIMIT 1) LIMIT 1"));
  Status st;
  bool found = s.Bind(1, path).Step(&st);
  std::string hash = found ? s.Text(0) : "";
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (!found)
    return Status::NotFound("no record names the path '" + path + "'");
  return hash;
}

}  // namespace cmf
