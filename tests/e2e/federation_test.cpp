// Federation end to end: the real cmf binary at several sites, bare remotes
// on paths, a plain git repository for the metadata, and a real OpenSSH
// server for ssh:// remotes.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "cmf/data/hash.h"
#include "e2e/workspace.h"
#include "ssh_server.h"
#include "support.h"

using cmf::test::Cmf;
using cmf::test::Ids;
using cmf::test::IsError;
using cmf::test::Ok;
using cmf::test::Outcome;
using cmf::test::Produce;
using cmf::test::ReadFile;
using cmf::test::RunProcess;
using cmf::test::TempDir;
using cmf::test::Workspace;
using cmf::test::WriteFile;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Runs SQL on the store of W (to plant what a hostile site could send).
void Sql(const Workspace& w, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open((w / ".cmf/metadata.db").c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  INFO((err ? err : ""));
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

}  // namespace

TEST_CASE("federation: commit, push to a bare remote, pull at another edge") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  Workspace a, b;
  NoEnvironment(a);
  NoEnvironment(b);
  Ok(a({"remote", "add", "hpc", (remotes / "hpc").string()}));
  Ok(b({"remote", "add", "hpc", "file://" + (remotes / "hpc").string()}));
  CHECK(b.Json({"remote", "--json"})[0]["url"] ==
        "file://" + (remotes / "hpc").string());
  Produce(a, "out.txt", "spectra of sample 7\n");
  json status = a.Json({"status", "--json"});
  CHECK(status["uncommitted"]["executions"] == 1);
  CHECK(status["uncommitted"]["facts"].get<int>() > 1);

  json commit = a.Json({"commit", "-m", "AL run on sample 7", "--json"});
  CHECK(commit["facts"].get<int>() > 1);
  CHECK(a.Json({"status", "--json"})["uncommitted"]["facts"] == 0);
  CHECK(a({"commit"}).out.find("nothing to commit") != std::string::npos);

  json pushed = a.Json({"push", "hpc", "--json"});
  CHECK(pushed["commits_sent"].get<int>() >= 1);
  CHECK(pushed["objects_sent"] == 1);
  CHECK(pushed["bytes_sent"] == 20);
  CHECK(a.Json({"push", "hpc", "--json"})["commits_sent"] == 0);

  // Fetch brings the log, ingests nothing.
  json fetched = b.Json({"fetch", "hpc", "--json"});
  CHECK(fetched["commits_received"].get<int>() >= 1);
  CHECK(b.Log().empty());

  json pulled = b.Json({"pull", "hpc", "--json"});
  CHECK(pulled["segments_ingested"].get<int>() >= 1);
  CHECK(pulled["objects_received"] == 1);
  CHECK(pulled["merge"] == "fast-forward");
  CHECK(Ids(b) == Ids(a));
  json shown = b.Json({"show", Ids(a)[0], "--json"});
  CHECK(shown["stage"] == "make");
  CHECK(shown["outputs"][0]["path"] == "out.txt");

  json where = b.Json({"whereis", "out.txt", "--json"});
  CHECK(where["here"] == true);
  std::vector<std::string> remotes_named;
  for (const auto& p : where["locations"]) {
    if (!p["remote"].is_null()) remotes_named.push_back(p["remote"]);
  }
  CHECK(remotes_named == std::vector<std::string>{"hpc"});
  json got = b.Json({"get", "out.txt", "--json"});
  CHECK(got["placed_at"] == "out.txt");
  CHECK(ReadFile(b / "out.txt") == "spectra of sample 7\n");
  Ok(a({"fsck"}));
  Ok(b({"fsck"}));

  json list = a.Json({"remote", "--json"});
  REQUIRE(list.size() == 1);
  CHECK(list[0]["name"] == "hpc");
  CHECK(a({"remote", "-v"}).out.find((remotes / "hpc").string()) !=
        std::string::npos);
  Ok(a({"remote", "remove", "hpc"}));
  CHECK(a.Json({"remote", "--json"}).empty());
  CHECK(IsError(a({"push", "hpc"}), "no remote 'hpc'"));
}

TEST_CASE("federation: the data policy leaves big raw data where it is") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  Workspace a, b;
  NoEnvironment(a);
  NoEnvironment(b);
  for (const Workspace* w : {&a, &b}) {
    Ok((*w)({"remote", "add", "hpc", (remotes / "hpc").string()}));
    Ok((*w)({"config", "push.max-size", "1K"}));
  }
  Produce(a, "raw.bin", std::string(4096, 'r'));   // a file over the limit
  Produce(a, "model.pt", std::string(4096, 'm'));  // a model: always travels
  Ok(a({"commit", "-m", "two outputs"}));
  json pushed = a.Json({"push", "hpc", "--json"});
  CHECK(pushed["objects_sent"] == 1);
  CHECK(pushed["objects_left"] == 1);

  json pulled = b.Json({"pull", "hpc", "--json"});
  CHECK(pulled["objects_received"] == 1);
  json raw = b.Json({"whereis", "raw.bin", "--json"});
  CHECK(raw["here"] == false);
  REQUIRE(raw["locations"].size() == 1);  // only site A holds it
  CHECK(raw["locations"][0]["remote"].is_null());
  Ok(b({"fsck"}));  // missing here, but it lives elsewhere: not corruption
  CHECK(IsError(b({"get", "raw.bin"}), "no remote holds"));

  // Asked for, all of it goes; then B gets it on demand.
  json all = a.Json({"push", "hpc", "--data", "all", "--json"});
  CHECK(all["objects_sent"] == 1);
  json got = b.Json({"get", "raw.bin", "--from", "hpc", "--json"});
  CHECK(got["objects"] == 1);
  CHECK(got["bytes"] == 4096);
  CHECK(ReadFile(b / "raw.bin") == std::string(4096, 'r'));

  // --data none at pull brings metadata only.
  Workspace c;
  Ok(c({"remote", "add", "hpc", (remotes / "hpc").string()}));
  json bare = c.Json({"pull", "hpc", "--data", "none", "--json"});
  CHECK(bare["objects_received"] == 0);
  CHECK(Ids(c) == Ids(a));
  CHECK(IsError(c({"push", "hpc", "--data", "some"}), "data"));
  CHECK(c({"push", "hpc", "--data", "some"}).exit_code == 2);
}

TEST_CASE("federation: two edges pushing at the same moment both succeed") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  Workspace a, b, c;
  for (const Workspace* w : {&a, &b, &c}) {
    Ok((*w)({"remote", "add", "hpc", (remotes / "hpc").string()}));
  }
  for (int round = 0; round < 3; ++round) {
    Produce(a, "a" + std::to_string(round), "edge a " + std::to_string(round));
    Produce(b, "b" + std::to_string(round), "edge b " + std::to_string(round));
    Ok(a({"commit"}));
    Ok(b({"commit"}));
    Outcome oa, ob;
    std::thread ta([&] { oa = a({"push", "hpc"}); });
    std::thread tb([&] { ob = b({"push", "hpc"}); });
    ta.join();
    tb.join();
    Ok(oa);
    Ok(ob);
  }
  Ok(c({"pull", "hpc"}));
  CHECK(c.Log().size() == 6);
  Ok(a({"pull", "hpc"}));
  Ok(b({"pull", "hpc"}));
  CHECK(Ids(a) == Ids(c));
  CHECK(Ids(b) == Ids(c));
}

TEST_CASE("federation: an interrupted push or pull leaves both sides whole") {
  for (const std::string point : {"put:renamed-none", "push:objects-sent",
                                  "push:log-objects", "push:metadata-sent"}) {
    CAPTURE(point);
    TempDir remotes;
    Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
    Workspace a, c;
    for (const Workspace* w : {&a, &c}) {
      Ok((*w)({"remote", "add", "hpc", (remotes / "hpc").string()}));
    }
    Produce(a, "out.txt", "payload " + point);
    Ok(a({"commit"}));
    Outcome killed =
        Cmf({"push", "hpc"}, a.dir.path(), {{"CMF_CRASH_AT", point}});
    CHECK(killed.signal == SIGKILL);
    Ok(a({"fsck"}));
    // The remote shows nothing half-made: whatever it has, a site can pull.
    Ok(c({"pull", "hpc"}));
    Ok(c({"fsck"}));
    Ok(a({"push", "hpc"}));
    Ok(c({"pull", "hpc"}));
    Ok(c({"fsck"}));
    CHECK(Ids(c) == Ids(a));
    Ok(c({"get", "out.txt"}));
    CHECK(ReadFile(c / "out.txt") == "payload " + point);
  }
  for (const std::string point :
       {"pull:fetched", "pull:ingested", "pull:data"}) {
    CAPTURE(point);
    TempDir remotes;
    Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
    Workspace a, b;
    for (const Workspace* w : {&a, &b}) {
      Ok((*w)({"remote", "add", "hpc", (remotes / "hpc").string()}));
    }
    Produce(a, "out.txt", "payload");
    Produce(b, "mine.txt", "local work");
    Ok(a({"commit"}));
    Ok(a({"push", "hpc"}));
    Outcome killed =
        Cmf({"pull", "hpc"}, b.dir.path(), {{"CMF_CRASH_AT", point}});
    CHECK(killed.signal == SIGKILL);
    Ok(b({"fsck"}));
    Ok(b({"pull", "hpc"}));
    Ok(b({"fsck"}));
    CHECK(b.Log().size() == 2);
    // The data the cut-short pull was to bring came with the next one.
    CHECK(b.Json({"whereis", "out.txt", "--json"})["here"] == true);
    // B's own, uncommitted work survived and still commits and travels.
    CHECK(b.Json({"status", "--json"})["uncommitted"]["executions"] == 1);
    Ok(b({"commit"}));
    Ok(b({"push", "hpc"}));
    Ok(a({"pull", "hpc"}));
    CHECK(Ids(a) == Ids(b));
  }
}

TEST_CASE("federation: a workspace can be pulled from, not pushed to") {
  Workspace a, b;
  Produce(a, "out.txt", "made at a");
  Ok(a({"commit"}));
  Ok(b({"remote", "add", "a", a.dir.path().string()}));
  Ok(b({"pull", "a"}));
  CHECK(Ids(b) == Ids(a));
  Produce(b, "more.txt", "made at b");
  Ok(b({"commit"}));
  Outcome refused = b({"push", "a"});
  CHECK(refused.exit_code == 1);
  CHECK(IsError(refused, "is a workspace"));
  CHECK(a.Log().size() == 1);
  Ok(a({"remote", "add", "b", b.dir.path().string()}));
  Ok(a({"pull", "b"}));
  CHECK(Ids(a) == Ids(b));
}

TEST_CASE("federation: bad remotes give clear errors and change nothing") {
  TempDir remotes;
  Workspace a;
  Produce(a, "out.txt", "x");
  Ok(a({"commit"}));

  Ok(Cmf({"init", "--bare", (remotes / "gone").string()}, remotes.path()));
  Ok(a({"remote", "add", "gone", (remotes / "gone").string()}));
  fs::remove_all(remotes / "gone");
  Outcome vanished = a({"push", "gone"});
  CHECK(vanished.exit_code == 1);
  CHECK(IsError(vanished, "does not exist"));
  CHECK(IsError(a({"pull", "gone"}), "does not exist"));
  CHECK_FALSE(fs::exists(remotes / "gone"));

  fs::create_directories(remotes / "plain");
  Ok(a({"remote", "add", "plain", (remotes / "plain").string()}));
  CHECK(IsError(a({"push", "plain"}), "not a cmf repository"));
  CHECK(cmf::test::CountFiles(remotes / "plain") == 0);

  Outcome s3 = a({"remote", "add", "cloud", "s3://bucket/cmf"});
  CHECK(s3.exit_code == 2);
  CHECK(IsError(s3, "unknown URL scheme 's3'"));
  Outcome secret =
      a({"remote", "add", "web", "https://me:hunter2@example.org/x"});
  CHECK(secret.exit_code == 2);
  CHECK(secret.err.find("hunter2") == std::string::npos);
  CHECK(ReadFile(a / ".cmf/config").find("hunter2") == std::string::npos);
  CHECK(IsError(a({"remote", "add", "bad name", "/tmp"}),
                "not a valid remote name"));
  Ok(a({"remote", "add", "twice", (remotes / "x").string()}));
  CHECK(IsError(a({"remote", "add", "twice", (remotes / "y").string()}),
                "exists"));
  CHECK(IsError(a({"init", "--bare", (a / "out.txt").string()}), "not empty"));

  if (::geteuid() != 0) {  // root reads and writes everything
    Ok(Cmf({"init", "--bare", (remotes / "locked").string()}, remotes.path()));
    Ok(a({"remote", "add", "locked", (remotes / "locked").string()}));
    fs::permissions(remotes / "locked",
                    fs::perms::owner_write | fs::perms::group_write |
                        fs::perms::others_write,
                    fs::perm_options::remove);
    Outcome denied = a({"push", "locked"});
    CHECK(denied.exit_code == 1);
    CHECK(denied.err.find("ermission denied") != std::string::npos);
    fs::permissions(remotes / "locked", fs::perms::owner_write,
                    fs::perm_options::add);
  }
  // Nothing was committed, sent or lost by the failures.
  CHECK(a.Json({"status", "--json"})["uncommitted"]["facts"] == 0);
  CHECK(a.Log().size() == 1);
  Ok(a({"fsck"}));
}

TEST_CASE(
    "federation: pulled paths cannot make get or checkout write outside") {
  TempDir remotes;
  TempDir outside;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  Workspace a, b;
  for (const Workspace* w : {&a, &b}) {
    Ok((*w)({"remote", "add", "hpc", (remotes / "hpc").string()}));
  }
  Produce(a, "one.txt", "first");
  Produce(a, "two.txt", "second");
  Produce(a, "three.txt", "third");
  // A hostile (or broken) site names paths outside any workspace.
  const fs::path absolute = outside / "evil-abs.txt";
  Sql(a,
      "UPDATE event SET path = '../../evil-rel.txt' WHERE path = 'one.txt';"
      "UPDATE event SET path = '" +
          absolute.string() +
          "' WHERE path = 'two.txt';"
          "UPDATE event SET path = 'link/evil-link.txt' WHERE path = "
          "'three.txt';");
  Ok(a({"commit"}));
  Ok(a({"push", "hpc", "--data", "all"}));
  Ok(b({"pull", "hpc"}));
  const fs::path relative_target = b.dir.path() / "../../evil-rel.txt";
  // A folder of B's workspace that is a link to elsewhere.
  fs::create_directories(outside / "linked");
  fs::create_symlink(outside / "linked", b / "link");
  Outcome via_link = b({"get", "link/evil-link.txt", "--json"});
  Ok(via_link);
  CHECK(json::parse(via_link.out)["placed_at"].is_null());
  CHECK_FALSE(fs::exists(outside / "linked" / "evil-link.txt"));

  CHECK(b({"get", "../../evil-rel.txt"}).exit_code != 0);
  CHECK(b({"checkout", "../../evil-rel.txt"}).exit_code != 0);
  Outcome by_abs = b({"get", absolute.string()});
  CHECK(by_abs.exit_code != 0);
  CHECK(b({"checkout", absolute.string()}).exit_code != 0);
  // By hash the bytes come into the cache, and go nowhere else.
  for (const auto& e : b.Log()) {
    json shown = b.Json({"show", e["id"], "--json"});
    std::string hash = shown["outputs"][0]["hash"];
    json got = b.Json({"get", hash, "--json"});
    CHECK(got["placed_at"].is_null());
  }
  CHECK_FALSE(fs::exists(relative_target.lexically_normal()));
  CHECK_FALSE(fs::exists(absolute));
  Ok(b({"fsck"}));
}

TEST_CASE("federation: metadata in a plain git repository, bytes in a folder") {
  TempDir remotes;
  Ok(RunProcess(
      {"git", "init", "-q", "--bare", (remotes / "meta.git").string()},
      remotes.path()));
  fs::create_directories(remotes / "store");
  Workspace a, b;
  NoEnvironment(a);
  NoEnvironment(b);
  for (const Workspace* w : {&a, &b}) {
    Ok((*w)({"remote", "add", "hub", "--metadata",
             (remotes / "meta.git").string(), "--data",
             (remotes / "store").string()}));
  }
  Produce(a, "model.pt", "weights");
  Ok(a({"commit", "-m", "trained on sample 7"}));
  json pushed = a.Json({"push", "hub", "--json"});
  CHECK(pushed["objects_sent"] == 1);
  Outcome log = RunProcess({"git", "--git-dir", (remotes / "meta.git").string(),
                            "log", "--format=%s", "main"},
                           remotes.path());
  Ok(log);
  CHECK(log.out.find("trained on sample 7") != std::string::npos);
  CHECK(cmf::test::CountFiles(remotes / "store" / "sha256") == 1);
  json pulled = b.Json({"pull", "hub", "--json"});
  CHECK(pulled["objects_received"] == 1);
  CHECK(Ids(b) == Ids(a));
}

TEST_CASE("federation: ssh remotes through a real OpenSSH server") {
  cmf::test::SshServer server;
  REQUIRE_MESSAGE(server.ok(), server.why());
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  Workspace a, b;
  NoEnvironment(a);
  NoEnvironment(b);
  a.env = b.env = server.Env();
  const std::string url = server.Url(remotes / "hpc");
  Ok(a({"remote", "add", "hpc", url}));
  Ok(b({"remote", "add", "hpc", url}));
  Produce(a, "slice.h5", "a data slice");
  Ok(a({"commit", "-m", "over ssh"}));
  json pushed = a.Json({"push", "hpc", "--json"});
  CHECK(pushed["objects_sent"] == 1);
  CHECK(cmf::test::CountFiles(remotes / "hpc" / "objects" / "sha256") == 1);
  json pulled = b.Json({"pull", "hpc", "--json"});
  CHECK(pulled["objects_received"] == 1);
  CHECK(Ids(b) == Ids(a));
  Ok(b({"fsck"}));

  // A second edge's work goes up over ssh and merges at the first.
  Produce(b, "more.txt", "from b");
  Ok(b({"commit"}));
  Ok(b({"push", "hpc"}));
  Ok(a({"pull", "hpc"}));
  CHECK(Ids(a) == Ids(b));
  Ok(a({"get", "more.txt"}));
  CHECK(ReadFile(a / "more.txt") == "from b");

  // A host key that differs from known_hosts: refused, nothing pulled.
  Workspace c;
  c.env = server.Env();
  Ok(c({"remote", "add", "hpc", url}));
  const fs::path known = server.home() / ".ssh" / "known_hosts";
  const std::string good = ReadFile(known);
  TempDir keys;
  Ok(RunProcess({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                 (keys / "other").string()},
                keys.path()));
  std::string other = ReadFile(keys / "other.pub");
  other = other.substr(0, other.find(' ', other.find(' ') + 1));
  WriteFile(known, "[127.0.0.1]:" + std::to_string(server.port()) + " " +
                       other + "\n");
  Outcome mismatch = c({"pull", "hpc"});
  CHECK(mismatch.exit_code == 1);
  CHECK(IsError(mismatch, "does not match"));
  WriteFile(known, "");
  CHECK(IsError(c({"pull", "hpc"}), "not in"));
  WriteFile(known, good);
  CHECK(c.Log().empty());

  // A key the server does not accept: permission denied.
  const fs::path key = server.home() / ".ssh" / "id_ed25519";
  fs::rename(key, keys / "saved");
  fs::rename(key.string() + ".pub", keys / "saved.pub");
  Ok(RunProcess(
      {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()},
      keys.path()));
  Outcome denied = c({"pull", "hpc"});
  CHECK(denied.exit_code == 1);
  CHECK(IsError(denied, "permission denied"));
  CHECK(c.Log().empty());
  fs::remove(key);
  fs::remove(key.string() + ".pub");
  fs::rename(keys / "saved", key);
  fs::rename(keys / "saved.pub", key.string() + ".pub");
  Ok(c({"pull", "hpc"}));
  CHECK(Ids(c) == Ids(a));

  // Without the ssh module, a push that must reach the ssh object store
  // fails clearly, and succeeds once the module is back.
  Produce(a, "late.txt", "late");
  Ok(a({"commit"}));
  a.env["CMF_SSH_MODULE"] = (a / "nowhere.so").string();
  Outcome no_module = a({"push", "hpc"});
  CHECK(no_module.exit_code == 1);
  CHECK(IsError(no_module, "ssh support is not installed"));
  a.env.erase("CMF_SSH_MODULE");
  json again = a.Json({"push", "hpc", "--json"});
  CHECK(again["objects_sent"] == 1);
}

TEST_CASE("federation: half-finished states at one site never spread") {
  TempDir remotes;
  for (const char* name : {"hub", "hub2"}) {
    Ok(Cmf({"init", "--bare", (remotes / name).string()}, remotes.path()));
  }
  auto site = [&](Workspace& w) {
    Ok(w({"remote", "add", "hub", (remotes / "hub").string()}));
    Ok(w({"remote", "add", "hub2", (remotes / "hub2").string()}));
  };
  Workspace a, b, c, d;
  for (Workspace* w : {&a, &b, &c, &d}) site(*w);

  SUBCASE("an artifact not yet committed, pushed with --data all") {
    Produce(a, "f1", "one");
    Ok(a({"commit"}));
    Produce(a, "f2", "two");  // uncommitted
    Ok(a({"push", "hub", "--data", "all"}));
    Ok(c({"pull", "hub"}));
    Ok(c({"fsck"}));
    Ok(a({"commit"}));
    Ok(a({"push", "hub"}));
    Ok(c({"pull", "hub"}));
    CHECK(Ids(c) == Ids(a));
  }
  SUBCASE(
      "a pull cut short after its merge, then a commit and a push elsewhere") {
    Produce(a, "m.pt", "weights");
    Ok(a({"commit"}));
    Ok(a({"push", "hub"}));
    Outcome killed =
        Cmf({"pull", "hub"}, b.dir.path(), {{"CMF_CRASH_AT", "pull:merged"}});
    CHECK(killed.signal == SIGKILL);
    Produce(b, "notes.txt", "b's own work");
    Ok(b({"commit"}));  // takes in what the merge brought first
    CHECK(Ids(b).size() == 2);
    Ok(b({"push", "hub2"}));
    Ok(c({"pull", "hub2"}));
    CHECK(Ids(c) == Ids(b));
    Ok(c({"fsck"}));
  }
  SUBCASE(
      "a push brings the remote's records; the next pull brings their data") {
    Produce(a, "small.txt", "a small output");
    Ok(a({"commit"}));
    Ok(a({"push", "hub"}));
    Produce(b, "mine.txt", "b");
    Ok(b({"commit"}));
    Ok(b({"push", "hub"}));  // merges A's commits in
    CHECK(b.Json({"whereis", "small.txt", "--json"})["here"] == false);
    json pulled = b.Json({"pull", "hub", "--json"});
    CHECK(pulled["objects_received"] == 1);
    CHECK(b.Json({"whereis", "small.txt", "--json"})["here"] == true);
  }
  SUBCASE("a directory missing a file here is not said to be whole there") {
    fs::create_directories(a / "dir");
    WriteFile(a / "dir/x", "x");
    WriteFile(a / "dir/y", "y");
    Ok(a({"exec", "-q", "--stage", "s", "--out", "dir", "--", "true"}));
    Ok(a({"commit"}));
    Ok(a({"push", "hub"}));
    Ok(b({"pull", "hub"}));
    // One file of the directory goes missing from B's cache.
    const std::string y = cmf::data::HashBytes("y");
    fs::path object = b / ".cmf/objects/sha256" / y.substr(0, 2) / y.substr(2);
    REQUIRE(fs::exists(object));
    fs::remove(object);
    Produce(b, "other.txt", "b");
    Ok(b({"commit"}));
    Ok(b({"push", "hub2", "--data", "all"}));
    Ok(d({"pull", "hub2"}));
    Ok(d({"pull", "hub2"}));
    Ok(d({"fsck"}));
  }
}

namespace {

// Commits TEXT at PATH of the tree on main of the bare git repository
// GIT_DIR, with git plumbing, as a hostile or broken site could. With
// DOTDOT, the file goes into a folder named ".." under segments/ instead.
void Plant(const fs::path& git_dir, const std::string& path,
           const std::string& text, bool dotdot = false) {
  TempDir tmp;
  WriteFile(tmp / "blob", text);
  const std::string script =
      "set -e; export GIT_DIR=\"$1\" GIT_INDEX_FILE=\"$2/index\"\n"
      "blob=$(git hash-object -w \"$2/blob\")\n"
      "if [ \"$4\" = dotdot ]; then\n"
      "  inner=$(printf '100644 blob %s\\t%s\\n' $blob \"$3\" | git mktree)\n"
      "  seg=$( (git ls-tree main:segments; printf '040000 tree %s\\t..\\n' "
      "$inner) | git mktree)\n"
      "  tree=$( (git ls-tree main | grep -v '\tsegments$' || true; printf "
      "'040000 tree %s\\tsegments\\n' $seg) | git mktree)\n"
      "else\n"
      "  git read-tree main\n"
      "  git update-index --add --cacheinfo 100644,$blob,\"$3\"\n"
      "  tree=$(git write-tree)\n"
      "fi\n"
      "commit=$(git -c user.name=evil -c user.email=evil@x commit-tree $tree "
      "-p main -m planted)\n"
      "git update-ref refs/heads/main $commit\n";
  Outcome o = RunProcess({"sh", "-c", script, "sh", git_dir.string(),
                          tmp.path().string(), path, dotdot ? "dotdot" : ""},
                         tmp.path());
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
}

std::string EvilHeader(int seq, int version = 1) {
  return "{\"format\":\"cmf-segment\",\"seq\":" + std::to_string(seq) +
         ",\"site\":\"evil\",\"version\":" + std::to_string(version) + "}\n";
}

std::string EvilPath(const std::string& hash) {
  return "segments/evil/" + hash.substr(0, 2) + "/" + hash + ".jsonl";
}

// How many times FRAGMENT occurs in TEXT.
std::size_t Count(const std::string& text, const std::string& fragment) {
  std::size_t n = 0;
  for (auto at = text.find(fragment); at != std::string::npos;
       at = text.find(fragment, at + 1)) {
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE(
    "federation: bad segments on the hub are quarantined once, and "
    "everything else keeps flowing") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
  Workspace a, b;
  for (const Workspace* w : {&a, &b}) {
    Ok((*w)({"remote", "add", "hub", (remotes / "hub").string()}));
  }
  Produce(a, "one.txt", "first");
  Ok(a({"commit"}));
  Ok(a({"push", "hub"}));

  const fs::path git = remotes / "hub" / "log.git";
  const std::string exec_line =
      "{\"code\":null,\"command\":[],\"host\":\"h\",\"id\":\"01900000-0000-"
      "7000-8000-00000000e011\",\"params\":{},\"pipeline\":\"p\",\"site\":"
      "\"evil\",\"stage\":\"s\",\"started_ms\":1000,\"t\":\"execution\","
      "\"user\":\"u\"}\n";
  const std::string not_json = EvilHeader(1) + exec_line + "not json\n";
  const std::string h_not_json = cmf::data::HashBytes(not_json);
  Plant(git, EvilPath(h_not_json), not_json);
  // Names the execution only the quarantined segment had.
  const std::string dependent =
      EvilHeader(2) +
      "{\"ended_ms\":null,\"execution\":\"01900000-0000-7000-8000-"
      "00000000e011\",\"exit_code\":null,\"hlc\":65536,\"message\":\"\","
      "\"site\":\"evil\",\"status\":\"ok\",\"t\":\"state\"}\n";
  const std::string h_dependent = cmf::data::HashBytes(dependent);
  Plant(git, EvilPath(h_dependent), dependent);
  const std::string renamed = EvilHeader(3);
  Plant(git, EvilPath(std::string(64, '0')), renamed);
  const std::string latin1 =
      EvilHeader(4) + "{\"t\":\"note\",\"text\":\"caf\xe9\"}\n";
  const std::string h_latin1 = cmf::data::HashBytes(latin1);
  Plant(git, EvilPath(h_latin1), latin1);
  const std::string newer = EvilHeader(5, /*version=*/3);
  const std::string h_newer = cmf::data::HashBytes(newer);
  Plant(git, EvilPath(h_newer), newer);
  const std::string shapeless = EvilHeader(6);
  Plant(git, "segments/evil/x.jsonl", shapeless);
  const std::string dotted = EvilHeader(7);
  Plant(git, cmf::data::HashBytes(dotted) + ".jsonl", dotted,
        /*dotdot=*/true);

  // A pushes on top of it all (its push merges the hub's log first).
  Produce(a, "two.txt", "second");
  Ok(a({"commit"}));
  Outcome pushed = a({"push", "hub"});
  Ok(pushed);
  CHECK(Count(pushed.err, "cmf: warning: ") == 7);

  Outcome pulled = b({"pull", "hub", "--json"});
  Ok(pulled);
  CHECK(json::parse(pulled.out)["segments_quarantined"] == 7);
  const std::string& err = pulled.err;
  INFO(err);
  CHECK(Count(err, "cmf: warning: ") == 7);
  CHECK(Count(err, "cmf: warning: segment evil/" + h_not_json.substr(0, 12) +
                       " quarantined: line 3 is not JSON\n") == 1);
  CHECK(Count(err, "cmf: warning: segment evil/" + h_dependent.substr(0, 12) +
                       " quarantined: line 2 names execution "
                       "'01900000-0000-7000-8000-00000000e011', which no "
                       "ingested segment records (only the quarantined "
                       "segment evil/" +
                       h_not_json.substr(0, 12) + " has it)\n") == 1);
  CHECK(Count(err,
              "cmf: warning: segment evil/000000000000 quarantined: its "
              "name is not the SHA-256 of its text\n") == 1);
  CHECK(Count(err, "cmf: warning: segment evil/" + h_latin1.substr(0, 12) +
                       " quarantined: line 2 holds bytes that are not "
                       "UTF-8\n") == 1);
  CHECK(Count(err, "cmf: warning: segment evil/" + h_newer.substr(0, 12) +
                       " skipped: needs cmf segment format 3; this cmf reads "
                       "up to 2") == 1);
  CHECK(Count(err,
              "cmf: warning: file 'segments/evil/x.jsonl' of the "
              "metadata log quarantined: its path in the log is not "
              "segments/<site>/<xx>/<hash>.jsonl\n") == 1);
  CHECK(Count(err, "cmf: warning: file 'segments/../") == 1);
  // Everything good arrived.
  CHECK(Ids(b) == Ids(a));
  CHECK(Ids(b).size() == 2);

  // Said once: a later pull is quiet.
  Outcome again = b({"pull", "hub"});
  Ok(again);
  CHECK(again.err.find("warning") == std::string::npos);

  // fsck lists them, and is not failed by someone else's data.
  Outcome fsck = b({"fsck"});
  Ok(fsck);
  CHECK(Count(fsck.out, "quarantined segment segments/") == 7);
  CHECK(fsck.out.find("quarantined segment " + EvilPath(h_newer) +
                      ": needs cmf segment format 3") != std::string::npos);
  json report = b.Json({"fsck", "--json"});
  CHECK(report["ok"] == true);
  REQUIRE(report["quarantined"].size() == 7);
  for (const auto& q : report["quarantined"]) {
    CHECK(q["reason"].get<std::string>().size() > 0);
    if (q["segment"] == h_newer) {
      CHECK(q["needs_format"] == 3);
      CHECK(q["site"] == "evil");
    } else {
      CHECK(q["needs_format"].is_null());
    }
  }

  // B goes on sharing, and A takes it in.
  Produce(b, "three.txt", "third");
  Ok(b({"commit"}));
  Ok(b({"push", "hub"}));
  Outcome a_pull = a({"pull", "hub"});
  Ok(a_pull);
  CHECK(a_pull.err.find("warning") == std::string::npos);
  CHECK(Ids(a) == Ids(b));
  CHECK(Ids(a).size() == 3);
  Ok(a({"fsck"}));
}

namespace {

// Where object HASH lies in the object store at STORE.
fs::path ObjectIn(const fs::path& store, const std::string& hash) {
  return store / "sha256" / hash.substr(0, 2) / hash.substr(2);
}

// Writes BYTES over FILE in place, as root can write a read-only file (and
// its owner after a chmod): through a hard link into the cache, the object
// changes too.
void WriteInPlace(const fs::path& file, const std::string& bytes) {
  fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
  WriteFile(file, bytes);
}

// The story of finding 4, over the hub at HUB reached by URL: a damaged
// object is never pushed, a hub poisoned by an older push does not stop a
// pull, and a push with --data all repairs the hub.
void DamagedObjectStory(const fs::path& hub, const std::string& url,
                        const std::map<std::string, std::string>& env) {
  Workspace a, b;
  a.env = b.env = env;
  Ok(a({"remote", "add", "hpc", url}));
  Ok(b({"remote", "add", "hpc", url}));
  const std::string original = "calibration, as measured\n";
  const std::string bad = cmf::data::HashBytes(original);
  const std::string good = cmf::data::HashBytes("a good output\n");
  WriteFile(a / "calib.txt", original);
  WriteFile(a / "good.txt", "a good output\n");
  Ok(a({"add", "-q", "calib.txt", "good.txt"}));
  Ok(a({"commit", "-m", "two files"}));
  // Added files are hard links into the cache (cache.link auto).
  struct stat st {};
  REQUIRE(::stat((a / "calib.txt").c_str(), &st) == 0);
  REQUIRE(st.st_nlink == 2);
  WriteInPlace(a / "calib.txt", "scribbled over it!!!\n");
  CHECK(a({"fsck"}).exit_code == 1);

  // The damaged object stays here; the rest and the metadata go.
  Outcome pushed = a({"push", "hpc", "--json"});
  CHECK(pushed.exit_code == 1);
  CHECK(pushed.err.find("cmf: warning: object " + bad +
                        " of 'calib.txt' is damaged in the cache") !=
        std::string::npos);
  CHECK(pushed.err.find("run cmf fsck") != std::string::npos);
  CHECK(pushed.err.find("cmf: error: 1 damaged object not pushed") !=
        std::string::npos);
  json report = json::parse(pushed.out);
  CHECK(report["objects_sent"] == 1);
  CHECK(report["objects_damaged"] == 1);
  CHECK(report["damaged"][0]["hash"] == bad);
  CHECK(report["damaged"][0]["path"] == "calib.txt");
  CHECK(report["commits_sent"].get<int>() >= 1);
  CHECK(fs::exists(ObjectIn(hub / "objects", good)));
  CHECK_FALSE(fs::exists(ObjectIn(hub / "objects", bad)));
  CHECK(cmf::test::CountFiles(hub / "objects" / "tmp") == 0);

  // As an older cmf did: the damaged bytes under the object's name.
  fs::create_directories(ObjectIn(hub / "objects", bad).parent_path());
  WriteFile(ObjectIn(hub / "objects", bad), "scribbled over it!!!\n");

  // A pull skips that object, with a warning, and takes the rest.
  Outcome pulled = b({"pull", "hpc", "--json"});
  INFO(pulled.err);
  CHECK(pulled.exit_code == 0);
  CHECK(pulled.err.find("cmf: warning: object " + bad) != std::string::npos);
  CHECK(pulled.err.find("in the store of 'hpc' does not match its name; not "
                        "fetched") != std::string::npos);
  json got = json::parse(pulled.out);
  CHECK(got["objects_received"] == 1);
  CHECK(got["objects_damaged"] == 1);
  CHECK(got["damaged"][0]["hash"] == bad);
  CHECK(b.Json({"whereis", good, "--json"})["here"] == true);
  CHECK(b.Json({"whereis", bad, "--json"})["here"] == false);
  CHECK_FALSE(fs::exists(ObjectIn(b / ".cmf/objects", bad)));

  // The file is restored (so is its object); a plain push trusts the name
  // there, a push of all the data reads the hub's copy back and replaces it.
  WriteInPlace(a / "calib.txt", original);
  Ok(a({"fsck"}));
  CHECK(a.Json({"push", "hpc", "--json"})["objects_sent"] == 0);
  json repaired = a.Json({"push", "hpc", "--data", "all", "--json"});
  CHECK(repaired["objects_repaired"] == 1);
  CHECK(repaired["objects_sent"] == 1);
  CHECK(repaired["objects_damaged"] == 0);
  CHECK(ReadFile(ObjectIn(hub / "objects", bad)) == original);
  CHECK(cmf::test::CountFiles(hub / "objects" / "tmp") == 0);
  CHECK(a.Json({"push", "hpc", "--data", "all", "--json"})["objects_sent"] ==
        0);

  // The other site's next pull gets the right bytes.
  json again = b.Json({"pull", "hpc", "--json"});
  CHECK(again["objects_received"] == 1);
  CHECK(again["objects_damaged"] == 0);
  CHECK(ReadFile(ObjectIn(b / ".cmf/objects", bad)) == original);
  Ok(b({"fsck"}));
}

}  // namespace

TEST_CASE(
    "federation: a damaged object is never pushed, and push --data all "
    "repairs a hub that holds one") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  DamagedObjectStory(remotes / "hpc", (remotes / "hpc").string(), {});
}

TEST_CASE(
    "federation: over ssh too, a damaged object is never pushed and the hub "
    "is repaired") {
  cmf::test::SshServer server;
  REQUIRE_MESSAGE(server.ok(), server.why());
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  DamagedObjectStory(remotes / "hpc", server.Url(remotes / "hpc"),
                     server.Env());
}

TEST_CASE(
    "federation: a push replaces the hub's copy of an object that a pull "
    "found damaged there") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hpc").string()}, remotes.path()));
  const fs::path hub = remotes / "hpc";
  Workspace a, b, c;
  for (Workspace* w : {&a, &b, &c})
    Ok((*w)({"remote", "add", "hpc", hub.string()}));
  Ok(b({"remote", "add", "edge-a", a.dir.path().string()}));
  Produce(a, "model.pt", "weights of the seed model");
  const std::string hash = cmf::data::HashBytes("weights of the seed model");
  Ok(a({"commit"}));
  Ok(a({"push", "hpc"}));
  // The hub's copy goes bad (a disk, a hand, an older cmf).
  fs::path there = ObjectIn(hub / "objects", hash);
  fs::permissions(there, fs::perms::owner_write, fs::perm_options::add);
  WriteFile(there, "weights of the seed modem");

  json pulled = b.Json({"pull", "hpc", "--json"});
  CHECK(pulled["objects_damaged"] == 1);
  // cmf get takes the bytes from a remote that has good ones.
  Outcome got = b({"get", "model.pt"});
  INFO(got.err);
  CHECK(got.exit_code == 0);
  CHECK(ReadFile(ObjectIn(b / ".cmf/objects", hash)) ==
        "weights of the seed model");
  // B's next push, with its default policy, checks what its pull noted and
  // replaces it; the note is then gone.
  Produce(b, "notes.txt", "b's notes");
  Ok(b({"commit"}));
  json pushed = b.Json({"push", "hpc", "--json"});
  CHECK(pushed["objects_repaired"] == 1);
  CHECK(ReadFile(there) == "weights of the seed model");
  CHECK(b.Json({"push", "hpc", "--json"})["objects_repaired"] == 0);
  json third = c.Json({"pull", "hpc", "--json"});
  CHECK(third["objects_damaged"] == 0);
  Ok(c({"fsck"}));
}

TEST_CASE(
    "federation: gc in a bare repository removes what killed pushes left in "
    "its tmp/, and nothing else") {
  TempDir remotes;
  const fs::path hub = remotes / "hpc";
  Ok(Cmf({"init", "--bare", hub.string()}, remotes.path()));
  Workspace a;
  NoEnvironment(a);
  Ok(a({"remote", "add", "hpc", hub.string()}));
  Produce(a, "out.txt", "pushed whole");
  Ok(a({"commit"}));
  Ok(a({"push", "hpc"}));
  auto write_old = [](const fs::path& path, const std::string& content,
                      long age_s) {
    WriteFile(path, content);
    struct timespec times[2] = {};
    ::clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= age_s;
    times[1] = times[0];
    REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
  };
  const fs::path tmp = hub / "objects" / "tmp";
  write_old(tmp / "put-Ab12Cd", "half an object", 2 * 86400);
  write_old(tmp / "put-0123456789abcdef-00112233aabbccdd", "ssh's", 90000);
  write_old(tmp / "put-Zz99Yy", "still being written", 600);

  Outcome dry = Cmf({"gc"}, hub);
  INFO(dry.err);
  CHECK(dry.exit_code == 0);
  CHECK(dry.out.find("tmp/put-Ab12Cd\n") != std::string::npos);
  CHECK(dry.out.find("would remove 2 temporary files") != std::string::npos);
  CHECK(fs::exists(tmp / "put-Ab12Cd"));
  CHECK_FALSE(fs::exists(hub / "metadata.db"));  // no store made there

  Outcome done = Cmf({"gc", "--force", "--json"}, remotes.path(),
                     {{"CMF_DIR", hub.string()}});
  INFO(done.err);
  REQUIRE(done.exit_code == 0);
  json report = json::parse(done.out);
  CHECK(report["removed"] == true);
  CHECK(report["unreferenced"].empty());
  CHECK(report["temporaries"] ==
        json::parse(R"(["tmp/put-0123456789abcdef-00112233aabbccdd",
                        "tmp/put-Ab12Cd"])"));
  CHECK(report["temporary_bytes"] == 19);
  CHECK_FALSE(fs::exists(tmp / "put-Ab12Cd"));
  CHECK(fs::exists(tmp / "put-Zz99Yy"));
  CHECK(cmf::test::CountFiles(hub / "objects" / "sha256") == 1);
  CHECK_FALSE(fs::exists(hub / "metadata.db"));
  // The pushed object is still there for the next site.
  Workspace b;
  Ok(b({"remote", "add", "hpc", hub.string()}));
  CHECK(b.Json({"pull", "hpc", "--json"})["objects_received"] == 1);
}
