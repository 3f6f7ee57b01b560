// What a site types, or how its commands die, must never crash cmf or stop
// it for good (issue 15): names that are not UTF-8, runs killed by SIGKILL, a
// damaged metadata store, a repository from a newer cmf.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>

#include "support.h"
#include "workspace.h"

using cmf::test::Cmf;
using cmf::test::IsError;
using cmf::test::Ok;
using cmf::test::Outcome;
using cmf::test::ReadFile;
using cmf::test::TempDir;
using cmf::test::Workspace;
using cmf::test::WriteFile;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A file name that is not UTF-8: "f", then é in Latin-1.
const std::string kLatin1Name = "f\xe9";

}  // namespace

TEST_CASE(
    "bytes: a path that is not UTF-8 is recorded, committed, exported "
    "and pulled byte for byte") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
  Workspace a, b;
  Ok(a({"remote", "add", "hub", (remotes / "hub").string()}));
  Ok(b({"remote", "add", "hub", (remotes / "hub").string()}));
  WriteFile(a / kLatin1Name, "x\n");
  Ok(a({"exec", "-q", "--stage", "s", "--in", kLatin1Name, "--", "true"}));

  // Every verb that writes or reads the record still works (they aborted).
  Ok(a({"log"}));
  json log = a.Log();  // JSON shows the bytes it cannot carry as U+FFFD
  REQUIRE(log.size() == 1);
  CHECK(log[0]["inputs"][0]["path"] == "f\xef\xbf\xbd");
  Outcome shown = a({"show", log[0]["id"]});
  Ok(shown);
  CHECK(shown.out.find("\"f\\xe9\"") != std::string::npos);  // escaped
  Ok(a({"commit", "-q", "-m", "latin-1"}));
  Ok(a({"commit", "-q"}));  // and the next one too

  // The export keeps the bytes, marks its version, and reads back the same.
  Outcome exported = a({"export"});
  Ok(exported);
  json doc = json::parse(exported.out);
  CHECK(doc["version"] == 2);
  CHECK(exported.out.find(R"({"hex":"66e9"})") != std::string::npos);
  Workspace c;
  WriteFile(c / "all.json", exported.out);
  Ok(c({"import", "json", "all.json"}));
  Outcome again = c({"export"});
  Ok(again);
  CHECK(again.out.find(R"({"hex":"66e9"})") != std::string::npos);

  // A tracked folder may hold such a name too.
  fs::create_directories(a / "d");
  WriteFile(a / "d" / kLatin1Name, "y\n");
  Ok(a({"add", "d"}));
  Ok(a({"status"}));
  CHECK(a.Json({"status", "--json"})["clean"] == true);

  // Another site pulls it and shows the same name.
  Ok(a({"push", "hub"}));
  Ok(b({"pull", "hub"}));
  Outcome at_b = b({"show", log[0]["id"]});
  Ok(at_b);
  CHECK(at_b.out.find("\"f\\xe9\"") != std::string::npos);
  Outcome lineage = b({"lineage", kLatin1Name});
  Ok(lineage);
  CHECK(lineage.out.find("\"f\\xe9\"") != std::string::npos);
}

TEST_CASE(
    "bytes: a command argument that is not UTF-8 is recorded and shown "
    "so that it can be pasted back") {
  Workspace w;
  Outcome o = w({"exec", "--stage", "s", "--", "echo", "caf\xe9"});
  Ok(o);
  CHECK(o.out == "caf\xe9\n");
  json log = w.Log();
  REQUIRE(log.size() == 1);
  Outcome shown = w({"show", log[0]["id"]});
  Ok(shown);
  CHECK(shown.out.find("echo $'caf\\xe9'") != std::string::npos);
  Ok(w({"commit", "-q"}));
  // A plain record keeps writing the first segment format.
  Workspace plain;
  Ok(plain({"exec", "-q", "--stage", "s", "--", "true"}));
  CHECK(plain.Json({"export"})["version"] == 1);
}

TEST_CASE(
    "bytes: a parameter name that is not UTF-8 is refused, and nothing "
    "is recorded") {
  Workspace w;
  Outcome o = w({"exec", "--stage", "s", "-p", "r\xe9=1", "--", "true"});
  CHECK(o.exit_code != 0);
  CHECK(IsError(o, "is not UTF-8"));
  CHECK(w.Log().empty());
}

TEST_CASE(
    "interrupted: a cmf exec killed by SIGKILL shows as interrupted, "
    "and commit seals it so for every site") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
  for (const char* point : {"exec:started", "exec:ended"}) {
    CAPTURE(point);
    Workspace a, b;
    Ok(a({"remote", "add", "hub", (remotes / "hub").string()}));
    Ok(b({"remote", "add", "hub", (remotes / "hub").string()}));
    Outcome killed = Cmf({"exec", "--stage", "s", "--", "true"}, a.dir.path(),
                         {{"CMF_CRASH_AT", point}});
    REQUIRE(killed.signal == SIGKILL);

    json log = a.Log();
    REQUIRE(log.size() == 1);
    const std::string id = log[0]["id"];
    CHECK(log[0]["status"] == "interrupted");
    CHECK(log[0]["message"].get<std::string>().find("ended without") !=
          std::string::npos);
    CHECK(a.Json({"status", "--json"})["interrupted"] == json::array({id}));
    Outcome fsck = a({"fsck"});
    Ok(fsck);  // a dead run is news, not damage
    CHECK(fsck.out.find("interrupted execution " + id) != std::string::npos);
    CHECK(a.Json({"fsck", "--json"})["interrupted"] == json::array({id}));

    json commit = a.Json({"commit", "--json"});
    CHECK(commit["interrupted"] == json::array({id}));
    CHECK(a.Log()[0]["status"] == "interrupted");
    CHECK(a.Json({"status", "--json"})["interrupted"].empty());
    Ok(a({"push", "hub"}));
    Ok(b({"pull", "hub"}));
    json pulled = b.Json({"show", id, "--json"});
    CHECK(pulled["status"] == "interrupted");
  }
}

TEST_CASE("interrupted: a run whose process still runs stays running") {
  Workspace w;
  // The command asks cmf, from inside the run, how the run stands (once it
  // is recorded: exec starts the command while it records the run).
  Ok(w({"exec", "-q", "--stage", "s", "--", "sh", "-c",
        "for i in $(seq 200); do \"$0\" log --json > inside.json; "
        "grep -q status inside.json && break; sleep 0.05; done",
        cmf::test::CmfBinary()}));
  json inside = json::parse(ReadFile(w / "inside.json"));
  REQUIRE(inside.size() == 1);
  CHECK(inside[0]["status"] == "running");
  CHECK(w.Log()[0]["status"] == "ok");
  CHECK(w.Json({"commit", "--json"})["interrupted"].empty());
}

TEST_CASE(
    "fsck: pages of metadata.db overwritten with noise are found, "
    "with a clear error") {
  Workspace w;
  for (int i = 0; i < 40; ++i) {
    Ok(w({"exec", "-q", "--stage", "stage-" + std::to_string(i), "-p",
          "note=" + std::string(200, 'a' + i % 26), "--", "true"}));
  }
  Ok(w({"fsck"}));
  CHECK(w.Json({"fsck", "--json"})["store_errors"].empty());
  const fs::path db = w / ".cmf/metadata.db";
  const auto size = fs::file_size(db);
  REQUIRE(size >= 8 * 4096);
  {  // two pages past the first (which only says what the file is)
    std::mt19937 random(7);
    std::string noise(4096, '\0');
    for (char& c : noise) c = static_cast<char>(random());
    int fd = ::open(db.c_str(), O_WRONLY);
    REQUIRE(fd >= 0);
    for (off_t page : {3, 5}) {
      REQUIRE(::pwrite(fd, noise.data(), noise.size(), page * 4096) ==
              static_cast<ssize_t>(noise.size()));
    }
    ::close(fd);
  }
  Outcome o = w({"fsck"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "is damaged"));
  CHECK(o.out.find("damaged metadata store:") != std::string::npos);
}

TEST_CASE("repository: a repository of a newer format is refused untouched") {
  Workspace w;
  const fs::path config = w / ".cmf/config";
  std::string text = ReadFile(config);
  const std::string old = "repositoryformatversion = 1";
  REQUIRE(text.find(old) != std::string::npos);
  text.replace(text.find(old), old.size(), "repositoryformatversion = 2");
  WriteFile(config, text);
  for (const auto& verb : std::vector<std::vector<std::string>>{
           {"status"}, {"add", "."}, {"commit"}, {"fsck"}}) {
    Outcome o = w(verb);
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, "format version '2'"));
  }
  CHECK(ReadFile(config) == text);
}
