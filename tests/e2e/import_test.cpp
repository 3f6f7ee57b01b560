// cmf import cmflib on the real MLMD stores in ../shared/data, and the
// export / import json round trip.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstdlib>
#include <set>
#include <tuple>

#include "e2e/workspace.h"
#include "support.h"

using cmf::test::IsError;
using cmf::test::Outcome;
using cmf::test::ReadFile;
using cmf::test::Workspace;
using cmf::test::WriteFile;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path MlmdDir() {
  return fs::path(std::getenv("CMF_SOURCE_ROOT")) / ".." / "shared" / "data" /
         "cmflib-mlmd";
}

// Rows of SQL on the MLMD store at PATH, as text columns.
std::vector<std::vector<std::string>> Rows(const fs::path& path,
                                           const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) ==
          SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
  std::vector<std::vector<std::string>> out;
  while (sqlite3_step(s) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int i = 0; i < sqlite3_column_count(s); ++i) {
      const unsigned char* t = sqlite3_column_text(s, i);
      row.push_back(t ? reinterpret_cast<const char*>(t) : "");
    }
    out.push_back(row);
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE(
    "import: both real cmflib stores, every execution, artifact and event") {
  Workspace w;
  std::set<std::string> uuids, uris;
  std::set<std::tuple<std::string, std::string, std::string>> events;
  for (const char* file : {"aldkl.mlmd.sqlite", "aldkl_reptile.mlmd.sqlite"}) {
    CAPTURE(file);
    fs::path mlmd = MlmdDir() / file;
    REQUIRE(fs::exists(mlmd));
    json report = w.Json({"import", "cmflib", mlmd.string(), "--json"});
    auto execs = Rows(mlmd,
                      "SELECT string_value FROM ExecutionProperty WHERE "
                      "name = 'Execution_uuid'");
    CHECK(report["executions"] == execs.size());
    for (const auto& r : execs) uuids.insert(r[0]);
    for (const auto& r : Rows(mlmd, "SELECT uri FROM Artifact"))
      uris.insert(r[0]);
    for (const auto& r :
         Rows(mlmd,
              "SELECT p.string_value, CASE e.type WHEN 3 THEN "
              "'input' ELSE 'output' END, a.uri FROM Event e JOIN "
              "ExecutionProperty p ON p.execution_id = e.execution_id "
              "AND p.name = 'Execution_uuid' JOIN Artifact a ON "
              "a.id = e.artifact_id")) {
      events.insert({r[0], r[1], r[2]});
    }
  }
  // Everything is queryable, by the ids cmflib gave it.
  json all = w.Json({"query", "executions", "--json"});
  std::set<std::string> ids;
  std::set<std::tuple<std::string, std::string, std::string>> seen;
  for (const auto& e : all) {
    ids.insert(e["id"]);
    for (const char* dir : {"inputs", "outputs"}) {
      for (const auto& a : e[dir]) {
        seen.insert({e["id"], dir == std::string("inputs") ? "input" : "output",
                     a["hash"]});
      }
    }
  }
  CHECK(ids == uuids);
  CHECK(seen == events);
  std::set<std::string> hashes;
  for (const auto& a : w.Json({"query", "artifacts", "--json"}))
    hashes.insert(a["hash"]);
  CHECK(hashes == uris);

  // Properties and parameters came along; the misspelled key too.
  json reptile =
      w.Json({"query", "executions", "--stage", "Reptile Training", "--json"});
  REQUIRE(!reptile.empty());
  bool epsion = false;
  for (const auto& e : reptile) epsion |= e["params"].contains("epsion");
  CHECK(epsion);
  CHECK(all[0]["properties"].contains("Git_Repo"));

  // An artifact's hash is cmflib's uri, and a lineage target.
  std::string uri = *uris.begin();
  json g = w.Json({"lineage", uri, "--json"});
  CHECK(g["root"] == uri);
  CHECK(w.Json({"lineage", uri.substr(0, 12), "--json"})["root"] == uri);
  // Their bytes live elsewhere: fsck has nothing to say.
  Outcome fsck = w({"fsck"});
  CHECK(fsck.exit_code == 0);
  // Twice is the same as once.
  Outcome again =
      w({"import", "cmflib", (MlmdDir() / "aldkl.mlmd.sqlite").string()});
  CHECK(again.exit_code == 0);
  CHECK(w.Json({"query", "executions", "--json"}).size() == uuids.size());
}

TEST_CASE("import: bad input is refused and changes nothing") {
  Workspace w;
  WriteFile(w / "notes.txt", "not a database");
  CHECK(IsError(w({"import", "cmflib", "missing.sqlite"}), "no such file"));
  CHECK(w({"import", "cmflib", "notes.txt"}).exit_code == 1);
  CHECK(w({"import", "xml", "notes.txt"}).exit_code == 2);
  WriteFile(w / "bad.json", "{\"format\": \"something\"}");
  CHECK(IsError(w({"import", "json", "bad.json"}), "not a cmf export"));
  WriteFile(w / "broken.json",
            "{\"format\": \"cmf-export\", \"version\": 1, \"facts\": "
            "[{\"t\": \"event\", \"execution\": \"nope\"}]}");
  CHECK(w({"import", "json", "broken.json"}).exit_code == 1);
  CHECK(w.Log().empty());
  CHECK(w.Json({"status", "--json"})["uncommitted"]["facts"] == 0);
}

TEST_CASE("export: json that import reads back losslessly") {
  Workspace a;
  REQUIRE(a({"import", "cmflib", (MlmdDir() / "aldkl.mlmd.sqlite").string()})
              .exit_code == 0);
  REQUIRE(a({"exec", "-q", "--stage", "train", "-p", "lr=0.01", "--out", "m.pt",
             "--", "sh", "-c",
             "echo w > m.pt; echo 'loss 0 0.5' >&$CMF_METRICS_FD; "
             "echo 'loss 1 0.25' >&$CMF_METRICS_FD"})
              .exit_code == 0);
  REQUIRE(a({"export", "--format", "json", "-o", "all.json"}).exit_code == 0);
  json doc = json::parse(ReadFile(a / "all.json"));
  CHECK(doc["format"] == "cmf-export");
  CHECK(doc["version"] == 1);

  Workspace b;
  REQUIRE(b({"import", "json", (a / "all.json").string()}).exit_code == 0);
  REQUIRE(b({"export", "-o", "again.json"}).exit_code == 0);
  CHECK(ReadFile(b / "again.json") == ReadFile(a / "all.json"));
  CHECK(b.Log() == a.Log());
  std::string id =
      a.Json({"query", "executions", "--stage", "train", "--json"})[0]["id"];
  CHECK(b.Json({"metrics", id, "--json"}) == a.Json({"metrics", id, "--json"}));

  // One pipeline only.
  REQUIRE(a({"export", "--pipeline", "ALDKL", "-o", "aldkl.json"}).exit_code ==
          0);
  json part = json::parse(ReadFile(a / "aldkl.json"));
  std::size_t executions = 0;
  for (const auto& f : part["facts"]) executions += f["t"] == "execution";
  CHECK(executions == 10);
  CHECK(IsError(a({"export", "--pipeline", "nope"}), "no pipeline"));
}
