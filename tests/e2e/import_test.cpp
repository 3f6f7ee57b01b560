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

fs::path MlmdDir() { return cmf::test::SharedDataDir() / "cmflib-mlmd"; }

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
  if (!cmf::test::HaveSharedData(MlmdDir())) return;
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
  if (!cmf::test::HaveSharedData(MlmdDir())) return;
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

  // A file that cannot be written is an error that names it; nothing is left
  // behind, and an export written before stays whole.
  Outcome nowhere = a({"export", "-o", "no/such/folder/x.json"});
  CHECK(nowhere.exit_code == 1);
  CHECK(IsError(nowhere, "cannot write '"));
  CHECK(nowhere.err.find("x.json") != std::string::npos);
  const std::string before = ReadFile(a / "aldkl.json");
  REQUIRE(a({"export", "-o", "aldkl.json"}).exit_code == 0);
  CHECK(ReadFile(a / "aldkl.json") != before);
  for (const auto& e : fs::directory_iterator(a.dir.path()))
    CHECK(e.path().filename().string().find(".cmf-") == std::string::npos);
}

TEST_CASE(
    "import: crafted json is refused with a clear error, never a crash, and "
    "nothing of it travels") {
  Workspace w;
  const std::string exec =
      "{\"t\": \"execution\", \"id\": \"01900000-0000-7000-8000-000000000001\","
      " \"pipeline\": \"p\", \"stage\": \"s\", \"command\": [], \"code\": "
      "null, \"host\": \"h\", \"user\": \"u\", \"site\": \"import\", "
      "\"started_ms\": 1000, \"params\": {}}";
  auto doc = [](const std::string& facts, const std::string& version = "1") {
    return "{\"format\": \"cmf-export\", \"version\": " + version +
           ", \"facts\": [" + facts + "]}";
  };
  auto with = [&](const std::string& key, const std::string& value) {
    std::string e = exec;
    auto at = e.find("\"" + key + "\": ");
    REQUIRE(at != std::string::npos);
    auto start = at + key.size() + 4;
    auto end = e.find_first_of(",}", start);
    if (e[start] == '[') end = e.find(']', start) + 1;
    if (e[start] == '{') end = e.find('}', start) + 1;
    return e.substr(0, start) + value + e.substr(end);
  };
  const std::string artifact =
      "{\"t\": \"artifact\", \"hash\": \"" + std::string(64, 'a') +
      "\", \"algorithm\": \"sha256\", \"kind\": \"file\", \"size\": 1}";
  auto artifact_with = [&](const std::string& key, const std::string& value) {
    std::string a = artifact;
    auto at = a.find("\"" + key + "\": ");
    auto start = at + key.size() + 4;
    auto end = a.find_first_of(",}", start);
    return a.substr(0, start) + value + a.substr(end);
  };
  const std::string state =
      "{\"t\": \"state\", \"execution\": \"01900000-0000-7000-8000-"
      "000000000001\", \"hlc\": HLC, \"site\": \"import\", \"status\": \"ok\", "
      "\"exit_code\": 0, \"ended_ms\": 2000, \"message\": \"\"}";
  auto state_hlc = [&](const std::string& hlc) {
    std::string s = state;
    s.replace(s.find("HLC"), 3, hlc);
    return s;
  };
  struct Case {
    const char* what;
    std::string text;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"a value nested 100,000 deep",
       doc(std::string(100000, '[') + std::string(100000, ']')),
       "the export nests arrays or objects deeper than 64"},
      {"a version that is a string", doc(exec, "\"1\""), "\"version\""},
      {"a format that is a number",
       "{\"format\": 1, \"version\": 1, \"facts\": []}", "not a cmf export"},
      {"facts that are not objects", doc("1, 2"), "fact 1 of the export"},
      {"a kind that is a number", doc("{\"t\": 3}"), "'t' is not a string"},
      {"a parameter without a value",
       doc(with("params", "{\"lr\": {\"type\": \"real\"}}")), "no 'value'"},
      {"metric values that are not numbers",
       doc(exec +
           ", {\"t\": \"metrics\", \"execution\": \"01900000-0000-7000-8000-"
           "000000000001\", \"series\": \"loss\", \"steps\": [0], \"values\": "
           "[\"x\"]}"),
       "not a number"},
      {"a hash that is a path",
       doc(artifact_with("hash", "\"..//../../etc/hostname\"")),
       "'hash' is not a hash (64 lowercase hex digits)"},
      {"a size of 2^64-1", doc(artifact_with("size", "18446744073709551615")),
       "'size' is out of range"},
      {"a numeric command", doc(with("command", "5")), "'command'"},
      {"an id that is not a uuid", doc(with("id", "\"x\"")),
       "'id' is not an execution id"},
      {"a pipeline name with a newline", doc(with("pipeline", "\"a\\nb\"")),
       "'pipeline' is not a name"},
      {"a clock near the end of time",
       doc(exec + ", " + state_hlc("9223372036854775806")),
       "ahead of this site's"},
      {"a negative clock", doc(exec + ", " + state_hlc("-5")),
       "'hlc' is out of range"},
      {"a clock of 2^64-1",
       doc(exec + ", " + state_hlc("18446744073709551615")),
       "'hlc' is out of range"},
      {"bytes that are not UTF-8", doc(with("host", "\"caf\xe9\"")),
       "not UTF-8"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    WriteFile(w / "crafted.json", c.text);
    Outcome o = w({"import", "json", "crafted.json"});
    INFO(o.err);
    CHECK(o.signal == 0);
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, c.fragment));
  }
  CHECK(w.Log().empty());
  CHECK(w.Json({"status", "--json"})["uncommitted"]["facts"] == 0);
  // The good parts of the same document go in.
  WriteFile(w / "fine.json", doc(exec + ", " + state_hlc("65536")));
  Outcome fine = w({"import", "json", "fine.json"});
  INFO(fine.err);
  CHECK(fine.exit_code == 0);
  CHECK(w.Log().size() == 1);
}
