// End-to-end test fixture: a temporary workspace with an initialised
// repository, and the real cmf binary run in it.
#pragma once

#include <doctest/doctest.h>

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

}  // namespace cmf::test
