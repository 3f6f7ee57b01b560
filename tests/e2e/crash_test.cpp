// Crashes and random schedules, end to end: cmf killed at its crash points
// (CMF_CRASH_AT) and by kill -9 at random moments, and three sites pushing and
// pulling in random orders. The kill loop and the schedules are small here;
// bench/chaos.sh runs them at a larger scale through the same test cases
// (CMF_CHAOS_KILLS, CMF_CHAOS_SCHEDULES, CMF_CHAOS_SEED).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "e2e/workspace.h"
#include "support.h"

extern char** environ;

using cmf::test::Cmf;
using cmf::test::Ids;
using cmf::test::Ok;
using cmf::test::Outcome;
using cmf::test::Produce;
using cmf::test::ReadFile;
using cmf::test::TempDir;
using cmf::test::Workspace;
using cmf::test::WriteFile;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Runs cmf at W killed at crash point POINT; checks that it was.
void Killed(const Workspace& w, const std::vector<std::string>& args,
            const std::string& point) {
  std::map<std::string, std::string> env = w.env;
  env["CMF_CRASH_AT"] = point;
  Outcome o = Cmf(args, w.dir.path(), env);
  INFO(o.err);
  REQUIRE(o.signal == SIGKILL);
}

std::size_t Uncommitted(const Workspace& w) {
  return w.Json({"status", "--json"})["uncommitted"]["executions"];
}

// The number of segments in W's metadata log.
std::size_t Segments(const Workspace& w) {
  std::size_t n = 0;
  fs::path log = w / ".cmf/log.git";
  Outcome o = cmf::test::RunProcess({"git", "--git-dir", log.string(),
                                     "ls-tree", "-r", "--name-only", "main"},
                                    w.dir.path());
  REQUIRE(o.exit_code == 0);
  for (char c : o.out) n += c == '\n';
  return n;
}

// The facts of W's export, each as its compact text, the `location` facts
// left out when LOCATIONS is false (a pull records where it put bytes as new,
// uncommitted facts of its own).
std::vector<std::string> Facts(const Workspace& w, bool locations) {
  std::vector<std::string> out;
  const json exported = w.Json({"export"});
  for (const json& f : exported["facts"]) {
    if (locations || f["t"] != "location") out.push_back(f.dump());
  }
  return out;
}

std::size_t EnvCount(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoul(v, nullptr, 10) : fallback;
}

}  // namespace

TEST_CASE(
    "crash: a commit killed between the log and the store is completed by "
    "the next verb, each fact once") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
  Workspace a, b;
  for (const Workspace* w : {&a, &b}) {
    Ok((*w)({"remote", "add", "hub", (remotes / "hub").string()}));
  }
  Produce(a, "out.txt", "payload");
  Killed(a, {"commit"}, "commit:logged");
  // The segment reached the log; the store still counts its facts pending.
  CHECK(Segments(a) == 1);
  CHECK(Uncommitted(a) == 1);
  Ok(a({"fsck"}));

  SUBCASE("the next verb is a commit with nothing new") { Ok(a({"commit"})); }
  SUBCASE("new work comes first") {
    Produce(a, "more.txt", "more");
    Ok(a({"commit"}));
    CHECK(a.Log().size() == 2);
  }
  SUBCASE("the next verb is a push, then a commit") {
    Ok(a({"push", "hub"}));
    Ok(a({"commit"}));
  }
  CHECK(Uncommitted(a) == 0);
  Outcome again = a({"commit"});
  Ok(again);
  CHECK(again.out.find("nothing to commit") != std::string::npos);
  Ok(a({"fsck"}));
  Ok(a({"push", "hub"}));
  Ok(b({"pull", "hub"}));
  Ok(b({"fsck"}));
  CHECK(Ids(b) == Ids(a));
  CHECK(Facts(b, false) == Facts(a, false));
  Ok(b({"get", "out.txt"}));
  CHECK(ReadFile(b / "out.txt") == "payload");
}

TEST_CASE(
    "crash: an add killed before or after its objects are named is "
    "completed by the next add") {
  for (const std::string link : {"copy", "hardlink"}) {
    for (const std::string point : {"cache:written", "cache:named"}) {
      CAPTURE(link);
      CAPTURE(point);
      Workspace w;
      Ok(w({"config", "cache.link", link}));
      WriteFile(w / "data/a.txt", "alpha");
      WriteFile(w / "data/b/c.txt", "gamma");
      Killed(w, {"add", "data"}, point);
      Ok(w({"fsck"}));
      // The files are whole, whatever the kill left of the objects.
      CHECK(ReadFile(w / "data/a.txt") == "alpha");
      CHECK(ReadFile(w / "data/b/c.txt") == "gamma");
      json added = w.Json({"add", "--json", "data"});
      CHECK(added[0]["files"] == 2);
      Ok(w({"fsck"}));
      CHECK(w.Json({"status", "--json"})["clean"] == true);
      // What the cache holds is right: a checkout restores it.
      fs::remove(w / "data/a.txt");
      Ok(w({"checkout", "data"}));
      CHECK(ReadFile(w / "data/a.txt") == "alpha");
      Ok(w({"fsck"}));
    }
  }
}

TEST_CASE(
    "crash: a pull killed before or after an object it fetched is named is "
    "completed by the next pull") {
  for (const std::string point : {"cache:written", "cache:named"}) {
    CAPTURE(point);
    TempDir remotes;
    Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
    Workspace a, b;
    for (const Workspace* w : {&a, &b}) {
      Ok((*w)({"remote", "add", "hub", (remotes / "hub").string()}));
    }
    Produce(a, "out.txt", "payload " + point);
    Ok(a({"commit"}));
    Ok(a({"push", "hub"}));
    Killed(b, {"pull", "hub"}, point);
    Ok(b({"fsck"}));
    Ok(b({"pull", "hub"}));
    Ok(b({"fsck"}));
    CHECK(b.Json({"whereis", "out.txt", "--json"})["here"] == true);
    CHECK(Ids(b) == Ids(a));
    Ok(b({"get", "out.txt"}));
    CHECK(ReadFile(b / "out.txt") == "payload " + point);
  }
}

// --- kill -9 at random moments, and random schedules of three sites ---

namespace {

// How a process started by Race ended.
struct Ending {
  bool killed = false;  // SIGKILL ended it before it finished
  int exit_code = -1;
};

// Starts cmf ARGS in W and kills it with SIGKILL after DELAY, unless it has
// finished by then.
Ending Race(const Workspace& w, const std::vector<std::string>& args,
            std::chrono::microseconds delay) {
  std::vector<std::string> argv = {cmf::test::CmfBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> argp;
  for (auto& a : argv) argp.push_back(a.data());
  argp.push_back(nullptr);
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (name == "CMF_DIR" || name == "CMF_METRICS_FD" ||
        name == "CMF_EXECUTION_ID" || name == "CMF_CRASH_AT")
      continue;
    env_storage.push_back(entry);
  }
  std::vector<char*> envp;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addchdir_np(&actions, w.dir.path().c_str());
  pid_t pid = 0;
  int rc =
      ::posix_spawn(&pid, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  auto deadline = std::chrono::steady_clock::now() + delay;
  int status = 0;
  Ending ending;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      ending.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      return ending;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  ending.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (WIFEXITED(status)) ending.exit_code = WEXITSTATUS(status);
  return ending;
}

std::string RandomBytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace

TEST_CASE(
    "chaos: add, commit, push and pull killed at random moments leave no "
    "damage") {
  const std::size_t kills = EnvCount("CMF_CHAOS_KILLS", 20);
  const std::uint64_t seed = EnvCount("CMF_CHAOS_SEED", 1);
  std::mt19937_64 rng(seed);
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
  Workspace a, b;
  for (const Workspace* w : {&a, &b}) {
    Ok((*w)({"remote", "add", "hub", (remotes / "hub").string()}));
  }
  const char* ops[] = {"add", "commit", "push", "pull"};
  // How long each verb ran when it was not killed: the kills fall within it.
  std::map<std::string, double> ms = {
      {"add", 40}, {"commit", 40}, {"push", 60}, {"pull", 60}};
  std::map<std::string, std::string> added;  // path → bytes
  std::size_t made = 0, killed = 0, tries = 0, damaged = 0;
  std::vector<std::string> damage;
  auto start = std::chrono::steady_clock::now();
  while (killed < kills && tries < kills * 6) {
    ++tries;
    const std::string op = ops[rng() % 4];
    const Workspace& at = op == "pull" ? b : a;
    std::vector<std::string> args = {op};
    if (op == "add") {
      std::string path = "data/f" + std::to_string(made++) + ".bin";
      added[path] = RandomBytes(rng, 1 + rng() % (256 * 1024));
      WriteFile(a / path, added[path]);
      args = {"add", "data"};
    } else if (op == "commit") {
      Produce(a, "out" + std::to_string(made++), RandomBytes(rng, 100));
    } else {
      args.push_back("hub");
    }
    auto delay = std::chrono::microseconds(static_cast<long>(
        rng() % static_cast<std::uint64_t>(ms[op] * 1200 + 1)));
    Ending ending = Race(at, args, delay);
    if (ending.killed) ++killed;
    auto note = [&](const std::string& what, const Outcome& o) {
      ++damaged;
      damage.push_back("try " + std::to_string(tries) + " (" + op +
                       "): " + what + ": " + o.err);
    };
    Outcome fsck = at({"fsck"});
    if (fsck.exit_code != 0) note("fsck after the kill", fsck);
    auto t0 = std::chrono::steady_clock::now();
    Outcome redo = at(args);
    ms[op] = std::chrono::duration<double, std::milli>(
                 std::chrono::steady_clock::now() - t0)
                 .count();
    if (redo.exit_code != 0) note("the same verb again", redo);
  }
  // Everything made reached the other site, whole.
  auto must = [&](const Workspace& w, const std::vector<std::string>& args) {
    Outcome o = w(args);
    if (o.exit_code != 0) {
      ++damaged;
      damage.push_back("at the end, " + args[0] + ": " + o.err);
    }
  };
  must(a, {"commit"});
  must(a, {"push", "hub"});
  must(b, {"pull", "hub"});
  must(a, {"fsck"});
  must(b, {"fsck"});
  for (const auto& [path, bytes] : added) {
    if (ReadFile(a / path) != bytes) {
      ++damaged;
      damage.push_back("changed: " + path);
    }
  }
  if (a.Json({"status", "--json"})["clean"] != true) {
    ++damaged;
    damage.push_back("status at the end is not clean");
  }
  if (Facts(a, false) != Facts(b, false)) {
    ++damaged;
    damage.push_back("the two sites hold different facts");
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::cout << "kill loop: seed " << seed << ", " << killed << " kills in "
            << tries << " tries, " << damaged << " damaged, " << seconds << " s"
            << std::endl;
  for (const std::string& d : damage) std::cout << "  " << d << std::endl;
  CHECK(killed >= std::min<std::size_t>(kills, tries / 3));
  CHECK(damaged == 0);
}

TEST_CASE(
    "chaos: three sites in random schedules of exec, commit, push and pull "
    "converge to the same facts") {
  const std::size_t schedules = EnvCount("CMF_CHAOS_SCHEDULES", 12);
  const std::uint64_t seed = EnvCount("CMF_CHAOS_SEED", 1);
  std::size_t failed = 0, steps_run = 0;
  auto start = std::chrono::steady_clock::now();
  for (std::size_t s = 0; s < schedules; ++s) {
    std::mt19937_64 rng(seed * 1'000'003 + s);
    TempDir remotes;
    Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
    Workspace sites[3];
    for (const Workspace& w : sites) {
      Ok(w({"remote", "add", "hub", (remotes / "hub").string()}));
    }
    std::string trace;
    bool ok = true;
    auto run = [&](const Workspace& w, const std::vector<std::string>& args) {
      Outcome o = w(args);
      if (o.exit_code != 0) {
        ok = false;
        trace += " [failed: " + o.err + "]";
      }
    };
    std::size_t made = 0;
    const std::size_t steps = 6 + rng() % 10;
    for (std::size_t i = 0; i < steps; ++i) {
      std::size_t at = rng() % 3;
      switch (rng() % 5) {
        case 0:
        case 1:
          trace += " exec@" + std::to_string(at);
          Produce(sites[at], "o" + std::to_string(made++),
                  RandomBytes(rng, 1 + rng() % 2000));
          break;
        case 2:
          trace += " commit@" + std::to_string(at);
          run(sites[at], {"commit"});
          break;
        case 3:
          trace += " push@" + std::to_string(at);
          if (rng() % 3 == 0) {  // two sites push at the same moment
            std::size_t other = (at + 1 + rng() % 2) % 3;
            trace += "+" + std::to_string(other);
            Outcome o1, o2;
            std::thread t1([&] { o1 = sites[at]({"push", "hub"}); });
            std::thread t2([&] { o2 = sites[other]({"push", "hub"}); });
            t1.join();
            t2.join();
            for (const Outcome* o : {&o1, &o2}) {
              if (o->exit_code != 0) {
                ok = false;
                trace += " [failed: " + o->err + "]";
              }
            }
          } else {
            run(sites[at], {"push", "hub"});
          }
          break;
        default:
          trace += " pull@" + std::to_string(at);
          run(sites[at], {"pull", "hub"});
      }
    }
    steps_run += steps;
    // Every site commits and pushes, then every site pulls; twice, so that
    // where each site put bytes is known everywhere too.
    for (int round = 0; round < 2; ++round) {
      for (const Workspace& w : sites) {
        run(w, {"commit"});
        run(w, {"push", "hub"});
      }
      for (const Workspace& w : sites) run(w, {"pull", "hub"});
    }
    std::string first = sites[0]({"export"}).out;
    for (const Workspace& w : sites) {
      run(w, {"fsck"});
      if (w({"export"}).out != first) {
        ok = false;
        trace += " [exports differ]";
      }
    }
    if (sites[0].Log().size() != made) {
      ok = false;
      trace += " [" + std::to_string(sites[0].Log().size()) + " of " +
               std::to_string(made) + " executions]";
    }
    if (!ok) {
      ++failed;
      std::cout << "  schedule " << s << " (seed " << seed << "):" << trace
                << std::endl;
    }
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::cout << "schedules: seed " << seed << ", " << schedules << " schedules ("
            << steps_run << " random steps), " << failed
            << " did not converge, " << seconds << " s" << std::endl;
  CHECK(failed == 0);
}

TEST_CASE(
    "crash: git lock files left by a killed commit, push or pull, here or in "
    "the hub's log, block nothing") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
  Workspace a, b;
  for (const Workspace* w : {&a, &b}) {
    Ok((*w)({"remote", "add", "hub", (remotes / "hub").string()}));
  }
  Produce(a, "one.txt", "one");
  Ok(a({"commit"}));
  Ok(a({"push", "hub"}));
  // What kill -9 leaves while git moves a ref, and while cmf writes config.
  WriteFile(a / ".cmf/log.git/refs/heads/main.lock", "");
  WriteFile(a / ".cmf/log.git/refs/remotes/hub/main.lock", "");
  WriteFile(a / ".cmf/config.lock", "");
  WriteFile(remotes / "hub/log.git/refs/heads/main.lock", "");
  Produce(a, "two.txt", "two");
  Ok(a({"commit"}));
  Ok(a({"push", "hub"}));
  Ok(a({"remote", "add", "other", (remotes / "hub").string()}));
  Ok(b({"pull", "hub"}));
  CHECK(Ids(b) == Ids(a));
  CHECK(Ids(b).size() == 2);
}
