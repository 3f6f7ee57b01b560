// End-to-end test fixture: a temporary workspace with an initialised
// repository, and the real cmf binary run in it.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support.h"

namespace cmf::test {

struct Workspace {
  TempDir dir;
  std::map<std::string, std::string> env;  // added to every cmf run
  Workspace() { REQUIRE(Cmf({"init", "-q"}, dir.path()).exit_code == 0); }
  std::filesystem::path operator/(const std::string& name) const {
    return dir / name;
  }
  // Runs cmf with ARGS in the workspace.
  Outcome operator()(const std::vector<std::string>& args) const {
    return Cmf(args, dir.path(), env);
  }
  // Runs cmf with ARGS and parses what it printed.
  nlohmann::json Json(const std::vector<std::string>& args) const {
    Outcome o = Cmf(args, dir.path(), env);
    INFO(o.err);
    REQUIRE(o.out.size() > 0);
    return nlohmann::json::parse(o.out);
  }
  // Every execution, newest first, as `cmf log --json` prints them.
  nlohmann::json Log() const { return Json({"log", "--json"}); }
};

// Requires O to have succeeded, showing what it printed when it did not.
inline void Ok(const Outcome& o) {
  INFO(o.err);
  INFO(o.out);
  REQUIRE(o.exit_code == 0);
}

// Stops W from recording each run's environment (its description would be
// one more object in the counts a test of the data policy checks).
inline void NoEnvironment(const Workspace& w) {
  Ok(w({"config", "core.environment", "false"}));
}

// Runs a stage at W that writes OUT (CONTENT), recorded as an output.
inline void Produce(const Workspace& w, const std::string& out,
                    const std::string& content,
                    const std::string& stage = "make") {
  WriteFile(w / (out + ".src"), content);
  Ok(w({"exec", "-q", "--stage", stage, "--out", out, "--", "cp", out + ".src",
        out}));
}

// The ids of every execution W lists, sorted.
inline std::vector<std::string> Ids(const Workspace& w) {
  std::vector<std::string> ids;
  for (const auto& e : w.Log()) ids.push_back(e["id"]);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace cmf::test
