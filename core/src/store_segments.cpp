// Commit and ingest: turning uncommitted facts into a segment, and applying
// the segments of other sites (doc/federation.md).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>

#include "cmf/byte_strings.h"
#include "cmf/data/hash.h"
#include "cmf/segment.h"
#include "fact_check.h"
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
  try {
    if (type == "int" && j.is_number_integer()) {
      return Value(facts::IntOf(j, "value",
                                std::numeric_limits<std::int64_t>::min(),
                                std::numeric_limits<std::int64_t>::max()));
    }
    if (type == "real" && j.is_number()) return Value(j.get<double>());
    if (type == "real" && j.is_null()) return Value(std::nan(""));
    if (type == "bool" && j.is_boolean()) return Value(j.get<bool>());
    if (type == "string") return Value(facts::StringOf(j, "value"));
  } catch (const facts::FactError& e) {
    return Status::InvalidArgument(e.what());
  }
  return Status::InvalidArgument(fmt::format(
      "a value of type '{}' cannot be a JSON {}", type, j.type_name()));
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

// Which facts CollectFacts reads: an SQL condition per table (aliases as in
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
    f.state = f.event = f.metric = f.property = f.tag = "x.seg IS NULL";
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
        lines.push_back(MakeLine(
            7,
            json{{"t", "location"}, {"hash", s.Text(0)}, {"at", s.Text(1)}}));
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
                                     {"size", s.Int(3)}}));
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
          lines.push_back(MakeLine(
              3, json{{"t", "event"},
                      {"execution", s.Text(0)},
                      {"direction", s.Int(1) == 0 ? "input" : "output"},
                      {"position", s.Int(2)},
                      {"artifact", s.Text(3)},
                      {"path", s.Text(4)}}));
        }));
    CMF_RETURN_IF_ERROR(
        each("SELECT c.hash, p.hash FROM derived_from d JOIN artifact c ON "
             "c.id = d.artifact_id JOIN artifact p ON p.id = d.parent_id "
             "WHERE " +
                 scope.derived,
             [&](sql::Stmt& s) {
               lines.push_back(MakeLine(4, json{{"t", "derived_from"},
                                                {"artifact", s.Text(0)},
                                                {"parent", s.Text(1)}}));
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
    CMF_RETURN_IF_ERROR(
        each("SELECT x.target_type, CASE x.target_type WHEN 'execution' THEN "
             "(SELECT uuid FROM execution WHERE id = x.target_id) ELSE (SELECT "
             "hash FROM artifact WHERE id = x.target_id) END, x.name, x.hlc, "
             "x.site, x.value FROM tag x WHERE " +
                 scope.tag,
             [&](sql::Stmt& s) {
               json j{{"t", "tag"},          {"target_type", s.Text(0)},
                      {"target", s.Text(1)}, {"name", s.Text(2)},
                      {"hlc", s.Int(3)},     {"site", s.Text(4)}};
               j["value"] = s.IsNull(5) ? json(nullptr) : json(s.Text(5));
               lines.push_back(MakeLine(8, j));
             }));
  }
  return Status::Ok();
}

}  // namespace

Result<Store::Pending> Store::CountPending() {
  Impl& m = *impl_;
  Pending total;
  for (const char* table :
       {"execution", "execution_state", "artifact", "event", "derived_from",
        "metric", "property", "location", "tag"}) {
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
                     "derived_from", "metric", "property", "tag"});
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

// Why ApplyFacts refused a text (nothing of it applied).
struct Store::Rejection {
  std::string reason;
  int needs_format = 0;  // its header needs this newer segment format
  bool depends = false;  // it names a record this store does not hold
};

namespace {

// TEXT for a message or a listing: printable ASCII as it is, every other byte
// as \xNN, at most MAX bytes of it.
std::string Printable(std::string_view text, std::size_t max = 160) {
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (text.size() > max) out += "...";
  return out;
}

// Records a quarantined segment in M's store. True when it was not there.
template <typename StoreState>
Result<bool> RecordQuarantine(StoreState& m, const std::string& path,
                              const std::string& site, const std::string& hash,
                              std::string_view text, const std::string& reason,
                              int needs_format, bool depends) {
  bool first = false;
  CMF_RETURN_IF_ERROR(m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare("INSERT INTO quarantine(path, site, hash, reason, retry, "
                  "needs_format, text, recorded_ms) VALUES(?1, ?2, ?3, ?4, ?5, "
                  "?6, ?7, ?8) ON CONFLICT(path) DO NOTHING"));
    std::optional<std::string> retry;
    if (needs_format > 0) retry = "format";
    if (depends) retry = "depends";
    std::optional<std::int64_t> needs;
    if (needs_format > 0) needs = needs_format;
    CMF_RETURN_IF_ERROR(s.Bind(1, path)
                            .Bind(2, site)
                            .Bind(3, hash)
                            .Bind(4, reason)
                            .Bind(5, retry)
                            .Bind(6, needs)
                            .Bind(7, text)
                            .Bind(8, m.options.clock->NowMs())
                            .Run());
    first = sqlite3_changes(m.db) > 0;
    return Status::Ok();
  }));
  return first;
}

}  // namespace

Result<Store::IngestOutcome> Store::IngestSegment(const std::string& hash,
                                                  std::string_view text,
                                                  const std::string& site) {
  Impl& m = *impl_;
  IngestOutcome out;
  CMF_ASSIGN_OR_RETURN(bool known, HasSegment(hash));
  if (known) return out;
  // Where the log holds it: its site as its path says, else as its header
  // says.
  std::string path_site = site;
  if (path_site.empty()) {  // as its header says, even when it is refused
    Result<json> h = facts::ParseJson(text.substr(0, text.find('\n')),
                                      facts::kMaxFactLineBytes, "the header");
    if (h.ok() && h->is_object()) {
      auto it = h->find("site");
      if (it != h->end() && it->is_string() &&
          IsValidSiteId(it->get_ref<const std::string&>())) {
        path_site = it->get<std::string>();
      }
    }
  }
  const std::string path = Printable(
      SegmentPath(path_site.empty() ? "unknown" : path_site, hash), 200);
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt q,
        m.Prepare("SELECT reason FROM quarantine WHERE path = ?1"));
    Status st;
    if (q.Bind(1, path).Step(&st)) {
      out.kind = IngestOutcome::Kind::kQuarantined;
      out.reason = q.Text(0);
    }
    q.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (out.kind == IngestOutcome::Kind::kQuarantined) return out;
  }
  Rejection rejected;
  CMF_ASSIGN_OR_RETURN(
      bool applied,
      ApplyFacts(hash, text, /*as_pending=*/false, site, &rejected));
  if (rejected.reason.empty()) {
    if (applied) out.kind = IngestOutcome::Kind::kApplied;
    return out;
  }
  out.kind = IngestOutcome::Kind::kQuarantined;
  out.reason = rejected.reason;
  out.needs_format = rejected.needs_format;
  CMF_ASSIGN_OR_RETURN(
      out.first_time,
      RecordQuarantine(m, path, path_site, Printable(hash, 64), text,
                       rejected.reason, rejected.needs_format,
                       rejected.depends));
  return out;
}

Result<bool> Store::QuarantineFile(const std::string& path,
                                   const std::string& site,
                                   const std::string& hash,
                                   std::string_view text,
                                   const std::string& reason) {
  return RecordQuarantine(*impl_, Printable(path, 200), Printable(site, 64),
                          Printable(hash, 64), text, reason, 0, false);
}

Result<std::vector<Store::Quarantined>> Store::ListQuarantined() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT path, site, hash, reason, needs_format, "
                     "recorded_ms FROM quarantine ORDER BY path"));
  std::vector<Quarantined> out;
  Status st;
  while (s.Step(&st)) {
    Quarantined q;
    q.path = s.Text(0);
    q.site = s.Text(1);
    q.hash = s.Text(2);
    q.reason = s.Text(3);
    q.needs_format = s.IsNull(4) ? 0 : static_cast<int>(s.Int(4));
    q.recorded_ms = s.Int(5);
    out.push_back(std::move(q));
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::vector<Store::Retried>> Store::RetryQuarantined() {
  Impl& m = *impl_;
  std::vector<Retried> out;
  bool progress = false;  // a retried segment went in: try its dependents
  for (;;) {
    struct Row {
      Quarantined q;
      std::string retry;
      std::string text;
    };
    std::vector<Row> rows;
    {
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt s,
          m.Prepare("SELECT path, site, hash, reason, needs_format, "
                    "recorded_ms, retry, text FROM quarantine WHERE (retry = "
                    "'format' AND needs_format <= ?1) OR (?2 AND retry = "
                    "'depends') ORDER BY recorded_ms, path"));
      Status st;
      s.Bind(1, kSegmentVersion).Bind(2, progress ? 1 : 0);
      while (s.Step(&st)) {
        Row r;
        r.q = {s.Text(0),
               s.Text(1),
               s.Text(2),
               s.Text(3),
               s.IsNull(4) ? 0 : static_cast<int>(s.Int(4)),
               s.Int(5)};
        r.retry = s.Text(6);
        r.text = s.Text(7);
        rows.push_back(std::move(r));
      }
      s.Reset();
      CMF_RETURN_IF_ERROR(st);
    }
    bool went_in = false;
    for (Row& r : rows) {
      Rejection rejected;
      CMF_ASSIGN_OR_RETURN(bool applied,
                           ApplyFacts(r.q.hash, r.text, /*as_pending=*/false,
                                      r.q.site, &rejected));
      if (rejected.reason.empty()) {
        CMF_RETURN_IF_ERROR(m.InWrite([&]() -> Status {
          CMF_ASSIGN_OR_RETURN(
              sql::Stmt d, m.Prepare("DELETE FROM quarantine WHERE path = ?1"));
          return d.Bind(1, r.q.path).Run();
        }));
        if (applied) {
          went_in = true;
          out.push_back({r.q, {IngestOutcome::Kind::kApplied, false, "", 0}});
        }
        continue;
      }
      if (rejected.reason == r.q.reason) continue;  // no news
      CMF_RETURN_IF_ERROR(m.InWrite([&]() -> Status {
        CMF_ASSIGN_OR_RETURN(
            sql::Stmt u,
            m.Prepare("UPDATE quarantine SET reason = ?2, retry = ?3, "
                      "needs_format = ?4 WHERE path = ?1"));
        std::optional<std::string> retry;
        std::optional<std::int64_t> needs;
        if (rejected.needs_format > 0) {
          retry = "format";
          needs = rejected.needs_format;
        }
        if (rejected.depends) retry = "depends";
        return u.Bind(1, r.q.path)
            .Bind(2, rejected.reason)
            .Bind(3, retry)
            .Bind(4, needs)
            .Run();
      }));
      r.q.reason = rejected.reason;
      r.q.needs_format = rejected.needs_format;
      out.push_back({r.q,
                     {IngestOutcome::Kind::kQuarantined, true, rejected.reason,
                      rejected.needs_format}});
    }
    if (!went_in) break;
    progress = true;
  }
  return out;
}

Status Store::ImportFacts(std::string_view text) {
  Rejection rejected;
  CMF_RETURN_IF_ERROR(
      ApplyFacts("", text, /*as_pending=*/true, "", &rejected).status());
  if (!rejected.reason.empty()) {
    return Status::InvalidArgument(rejected.reason);
  }
  return Status::Ok();
}

Result<bool> Store::ApplyFacts(const std::string& hash, std::string_view text,
                               bool as_pending, const std::string& site,
                               Rejection* rejected) {
  Impl& m = *impl_;
  bool applied = false;
  const std::int64_t now_ms = m.options.clock->NowMs();
  if (text.size() > facts::kMaxSegmentBytes) {
    rejected->reason =
        fmt::format("it is larger than {} bytes", facts::kMaxSegmentBytes);
    return false;
  }
  if (!as_pending && data::HashBytes(text) != hash) {
    rejected->reason = "its name is not the SHA-256 of its text";
    return false;
  }
  const auto newline = text.find('\n');
  Result<SegmentHeader> parsed =
      SegmentHeader::Parse(text.substr(0, newline), &rejected->needs_format);
  if (!parsed.ok()) {
    rejected->reason = parsed.status().message();
    return false;
  }
  const SegmentHeader header = std::move(parsed).value();
  if (!site.empty() && header.site != site) {
    rejected->reason = fmt::format(
        "its header names the site '{}', not '{}' whose path holds it",
        header.site, site);
    return false;
  }
  // Refuses the text for REASON: what was applied of it is rolled back.
  auto reject = [&](std::string reason, bool depends = false) -> Status {
    rejected->reason = std::move(reason);
    rejected->depends = depends;
    return Status::Corruption(rejected->reason);
  };

  Status done = m.InWrite([&]() -> Status {
    if (!as_pending) {
      CMF_ASSIGN_OR_RETURN(bool known, HasSegment(hash));
      if (known) return Status::Ok();
    }
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
                              .Bind(4, now_ms)
                              .Run());
      seg = sqlite3_last_insert_rowid(m.db);
    }
    std::int64_t max_hlc = 0;
    std::int64_t fact_count = 0;
    std::int64_t line_number = 1;  // the header's
    // The line in messages.
    auto subject = [&] {
      return as_pending ? std::string("a fact")
                        : fmt::format("line {}", line_number);
    };

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
      if (found) return id;
      // Which quarantined segment has it, if one does: this one depends on
      // it.
      CMF_ASSIGN_OR_RETURN(sql::Stmt holder,
                           m.Prepare("SELECT site, hash FROM quarantine WHERE "
                                     "instr(text, ?1) > 0 LIMIT 1"));
      std::string held_by;
      if (holder.Bind(1, key).Step(&qs)) {
        held_by = fmt::format(" (only the quarantined segment {}/{} has it)",
                              holder.Text(0), holder.Text(1).substr(0, 12));
      }
      holder.Reset();
      CMF_RETURN_IF_ERROR(qs);
      return reject(
          fmt::format("{} names {} '{}', which {}{}", subject(), what, key,
                      as_pending ? "this store does not hold"
                                 : "no ingested segment records",
                      held_by),
          /*depends=*/true);
    };
    auto exec_id = [&](const std::string& uuid) {
      return row_of("execution", "uuid", "execution", uuid);
    };
    auto artifact_id = [&](const std::string& hash) {
      return row_of("artifact", "hash", "artifact", hash);
    };
    auto ensure_pipeline = [&](const std::string& name) {
      return m.Ensure("INSERT OR IGNORE INTO pipeline(name) VALUES(?1)",
                      "SELECT id FROM pipeline WHERE name = ?1",
                      [&](sql::Stmt& s) { s.Bind(1, name); });
    };
    auto ensure_stage = [&](RowId pipeline, const std::string& name) {
      return m.Ensure(
          "INSERT OR IGNORE INTO stage(pipeline_id, name) VALUES(?1, ?2)",
          "SELECT id FROM stage WHERE pipeline_id = ?1 AND name = ?2",
          [&](sql::Stmt& s) { s.Bind(1, pipeline).Bind(2, name); });
    };
    constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
    constexpr std::int64_t kMaxInt32 = std::numeric_limits<int>::max();
    constexpr std::int64_t kMinInt32 = std::numeric_limits<int>::min();

    std::size_t pos =
        newline == std::string_view::npos ? text.size() : newline + 1;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(pos, end - pos);
      pos = end + 1;
      ++line_number;
      if (line.empty()) continue;
      ++fact_count;
      Result<json> parsed_line =
          facts::ParseJson(line, facts::kMaxFactLineBytes, subject());
      if (!parsed_line.ok()) return reject(parsed_line.status().message());
      const json& j = *parsed_line;
      if (!j.is_object()) {
        return reject(subject() + " is not a JSON object");
      }
      Status line_status;
      try {
        const std::string t = facts::Text(j, "t");
        if (t == "artifact") {
          const std::string algorithm =
              j.contains("algorithm")
                  ? facts::OneOf(j, "algorithm", {"sha256", "md5"})
                  : "sha256";
          auto kind = ParseArtifactKind(facts::Text(j, "kind"));
          if (!kind) throw facts::FactError("'kind' is not a kind of artifact");
          ArtifactRef a{
              "", facts::Hash(j, "hash", algorithm),
              static_cast<std::uint64_t>(facts::Int(j, "size", 0, kMaxInt)),
              *kind};
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
          const std::string uuid = facts::ExecutionId(j, "id");
          const std::string pipeline_name = facts::Name(j, "pipeline");
          const std::string stage_name = facts::Name(j, "stage");
          json command = json::array();
          if (auto c = j.find("command"); c != j.end()) {
            if (!c->is_array()) {
              throw facts::FactError("'command' is not an array of strings");
            }
            for (const json& arg : *c) {
              command.push_back(facts::StringOf(arg, "command"));
            }
          }
          std::optional<std::string> code_commit, code_repo;
          std::optional<std::int64_t> code_dirty;
          if (auto c = j.find("code"); c != j.end() && !c->is_null()) {
            if (!c->is_object())
              throw facts::FactError("'code' is not an object");
            code_commit = facts::PlainText(*c, "commit");
            code_repo = facts::Text(*c, "repo");
            code_dirty = c->contains("dirty") && facts::Bool(*c, "dirty");
          }
          const std::string host = facts::PlainText(j, "host");
          const std::string user = facts::PlainText(j, "user");
          const std::string exec_site = facts::Site(j, "site");
          const std::int64_t started_ms =
              facts::Int(j, "started_ms", 0, kMaxInt);
          std::vector<std::pair<std::string, std::pair<std::string, Value>>>
              params;
          if (auto p = j.find("params"); p != j.end() && !p->is_null()) {
            if (!p->is_object()) {
              throw facts::FactError("'params' is not an object");
            }
            for (const auto& [name, typed] : p->items()) {
              if (!facts::IsName(name) ||
                  name.find('\0') != std::string::npos) {
                throw facts::FactError("a parameter's name is not a name");
              }
              const std::string type = facts::OneOf(
                  typed, "type", {"int", "real", "bool", "string"});
              Result<Value> v =
                  ValueFromJson(facts::Member(typed, "value"), type);
              if (!v.ok()) throw facts::FactError(v.status().message());
              params.push_back({name, {type, std::move(v).value()}});
            }
          }
          CMF_ASSIGN_OR_RETURN(RowId pipeline, ensure_pipeline(pipeline_name));
          CMF_ASSIGN_OR_RETURN(RowId stage, ensure_stage(pipeline, stage_name));
          CMF_ASSIGN_OR_RETURN(
              sql::Stmt e,
              m.Prepare("INSERT INTO execution(uuid, stage_id, command, "
                        "code_commit, code_dirty, code_repo, host, user, site, "
                        "started_ms, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                        "?8, ?9, ?10, ?11) ON CONFLICT(uuid) DO NOTHING"));
          e.Bind(1, uuid).Bind(2, stage).Bind(3, command.dump());
          e.Bind(4, code_commit).Bind(5, code_dirty).Bind(6, code_repo);
          e.Bind(7, host).Bind(8, user).Bind(9, exec_site);
          e.Bind(10, started_ms).Bind(11, seg);
          line_status = e.Run();
          if (line_status.ok() && sqlite3_changes(m.db) > 0) {
            RowId id = sqlite3_last_insert_rowid(m.db);
            CMF_ASSIGN_OR_RETURN(
                sql::Stmt p,
                m.Prepare("INSERT OR IGNORE INTO param(execution_id, name, "
                          "type, value) VALUES(?1, ?2, ?3, ?4)"));
            for (const auto& [name, typed] : params) {
              line_status = p.Bind(1, id)
                                .Bind(2, name)
                                .Bind(3, typed.first)
                                .BindValue(4, typed.second)
                                .Run();
              if (!line_status.ok()) break;
            }
          }
        } else if (t == "state") {
          const std::string uuid = facts::ExecutionId(j, "execution");
          auto status = ParseExecStatus(facts::Text(j, "status"));
          if (!status) {
            throw facts::FactError("'status' is not a status of an execution");
          }
          const std::int64_t hlc = facts::Hlc(j, "hlc", now_ms);
          const std::string state_site = facts::Site(j, "site");
          const auto exit_code =
              facts::OptInt(j, "exit_code", kMinInt32, kMaxInt32);
          const auto ended_ms = facts::OptInt(j, "ended_ms", 0, kMaxInt);
          const std::string message = facts::Text(j, "message");
          CMF_ASSIGN_OR_RETURN(RowId e, exec_id(uuid));
          max_hlc = std::max(max_hlc, hlc);
          line_status = apply(
              "INSERT OR IGNORE INTO execution_state(execution_id, hlc, site, "
              "status, exit_code, ended_ms, message, seg) "
              "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
              [&](sql::Stmt& s) {
                s.Bind(1, e).Bind(2, hlc).Bind(3, state_site);
                s.Bind(4, ToString(*status))
                    .Bind(5, exit_code)
                    .Bind(6, ended_ms)
                    .Bind(7, message)
                    .Bind(8, seg);
              });
        } else if (t == "event") {
          const std::string uuid = facts::ExecutionId(j, "execution");
          const std::string hash = facts::ArtifactName(j, "artifact");
          const std::string direction =
              facts::OneOf(j, "direction", {"input", "output"});
          const std::int64_t position = facts::Int(j, "position", 0, kMaxInt32);
          const std::string path = facts::Text(j, "path");
          CMF_ASSIGN_OR_RETURN(RowId e, exec_id(uuid));
          CMF_ASSIGN_OR_RETURN(RowId a, artifact_id(hash));
          line_status = apply(
              "INSERT OR IGNORE INTO event(execution_id, direction, position, "
              "artifact_id, path, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
              [&](sql::Stmt& s) {
                s.Bind(1, e).Bind(2, direction == "input" ? 0 : 1);
                s.Bind(3, position).Bind(4, a);
                s.Bind(5, path).Bind(6, seg);
              });
        } else if (t == "derived_from") {
          const std::string child_hash = facts::ArtifactName(j, "artifact");
          const std::string parent_hash = facts::ArtifactName(j, "parent");
          CMF_ASSIGN_OR_RETURN(RowId child, artifact_id(child_hash));
          CMF_ASSIGN_OR_RETURN(RowId parent, artifact_id(parent_hash));
          line_status = apply(
              "INSERT OR IGNORE INTO derived_from(artifact_id, parent_id, seg) "
              "VALUES(?1, ?2, ?3)",
              [&](sql::Stmt& s) {
                s.Bind(1, child).Bind(2, parent).Bind(3, seg);
              });
        } else if (t == "metrics") {
          const std::string uuid = facts::ExecutionId(j, "execution");
          const std::string series_name = facts::Name(j, "series");
          const json& steps = facts::Member(j, "steps");
          const json& values = facts::Member(j, "values");
          if (!steps.is_array() || !values.is_array() ||
              steps.size() != values.size()) {
            throw facts::FactError(
                "'steps' and 'values' are not two arrays of one length");
          }
          std::vector<std::pair<std::int64_t, double>> points;
          points.reserve(steps.size());
          for (std::size_t i = 0; i < steps.size(); ++i) {
            const json& v = values[i];
            if (!v.is_null() && !v.is_number()) {
              throw facts::FactError("a metric value is not a number or null");
            }
            points.emplace_back(facts::IntOf(steps[i], "steps", 0, kMaxInt),
                                v.is_null() ? std::nan("") : v.get<double>());
          }
          CMF_ASSIGN_OR_RETURN(RowId e, exec_id(uuid));
          CMF_ASSIGN_OR_RETURN(RowId series, m.EnsureSeries(series_name));
          CMF_ASSIGN_OR_RETURN(
              sql::Stmt s,
              m.Prepare("INSERT OR REPLACE INTO metric(execution_id, "
                        "series_id, step, value, seg) VALUES(?1, ?2, ?3, ?4, "
                        "?5)"));
          std::vector<MetricPoint> written;
          written.reserve(points.size());
          for (const auto& [step, value] : points) {
            line_status = s.Bind(1, e)
                              .Bind(2, series)
                              .Bind(3, step)
                              .Bind(4, value)
                              .Bind(5, seg)
                              .Run();
            if (!line_status.ok()) break;
            written.push_back({step, value});
          }
          if (line_status.ok()) {
            line_status = m.UpdateMetricSummary(e, series, written);
          }
        } else if (t == "property") {
          const std::string type_name = facts::OneOf(
              j, "target_type", {"pipeline", "stage", "execution", "artifact"});
          const std::string name = facts::Name(j, "name");
          const std::int64_t hlc = facts::Hlc(j, "hlc", now_ms);
          const std::string property_site = facts::Site(j, "site");
          const std::string type =
              facts::OneOf(j, "type", {"int", "real", "bool", "string"});
          Result<Value> v = ValueFromJson(facts::Member(j, "value"), type);
          if (!v.ok()) throw facts::FactError(v.status().message());
          RowId id = 0;
          if (type_name == "execution") {
            CMF_ASSIGN_OR_RETURN(id, exec_id(facts::ExecutionId(j, "target")));
          } else if (type_name == "artifact") {
            CMF_ASSIGN_OR_RETURN(id,
                                 artifact_id(facts::ArtifactName(j, "target")));
          } else if (type_name == "pipeline") {
            CMF_ASSIGN_OR_RETURN(id, ensure_pipeline(facts::Name(j, "target")));
          } else {
            const std::string target = facts::Text(j, "target");
            auto slash = target.rfind('/');
            if (slash == std::string::npos ||
                !facts::IsName(target.substr(0, slash)) ||
                !facts::IsName(target.substr(slash + 1))) {
              throw facts::FactError("a stage target is not PIPELINE/STAGE");
            }
            CMF_ASSIGN_OR_RETURN(RowId pipeline,
                                 ensure_pipeline(target.substr(0, slash)));
            CMF_ASSIGN_OR_RETURN(
                id, ensure_stage(pipeline, target.substr(slash + 1)));
          }
          max_hlc = std::max(max_hlc, hlc);
          line_status = apply(
              "INSERT OR IGNORE INTO property(target_type, target_id, name, "
              "hlc, site, type, value, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
              "?8)",
              [&](sql::Stmt& s) {
                s.Bind(1, type_name).Bind(2, id).Bind(3, name);
                s.Bind(4, hlc).Bind(5, property_site).Bind(6, type);
                s.BindValue(7, *v).Bind(8, seg);
              });
        } else if (t == "tag") {
          const std::string type_name =
              facts::OneOf(j, "target_type", {"execution", "artifact"});
          const std::string name = facts::Name(j, "name");
          const std::int64_t hlc = facts::Hlc(j, "hlc", now_ms);
          const std::string tag_site = facts::Site(j, "site");
          const json& v = facts::Member(j, "value");
          if (!v.is_null() && !v.is_string()) {
            throw facts::FactError("a tag's value is not a string or null");
          }
          std::optional<std::string> value;
          if (v.is_string()) value = facts::Text(j, "value");
          RowId id = 0;
          if (type_name == "execution") {
            CMF_ASSIGN_OR_RETURN(id, exec_id(facts::ExecutionId(j, "target")));
          } else {
            CMF_ASSIGN_OR_RETURN(id,
                                 artifact_id(facts::ArtifactName(j, "target")));
          }
          max_hlc = std::max(max_hlc, hlc);
          line_status = apply(
              "INSERT OR IGNORE INTO tag(target_type, target_id, name, hlc, "
              "site, value, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
              [&](sql::Stmt& s) {
                s.Bind(1, type_name).Bind(2, id).Bind(3, name);
                s.Bind(4, hlc).Bind(5, tag_site).Bind(6, value).Bind(7, seg);
              });
        } else if (t == "location") {
          const std::string hash = facts::ArtifactName(j, "hash");
          const std::string at = facts::Site(j, "at");
          CMF_ASSIGN_OR_RETURN(RowId a, artifact_id(hash));
          line_status = apply(
              "INSERT OR IGNORE INTO location(artifact_id, site, seg) "
              "VALUES(?1, ?2, ?3)",
              [&](sql::Stmt& s) { s.Bind(1, a).Bind(2, at).Bind(3, seg); });
        }
        // Unknown kinds of fact come from a newer cmf: skipped, so that an
        // older site still reads what it understands.
      } catch (const std::exception& e) {  // FactError, or any other
        return reject(fmt::format("{} is refused ({}): {}", subject(), e.what(),
                                  Printable(line)));
      }
      if (line_status.code() == Code::kAlreadyExists) {
        // A rule of the schema the checks above let through.
        return reject(fmt::format("{} breaks a rule of the store ({}): {}",
                                  subject(), line_status.message(),
                                  Printable(line)));
      }
      CMF_RETURN_IF_ERROR(line_status);
    }
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt count,
        m.Prepare("UPDATE segment SET facts = ?1 WHERE id = ?2"));
    if (seg) {
      CMF_RETURN_IF_ERROR(count.Bind(1, fact_count).Bind(2, *seg).Run());
    }
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
  if (!rejected->reason.empty()) return false;  // rolled back
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
