// The appliers of fact_writer.h: one function per kind of fact.
#include "fact_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

#include "fact_check.h"

namespace cmf {
namespace {

using json = nlohmann::json;

constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMaxInt32 = std::numeric_limits<int>::max();
constexpr std::int64_t kMinInt32 = std::numeric_limits<int>::min();

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

// A value of the type named TYPE, read from J's "value".
Value TypedValue(const json& j, const std::string& type) {
  Result<Value> v = ValueFromJson(facts::Member(j, "value"), type);
  if (!v.ok()) throw facts::FactError(v.status().message());
  return std::move(v).value();
}

struct Param {
  std::string name;
  std::string type;
  Value value;
};

// The parameters of an execution's line: {"NAME": {"type": …, "value": …}}.
std::vector<Param> ParamsOf(const json& j) {
  std::vector<Param> params;
  auto p = j.find("params");
  if (p == j.end() || p->is_null()) return params;
  if (!p->is_object()) throw facts::FactError("'params' is not an object");
  for (const auto& [name, typed] : p->items()) {
    if (!facts::IsName(name) || name.find('\0') != std::string::npos) {
      throw facts::FactError("a parameter's name is not a name");
    }
    std::string type =
        facts::OneOf(typed, "type", {"int", "real", "bool", "string"});
    Value value = TypedValue(typed, type);
    params.push_back({name, std::move(type), std::move(value)});
  }
  return params;
}

}  // namespace

Store::FactWriter::FactWriter(Impl& m, std::string header_site,
                              std::optional<std::int64_t> seg, bool as_pending,
                              std::int64_t now_ms, Rejection* rejected)
    : m_(m),
      header_site_(std::move(header_site)),
      seg_(seg),
      as_pending_(as_pending),
      now_ms_(now_ms),
      rejected_(rejected) {}

Status Store::FactWriter::Apply(std::string_view line,
                                std::int64_t line_number) {
  static constexpr std::pair<std::string_view,
                             Status (FactWriter::*)(const json&)>
      kAppliers[] = {{"artifact", &FactWriter::Artifact},
                     {"execution", &FactWriter::Execution},
                     {"state", &FactWriter::State},
                     {"event", &FactWriter::Event},
                     {"derived_from", &FactWriter::DerivedFrom},
                     {"metrics", &FactWriter::Metrics},
                     {"property", &FactWriter::Property},
                     {"tag", &FactWriter::Tag},
                     {"location", &FactWriter::Location}};
  line_number_ = line_number;
  Result<json> parsed =
      facts::ParseJson(line, facts::kMaxFactLineBytes, Subject());
  if (!parsed.ok()) return Reject(parsed.status().message());
  const json& j = *parsed;
  if (!j.is_object()) return Reject(Subject() + " is not a JSON object");
  Status st;
  try {
    const std::string t = facts::Text(j, "t");
    for (const auto& [kind, applier] : kAppliers) {
      if (t == kind) {
        st = (this->*applier)(j);
        break;
      }
    }
  } catch (const std::exception& e) {  // FactError, or any other
    return Reject(fmt::format("{} is refused ({}): {}", Subject(), e.what(),
                              facts::Printable(line)));
  }
  if (st.code() == Code::kAlreadyExists) {
    // A rule of the schema the checks let through.
    return Reject(fmt::format("{} breaks a rule of the store ({}): {}",
                              Subject(), st.message(), facts::Printable(line)));
  }
  return st;
}

Status Store::FactWriter::Artifact(const json& j) {
  const std::string algorithm =
      j.contains("algorithm") ? facts::OneOf(j, "algorithm", {"sha256", "md5"})
                              : "sha256";
  auto kind = ParseArtifactKind(facts::Text(j, "kind"));
  if (!kind) throw facts::FactError("'kind' is not a kind of artifact");
  ArtifactRef a{"", facts::Hash(j, "hash", algorithm),
                static_cast<std::uint64_t>(facts::Int(j, "size", 0, kMaxInt)),
                *kind};
  Status st = m_.EnsureArtifact(a, seg_, algorithm);
  if (st.ok() && !as_pending_ && header_site_ != m_.options.site) {
    // Another site's artifact: this one may want its bytes.
    CMF_ASSIGN_OR_RETURN(sql::Stmt w,
                         m_.Prepare("INSERT OR IGNORE INTO wanted(artifact_id) "
                                    "SELECT id FROM artifact WHERE hash = ?1"));
    st = w.Bind(1, a.hash).Run();
  }
  return st;
}

Status Store::FactWriter::Execution(const json& j) {
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
    if (!c->is_object()) throw facts::FactError("'code' is not an object");
    code_commit = facts::PlainText(*c, "commit");
    code_repo = facts::Text(*c, "repo");
    code_dirty = c->contains("dirty") && facts::Bool(*c, "dirty");
  }
  const std::string host = facts::PlainText(j, "host");
  const std::string user = facts::PlainText(j, "user");
  const std::string exec_site = facts::Site(j, "site");
  const std::int64_t started_ms = facts::Int(j, "started_ms", 0, kMaxInt);
  const std::vector<Param> params = ParamsOf(j);

  CMF_ASSIGN_OR_RETURN(RowId pipeline, EnsurePipeline(pipeline_name));
  CMF_ASSIGN_OR_RETURN(RowId stage, EnsureStage(pipeline, stage_name));
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt e,
      m_.Prepare("INSERT INTO execution(uuid, stage_id, command, "
                 "code_commit, code_dirty, code_repo, host, user, site, "
                 "started_ms, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                 "?8, ?9, ?10, ?11) ON CONFLICT(uuid) DO NOTHING"));
  e.Bind(1, uuid).Bind(2, stage).Bind(3, command.dump());
  e.Bind(4, code_commit).Bind(5, code_dirty).Bind(6, code_repo);
  e.Bind(7, host).Bind(8, user).Bind(9, exec_site);
  e.Bind(10, started_ms).Bind(11, seg_);
  Status st = e.Run();
  if (!st.ok() || sqlite3_changes(m_.db) == 0) return st;  // known already
  const RowId id = sqlite3_last_insert_rowid(m_.db);
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt p, m_.Prepare("INSERT OR IGNORE INTO param(execution_id, name, "
                              "type, value) VALUES(?1, ?2, ?3, ?4)"));
  for (const Param& param : params) {
    CMF_RETURN_IF_ERROR(p.Bind(1, id)
                            .Bind(2, param.name)
                            .Bind(3, param.type)
                            .BindValue(4, param.value)
                            .Run());
  }
  return Status::Ok();
}

Status Store::FactWriter::State(const json& j) {
  const std::string uuid = facts::ExecutionId(j, "execution");
  auto status = ParseExecStatus(facts::Text(j, "status"));
  if (!status) {
    throw facts::FactError("'status' is not a status of an execution");
  }
  const std::int64_t hlc = facts::Hlc(j, "hlc", now_ms_);
  const std::string state_site = facts::Site(j, "site");
  const auto exit_code = facts::OptInt(j, "exit_code", kMinInt32, kMaxInt32);
  const auto ended_ms = facts::OptInt(j, "ended_ms", 0, kMaxInt);
  const std::string message = facts::Text(j, "message");
  CMF_ASSIGN_OR_RETURN(RowId e, ExecutionRow(uuid));
  max_hlc_ = std::max(max_hlc_, hlc);
  return Run(
      "INSERT OR IGNORE INTO execution_state(execution_id, hlc, site, "
      "status, exit_code, ended_ms, message, seg) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
      [&](sql::Stmt& s) {
        s.Bind(1, e).Bind(2, hlc).Bind(3, state_site);
        s.Bind(4, ToString(*status))
            .Bind(5, exit_code)
            .Bind(6, ended_ms)
            .Bind(7, message)
            .Bind(8, seg_);
      });
}

Status Store::FactWriter::Event(const json& j) {
  const std::string uuid = facts::ExecutionId(j, "execution");
  const std::string hash = facts::ArtifactName(j, "artifact");
  const std::string direction =
      facts::OneOf(j, "direction", {"input", "output"});
  const std::int64_t position = facts::Int(j, "position", 0, kMaxInt32);
  const std::string path = facts::Text(j, "path");
  CMF_ASSIGN_OR_RETURN(RowId e, ExecutionRow(uuid));
  CMF_ASSIGN_OR_RETURN(RowId a, ArtifactRow(hash));
  return Run(
      "INSERT OR IGNORE INTO event(execution_id, direction, position, "
      "artifact_id, path, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
      [&](sql::Stmt& s) {
        s.Bind(1, e).Bind(2, direction == "input" ? 0 : 1);
        s.Bind(3, position).Bind(4, a);
        s.Bind(5, path).Bind(6, seg_);
      });
}

Status Store::FactWriter::DerivedFrom(const json& j) {
  const std::string child_hash = facts::ArtifactName(j, "artifact");
  const std::string parent_hash = facts::ArtifactName(j, "parent");
  CMF_ASSIGN_OR_RETURN(RowId child, ArtifactRow(child_hash));
  CMF_ASSIGN_OR_RETURN(RowId parent, ArtifactRow(parent_hash));
  return Run(
      "INSERT OR IGNORE INTO derived_from(artifact_id, parent_id, seg) "
      "VALUES(?1, ?2, ?3)",
      [&](sql::Stmt& s) { s.Bind(1, child).Bind(2, parent).Bind(3, seg_); });
}

Status Store::FactWriter::Metrics(const json& j) {
  const std::string uuid = facts::ExecutionId(j, "execution");
  const std::string series_name = facts::Name(j, "series");
  const json& steps = facts::Member(j, "steps");
  const json& values = facts::Member(j, "values");
  if (!steps.is_array() || !values.is_array() ||
      steps.size() != values.size()) {
    throw facts::FactError(
        "'steps' and 'values' are not two arrays of one length");
  }
  std::vector<MetricPoint> points;
  points.reserve(steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const json& v = values[i];
    if (!v.is_null() && !v.is_number()) {
      throw facts::FactError("a metric value is not a number or null");
    }
    points.push_back({facts::IntOf(steps[i], "steps", 0, kMaxInt),
                      v.is_null() ? std::nan("") : v.get<double>()});
  }
  CMF_ASSIGN_OR_RETURN(RowId e, ExecutionRow(uuid));
  CMF_ASSIGN_OR_RETURN(RowId series, m_.EnsureSeries(series_name));
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      m_.Prepare("INSERT OR REPLACE INTO metric(execution_id, "
                 "series_id, step, value, seg) VALUES(?1, ?2, ?3, ?4, ?5)"));
  for (const MetricPoint& point : points) {
    CMF_RETURN_IF_ERROR(s.Bind(1, e)
                            .Bind(2, series)
                            .Bind(3, point.step)
                            .Bind(4, point.value)
                            .Bind(5, seg_)
                            .Run());
  }
  return m_.UpdateMetricSummary(e, series, points,
                                /*pending=*/!seg_.has_value());
}

Status Store::FactWriter::Property(const json& j) {
  const std::string type_name = facts::OneOf(
      j, "target_type", {"pipeline", "stage", "execution", "artifact"});
  const std::string name = facts::Name(j, "name");
  const std::int64_t hlc = facts::Hlc(j, "hlc", now_ms_);
  const std::string property_site = facts::Site(j, "site");
  const std::string type =
      facts::OneOf(j, "type", {"int", "real", "bool", "string"});
  const Value value = TypedValue(j, type);
  CMF_ASSIGN_OR_RETURN(RowId id, PropertyTarget(type_name, j));
  max_hlc_ = std::max(max_hlc_, hlc);
  return Run(
      "INSERT OR IGNORE INTO property(target_type, target_id, name, "
      "hlc, site, type, value, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
      [&](sql::Stmt& s) {
        s.Bind(1, type_name).Bind(2, id).Bind(3, name);
        s.Bind(4, hlc).Bind(5, property_site).Bind(6, type);
        s.BindValue(7, value).Bind(8, seg_);
      });
}

Result<RowId> Store::FactWriter::PropertyTarget(const std::string& type_name,
                                                const json& j) {
  if (type_name == "execution") {
    return ExecutionRow(facts::ExecutionId(j, "target"));
  }
  if (type_name == "artifact") {
    return ArtifactRow(facts::ArtifactName(j, "target"));
  }
  if (type_name == "pipeline") return EnsurePipeline(facts::Name(j, "target"));
  const std::string target = facts::Text(j, "target");
  auto slash = target.rfind('/');
  if (slash == std::string::npos || !facts::IsName(target.substr(0, slash)) ||
      !facts::IsName(target.substr(slash + 1))) {
    throw facts::FactError("a stage target is not PIPELINE/STAGE");
  }
  CMF_ASSIGN_OR_RETURN(RowId pipeline, EnsurePipeline(target.substr(0, slash)));
  return EnsureStage(pipeline, target.substr(slash + 1));
}

Status Store::FactWriter::Tag(const json& j) {
  const std::string type_name =
      facts::OneOf(j, "target_type", {"execution", "artifact"});
  const std::string name = facts::Name(j, "name");
  const std::int64_t hlc = facts::Hlc(j, "hlc", now_ms_);
  const std::string tag_site = facts::Site(j, "site");
  const json& v = facts::Member(j, "value");
  if (!v.is_null() && !v.is_string()) {
    throw facts::FactError("a tag's value is not a string or null");
  }
  std::optional<std::string> value;
  if (v.is_string()) value = facts::Text(j, "value");
  RowId id = 0;
  if (type_name == "execution") {
    CMF_ASSIGN_OR_RETURN(id, ExecutionRow(facts::ExecutionId(j, "target")));
  } else {
    CMF_ASSIGN_OR_RETURN(id, ArtifactRow(facts::ArtifactName(j, "target")));
  }
  max_hlc_ = std::max(max_hlc_, hlc);
  return Run(
      "INSERT OR IGNORE INTO tag(target_type, target_id, name, hlc, "
      "site, value, seg) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
      [&](sql::Stmt& s) {
        s.Bind(1, type_name).Bind(2, id).Bind(3, name);
        s.Bind(4, hlc).Bind(5, tag_site).Bind(6, value).Bind(7, seg_);
      });
}

Status Store::FactWriter::Location(const json& j) {
  const std::string hash = facts::ArtifactName(j, "hash");
  const std::string at = facts::Site(j, "at");
  CMF_ASSIGN_OR_RETURN(RowId a, ArtifactRow(hash));
  return Run(
      "INSERT OR IGNORE INTO location(artifact_id, site, seg) "
      "VALUES(?1, ?2, ?3)",
      [&](sql::Stmt& s) { s.Bind(1, a).Bind(2, at).Bind(3, seg_); });
}

Status Store::FactWriter::Reject(std::string reason, bool depends) {
  rejected_->reason = std::move(reason);
  rejected_->depends = depends;
  return Status::Corruption(rejected_->reason);
}

std::string Store::FactWriter::Subject() const {
  return as_pending_ ? std::string("a fact")
                     : fmt::format("line {}", line_number_);
}

Status Store::FactWriter::Run(const std::string& sql,
                              const std::function<void(sql::Stmt&)>& bind) {
  CMF_ASSIGN_OR_RETURN(sql::Stmt s, m_.Prepare(sql));
  bind(s);
  return s.Run();
}

Result<RowId> Store::FactWriter::RowOf(const char* table, const char* column,
                                       const char* what,
                                       const std::string& key) {
  CMF_ASSIGN_OR_RETURN(sql::Stmt q,
                       m_.Prepare(fmt::format("SELECT id FROM {} WHERE {} = ?1",
                                              table, column)));
  Status st;
  const bool found = q.Bind(1, key).Step(&st);
  const RowId id = found ? q.Int(0) : 0;
  q.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (found) return id;
  // Which quarantined segment has it, if one does: this one depends on it.
  CMF_ASSIGN_OR_RETURN(sql::Stmt holder,
                       m_.Prepare("SELECT site, hash FROM quarantine WHERE "
                                  "instr(text, ?1) > 0 LIMIT 1"));
  std::string held_by;
  if (holder.Bind(1, key).Step(&st)) {
    held_by = fmt::format(" (only the quarantined segment {}/{} has it)",
                          holder.Text(0), holder.Text(1).substr(0, 12));
  }
  holder.Reset();
  CMF_RETURN_IF_ERROR(st);
  return Reject(
      fmt::format("{} names {} '{}', which {}{}", Subject(), what, key,
                  as_pending_ ? "this store does not hold"
                              : "no ingested segment records",
                  held_by),
      /*depends=*/true);
}

Result<RowId> Store::FactWriter::ExecutionRow(const std::string& uuid) {
  return RowOf("execution", "uuid", "execution", uuid);
}

Result<RowId> Store::FactWriter::ArtifactRow(const std::string& hash) {
  return RowOf("artifact", "hash", "artifact", hash);
}

Result<RowId> Store::FactWriter::EnsurePipeline(const std::string& name) {
  return m_.Ensure("INSERT OR IGNORE INTO pipeline(name) VALUES(?1)",
                   "SELECT id FROM pipeline WHERE name = ?1",
                   [&](sql::Stmt& s) { s.Bind(1, name); });
}

Result<RowId> Store::FactWriter::EnsureStage(RowId pipeline,
                                             const std::string& name) {
  return m_.Ensure(
      "INSERT OR IGNORE INTO stage(pipeline_id, name) VALUES(?1, ?2)",
      "SELECT id FROM stage WHERE pipeline_id = ?1 AND name = ?2",
      [&](sql::Stmt& s) { s.Bind(1, pipeline).Bind(2, name); });
}

}  // namespace cmf
