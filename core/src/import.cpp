#include "cmf/import.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cmf/byte_strings.h"
#include "cmf/data/file_ops.h"
#include "cmf/data/hash.h"
#include "cmf/segment.h"
#include "cmf/store.h"
#include "fact_check.h"
#include "sqlite_util.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

using json = nlohmann::json;

// The site that facts brought from cmflib are stamped with.
constexpr char kCmflibSite[] = "cmflib";

// The kind of a fact ("" when it has none).
std::string KindOfFact(const json& fact) {
  auto it = fact.find("t");
  return it != fact.end() && it->is_string() ? it->get<std::string>() : "";
}

// Counts what a batch of fact lines holds.
void Count(const json& fact, ImportReport* r) {
  const std::string t = KindOfFact(fact);
  r->facts += 1;
  if (t == "execution") r->executions += 1;
  if (t == "artifact") r->artifacts += 1;
  if (t == "event") r->events += 1;
}

// A read-only MLMD database, with a small query helper.
class Mlmd {
 public:
  ~Mlmd() {
    if (db_) sqlite3_close_v2(db_);
  }
  Status Open(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return Status::NotFound("no such file '" + path.string() + "'");
    }
    std::string uri = "file:" + path.string() + "?mode=ro&immutable=1";
    sql::ConfigureOnce();
    int rc = sqlite3_open_v2(uri.c_str(), &db_,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
    if (rc != SQLITE_OK) {
      return Status::InvalidArgument("cannot open '" + path.string() +
                                     "': " + sqlite3_errstr(rc));
    }
    for (const char* table : {"Type", "Artifact", "Execution", "Context",
                              "Event", "ExecutionProperty", "ArtifactProperty",
                              "Association", "ParentContext"}) {
      bool found = false;
      Status st =
          Each("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
               {table}, [&](sqlite3_stmt*) { found = true; });
      if (!st.ok() || !found) {
        return Status::InvalidArgument(
            "'" + path.string() + "' is not an ML-Metadata store (no table " +
            table + ")");
      }
    }
    return Status::Ok();
  }

  // Runs SQL with text parameters ARGS, calling ROW for each row.
  Status Each(const std::string& sql, const std::vector<std::string>& args,
              const std::function<void(sqlite3_stmt*)>& row) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr);
    if (rc != SQLITE_OK) {
      return Status::InvalidArgument(std::string("not an ML-Metadata store: ") +
                                     sqlite3_errmsg(db_));
    }
    for (std::size_t i = 0; i < args.size(); ++i) {
      sqlite3_bind_text(s, static_cast<int>(i + 1), args[i].c_str(), -1,
                        SQLITE_TRANSIENT);
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) row(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
      return Status::Corruption(std::string("cannot read the MLMD store: ") +
                                sqlite3_errmsg(db_));
    }
    return Status::Ok();
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* p = sqlite3_column_text(s, col);
  return p ? reinterpret_cast<const char*>(p) : "";
}

// A property value of MLMD (int, double, string or bool column) as a typed
// JSON value, with its cmf type name.
std::pair<std::string, json> PropertyValue(sqlite3_stmt* s, int first) {
  if (sqlite3_column_type(s, first) != SQLITE_NULL) {
    return {"int", json(sqlite3_column_int64(s, first))};
  }
  if (sqlite3_column_type(s, first + 1) != SQLITE_NULL) {
    return {"real", json(sqlite3_column_double(s, first + 1))};
  }
  if (sqlite3_column_type(s, first + 3) != SQLITE_NULL) {
    return {"bool", json(sqlite3_column_int64(s, first + 3) != 0)};
  }
  return {"string", json(Text(s, first + 2))};
}

// cmflib records argv as Python's repr of a list: ['a', 'b'].
std::vector<std::string> PythonList(const std::string& text) {
  std::vector<std::string> out;
  if (text.size() < 2 || text.front() != '[' || text.back() != ']') {
    if (!text.empty()) out.push_back(text);
    return out;
  }
  for (std::size_t i = 1; i + 1 < text.size();) {
    char q = text[i];
    if (q != '\'' && q != '"') {
      ++i;
      continue;
    }
    std::string item;
    std::size_t j = i + 1;
    for (; j + 1 < text.size() && text[j] != q; ++j) {
      if (text[j] == '\\' && j + 2 < text.size()) ++j;
      item += text[j];
    }
    out.push_back(item);
    i = j + 1;
  }
  return out;
}

std::string KindOf(const std::string& type) {
  if (type == "Dataset") return "dataset";
  if (type == "Model") return "model";
  if (type == "Metrics" || type == "Step_Metrics") return "metrics";
  if (type == "Dataslice") return "dataslice";
  return "file";
}

// An id for an execution that has no Execution_uuid: the same for the same
// pipeline and MLMD row, shaped as a UUID.
std::string SyntheticUuid(const std::string& pipeline, std::int64_t id) {
  std::string h =
      data::HashBytes("cmflib:" + pipeline + ":" + std::to_string(id));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" +
         h.substr(16, 4) + "-" + h.substr(20, 12);
}

// Applies fact lines (JSON objects) as this site's own.
Status Apply(Store& store, const std::vector<json>& facts, ImportReport* report,
             const std::string& site) {
  // In segment order: records before the facts that name them.
  static const std::map<std::string, int> rank{
      {"artifact", 0},     {"execution", 1}, {"state", 2},    {"event", 3},
      {"derived_from", 4}, {"metrics", 5},   {"property", 6}, {"location", 7}};
  std::vector<std::pair<int, std::string>> ordered;
  ordered.reserve(facts.size());
  for (const json& f : facts) {
    auto it = rank.find(KindOfFact(f));
    json copy = f;  // a cmflib store's strings are bytes: keep them so
    EncodeByteStrings(copy);
    std::string line;
    try {  // a key (a parameter's name) cannot carry bytes that are not UTF-8
      line = copy.dump();
    } catch (const json::exception&) {
      return Status::InvalidArgument(
          "a fact holds a name that is not UTF-8 text: " + KindOfFact(f));
    }
    ordered.emplace_back(it == rank.end() ? 8 : it->second, std::move(line));
    Count(f, report);
  }
  std::stable_sort(
      ordered.begin(), ordered.end(),
      [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> lines;
  lines.reserve(ordered.size());
  for (auto& [r, text] : ordered) lines.push_back(std::move(text));
  std::string text = SegmentHeader{site, 0}.Line() + "\n";
  for (const std::string& l : lines) (text += l) += '\n';
  return store.ImportFacts(text);
}

}  // namespace

Result<std::string> ExportJson(Store& store,
                               const std::optional<std::string>& pipeline) {
  bool bytes = false;
  CMF_ASSIGN_OR_RETURN(std::vector<std::string> lines,
                       store.ExportFacts(pipeline, &bytes));
  // Written by hand around the facts, each already canonical JSON.
  std::string out =
      "{\"format\": \"" + std::string(kExportFormat) + "\", \"version\": " +
      std::to_string(bytes ? kExportVersion : kExportVersionPlain) +
      ",\n \"facts\": [";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += (i ? ",\n  " : "\n  ") + lines[i];
  }
  out += lines.empty() ? "]}\n" : "\n ]}\n";
  return out;
}

Status ExportJsonToFile(Store& store,
                        const std::optional<std::string>& pipeline,
                        const std::filesystem::path& file) {
  CMF_ASSIGN_OR_RETURN(std::string text, ExportJson(store, pipeline));
  return data::WriteFileAtomically(file, text);
}

Result<ImportReport> ImportJson(Store& store, const std::string& text) {
  CMF_ASSIGN_OR_RETURN(
      json doc, facts::ParseJson(text, facts::kMaxExportBytes, "the export"));
  const std::string not_export = "not a cmf export (no \"format\": \"" +
                                 std::string(kExportFormat) + "\" with facts)";
  if (!doc.is_object()) return Status::InvalidArgument(not_export);
  auto format = doc.find("format");
  auto all = doc.find("facts");
  if (format == doc.end() || !format->is_string() ||
      format->get_ref<const std::string&>() != kExportFormat ||
      all == doc.end() || !all->is_array()) {
    return Status::InvalidArgument(not_export);
  }
  if (auto v = doc.find("version"); v != doc.end()) {
    if (!v->is_number_integer() || (!v->is_number_unsigned() && *v < 1)) {
      return Status::InvalidArgument(
          "the export's \"version\" is not a whole number from 1");
    }
    if (v->is_number_unsigned() ? v->get<std::uint64_t>() > kExportVersion
                                : v->get<std::int64_t>() > kExportVersion) {
      return Status::InvalidArgument("the export has version " + v->dump() +
                                     ", newer than this cmf reads; upgrade "
                                     "cmf");
    }
  }
  ImportReport report;
  std::vector<json> facts;
  facts.reserve(all->size());
  for (std::size_t i = 0; i < all->size(); ++i) {
    json& f = (*all)[i];
    if (!f.is_object()) {
      return Status::InvalidArgument("fact " + std::to_string(i + 1) +
                                     " of the export is not an object");
    }
    facts.push_back(std::move(f));
  }
  CMF_RETURN_IF_ERROR(Apply(store, facts, &report, "import"));
  return report;
}

namespace {

// Where cmflib ran an execution: its pipeline and stage.
struct CmflibStage {
  std::string pipeline, stage;
};

// An execution read from MLMD, with the fact it becomes.
struct CmflibExec {
  std::string uuid;
  json fact;
  std::int64_t updated = 0;
  std::optional<std::int64_t> state;
};

// MLMD artifacts by row id: id -> uri, path.
using CmflibArtifacts =
    std::map<std::int64_t, std::pair<std::string, std::string>>;

// Reads the stages of DB into STAGES, keyed by context id.
Status ReadStages(Mlmd& db, std::map<std::int64_t, CmflibStage>* stages) {
  // Stages and their pipelines: Pipeline_Stage contexts named
  // "PIPELINE/STAGE" under a Parent_Context.
  std::map<std::int64_t, std::string> pipelines;  // context id -> name
  CMF_RETURN_IF_ERROR(db.Each(
      "SELECT c.id, c.name FROM Context c JOIN Type t ON t.id = c.type_id "
      "WHERE t.name = 'Parent_Context'",
      {}, [&](sqlite3_stmt* s) {
        pipelines[sqlite3_column_int64(s, 0)] = Text(s, 1);
      }));
  return db.Each(
      "SELECT c.id, c.name, (SELECT parent_context_id FROM ParentContext p "
      "WHERE p.context_id = c.id LIMIT 1) FROM Context c JOIN Type t ON "
      "t.id = c.type_id WHERE t.name <> 'Parent_Context'",
      {}, [&](sqlite3_stmt* s) {
        std::string name = Text(s, 1);
        std::string pipeline = pipelines.count(sqlite3_column_int64(s, 2))
                                   ? pipelines[sqlite3_column_int64(s, 2)]
                                   : "";
        std::string stage = name;
        if (!pipeline.empty() && name.rfind(pipeline + "/", 0) == 0) {
          stage = name.substr(pipeline.size() + 1);
        } else if (auto slash = name.find('/'); slash != std::string::npos) {
          if (pipeline.empty()) pipeline = name.substr(0, slash);
          stage = name.substr(slash + 1);
        }
        (*stages)[sqlite3_column_int64(s, 0)] = {
            pipeline.empty() ? "cmflib" : pipeline,
            stage.empty() ? "imported" : stage};
      });
}

// Reads the executions of DB into EXECS and their non-custom properties.
Status ReadExecutions(Mlmd& db,
                      const std::map<std::int64_t, CmflibStage>& stages,
                      std::map<std::int64_t, CmflibExec>* execs,
                      std::vector<json>* exec_properties) {
  // Executions, with every property.
  CMF_RETURN_IF_ERROR(db.Each(
      "SELECT e.id, e.create_time_since_epoch, e.last_update_time_since_epoch, "
      "e.last_known_state, (SELECT a.context_id FROM Association a WHERE "
      "a.execution_id = e.id ORDER BY a.context_id LIMIT 1) FROM Execution e "
      "ORDER BY e.id",
      {}, [&](sqlite3_stmt* s) {
        CmflibExec x;
        std::int64_t ctx = sqlite3_column_int64(s, 4);
        CmflibStage where = stages.count(ctx)
                                ? stages.at(ctx)
                                : CmflibStage{"cmflib", "imported"};
        x.fact = {{"t", "execution"},
                  {"pipeline", where.pipeline},
                  {"stage", where.stage},
                  {"command", json::array()},
                  {"code", nullptr},
                  {"host", ""},
                  {"user", ""},
                  {"site", kCmflibSite},
                  {"started_ms", sqlite3_column_int64(s, 1)},
                  {"params", json::object()}};
        x.updated = sqlite3_column_int64(s, 2);
        if (sqlite3_column_type(s, 3) != SQLITE_NULL)
          x.state = sqlite3_column_int64(s, 3);
        (*execs)[sqlite3_column_int64(s, 0)] = std::move(x);
      }));
  return db.Each(
      "SELECT execution_id, name, is_custom_property, int_value, double_value, "
      "string_value, bool_value FROM ExecutionProperty ORDER BY execution_id, "
      "name",
      {}, [&](sqlite3_stmt* s) {
        auto it = execs->find(sqlite3_column_int64(s, 0));
        if (it == execs->end()) return;
        CmflibExec& x = it->second;
        std::string name = Text(s, 1);
        auto [type, value] = PropertyValue(s, 3);
        if (sqlite3_column_int64(s, 2) !=
            0) {  // custom: the stage's parameters
          x.fact["params"][name] = {{"type", type}, {"value", value}};
          return;
        }
        if (name == "Execution_uuid" && type == "string")
          x.uuid = value.get<std::string>();
        if (name == "Execution" && type == "string") {
          x.fact["command"] = PythonList(value.get<std::string>());
        }
        exec_properties->push_back({{"exec", it->first},
                                    {"name", name},
                                    {"type", type},
                                    {"value", value}});
      });
}

// Gives each execution of EXECS the id its fact carries.
void AssignExecutionIds(std::map<std::int64_t, CmflibExec>* execs) {
  for (auto& [id, x] : *execs) {
    // An id cmf does not take as one (not a lowercase uuid) is replaced.
    std::transform(x.uuid.begin(), x.uuid.end(), x.uuid.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    if (!facts::IsExecutionId(x.uuid)) {
      x.uuid = SyntheticUuid(x.fact["pipeline"], id);
    }
    x.fact["id"] = x.uuid;
  }
}

// Adds the property, execution and state facts of EXECS to FACTS.
void AddExecutionFacts(std::map<std::int64_t, CmflibExec>* execs,
                       const std::vector<json>& exec_properties,
                       std::vector<json>* facts) {
  // The git state, when cmflib recorded one.
  for (const json& p : exec_properties) {
    CmflibExec& x = (*execs)[p["exec"].get<std::int64_t>()];
    if (p["name"] == "Git_Start_Commit" && p["type"] == "string" &&
        !p["value"].get<std::string>().empty()) {
      std::string repo;
      for (const json& q : exec_properties) {
        if (q["exec"] == p["exec"] && q["name"] == "Git_Repo" &&
            q["type"] == "string") {
          repo = q["value"];
        }
      }
      x.fact["code"] = {
          {"commit", p["value"]}, {"dirty", false}, {"repo", repo}};
    }
    facts->push_back({{"t", "property"},
                      {"target_type", "execution"},
                      {"target", x.uuid},
                      {"name", p["name"]},
                      {"hlc", x.fact["started_ms"].get<std::int64_t>() << 16},
                      {"site", kCmflibSite},
                      {"type", p["type"]},
                      {"value", p["value"]}});
  }
  for (auto& [id, x] : *execs) {
    facts->push_back(x.fact);
    // MLMD states: 4 FAILED, 6 CANCELED; anything else recorded as done.
    std::string status = !x.state        ? "ok"
                         : *x.state == 4 ? "failed"
                         : *x.state == 6 ? "interrupted"
                         : *x.state == 2 ? "running"
                                         : "ok";
    facts->push_back(
        {{"t", "state"},
         {"execution", x.uuid},
         {"hlc", std::max(x.updated, x.fact["started_ms"].get<std::int64_t>())
                     << 16},
         {"site", kCmflibSite},
         {"status", status},
         {"exit_code", nullptr},
         {"ended_ms", status == "running" ? json(nullptr) : json(x.updated)},
         {"message", "imported from cmflib"}});
  }
}

// Reads the artifacts of DB into ARTIFACTS and adds their facts to FACTS.
Status ReadArtifacts(Mlmd& db, CmflibArtifacts* artifacts,
                     std::vector<json>* facts) {
  // Artifacts by uri, with their names and properties.
  CMF_RETURN_IF_ERROR(db.Each(
      "SELECT a.id, a.uri, a.name, t.name, a.create_time_since_epoch FROM "
      "Artifact a JOIN Type t ON t.id = a.type_id ORDER BY a.id",
      {}, [&](sqlite3_stmt* s) {
        std::string uri = Text(s, 1);
        std::string name = Text(s, 2);
        // cmflib names an artifact "path:uri" (and sometimes ":n" after it).
        std::string file = name;
        if (auto at = name.find(":" + uri); !uri.empty() && at != name.npos)
          file = name.substr(0, at);
        // A uri that cannot name an artifact (empty, or a path) is replaced
        // by one made from its row.
        if (!facts::IsArtifactHash(uri, "md5"))
          uri = "mlmd-artifact-" + std::to_string(sqlite3_column_int64(s, 0));
        (*artifacts)[sqlite3_column_int64(s, 0)] = {uri, file};
        facts->push_back({{"t", "artifact"},
                          {"hash", uri},
                          {"algorithm", "md5"},
                          {"kind", KindOf(Text(s, 3))},
                          {"size", 0}});
        facts->push_back(
            {{"t", "location"}, {"hash", uri}, {"at", kCmflibSite}});
        facts->push_back({{"t", "property"},
                          {"target_type", "artifact"},
                          {"target", uri},
                          {"name", "name"},
                          {"hlc", sqlite3_column_int64(s, 4) << 16},
                          {"site", kCmflibSite},
                          {"type", "string"},
                          {"value", name}});
      }));
  return db.Each(
      "SELECT p.artifact_id, p.name, p.is_custom_property, p.int_value, "
      "p.double_value, p.string_value, p.bool_value, a.create_time_since_epoch "
      "FROM ArtifactProperty p JOIN Artifact a ON a.id = p.artifact_id",
      {}, [&](sqlite3_stmt* s) {
        auto it = artifacts->find(sqlite3_column_int64(s, 0));
        if (it == artifacts->end()) return;
        auto [type, value] = PropertyValue(s, 3);
        facts->push_back({{"t", "property"},
                          {"target_type", "artifact"},
                          {"target", it->second.first},
                          {"name", Text(s, 1)},
                          {"hlc", sqlite3_column_int64(s, 7) << 16},
                          {"site", kCmflibSite},
                          {"type", type},
                          {"value", value}});
      });
}

// Reads the events of DB between EXECS and ARTIFACTS into FACTS.
Status ReadEvents(Mlmd& db, const std::map<std::int64_t, CmflibExec>& execs,
                  const CmflibArtifacts& artifacts, std::vector<json>* facts) {
  // Events: 3 INPUT, 4 OUTPUT (2 DECLARED_INPUT, 5 INTERNAL_INPUT count as
  // inputs; 1 DECLARED_OUTPUT, 6 INTERNAL_OUTPUT as outputs).
  std::map<std::pair<std::int64_t, int>, int> positions;
  return db.Each(
      "SELECT execution_id, artifact_id, type FROM Event ORDER BY id", {},
      [&](sqlite3_stmt* s) {
        auto e = execs.find(sqlite3_column_int64(s, 0));
        auto a = artifacts.find(sqlite3_column_int64(s, 1));
        if (e == execs.end() || a == artifacts.end()) return;
        int type = sqlite3_column_int(s, 2);
        bool input = type == 3 || type == 2 || type == 5;
        int& position = positions[{e->first, input ? 0 : 1}];
        facts->push_back({{"t", "event"},
                          {"execution", e->second.uuid},
                          {"direction", input ? "input" : "output"},
                          {"position", position++},
                          {"artifact", a->second.first},
                          {"path", a->second.second}});
      });
}

}  // namespace

Result<ImportReport> ImportCmflib(Store& store, const fs::path& path) {
  Mlmd db;
  CMF_RETURN_IF_ERROR(db.Open(path));
  std::vector<json> facts;

  std::map<std::int64_t, CmflibStage> stages;  // context id
  CMF_RETURN_IF_ERROR(ReadStages(db, &stages));

  std::map<std::int64_t, CmflibExec> execs;
  std::vector<json> exec_properties;
  CMF_RETURN_IF_ERROR(ReadExecutions(db, stages, &execs, &exec_properties));
  AssignExecutionIds(&execs);
  AddExecutionFacts(&execs, exec_properties, &facts);

  CmflibArtifacts artifacts;  // id -> uri, path
  CMF_RETURN_IF_ERROR(ReadArtifacts(db, &artifacts, &facts));

  CMF_RETURN_IF_ERROR(ReadEvents(db, execs, artifacts, &facts));

  ImportReport report;
  CMF_RETURN_IF_ERROR(Apply(store, facts, &report, kCmflibSite));
  return report;
}

}  // namespace cmf
