// End-to-end tests: the real cmf binary in temporary workspaces.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "support.h"
#include "verb.h"
#include "workspace.h"

using cmf::test::Cmf;
using cmf::test::IsError;
using cmf::test::Outcome;
using cmf::test::TempDir;
using cmf::test::Workspace;
using nlohmann::json;
namespace fs = std::filesystem;

TEST_CASE("cli: init creates .cmf/ and says where") {
  TempDir dir;
  Outcome o = Cmf({"init"}, dir.path());
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("Initialized empty cmf repository in " +
                   (dir / ".cmf").string()) != std::string::npos);
  CHECK(fs::is_regular_file(dir / ".cmf" / "metadata.db"));
}

TEST_CASE(
    "cli: init where a repository exists is an error that changes nothing") {
  Workspace ws;
  std::string db = cmf::test::ReadFile(ws / ".cmf/metadata.db");
  Outcome o = ws({"init"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "already exists"));
  CHECK(cmf::test::ReadFile(ws / ".cmf/metadata.db") == db);
}

TEST_CASE("cli: verbs that need a repository fail outside one") {
  TempDir dir;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"log"},
           {"show", "01"},
           {"metrics", "01"},
           {"config", "-l"},
           {"exec", "--stage", "s", "--", "true"}}) {
    Outcome o = Cmf(args, dir.path());
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, "not a cmf repository"));
  }
}

TEST_CASE(
    "cli: an unknown verb is a usage error with a suggestion when one is "
    "close") {
  TempDir dir;
  Outcome o = Cmf({"lgo"}, dir.path());
  CHECK(o.exit_code == 2);
  CHECK(IsError(o, "'lgo' is not a cmf verb"));
  CHECK(o.err.find("\tlog") != std::string::npos);
  Outcome far = Cmf({"frobnicate"}, dir.path());
  CHECK(far.exit_code == 2);
  CHECK(far.err.find("most similar") == std::string::npos);
}

TEST_CASE("cli: a bad option is a usage error") {
  Workspace ws;
  CHECK(ws({"log", "--no-such-flag"}).exit_code == 2);
  CHECK(ws({"exec", "--", "true"}).exit_code == 2);  // --stage is required
  Outcome bad_param =
      ws({"exec", "--stage", "s", "-p", "novalue", "--", "true"});
  CHECK(bad_param.exit_code == 2);
  CHECK(IsError(bad_param, "not KEY=VALUE"));
  CHECK(ws.Log().empty());
}

TEST_CASE(
    "cli: every verb has a man page and a --help that works outside a "
    "repository") {
  TempDir dir;
  fs::path man = fs::path(std::getenv("CMF_SOURCE_ROOT")) / "man";
  CHECK(fs::is_regular_file(man / "cmf.1"));
  std::string installed = cmf::test::ReadFile(man / "meson.build");
  for (const auto& verb : cmf::cli::Verbs()) {
    std::string name(verb.name);
    CAPTURE(name);
    CHECK(fs::is_regular_file(man / ("cmf-" + name + ".1")));
    CHECK(installed.find("'cmf-" + name + ".1'") !=
          std::string::npos);  // and installed
    Outcome o = Cmf({name, "--help"}, dir.path());
    CHECK(o.exit_code == 0);
    CHECK(o.out.find(std::string(verb.summary)) != std::string::npos);
  }
}

TEST_CASE("cli: help VERB shows that verb's manual page") {
  TempDir dir;
  Outcome o = Cmf({"help", "exec"}, dir.path());
  CHECK(o.exit_code == 0);
  CHECK(o.out.find("CMF_METRICS_FD") != std::string::npos);
  CHECK(Cmf({"help", "nope"}, dir.path()).exit_code == 2);
}

TEST_CASE("cli: exec runs the command, streams its output and records it all") {
  Workspace ws;
  cmf::test::WriteFile(ws / "raw.h5", "raw bytes");
  Outcome o = ws({"exec", "--stage", "prepare", "--in", "raw.h5", "--out",
                  "patches.h5", "-p", "window=16", "--", "sh", "-c",
                  "echo preparing; cp raw.h5 patches.h5"});
  CHECK(o.exit_code == 0);
  CHECK(o.out == "preparing\n");
  json log = ws.Log();
  REQUIRE(log.size() == 1);
  const json& e = log[0];
  CHECK(e["stage"] == "prepare");
  CHECK(e["pipeline"] == ws.dir.path().filename().string());
  CHECK(e["status"] == "ok");
  CHECK(e["exit_code"] == 0);
  CHECK(e["params"] == json{{"window", "16"}});
  CHECK(e["command"] ==
        json{"sh", "-c", "echo preparing; cp raw.h5 patches.h5"});
  CHECK(e["code"].is_null());
  CHECK(std::regex_match(
      e["id"].get<std::string>(),
      std::regex("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                 "[0-9a-f]{12}")));
  CHECK(std::regex_match(
      e["started"].get<std::string>(),
      std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK(e["ended"].is_string());
  REQUIRE(e["inputs"].size() == 1);
  REQUIRE(e["outputs"].size() == 1);
  for (const json& a : {e["inputs"][0], e["outputs"][0]}) {
    CHECK(std::regex_match(a["hash"].get<std::string>(),
                           std::regex("[0-9a-f]{64}")));
    CHECK(a["size"] == 9);
    CHECK(a["kind"] == "dataset");
  }
  CHECK(e["inputs"][0]["path"] == "raw.h5");
  CHECK(e["outputs"][0]["path"] == "patches.h5");
  CHECK(e["inputs"][0]["hash"] ==
        e["outputs"][0]["hash"]);  // same bytes, same artifact
  std::string hash = e["outputs"][0]["hash"];
  CHECK(fs::is_regular_file(ws / (".cmf/objects/sha256/" + hash.substr(0, 2) +
                                  "/" + hash.substr(2))));
}

TEST_CASE(
    "cli: exec from a subfolder records workspace-relative paths and config "
    "pipeline") {
  Workspace ws;
  REQUIRE(ws({"config", "core.pipeline", "ALDKL"}).exit_code == 0);
  cmf::test::WriteFile(ws / "data/raw.csv", "1,2\n");
  Outcome o = Cmf({"exec", "--stage", "s", "--in", "raw.csv", "--", "true"},
                  ws / "data");
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  CHECK(e["pipeline"] == "ALDKL");
  CHECK(e["inputs"][0]["path"] == "data/raw.csv");
}

TEST_CASE(
    "cli: a failing command is recorded as failed and cmf exits with its "
    "code") {
  Workspace ws;
  Outcome o =
      ws({"exec", "--stage", "s", "--", "sh", "-c", "echo oops >&2; exit 3"});
  CHECK(o.exit_code == 3);
  CHECK(o.err.find("oops") != std::string::npos);
  json e = ws.Log()[0];
  CHECK(e["status"] == "failed");
  CHECK(e["exit_code"] == 3);
}

TEST_CASE("cli: a command killed by SIGINT is recorded as interrupted") {
  Workspace ws;
  cmf::test::WriteFile(ws / "in.txt", "x");
  Outcome o = ws({"exec", "--stage", "s", "--in", "in.txt", "--", "sh", "-c",
                  "echo 'sigma 0 0.5' >&$CMF_METRICS_FD; kill -INT $$"});
  CHECK(o.exit_code == 130);
  json e = ws.Log()[0];
  CHECK(e["status"] == "interrupted");
  CHECK(e["exit_code"] == 130);
  CHECK(e["inputs"].size() ==
        1);  // what was logged before the interruption is kept
  Outcome m = ws({"metrics", e["id"], "--json"});
  CHECK(json::parse(m.out)["series"]["sigma"] == json{{0, 0.5}});
}

TEST_CASE(
    "cli: a declared output that the command did not produce fails the "
    "execution") {
  Workspace ws;
  Outcome o = ws({"exec", "--stage", "s", "--out", "model.pt", "--", "true"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "output 'model.pt' was not produced"));
  CHECK(ws.Log()[0]["status"] == "failed");
}

TEST_CASE(
    "cli: a missing input is an error before the command runs, and nothing is "
    "recorded") {
  Workspace ws;
  Outcome o =
      ws({"exec", "--stage", "s", "--in", "missing.h5", "--", "touch", "ran"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "input 'missing.h5' does not exist"));
  CHECK_FALSE(fs::exists(ws / "ran"));
  CHECK(ws.Log().empty());
}

TEST_CASE("cli: an unreadable input is an error before the command runs") {
  Workspace ws;
  fs::create_directories(ws / "d");
  REQUIRE(::mkfifo((ws / "d/pipe").c_str(), 0644) == 0);
  Outcome o = ws({"exec", "--stage", "s", "--in", "d", "--", "touch", "ran"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "neither a regular file nor a directory"));
  CHECK_FALSE(fs::exists(ws / "ran"));
  CHECK(ws.Log().empty());
}

TEST_CASE("cli: an input inside .cmf/ is refused") {
  Workspace ws;
  Outcome o = ws({"exec", "--stage", "s", "--in", ".cmf/config", "--", "true"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "inside the repository's .cmf/"));
  CHECK(ws.Log().empty());
}

TEST_CASE(
    "cli: a command that cannot be started is an error and nothing is "
    "recorded") {
  Workspace ws;
  Outcome o = ws({"exec", "--stage", "s", "--", "no-such-command-anywhere"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "cannot run 'no-such-command-anywhere'"));
  cmf::test::WriteFile(ws / "script.sh", "#!/bin/sh\n");  // not executable
  Outcome o2 = ws({"exec", "--stage", "s", "--", "./script.sh"});
  CHECK(o2.exit_code == 1);
  CHECK(ws.Log().empty());
}

TEST_CASE(
    "cli: step metrics written to CMF_METRICS_FD are recorded and printed") {
  Workspace ws;
  Outcome o =
      ws({"exec", "--stage", "train", "--", "sh", "-c",
          "for i in 2 0 1; do echo \"loss $i 0.$i\" >&$CMF_METRICS_FD; done; "
          "echo 'sigma 0 1.5' >&$CMF_METRICS_FD; echo 'garbage' "
          ">&$CMF_METRICS_FD; "
          "test -n \"$CMF_EXECUTION_ID\""});
  REQUIRE(o.exit_code == 0);
  CHECK(o.err.find("cmf: warning: ignoring metrics line 'garbage'") !=
        std::string::npos);
  std::string id = ws.Log()[0]["id"];
  json m = json::parse(ws({"metrics", id, "--json"}).out);
  CHECK(m == json{{"series",
                   {{"loss", {{0, 0.0}, {1, 0.1}, {2, 0.2}}},
                    {"sigma", {{0, 1.5}}}}}});
  json only = json::parse(
      ws({"metrics", id.substr(0, 23), "--series", "sigma", "--json"}).out);
  CHECK(only["series"].size() == 1);
  Outcome csv = ws({"metrics", id, "--csv", "--series", "sigma"});
  CHECK(csv.out == "series,step,value\nsigma,0,1.5\n");
  Outcome missing = ws({"metrics", id, "--series", "nope"});
  CHECK(missing.exit_code == 1);
  CHECK(IsError(missing, "no metric series 'nope'"));
}

TEST_CASE(
    "cli: show prints one execution by unique prefix, and refuses bad "
    "prefixes") {
  Workspace ws;
  REQUIRE(ws({"exec", "--stage", "a", "-q", "--", "true"}).exit_code == 0);
  REQUIRE(ws({"exec", "--stage", "b", "-q", "--", "true"}).exit_code == 0);
  json log = ws.Log();
  REQUIRE(log.size() == 2);
  CHECK(log[0]["stage"] == "b");  // newest first
  std::string id = log[1]["id"];
  Outcome o = ws({"show", id, "--json"});
  REQUIRE(o.exit_code == 0);
  CHECK(json::parse(o.out) == log[1]);
  Outcome text = ws({"show", id});
  CHECK(text.out.find("execution " + id) != std::string::npos);

  std::string a = log[0]["id"], b = log[1]["id"];
  std::size_t common = 0;
  while (a[common] == b[common]) ++common;
  Outcome ambiguous = ws({"show", a.substr(0, common)});
  CHECK(ambiguous.exit_code == 1);
  CHECK(IsError(ambiguous, "ambiguous"));
  Outcome unknown = ws({"show", "ffffffff"});
  CHECK(unknown.exit_code == 1);
  CHECK(IsError(unknown, "no execution 'ffffffff'"));
}

TEST_CASE(
    "cli: log --oneline leads with the short id (the id's last 12 digits), "
    "which show, metrics, lineage and compare take back, as its first 8 "
    "digits too") {
  Workspace ws;
  REQUIRE(ws({"exec", "--stage", "a", "-q", "--", "true"}).exit_code == 0);
  REQUIRE(ws({"exec", "--stage", "b", "-q", "--", "true"}).exit_code == 0);
  json log = ws.Log();
  REQUIRE(log.size() == 2);
  Outcome oneline = ws({"log", "--oneline"});
  cmf::test::Ok(oneline);
  std::vector<std::string> shown;
  std::istringstream lines(oneline.out);
  for (std::string line; std::getline(lines, line);) {
    shown.push_back(line.substr(0, line.find(' ')));
  }
  REQUIRE(shown.size() == 2);
  for (std::size_t i = 0; i < 2; ++i) {
    const std::string id = log[i]["id"];
    INFO(id);
    CHECK(shown[i] == id.substr(24));  // newest first, as --json
    CHECK(shown[i].size() == 12);
    // Runs a moment apart share their first 8 digits (the time: they change
    // every 65 s) ...
    if (log[0]["id"].get<std::string>().substr(0, 8) ==
        log[1]["id"].get<std::string>().substr(0, 8)) {
      CHECK(ws({"show", id.substr(0, 8)}).exit_code == 1);
    }
    // ... not their short ids, whole or in part.
    for (const std::string& typed : {shown[i], shown[i].substr(0, 8)}) {
      json one = json::parse(ws({"show", typed, "--json"}).out);
      CHECK(one["id"] == id);
      cmf::test::Ok(ws({"metrics", typed}));
      CHECK(ws.Json({"lineage", typed, "--json"})["root"] == id);
    }
  }
  // The text of compare and lineage shows the same short form.
  Outcome table = ws({"compare", "--stage", "a"});
  cmf::test::Ok(table);
  CHECK(table.out.find(shown[1] + " ") != std::string::npos);
  CHECK(table.out.find(log[1]["id"].get<std::string>()) == std::string::npos);
  CHECK(ws({"lineage", shown[0]}).out.find(shown[0]) != std::string::npos);
}

TEST_CASE("cli: log filters by stage and limits with -n") {
  Workspace ws;
  for (const char* stage : {"a", "b", "a"}) {
    REQUIRE(ws({"exec", "--stage", stage, "-q", "--", "true"}).exit_code == 0);
  }
  CHECK(json::parse(ws({"log", "--json", "--stage", "a"}).out).size() == 2);
  CHECK(json::parse(ws({"log", "--json", "-n", "1"}).out).size() == 1);
  Outcome oneline = ws({"log", "--oneline"});
  CHECK(std::count(oneline.out.begin(), oneline.out.end(), '\n') == 3);
}

TEST_CASE(
    "cli: log and query text show the command without reading inputs; --json "
    "keeps them") {
  Workspace ws;
  cmf::test::WriteFile(ws / "in.txt", "x\n");
  cmf::test::Ok(ws(
      {"exec", "--stage", "s", "-q", "--in", "in.txt", "--", "true", "arg"}));
  // The text reads no input's artifact (the trace shows every statement).
  ws.env["CMF_TRACE_SQL"] = "1";
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"log"}, {"log", "--oneline"}, {"query", "executions"}}) {
    Outcome text = ws(args);
    INFO(args.front(), text.err);
    cmf::test::Ok(text);
    CHECK(text.out.find("true arg") != std::string::npos);
    CHECK(text.err.find("cmf: sql: ") != std::string::npos);
    CHECK(text.err.find("JOIN artifact") == std::string::npos);
  }
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"log", "--json"}, {"query", "executions", "--json"}}) {
    Outcome o = ws(args);
    cmf::test::Ok(o);
    CHECK(o.err.find("JOIN artifact") != std::string::npos);
    json rows = json::parse(o.out);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0]["inputs"].size() == 1);
    CHECK(rows[0]["inputs"][0]["path"] == "in.txt");
    CHECK(rows[0]["command"] == json::array({"true", "arg"}));
  }
  // Without the variable, standard error stays empty.
  ws.env.erase("CMF_TRACE_SQL");
  CHECK(ws({"log"}).err.empty());
}

namespace {

// The page faults of one `cmf --version`, with MALLOC_PERTURB_ set to PERTURB
// (unset when null).
long VersionPageFaults(const char* perturb) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).rfind("MALLOC_PERTURB_=", 0) != 0)
      env_strings.push_back(*e);
  }
  if (perturb) env_strings.push_back(std::string("MALLOC_PERTURB_=") + perturb);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string binary = cmf::test::CmfBinary(), flag = "--version";
  char* argv[] = {binary.data(), flag.data(), nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, argv[0], &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  int status = 0;
  struct rusage usage {};
  REQUIRE(::wait4(pid, &status, 0, &usage) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return usage.ru_minflt + usage.ru_majflt;
}

}  // namespace

TEST_CASE(
    "cli: MALLOC_PERTURB_ (which meson test sets) does not make cmf touch the "
    "heap it reserves") {
  // glibc fills every block it hands out and takes back under MALLOC_PERTURB_:
  // a reserved heap block would be written whole (30,000 faults instead of
  // some 250). Compared with a run without it, so that a sanitizer's larger
  // start (10,000 faults, the same either way) passes too.
  long plain = VersionPageFaults(nullptr);
  long perturbed = VersionPageFaults("77");
  INFO("faults without MALLOC_PERTURB_ ", plain, ", with it ", perturbed);
  CHECK(perturbed < 2 * plain + 1000);
}

TEST_CASE(
    "cli: CMF_TRACE_PHASES tells add's and status's phases on standard error "
    "and changes nothing else") {
  Workspace ws;
  for (int i = 0; i < 5; ++i)
    cmf::test::WriteFile(ws / "data" / ("f" + std::to_string(i)), "x\n");
  const std::regex line(R"(cmf: phase: [a-z ]+ [0-9]+\.[0-9]{3} ms)");
  // The names of the phases in ERR, in order; every line of ERR must be one.
  auto phases = [&](const std::string& err) {
    std::vector<std::string> names;
    std::istringstream in(err);
    for (std::string l; std::getline(in, l);) {
      INFO(l);
      CHECK(std::regex_match(l, line));
      const std::size_t end = l.rfind(' ', l.size() - 4);
      names.push_back(l.substr(12, end - 12));
    }
    return names;
  };
  ws.env["CMF_TRACE_PHASES"] = "1";
  Outcome add = ws({"add", "-q", "data"});
  cmf::test::Ok(add);
  CHECK(phases(add.err) == std::vector<std::string>{
                               "open", "tracked list", "list", "stat cache",
                               "stat", "hash", "manifest", "publish", "track"});
  Outcome traced = ws({"status"});
  cmf::test::Ok(traced);
  CHECK(phases(traced.err) ==
        std::vector<std::string>{"open", "tracked list", "list", "stat cache",
                                 "stat", "hash", "manifest", "publish",
                                 "compare"});
  // Without the variable (or with it empty): the same answer, nothing more.
  for (const char* value : std::vector<const char*>{"", nullptr}) {
    if (value) {
      ws.env["CMF_TRACE_PHASES"] = value;
    } else {
      ws.env.erase("CMF_TRACE_PHASES");
    }
    Outcome plain = ws({"status"});
    cmf::test::Ok(plain);
    CHECK(plain.out == traced.out);
    CHECK(plain.err.empty());
  }
}

TEST_CASE("cli: a corrupt metadata.db is reported and left as it was") {
  Workspace ws;
  std::string junk(8192, '\x5a');
  cmf::test::WriteFile(ws / ".cmf/metadata.db", junk);
  fs::remove(ws / ".cmf/metadata.db-wal");
  fs::remove(ws / ".cmf/metadata.db-shm");
  Outcome o = ws({"log"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "cannot open metadata store"));
  CHECK(IsError(o, "file is not a database"));
  CHECK(cmf::test::ReadFile(ws / ".cmf/metadata.db") == junk);
}

TEST_CASE("cli: a foreign SQLite database in place of metadata.db is refused") {
  Workspace ws;
  fs::path db_path = ws / ".cmf/metadata.db";
  fs::remove(db_path);
  fs::remove(ws / ".cmf/metadata.db-wal");
  fs::remove(ws / ".cmf/metadata.db-shm");
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "CREATE TABLE Execution(id INTEGER)", nullptr,
                       nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  std::string before = cmf::test::ReadFile(db_path);
  Outcome o = ws({"log"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "not a cmf metadata store"));
  CHECK(ws({"exec", "--stage", "s", "--", "true"}).exit_code == 1);
  CHECK(cmf::test::ReadFile(db_path) == before);
}

TEST_CASE("cli: a store from a newer cmf is refused with a clear message") {
  Workspace ws;
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((ws / ".cmf/metadata.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "PRAGMA user_version=42", nullptr, nullptr,
                       nullptr) == SQLITE_OK);
  sqlite3_close(db);
  std::string before = cmf::test::ReadFile(ws / ".cmf/metadata.db");
  Outcome o = ws({"log"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "schema version 42, newer than this cmf"));
  CHECK(ws({"exec", "--stage", "s", "--", "true"}).exit_code == 1);
  CHECK(cmf::test::ReadFile(ws / ".cmf/metadata.db") == before);
}

TEST_CASE("cli: -C and CMF_DIR choose the repository") {
  Workspace ws;
  TempDir elsewhere;
  REQUIRE(ws({"exec", "--stage", "s", "-q", "--", "true"}).exit_code == 0);
  Outcome c =
      Cmf({"-C", ws.dir.path().string(), "log", "--json"}, elsewhere.path());
  CHECK(c.exit_code == 0);
  CHECK(json::parse(c.out).size() == 1);
  Outcome env = Cmf({"log", "--json"}, elsewhere.path(),
                    {{"CMF_DIR", (ws / ".cmf").string()}});
  CHECK(env.exit_code == 0);
  CHECK(json::parse(env.out).size() == 1);
  Outcome bad =
      Cmf({"-C", (elsewhere / "nope").string(), "log"}, elsewhere.path());
  CHECK(bad.exit_code == 1);
  CHECK(IsError(bad, "cannot change to"));
}

TEST_CASE(
    "cli: config gets, sets, lists and unsets; a missing key is an error") {
  Workspace ws;
  CHECK(ws({"config", "core.pipeline", "ALDKL"}).exit_code == 0);
  CHECK(ws({"config", "core.pipeline"}).out == "ALDKL\n");
  CHECK(ws({"config", "--list"}).out.find("core.pipeline=ALDKL") !=
        std::string::npos);
  CHECK(ws({"config", "--unset", "core.pipeline"}).exit_code == 0);
  Outcome missing = ws({"config", "core.pipeline"});
  CHECK(missing.exit_code == 1);
  CHECK(IsError(missing, "'core.pipeline' is not set"));
  Outcome bad = ws({"config", "nodot", "x"});
  CHECK(bad.exit_code == 1);
  CHECK(IsError(bad, "invalid config key 'nodot'"));
}

TEST_CASE("cli: two cmf exec processes logging at once are both recorded") {
  Workspace ws;
  std::string script =
      "C=\"$0\"; for s in a b; do \"$C\" exec -q --stage $s -- sh -c "
      "'i=0; while [ $i -lt 50 ]; do echo \"m $i $i\" >&$CMF_METRICS_FD; "
      "i=$((i+1)); done' & "
      "done; wait";
  Outcome o = cmf::test::RunProcess(
      {"sh", "-c", script, cmf::test::CmfBinary()}, ws.dir.path());
  REQUIRE(o.exit_code == 0);
  json log = ws.Log();
  REQUIRE(log.size() == 2);
  for (const json& e : log) {
    CHECK(e["status"] == "ok");
    json m = json::parse(ws({"metrics", e["id"], "--json"}).out);
    CHECK(m["series"]["m"].size() == 50);
  }
}

TEST_CASE(
    "cli: a script without #! runs with /bin/sh; a bad interpreter leaves no "
    "record") {
  Workspace ws;
  cmf::test::WriteFile(ws / "plain.sh", "echo from-sh\n");
  fs::permissions(ws / "plain.sh", fs::perms::owner_all);
  Outcome o = ws({"exec", "--stage", "s", "-q", "--", "./plain.sh"});
  CHECK(o.exit_code == 0);
  CHECK(o.out == "from-sh\n");
  cmf::test::WriteFile(ws / "bad.sh", "#!/no/such/interpreter\n");
  fs::permissions(ws / "bad.sh", fs::perms::owner_all);
  Outcome bad = ws({"exec", "--stage", "s", "--", "./bad.sh"});
  CHECK(bad.exit_code == 1);
  CHECK(IsError(bad, "cannot run './bad.sh'"));
  CHECK(ws.Log().size() == 1);  // only the first
}

TEST_CASE(
    "cli: after recording a command that Ctrl-C ended, cmf ends by SIGINT "
    "too") {
  Workspace ws;
  Outcome o = ws({"exec", "--stage", "s", "--", "sh", "-c", "kill -INT $$"});
  CHECK(o.signal == SIGINT);  // so that a calling shell loop stops as well
  CHECK(ws.Log()[0]["status"] == "interrupted");
}

TEST_CASE(
    "cli: SIGTERM sent to cmf reaches the command and is recorded as "
    "interrupted") {
  Workspace ws;
  std::string script =
      // TERM once the run is recorded (a slow, sanitized cmf may take a while)
      "\"$0\" exec -q --stage s -- sleep 30 & p=$!; "
      "for i in $(seq 600); do \"$0\" log --oneline | grep -q running && "
      "break; sleep 0.05; done; kill -TERM $p; "
      "wait $p; "
      "echo rc=$?";
  Outcome o = cmf::test::RunProcess(
      {"sh", "-c", script, cmf::test::CmfBinary()}, ws.dir.path());
  CHECK(o.out == "rc=143\n");
  json e = ws.Log()[0];
  CHECK(e["status"] == "interrupted");
  CHECK(e["exit_code"] == 143);
}

TEST_CASE(
    "cli: cmf exec does not wait for a background child that holds the metrics "
    "pipe") {
  Workspace ws;
  auto start = std::chrono::steady_clock::now();
  Outcome o = ws(
      {"exec", "--stage", "s", "-q", "--", "sh", "-c",
       "(sleep 31.25 >/dev/null 2>&1 &); printf 'm 0 1.5' >&$CMF_METRICS_FD"});
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  cmf::test::RunProcess({"pkill", "-f", "sleep 31.25"}, ws.dir.path());
  CHECK(o.exit_code == 0);
  CHECK(seconds < 20);  // a hang would last the background child's 31 s
  // the last line had no line break, and still counts
  std::string id = ws.Log()[0]["id"];
  CHECK(json::parse(ws({"metrics", id, "--json"}).out)["series"]["m"] ==
        json{{0, 1.5}});
}

TEST_CASE(
    "cli: an overlong metrics line is dropped with a warning, the rest is "
    "kept") {
  Workspace ws;
  Outcome o =
      ws({"exec", "--stage", "s", "--", "sh", "-c",
          "head -c 10000 /dev/zero | tr '\\0' x >&$CMF_METRICS_FD; "
          "echo ' tail' >&$CMF_METRICS_FD; echo 'ok 1 2' >&$CMF_METRICS_FD"});
  CHECK(o.exit_code == 0);
  CHECK(o.err.find("longer than") != std::string::npos);
  std::string id = ws.Log()[0]["id"];
  CHECK(json::parse(ws({"metrics", id, "--json"}).out)["series"] ==
        json{{"ok", {{1, 2.0}}}});
}

TEST_CASE(
    "cli: CMF_DIR with a trailing slash or through a symbolic link finds the "
    "workspace") {
  Workspace ws;
  TempDir elsewhere;
  cmf::test::WriteFile(ws / "in.txt", "x");
  fs::create_directory_symlink(ws.dir.path(), elsewhere / "link");
  for (std::string dir :
       {(ws / ".cmf").string() + "/", (elsewhere / "link").string()}) {
    CAPTURE(dir);
    Outcome o = Cmf({"exec", "-q", "--stage", "s", "--in",
                     (ws / "in.txt").string(), "--", "true"},
                    elsewhere.path(), {{"CMF_DIR", dir}});
    REQUIRE(o.exit_code == 0);
    json e = ws.Log()[0];
    CHECK(e["pipeline"] == ws.dir.path().filename().string());
    CHECK(e["inputs"][0]["path"] == "in.txt");
  }
  Outcome guard =
      Cmf({"exec", "--stage", "s", "--in",
           (elsewhere / "link/.cmf/config").string(), "--", "true"},
          elsewhere.path(), {{"CMF_DIR", (elsewhere / "link").string()}});
  CHECK(IsError(guard, "inside the repository's .cmf/"));
}

TEST_CASE(
    "cli: config refuses values that would lock cmf out, and can mend a bad "
    "file") {
  Workspace ws;
  Outcome bad = ws({"config", "store.synchronous", "FULL"});
  CHECK(bad.exit_code == 1);
  CHECK(IsError(bad, "must be 'full' or 'normal'"));
  CHECK(ws({"config", "core.site", ""}).exit_code == 1);
  CHECK(ws({"config", "cache.link", "teleport"}).exit_code == 1);
  // a value written by hand that the other verbs refuse
  std::string config = cmf::test::ReadFile(ws / ".cmf/config");
  cmf::test::WriteFile(ws / ".cmf/config",
                       config + "[store]\n\tsynchronous = sometimes\n");
  CHECK(ws({"exec", "--stage", "s", "--", "true"}).exit_code == 1);
  CHECK(ws({"config", "store.synchronous", "normal"}).exit_code == 0);
  CHECK(ws({"exec", "-q", "--stage", "s", "--", "true"}).exit_code == 0);
}

TEST_CASE("cli: metrics CSV quotes a series name that holds a comma") {
  Workspace ws;
  REQUIRE(ws({"exec", "-q", "--stage", "s", "--", "sh", "-c",
              "echo 'a,b 0 1' >&$CMF_METRICS_FD"})
              .exit_code == 0);
  std::string id = ws.Log()[0]["id"];
  CHECK(ws({"metrics", id, "--csv"}).out == "series,step,value\n\"a,b\",0,1\n");
}
