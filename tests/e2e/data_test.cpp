// End-to-end tests of data versioning and slices: the real cmf binary.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cmf/data/hash.h"
#include "cmf/repo.h"
#include "hdf5_fixture.h"
#include "support.h"
#include "workspace.h"

using cmf::Result;
using cmf::test::Cmf;
using cmf::test::IsError;
using cmf::test::Outcome;
using cmf::test::TempDir;
using cmf::test::Workspace;
using nlohmann::json;
namespace fs = std::filesystem;

TEST_CASE("data: add, status, checkout round trip through the CLI") {
  Workspace r;
  cmf::test::WriteFile(r / "data/a.txt", "alpha");
  cmf::test::WriteFile(r / "data/b/c.txt", "gamma");
  json added = r.Json({"add", "--json", "data"});
  REQUIRE(added.size() == 1);
  CHECK(added[0]["path"] == "data");
  CHECK(added[0]["kind"] == "directory");
  CHECK(added[0]["files"] == 2);
  CHECK(added[0]["changed"] == true);

  json status = r.Json({"status", "--json"});
  CHECK(status["clean"] == true);
  CHECK(status["tracked"][0]["path"] == "data");
  CHECK(status["uncommitted"]["executions"] == 0);

  // Added files are read-only hard links into the cache until unlocked.
  struct stat st {};
  REQUIRE(::stat((r / "data/a.txt").c_str(), &st) == 0);
  CHECK(st.st_nlink == 2);
  CHECK((st.st_mode & 0222) == 0);
  REQUIRE(r({"unlock", "data/a.txt"}).exit_code == 0);
  cmf::test::WriteFile(r / "data/a.txt", "changed");
  fs::remove(r / "data/b/c.txt");
  status = r.Json({"status", "--json"});
  CHECK(status["clean"] == false);
  CHECK(status["changes"] == json::parse(R"([
    {"path": "data/a.txt", "status": "modified", "tracked": "data"},
    {"path": "data/b/c.txt", "status": "missing", "tracked": "data"}])"));
  Outcome text = r({"status"});
  CHECK(text.out.find("modified: data/a.txt") != std::string::npos);

  // The edit is kept unless it is to be discarded.
  Outcome kept = r({"checkout", "data"});
  CHECK(kept.exit_code == 1);
  CHECK(kept.err ==
        "cmf: error: 'data/a.txt' has local changes; commit them with cmf "
        "add, or use --force to discard them\n");
  CHECK(cmf::test::ReadFile(r / "data/a.txt") == "changed");
  CHECK_FALSE(fs::exists(r / "data/b/c.txt"));
  CHECK(r({"checkout", "--force", "data"}).exit_code == 0);
  CHECK(cmf::test::ReadFile(r / "data/a.txt") == "alpha");
  CHECK(cmf::test::ReadFile(r / "data/b/c.txt") == "gamma");
  CHECK(r.Json({"status", "--json"})["clean"] == true);
}

TEST_CASE(
    "data: a hard-linked file written in place is reported with its damaged "
    "object") {
  // What root can do to a read-only file (anyone else gets EACCES): the
  // write goes through the hard link into the cached object.
  Workspace r;
  cmf::test::WriteFile(r / "data/a.txt", "alpha");
  cmf::test::WriteFile(r / "data/b.txt", "beta");
  cmf::test::WriteFile(r / "single.txt", "one");
  REQUIRE(r({"add", "-q", "data", "single.txt"}).exit_code == 0);
  for (const char* name : {"data/a.txt", "single.txt"}) {
    fs::permissions(r / name, fs::perms::owner_write, fs::perm_options::add);
    cmf::test::WriteFile(r / name, "overwritten in place");
  }
  json status = r.Json({"status", "--json"});
  CHECK(status["changes"] == json::parse(R"([
    {"path": "data/a.txt", "status": "modified", "tracked": "data",
     "cache_damaged": true},
    {"path": "single.txt", "status": "modified", "tracked": "single.txt",
     "cache_damaged": true}])"));
  Outcome text = r({"status"});
  CHECK(text.out.find("modified: data/a.txt  (cached copy damaged)") !=
        std::string::npos);
  CHECK(text.out.find("cmf unlock PATH") != std::string::npos);
  Outcome fsck = r({"fsck"});
  CHECK(fsck.exit_code != 0);
  CHECK(fsck.out.find(cmf::data::HashBytes("alpha")) != std::string::npos);

  // An edit after an unlock leaves the cache whole.
  Workspace clean;
  cmf::test::WriteFile(clean / "data/a.txt", "alpha");
  REQUIRE(clean({"add", "-q", "data"}).exit_code == 0);
  REQUIRE(clean({"unlock", "data"}).exit_code == 0);
  cmf::test::WriteFile(clean / "data/a.txt", "edited");
  status = clean.Json({"status", "--json"});
  CHECK(status["changes"][0].count("cache_damaged") == 0);
  CHECK(clean({"fsck"}).exit_code == 0);
}

TEST_CASE("data: checkout refuses to restore a damaged object") {
  Workspace r;
  REQUIRE(r({"config", "cache.link", "copy"}).exit_code == 0);
  cmf::test::WriteFile(r / "run.csv", "step,loss\n1,0.5\n");
  REQUIRE(r({"add", "-q", "run.csv"}).exit_code == 0);
  const std::string hash = cmf::data::HashBytes("step,loss\n1,0.5\n");
  fs::path object =
      r / (".cmf/objects/sha256/" + hash.substr(0, 2) + "/" + hash.substr(2));
  fs::permissions(object, fs::perms::owner_write, fs::perm_options::add);
  cmf::test::WriteFile(object, "step,loss\n1,0.4\n");  // one byte flipped
  cmf::test::WriteFile(r / "run.csv", "my own edit\n");

  Outcome forced = r({"checkout", "--force", "run.csv"});
  CHECK(forced.exit_code == 1);
  CHECK(IsError(forced,
                "the cached object " + hash + " of 'run.csv' is damaged"));
  CHECK(forced.out.find("restored") == std::string::npos);
  CHECK(cmf::test::ReadFile(r / "run.csv") == "my own edit\n");
  fs::remove(r / "run.csv");
  CHECK(IsError(r({"checkout", "run.csv"}), "is damaged"));
  CHECK_FALSE(fs::exists(r / "run.csv"));
  CHECK(r({"fsck"}).exit_code == 1);
}

namespace {

// Writes CONTENT to PATH and makes it look last written AGE ago.
void WriteOld(const fs::path& path, const std::string& content,
              std::chrono::seconds age) {
  cmf::test::WriteFile(path, content);
  struct timespec times[2] = {};
  ::clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= age.count();
  times[1] = times[0];
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

}  // namespace

TEST_CASE(
    "data: gc removes the temporary files a killed command left, after a "
    "day, and fsck counts them") {
  using std::chrono::hours;
  Workspace r;
  cmf::test::WriteFile(r / "kept.txt", "kept");
  REQUIRE(r({"add", "-q", "kept.txt"}).exit_code == 0);
  const fs::path tmp = r / ".cmf/objects/tmp";
  WriteOld(tmp / "obj-killed", std::string(1000, 'k'), hours(25));
  WriteOld(tmp / "obj-older", std::string(24, 'o'), hours(24 * 30));
  WriteOld(tmp / "obj-writing", "a running add's", hours(1));
  cmf::test::WriteFile(tmp / "obj-new", "just now");

  json fsck = r.Json({"fsck", "--json"});
  CHECK(fsck["ok"] == true);
  CHECK(fsck["temporaries"] == 2);
  CHECK(fsck["temporary_bytes"] == 1024);
  Outcome text = r({"fsck"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("2 temporary files (1.0 KiB) left") != std::string::npos);

  json dry = r.Json({"gc", "--json"});
  CHECK(dry["temporaries"] ==
        json::parse(R"(["tmp/obj-killed", "tmp/obj-older"])"));
  CHECK(dry["temporary_bytes"] == 1024);
  CHECK(dry["removed"] == false);
  CHECK(fs::exists(tmp / "obj-killed"));
  CHECK(r({"gc"}).out.find("tmp/obj-killed\n") != std::string::npos);

  json done = r.Json({"gc", "--force", "--json"});
  CHECK(done["removed"] == true);
  CHECK(done["temporaries"].size() == 2);
  CHECK_FALSE(fs::exists(tmp / "obj-killed"));
  CHECK_FALSE(fs::exists(tmp / "obj-older"));
  CHECK(fs::exists(tmp / "obj-writing"));
  CHECK(fs::exists(tmp / "obj-new"));
  CHECK(r.Json({"fsck", "--json"})["temporaries"] == 0);
  CHECK(r.Json({"gc", "--json"})["temporaries"].empty());
  CHECK(cmf::test::ReadFile(r / "kept.txt") == "kept");
}

TEST_CASE("data: add refuses paths outside the workspace and inside .cmf/") {
  Workspace r;
  TempDir outside;
  cmf::test::WriteFile(outside / "x", "x");
  Outcome far = r({"add", (outside / "x").string()});
  CHECK(far.exit_code == 1);
  CHECK(IsError(far, "outside the workspace"));
  Outcome inside = r({"add", ".cmf/config"});
  CHECK(inside.exit_code == 1);
  CHECK(IsError(inside, "inside the repository's .cmf/"));
  Outcome missing = r({"add", "nothing-here"});
  CHECK(missing.exit_code == 1);
  CHECK(IsError(missing, "no such file or directory 'nothing-here'"));
  CHECK(r.Json({"status", "--json"})["tracked"].empty());
}

TEST_CASE(
    "data: fsck exits 1 on a corrupted object and says which; gc removes only "
    "on --force") {
  Workspace r;
  cmf::test::WriteFile(r / "f.bin", "precious");
  json added = r.Json({"add", "--json", "f.bin"});
  std::string hash = added[0]["hash"];
  CHECK(r({"fsck"}).exit_code == 0);
  fs::path object =
      r / (".cmf/objects/sha256/" + hash.substr(0, 2) + "/" + hash.substr(2));
  fs::permissions(object, fs::perms::owner_write, fs::perm_options::add);
  cmf::test::WriteFile(object, "tampered");
  Outcome bad = r({"fsck", "--json"});
  CHECK(bad.exit_code == 1);
  json report = json::parse(bad.out);
  CHECK(report["ok"] == false);
  CHECK(report["corrupt"] == json{hash});
  CHECK(IsError(bad, "fsck found 1 corrupt"));

  Outcome dry = r({"gc", "--json"});
  CHECK(json::parse(dry.out)["unreferenced"]
            .empty());  // the corrupt object is still referenced
  cmf::test::WriteFile(r / "tmp.bin", "temporary");
  std::string tmp_hash = r.Json({"add", "--json", "tmp.bin"})[0]["hash"];
  cmf::test::WriteFile(r / "tmp.bin", "replaced");
  REQUIRE(r({"add", "-q", "tmp.bin"}).exit_code ==
          0);  // the old version is no longer tracked
  json listed = r.Json({"gc", "--json"});
  CHECK(listed["unreferenced"] == json{tmp_hash});
  CHECK(listed["removed"] == false);
  CHECK(r.Json({"gc", "--force", "--json"})["removed"] == true);
  CHECK(r.Json({"gc", "--json"})["unreferenced"].empty());
}

TEST_CASE(
    "data: slice writes the slice, records it with derived_from, and lists "
    "datasets") {
  Workspace r;
  cmf::test::WriteFloatDataset(r / "raw.h5", "/spectra", {8, 6, 4}, {4, 6, 4});
  json sets = r.Json({"slice", "--list", "--json", "raw.h5"});
  CHECK(sets ==
        json::parse(
            R"([{"path": "/spectra", "shape": [8, 6, 4], "dtype": "float32",
                                 "chunks": [4, 6, 4], "compression": "gzip"}])"));
  Outcome o = r({"slice", "raw.h5", "/spectra", "2:6,0:3,:", "-o", "s.h5"});
  REQUIRE(o.exit_code == 0);
  std::vector<unsigned long long> shape;
  cmf::test::ReadFloatDataset(r / "s.h5", "/spectra", &shape);
  CHECK(shape == std::vector<unsigned long long>{4, 3, 4});

  json e = r.Json({"log", "--json", "-n", "1"})[0];
  CHECK(e["stage"] == "slice");
  CHECK(e["params"] ==
        json{{"dataset", "/spectra"}, {"selection", "2:6,0:3,:"}});
  CHECK(e["inputs"][0]["kind"] == "dataset");
  CHECK(e["outputs"][0]["kind"] == "dataslice");
  CHECK(e["outputs"][0]["path"] == "s.h5");
  CHECK(cmf::test::ReadStringAttribute(r / "s.h5", "/spectra",
                                       "cmf_parent_sha256") ==
        e["inputs"][0]["hash"]);
  CHECK(r({"fsck"}).exit_code == 0);  // the slice is in the cache
}

TEST_CASE("data: slice refuses bad input clearly and records nothing") {
  Workspace r;
  cmf::test::WriteFloatDataset(r / "raw.h5", "/image", {10, 10});
  cmf::test::WriteFile(r / "notes.h5", "plain text");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"notes.h5", "/image", ":,:", "-o", "s.h5"},
            "'notes.h5' is not an HDF5 file"},
           {{"raw.h5", "/nope", ":,:", "-o", "s.h5"}, "no dataset '/nope'"},
           {{"raw.h5", "/image", "1:2", "-o", "s.h5"},
            "has 1 dimension, the dataset 2"},
           {{"raw.h5", "/image", "5:2,:", "-o", "s.h5"}, "reversed"},
           {{"raw.h5", "/image", "0:11,:", "-o", "s.h5"}, "out of range"},
           {{"missing.h5", "/image", ":,:", "-o", "s.h5"},
            "no such file 'missing.h5'"},
       }) {
    std::vector<std::string> args = {"slice"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Outcome o = r(args);
    CAPTURE(c.message);
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, c.message));
  }
  CHECK_FALSE(fs::exists(r / "s.h5"));
  CHECK(r.Json({"log", "--json"}).empty());
  CHECK(r({"slice", "raw.h5"}).exit_code == 2);  // no selection and no output
}

TEST_CASE("data: HDF5 is loaded by slice alone, and its absence is clear") {
  Workspace r;
  cmf::test::WriteFloatDataset(r / "raw.h5", "/image", {4, 4});
  // With LD_DEBUG, the dynamic loader names every object it opens.
  std::map<std::string, std::string> env = r.env;
  env["LD_DEBUG"] = "files";
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"log"}, {"status"}, {"add", "-q", "raw.h5"}}) {
    Outcome o = Cmf(args, r.dir.path(), env);
    CAPTURE(args[0]);
    CHECK(o.exit_code == 0);
    CHECK(o.err.find("libhdf5") == std::string::npos);
  }
  Outcome listed = Cmf({"slice", "--list", "raw.h5"}, r.dir.path(), env);
  CHECK(listed.exit_code == 0);
  CHECK(listed.err.find("cmf-hdf5.so") != std::string::npos);

  r.env["CMF_HDF5_MODULE"] = (r / "nowhere.so").string();
  Outcome o = r({"slice", "raw.h5", "/image", ":2,:", "-o", "s.h5"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "HDF5 support is not installed"));
  CHECK_FALSE(fs::exists(r / "s.h5"));

  // A module of another build is refused by name, before anything in it runs.
  const char* plugins = std::getenv("CMF_TEST_PLUGIN_DIR");
  REQUIRE(plugins != nullptr);
  const std::string stale = (fs::path(plugins) / "stale-hdf5.so").string();
  r.env["CMF_HDF5_MODULE"] = stale;
  Outcome refused = r({"slice", "raw.h5", "/image", ":2,:", "-o", "s.h5"});
  CHECK(refused.exit_code == 1);
  CHECK(IsError(refused,
                "the HDF5 module " + stale + " is not from this build of cmf"));
  CHECK(refused.err.find("rebuild it") != std::string::npos);
  CHECK_FALSE(fs::exists(r / "s.h5"));
  for (const json& e : r.Json({"log", "--json"})) CHECK(e["stage"] != "slice");
}

TEST_CASE(
    "data: libgit2 is loaded only by the commands that use git, and its "
    "module's absence is clear; no command loads libssh2 or the shared "
    "libcrypto without an ssh remote") {
  Workspace r;
  cmf::test::WriteFile(r / "a.txt", "alpha");
  std::map<std::string, std::string> env = r.env;
  env["LD_DEBUG"] = "files";  // the dynamic loader names every object opened
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"add", "-q", "a.txt"},
        {"status"},
        {"log"},
        {"lineage", "a.txt"},
        {"config", "cache.link"}}) {
    Outcome o = Cmf(args, r.dir.path(), env);
    CAPTURE(args[0]);
    CHECK(o.err.find("libgit2") == std::string::npos);
    CHECK(o.err.find("cmf-git.so") == std::string::npos);
    CHECK(o.err.find("libssh2") == std::string::npos);
    CHECK(o.err.find("libcrypto") == std::string::npos);
  }
  REQUIRE(r({"exec", "--stage", "s", "--", "true"}).exit_code == 0);
  Outcome committed = Cmf({"commit", "-q"}, r.dir.path(), env);
  CHECK(committed.exit_code == 0);
  CHECK(committed.err.find("cmf-git.so") != std::string::npos);
  // A push to a folder remote needs no ssh either.
  TempDir remote;
  REQUIRE(Cmf({"init", "--bare", (remote / "hub").string()}, remote.path())
              .exit_code == 0);
  REQUIRE(r({"remote", "add", "hub", (remote / "hub").string()}).exit_code ==
          0);
  Outcome pushed = Cmf({"push", "hub"}, r.dir.path(), env);
  CHECK(pushed.exit_code == 0);
  CHECK(pushed.err.find("cmf-ssh.so") == std::string::npos);

  // Without the module: commit fails clearly and records nothing.
  REQUIRE(r({"exec", "--stage", "t", "--", "true"}).exit_code == 0);
  r.env["CMF_GIT_MODULE"] = (r / "nowhere.so").string();
  Outcome o = r({"commit"});
  CHECK(o.exit_code == 1);
  CHECK(IsError(o, "git support is not installed"));
  r.env.erase("CMF_GIT_MODULE");
  CHECK(r.Json({"status", "--json"})["uncommitted"]["executions"] == 1);
  CHECK(r({"commit", "-q"}).exit_code == 0);
}

TEST_CASE("data: hardlink mode makes files read-only until unlocked") {
  Workspace r;
  REQUIRE(r({"config", "cache.link", "hardlink"}).exit_code == 0);
  cmf::test::WriteFile(r / "w.dat", "weights");
  REQUIRE(r({"add", "-q", "w.dat"}).exit_code == 0);
  CHECK((fs::status(r / "w.dat").permissions() & fs::perms::owner_write) ==
        fs::perms::none);
  Outcome u = r({"unlock", "w.dat"});
  CHECK(u.out == "unlocked 1 file in w.dat\n");
  CHECK((fs::status(r / "w.dat").permissions() & fs::perms::owner_write) !=
        fs::perms::none);
}

TEST_CASE("data: gc waits while an add holds the cache lock") {
  Workspace r;
  Result<cmf::Repo> repo = cmf::Repo::Open({.start = r.dir.path()});
  REQUIRE(repo.ok());
  std::optional<cmf::CacheLock> shared;
  {
    Result<cmf::CacheLock> lock =
        cmf::CacheLock::Acquire(*repo, /*exclusive=*/false);
    REQUIRE(lock.ok());
    shared.emplace(std::move(lock).value());
  }
  Outcome waiting = cmf::test::RunProcess(
      {"timeout", "1", cmf::test::CmfBinary(), "gc"}, r.dir.path());
  CHECK(waiting.exit_code == 124);  // still waiting when timeout stopped it
  shared.reset();
  CHECK(r({"gc"}).exit_code == 0);
}

TEST_CASE(
    "data: a link to .cmf is not data, and a broken link is named in the "
    "error") {
  Workspace r;
  fs::create_directory_symlink(".cmf", r / "meta");
  Outcome direct = r({"add", "meta"});
  CHECK(direct.exit_code == 1);
  CHECK(IsError(direct, "inside the repository's .cmf/"));
  cmf::test::WriteFile(r / "d/a", "x");
  fs::create_directory_symlink("../.cmf", r / "d/m");
  json added = r.Json({"add", "--json", "d"});
  CHECK(added[0]["files"] == 1);  // d/m is skipped
  fs::create_symlink("/no/such/target", r / "d/broken");
  Outcome broken = r({"add", "d"});
  CHECK(broken.exit_code == 1);
  CHECK(IsError(broken, "is a broken symbolic link"));
}

namespace {

// What stat(2) says of a file that nothing may change.
struct Fingerprint {
  ino_t ino = 0;
  mode_t mode = 0;
  nlink_t links = 0;
  timespec ctime{};
  std::string content;
  bool operator==(const Fingerprint& o) const {
    return ino == o.ino && mode == o.mode && links == o.links &&
           ctime.tv_sec == o.ctime.tv_sec && ctime.tv_nsec == o.ctime.tv_nsec &&
           content == o.content;
  }
};

Fingerprint Take(const fs::path& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return {st.st_ino, st.st_mode, st.st_nlink, st.st_ctim,
          cmf::test::ReadFile(path)};
}

}  // namespace

TEST_CASE(
    "data: add versions what a symbolic link leads to by copy and never "
    "changes it, whatever cache.link says; status sees it, checkout does not "
    "write through it") {
  for (const std::string mode : {"auto", "hardlink", "symlink", "copy"}) {
    CAPTURE(mode);
    Workspace r;
    REQUIRE(r({"config", "cache.link", mode}).exit_code == 0);
    TempDir elsewhere;
    cmf::test::WriteFile(elsewhere / "dir/inner.dat", "their folder's file");
    cmf::test::WriteFile(elsewhere / "file.dat", "their file");
    for (const char* name : {"dir/inner.dat", "file.dat"}) {
      fs::permissions(elsewhere / name, fs::perms::owner_read |
                                            fs::perms::owner_write |
                                            fs::perms::group_read);  // 0640
    }
    cmf::test::WriteFile(r / "d/own.dat", "ours");
    fs::create_directory_symlink(elsewhere / "dir", r / "d/ext");
    fs::create_symlink(elsewhere / "file.dat", r / "d/link.dat");
    fs::create_directory_symlink(elsewhere / "dir", r / "top");
    fs::create_symlink(elsewhere / "file.dat", r / "top.dat");
    const Fingerprint inner = Take(elsewhere / "dir/inner.dat");
    const Fingerprint file = Take(elsewhere / "file.dat");

    json added = r.Json({"add", "--json", "d", "top", "top.dat"});
    REQUIRE(added.size() == 3);
    CHECK(added[0]["files"] == 3);
    CHECK(Take(elsewhere / "dir/inner.dat") == inner);
    CHECK(Take(elsewhere / "file.dat") == file);
    CHECK(cmf::test::CountFiles(elsewhere.path()) == 2);
    CHECK(fs::read_symlink(r / "d/ext") == elsewhere / "dir");
    CHECK(fs::read_symlink(r / "d/link.dat") == elsewhere / "file.dat");
    CHECK(fs::read_symlink(r / "top") == elsewhere / "dir");
    CHECK(fs::read_symlink(r / "top.dat") == elsewhere / "file.dat");
    CHECK(r.Json({"status", "--json"})["clean"] == true);
    CHECK(r({"fsck"}).exit_code == 0);  // every byte is in the cache

    // Their file changes: status says so; checkout refuses to write through
    // the link, and leaves their file as it is.
    fs::permissions(elsewhere / "dir/inner.dat", fs::perms::owner_write,
                    fs::perm_options::add);
    cmf::test::WriteFile(elsewhere / "dir/inner.dat", "they changed it");
    cmf::test::WriteFile(elsewhere / "file.dat", "they changed it too");
    json status = r.Json({"status", "--json"});
    CHECK(status["changes"] == json::parse(R"([
      {"path": "d/ext/inner.dat", "status": "modified", "tracked": "d"},
      {"path": "d/link.dat", "status": "modified", "tracked": "d"},
      {"path": "top.dat", "status": "modified", "tracked": "top.dat"},
      {"path": "top/inner.dat", "status": "modified", "tracked": "top"}])"));
    // (Their change is a local change too: only --force would discard it,
    // and even then nothing is written through a link.)
    CHECK(IsError(r({"checkout", "top"}), "has local changes"));
    Outcome behind = r({"checkout", "--force", "top"});
    CHECK(behind.exit_code == 1);
    CHECK(IsError(behind,
                  "'top/inner.dat' lies behind the symbolic link "
                  "'top'; checkout does not write through"));
    Outcome linked = r({"checkout", "--force", "top.dat"});
    CHECK(linked.exit_code == 1);
    CHECK(IsError(linked, "'top.dat' is a symbolic link"));
    CHECK(cmf::test::ReadFile(elsewhere / "dir/inner.dat") ==
          "they changed it");
    CHECK(cmf::test::ReadFile(elsewhere / "file.dat") == "they changed it too");
    CHECK(fs::is_symlink(r / "top.dat"));

    // Without the link, checkout restores the recorded content in the
    // workspace itself.
    fs::remove(r / "d/ext");
    fs::remove(r / "d/link.dat");
    CHECK(r({"checkout", "d"}).exit_code == 0);
    CHECK(cmf::test::ReadFile(r / "d/ext/inner.dat") == "their folder's file");
    CHECK(cmf::test::ReadFile(r / "d/link.dat") == "their file");
    CHECK_FALSE(fs::is_symlink(r / "d/ext"));
    CHECK(cmf::test::ReadFile(elsewhere / "dir/inner.dat") ==
          "they changed it");
  }
}

TEST_CASE(
    "data: add leaves a file hard-linked from outside the workspace as it "
    "was") {
  Workspace r;
  TempDir elsewhere;
  cmf::test::WriteFile(elsewhere / "shared.dat", "one inode, two names");
  fs::permissions(elsewhere / "shared.dat", fs::perms::owner_read |
                                                fs::perms::owner_write |
                                                fs::perms::group_read);
  fs::create_hard_link(elsewhere / "shared.dat", r / "shared.dat");
  const Fingerprint before = Take(elsewhere / "shared.dat");
  REQUIRE(r({"add", "-q", "shared.dat"}).exit_code == 0);
  CHECK(Take(elsewhere / "shared.dat") == before);
  CHECK(r.Json({"status", "--json"})["clean"] == true);
}

TEST_CASE(
    "data: add . tracks a file whose name holds a line break with the rest") {
  Workspace r;
  cmf::test::WriteFile(r / "a.txt", "alpha");
  cmf::test::WriteFile(r / "two\nlines.txt", "odd name");
  cmf::test::WriteFile(r / "sub/b.txt", "beta");
  json added = r.Json({"add", "--json", "."});
  REQUIRE(added.size() == 1);
  CHECK(added[0]["files"] == 3);
  CHECK(r.Json({"status", "--json"})["clean"] == true);
  fs::remove(r / "two\nlines.txt");
  json status = r.Json({"status", "--json"});
  CHECK(status["changes"] == json::parse(R"([
    {"path": "two\nlines.txt", "status": "missing", "tracked": "."}])"));
  CHECK(r({"checkout", "."}).exit_code == 0);
  CHECK(cmf::test::ReadFile(r / "two\nlines.txt") == "odd name");
  CHECK(r.Json({"status", "--json"})["clean"] == true);
  CHECK(r({"fsck"}).exit_code == 0);
}

TEST_CASE(
    "data: slice refuses an output outside the workspace and writes "
    "nothing") {
  Workspace r;
  TempDir elsewhere;
  cmf::test::WriteFloatDataset(r / "raw.h5", "/image", {4, 4});
  fs::create_directory_symlink(elsewhere.path(), r / "out");
  const std::string up = "../" + r.dir.path().filename().string() + "-slice.h5";
  for (const std::string& out :
       {up, (elsewhere / "s.h5").string(), std::string("out/s.h5")}) {
    CAPTURE(out);
    Outcome o = r({"slice", "raw.h5", "/image", ":2,:", "-o", out});
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, "is outside the workspace"));
  }
  CHECK_FALSE(fs::exists(r.dir.path().parent_path() /
                         (r.dir.path().filename().string() + "-slice.h5")));
  CHECK(cmf::test::CountFiles(elsewhere.path()) == 0);
  CHECK(r.Json({"log", "--json"}).empty());
  // Inside, through a folder of the workspace and back, it is written.
  fs::create_directory(r / "sub");
  CHECK(r({"slice", "-q", "raw.h5", "/image", ":2,:", "-o", "sub/../s.h5"})
            .exit_code == 0);
  CHECK(fs::exists(r / "s.h5"));
}
