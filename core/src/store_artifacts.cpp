// The store's artifacts (cmf/store.h): tracked paths, lookups by hash or
// prefix, listings and queries, the stat index of data::Scan, the sites that
// hold each artifact and the artifacts this site wants.

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "cmf/byte_strings.h"
#include "cmf/store.h"
#include "sqlite_util.h"
#include "store_impl.h"

namespace fs = std::filesystem;

namespace cmf {

Status Store::Track(const ArtifactRef& ref) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_RETURN_IF_ERROR(m.EnsureArtifact(ref));
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt t,
        m.Prepare("INSERT OR REPLACE INTO tracked(path, artifact_id, added_ms) "
                  "SELECT ?1, id, ?2 FROM artifact WHERE hash = ?3"));
    return t.Bind(1, ref.path)
        .Bind(2, m.options.clock->NowMs())
        .Bind(3, ref.hash)
        .Run();
  });
}

Result<std::vector<ArtifactRef>> Store::ListTracked() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT t.path, a.hash, a.size, a.kind FROM tracked t "
          "JOIN artifact a ON a.id = t.artifact_id ORDER BY t.path"));
  std::vector<ArtifactRef> out;
  Status st;
  while (s.Step(&st)) {
    out.push_back({s.Text(0), s.Text(1), static_cast<std::uint64_t>(s.Int(2)),
                   ParseArtifactKind(s.Text(3)).value_or(ArtifactKind::kFile)});
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::string> Store::ResolveArtifact(const std::string& prefix) {
  std::string hex;
  for (char c : prefix) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Status::InvalidArgument("'" + prefix +
                                     "' is not an artifact hash");
    }
    hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (hex.empty()) return Status::InvalidArgument("an empty artifact hash");
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s, impl_->Prepare("SELECT hash FROM artifact WHERE hash >= ?1 "
                                  "AND hash < ?2 ORDER BY hash LIMIT 2"));
  s.Bind(1, hex).Bind(2, hex + "g");
  std::vector<std::string> found;
  Status st;
  while (s.Step(&st)) found.push_back(s.Text(0));
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (found.empty()) return Status::NotFound("no artifact '" + prefix + "'");
  if (found.size() > 1)
    return Status::InvalidArgument("artifact hash '" + prefix +
                                   "' is ambiguous");
  return found.front();
}

Result<ArtifactRef> Store::GetArtifact(const std::string& hash) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT size, kind FROM artifact WHERE hash = ?1"));
  Status st;
  bool found = s.Bind(1, hash).Step(&st);
  ArtifactRef ref;
  if (found) {
    ref = {"", hash, static_cast<std::uint64_t>(s.Int(0)),
           ParseArtifactKind(s.Text(1)).value_or(ArtifactKind::kFile)};
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  if (!found) return Status::NotFound("no artifact '" + hash + "'");
  return ref;
}

Result<std::vector<Store::ArtifactUse>> Store::ListArtifacts() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          // The environments executions name (cmf/environment.h) are kept
          // and shared like their outputs.
          "WITH env(hash) AS (SELECT value FROM property WHERE target_type = "
          "'execution' AND name = 'environment') "
          "SELECT a.hash, a.kind, "
          "EXISTS(SELECT 1 FROM tracked t WHERE t.artifact_id = a.id) OR "
          "EXISTS(SELECT 1 FROM event e WHERE e.artifact_id = a.id AND "
          "e.direction = 1) OR a.hash IN env, "
          "EXISTS(SELECT 1 FROM tracked t WHERE t.artifact_id = a.id) OR "
          "EXISTS(SELECT 1 FROM event e WHERE e.artifact_id = a.id) OR "
          "a.hash IN env, "
          "COALESCE((SELECT t.path FROM tracked t WHERE t.artifact_id = a.id "
          "LIMIT 1), "
          "(SELECT e.path FROM event e WHERE e.artifact_id = a.id LIMIT 1), "
          "''), "
          "EXISTS(SELECT 1 FROM location l WHERE l.artifact_id = a.id AND "
          "l.site <> ?1) "
          "FROM artifact a ORDER BY a.hash"));
  s.Bind(1, impl_->options.site);
  std::vector<ArtifactUse> out;
  Status st;
  while (s.Step(&st)) {
    out.push_back({s.Text(0),
                   ParseArtifactKind(s.Text(1)).value_or(ArtifactKind::kFile),
                   s.Int(2) != 0, s.Int(3) != 0, s.Text(4), s.Int(5) != 0});
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::vector<Store::ArtifactRow>> Store::QueryArtifacts(
    const std::optional<ArtifactKind>& kind,
    std::optional<std::int64_t> limit) {
  Impl& m = *impl_;
  CMF_ASSIGN_OR_RETURN(auto snapshot, m.BeginRead());
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      m.Prepare(kind
                    ? "SELECT id, hash, size, kind FROM artifact "
                      "WHERE kind = ?1 ORDER BY hash LIMIT ?2"
                    : "SELECT id, hash, size, kind FROM artifact ORDER BY hash "
                      "LIMIT ?2"));
  if (kind) s.Bind(1, ToString(*kind));
  s.Bind(2, limit.value_or(-1));
  std::vector<ArtifactRow> out;
  std::unordered_map<RowId, std::size_t> index;
  Status st;
  while (s.Step(&st)) {
    ArtifactRow row;
    row.ref = {"", s.Text(1), static_cast<std::uint64_t>(s.Int(2)),
               ParseArtifactKind(s.Text(3)).value_or(ArtifactKind::kFile)};
    index.emplace(s.Int(0), out.size());
    out.push_back(std::move(row));
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt p,
      m.Prepare(
          "SELECT DISTINCT x.path FROM event x INDEXED BY event_by_artifact "
          "WHERE x.artifact_id = ?1 UNION SELECT path FROM tracked WHERE "
          "artifact_id = ?1 ORDER BY 1"));
  for (const auto& [id, i] : index) {
    p.Bind(1, id);
    while (p.Step(&st)) out[i].paths.push_back(p.Text(0));
    p.Reset();
    CMF_RETURN_IF_ERROR(st);
  }
  return out;
}

Result<std::vector<Store::StatBlob>> Store::LoadStatIndex(
    const std::string& root) {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare(
          "SELECT root, entries FROM stat_index WHERE root = ?1 OR "
          "(root >= ?2 AND root < ?3) OR instr(?4, root || '/') = 1"));
  // Below ROOT: the roots that start with "ROOT/" ('0' follows '/'). Above
  // it: the roots R for which "ROOT/" starts with "R/".
  s.Bind(1, root).Bind(2, root + "/").Bind(3, root + "0").Bind(4, root + "/");
  std::vector<StatBlob> out;
  Status st;
  while (s.Step(&st)) out.push_back({s.Text(0), std::string(s.Blob(1))});
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Status Store::SaveStatIndex(const std::string& root, std::string_view bytes) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt drop,
        m.Prepare("DELETE FROM stat_index WHERE root >= ?1 AND root < ?2"));
    CMF_RETURN_IF_ERROR(drop.Bind(1, root + "/").Bind(2, root + "0").Run());
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt put,
        m.Prepare(
            "INSERT OR REPLACE INTO stat_index(root, entries) VALUES(?1, ?2)"));
    return put.Bind(1, root).BindBlob(2, bytes).Run();
  });
}

Result<std::vector<std::string>> Store::ListStatRoots() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s, impl_->Prepare("SELECT root FROM stat_index ORDER BY root"));
  std::vector<std::string> out;
  Status st;
  while (s.Step(&st)) out.push_back(s.Text(0));
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Status Store::DropStatIndex(std::span<const std::string> roots) {
  if (roots.empty()) return Status::Ok();
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                         m.Prepare("DELETE FROM stat_index WHERE root = ?1"));
    for (const std::string& root : roots)
      CMF_RETURN_IF_ERROR(s.Bind(1, root).Run());
    return Status::Ok();
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
