// End-to-end tests of the plugin host: `cmf plugins` and `cmf run` with the
// test plugins of tests/plugins/ (a good one, one built for another ABI
// version, one without the entry point) and broken files beside them.
#include <doctest/doctest.h>

#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "support.h"
#include "workspace.h"

using cmf::test::Cmf;
using cmf::test::IsError;
using cmf::test::Outcome;
using cmf::test::TempDir;
using cmf::test::Workspace;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string TestPluginDir() {
  const char* dir = std::getenv("CMF_TEST_PLUGIN_DIR");
  REQUIRE(dir != nullptr);
  return dir;
}

// A workspace whose cmf finds only the test plugins (plus the build tree's).
struct PluginWorkspace : Workspace {
  PluginWorkspace() { env["CMF_PLUGIN_PATH"] = TestPluginDir(); }
};

}  // namespace

TEST_CASE(
    "plugins: the good module is listed with its stages and schemas; "
    "bad ones are skipped with a warning that names them") {
  PluginWorkspace ws;
  Outcome o = ws({"plugins", "--json"});
  REQUIRE(o.exit_code == 0);
  json j = json::parse(o.out);
  json testplug;
  for (const json& p : j["plugins"])
    if (p["name"] == "testplug") testplug = p;
  REQUIRE(testplug.is_object());
  CHECK(testplug["version"] == "1.2.3");
  CHECK(testplug["stages"].size() == 5);
  json echo = testplug["stages"][0];
  CHECK(echo["name"] == "echo");
  CHECK(echo["params"][0] == json{{"name", "count"},
                                  {"type", "int"},
                                  {"default", "3"},
                                  {"help", "steps of metric value"},
                                  {"multiple", false},
                                  {"required", false},
                                  {"allowed", json::array()},
                                  {"short", nullptr}});
  CHECK(echo["params"][3]["allowed"] == json{"a", "b", "proc:"});
  CHECK(echo["params"][4]["multiple"] == true);
  for (const json& p : j["plugins"]) {
    CHECK(p["name"] != "badabi");
    CHECK(p["name"] != "noentry");
  }
  CHECK(o.err.find("cmf-badabi.so': it was built for plugin ABI version 99") !=
        std::string::npos);
  CHECK(o.err.find("cmf-noentry.so': it has no entry point cmf_plugin_entry") !=
        std::string::npos);
  CHECK(j["warnings"].size() >= 2);
}

TEST_CASE(
    "plugins: a file that is not a shared object is skipped, never a "
    "crash") {
  PluginWorkspace ws;
  TempDir extra;
  cmf::test::WriteFile(extra / "cmf-garbage.so", "not an ELF file\n");
  ws.env["CMF_PLUGIN_PATH"] = (extra.path()).string() + ":" + TestPluginDir();
  Outcome o = ws({"plugins"});
  CHECK(o.exit_code == 0);
  CHECK(o.err.find("skipping plugin '" + (extra / "cmf-garbage.so").string()) !=
        std::string::npos);
  CHECK(o.out.find("testplug 1.2.3") != std::string::npos);
  // And a stage still runs.
  CHECK(ws({"run", "-q", "echo"}).exit_code == 0);
}

TEST_CASE(
    "plugins: a module's environment file sets defaults before it "
    "loads; the user's value wins; a bad line is a warning") {
  PluginWorkspace ws;
  TempDir extra;
  fs::copy_file(fs::path(TestPluginDir()) / "cmf-testplug.so",
                extra / "cmf-testplug.so");
  cmf::test::WriteFile(extra / "cmf-testplug.env",
                       "# defaults\nCMF_TESTPLUG_ENV=from the file\n"
                       "lower=case\nNO_EQUALS\n");
  ws.env["CMF_PLUGIN_PATH"] = extra.path().string();
  Outcome listed = ws({"plugins"});
  CHECK(listed.exit_code == 0);
  CHECK(listed.err.find("ignoring line 3 of '" +
                        (extra / "cmf-testplug.env").string() +
                        "': not NAME=VALUE") != std::string::npos);
  CHECK(listed.err.find("ignoring line 4 of") != std::string::npos);
  REQUIRE(ws({"run", "-q", "echo", "-o", "o.txt"}).exit_code == 0);
  CHECK(ws.Log()[0]["properties"]["env"] == "from the file");
  ws.env["CMF_TESTPLUG_ENV"] = "the user's";
  REQUIRE(ws({"run", "-q", "echo", "-o", "o.txt"}).exit_code == 0);
  CHECK(ws.Log()[0]["properties"]["env"] == "the user's");
}

TEST_CASE(
    "run: records every parameter, the plugin and its version, the "
    "logged artifacts, metrics and properties") {
  PluginWorkspace ws;
  cmf::test::WriteFile(ws / "a.txt", "a");
  cmf::test::WriteFile(ws / "b.txt", "b");
  Outcome o = ws({"run", "echo", "--count", "4", "--rate=0.25", "--flag",
                  "--inputs", "a.txt", "b.txt", "-o", "o.txt"});
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  CHECK(e["stage"] == "echo");
  CHECK(e["status"] == "ok");
  CHECK(e["params"]["count"] == 4);
  CHECK(e["params"]["rate"] == 0.25);
  CHECK(e["params"]["flag"] == true);
  CHECK(e["params"]["mode"] == "a");  // defaults are recorded too
  CHECK(e["params"]["inputs"] == R"(["a.txt","b.txt"])");
  CHECK(e["params"]["out"] == "o.txt");
  CHECK(e["properties"]["plugin"] == "testplug");
  CHECK(e["properties"]["plugin_version"] == "1.2.3");
  CHECK(e["properties"]["plugin_sha256"].get<std::string>().size() == 64);
  CHECK(e["properties"]["answer"] == 42);
  CHECK(e["properties"]["ratio"] == 0.25);
  CHECK(e["properties"]["note"] == "hello");
  CHECK(e["inputs"].size() == 2);
  REQUIRE(e["outputs"].size() == 1);
  CHECK(e["outputs"][0]["kind"] == "model");
  CHECK(cmf::test::ReadFile(ws / "o.txt") ==
        "count=4 rate=0.25 flag=true mode=a id=" + e["id"].get<std::string>() +
            "\n");
  json m = ws.Json({"metrics", e["id"], "--json"});
  CHECK(m["series"]["value"] == json{{0, 0.0}, {1, 0.25}, {2, 0.5}, {3, 0.75}});
  // The output derives from the first input.
  json lineage = ws.Json({"lineage", "o.txt", "--json"});
  bool derived = false;
  for (const json& edge : lineage["edges"])
    derived |= edge["type"] == "derived_from";
  CHECK(derived);
}

TEST_CASE(
    "run: unknown, ill-typed, disallowed and missing parameters are "
    "usage errors that record nothing") {
  PluginWorkspace ws;
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{"run", "echo", "--cuont", "3"}, "has no parameter '--cuont'"},
           {{"run", "echo", "--count", "three"},
            "'--count' wants an integer, not 'three'"},
           {{"run", "echo", "--rate", "fast"}, "'--rate' wants a number"},
           {{"run", "echo", "--flag=maybe"}, "'--flag' wants true or false"},
           {{"run", "echo", "--mode", "c"},
            "'--mode' must be one of a, b, proc:..., not 'c'"},
           {{"run", "echo", "--count"}, "'--count' needs a value"},
           {{"run", "echo", "stray"}, "unexpected argument 'stray'"},
           {{"run", "wait-cancel"}, "needs '--started'"},
           {{"run", "no-such-stage"}, "no plugin has a stage 'no-such-stage'"},
       }) {
    Outcome o = ws(c.args);
    INFO(c.args.back());
    CHECK(o.exit_code == 2);
    CHECK(IsError(o, c.error));
  }
  CHECK(ws.Log().empty());
  // A prefix choice accepts anything after its prefix.
  CHECK(ws({"run", "-q", "echo", "--mode", "proc:python3 sim.py"}).exit_code ==
        0);
}

TEST_CASE(
    "run: STAGE --help is generated from the schema and works outside "
    "a repository") {
  TempDir dir;
  Outcome o = Cmf({"run", "echo", "--help"}, dir.path(),
                  {{"CMF_PLUGIN_PATH", TestPluginDir()}});
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("Usage: cmf run") != std::string::npos);
  CHECK(o.out.find("--count int") != std::string::npos);
  CHECK(o.out.find("(default: 3)") != std::string::npos);
  CHECK(o.out.find("[a|b|proc:...]") != std::string::npos);
  CHECK(o.out.find("--inputs path ...") != std::string::npos);
  CHECK(o.out.find("-o, --out path") != std::string::npos);
  Outcome run =
      Cmf({"run", "echo"}, dir.path(), {{"CMF_PLUGIN_PATH", TestPluginDir()}});
  CHECK(run.exit_code == 1);
  CHECK(IsError(run, "not a cmf repository"));
}

TEST_CASE(
    "run: a failing stage is recorded as failed with its message, "
    "and what it logged is kept") {
  PluginWorkspace ws;
  Outcome o = ws({"run", "fail"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "fail: deliberate failure"));
  json e = ws.Log()[0];
  CHECK(e["status"] == "failed");
  CHECK(e["message"] == "deliberate failure");
  json m = ws.Json({"metrics", e["id"], "--json"});
  CHECK(m["series"]["before_failure"] == json{{0, 1.0}});

  Outcome t = ws({"run", "throw"});
  CHECK(t.exit_code == 1);
  CHECK(IsError(t, "thrown from the stage"));
  CHECK(ws.Log()[0]["status"] == "failed");

  Outcome b = ws({"run", "bad-output"});
  CHECK(b.exit_code == 1);
  CHECK(IsError(b, "does-not-exist.bin"));
}

TEST_CASE(
    "run: Ctrl-C records the run as interrupted and keeps the steps "
    "logged so far") {
  PluginWorkspace ws;
  std::string script =
      "\"$CMF\" run wait-cancel --started started & pid=$!; "
      "i=0; while [ ! -f started ] && [ $i -lt 3000 ]; do sleep 0.01; "
      "i=$((i+1)); done; sleep 0.1; kill -INT $pid; wait $pid";
  std::map<std::string, std::string> env = ws.env;
  env["CMF"] = cmf::test::CmfBinary();
  Outcome o = cmf::test::RunProcess({"sh", "-c", script}, ws.dir.path(), env);
  INFO(o.err);
  CHECK(o.exit_code == 130);
  json e = ws.Log()[0];
  CHECK(e["status"] == "interrupted");
  CHECK(e["exit_code"] == 130);
  json m = ws.Json({"metrics", e["id"], "--json"});
  CHECK(m["series"]["tick"].size() >= 1);
}

TEST_CASE("run: log and status never load a plugin") {
  PluginWorkspace ws;
  REQUIRE(ws({"run", "-q", "echo"}).exit_code == 0);
  // With LD_DEBUG, the dynamic loader names every object it opens.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"log"}, {"status"}}) {
    std::map<std::string, std::string> env = ws.env;
    env["LD_DEBUG"] = "files";
    Outcome o = Cmf(args, ws.dir.path(), env);
    CHECK(o.exit_code == 0);
    CHECK(o.err.find("cmf-testplug.so") == std::string::npos);
    CHECK(o.err.find("libtorch") == std::string::npos);
  }
}

TEST_CASE(
    "run: a cmf run killed by SIGKILL shows as interrupted, and commit "
    "records it so") {
  PluginWorkspace ws;
  auto env = ws.env;
  env["CMF_CRASH_AT"] = "run:started";
  Outcome killed = Cmf({"run", "echo"}, ws.dir.path(), env);
  REQUIRE(killed.signal == SIGKILL);
  json e = ws.Log()[0];
  CHECK(e["stage"] == "echo");
  CHECK(e["status"] == "interrupted");
  CHECK(ws.Json({"commit", "--json"})["interrupted"] == json::array({e["id"]}));
  CHECK(ws.Json({"show", e["id"], "--json"})["status"] == "interrupted");
}
