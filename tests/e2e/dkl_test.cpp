// End-to-end tests of `cmf run dkl-al` (the dkl plugin of the build tree) on
// experiments made by samples/cmf-gen-eels: replay and proc instruments, what
// is logged, the instrument protocol's failure cases, and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "hdf5_fixture.h"
#include "support.h"
#include "workspace.h"

using cmf::test::IsError;
using cmf::test::Outcome;
using cmf::test::Workspace;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  REQUIRE(v != nullptr);
  return v;
}

// Writes a generated experiment into the workspace.
void Generate(const Workspace& ws, const std::string& name,
              std::vector<std::string> args) {
  std::vector<std::string> argv = {Env("CMF_GEN_EELS"), "-o",
                                   (ws / name).string()};
  argv.insert(argv.end(), args.begin(), args.end());
  Outcome o = cmf::test::RunProcess(argv, ws.dir.path());
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
}

// A small, fast configuration: a 24x24 image, 64 channels, window 8, pool 8.
const std::vector<std::string> kSmall = {
    "--height", "24", "--width", "24", "--channels", "64", "--particles", "3"};
std::vector<std::string> SmallRun(std::vector<std::string> extra) {
  std::vector<std::string> args = {"run",
                                   "dkl-al",
                                   "--data",
                                   "s.h5",
                                   "--window",
                                   "8",
                                   "--pool",
                                   "8",
                                   "--scalarizer",
                                   "band-mean:0.5:3.5",
                                   "--architecture",
                                   "small",
                                   "--epochs",
                                   "5"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// A controller in sh: answers the greeting, then ANSWERS measurements with a
// 64-value spectrum that grows with x, then does what AFTER says.
std::string Controller(int answers, const std::string& after) {
  return "proc:i=0; spec=$(awk 'BEGIN{for(k=0;k<64;k++) printf \"%s%d\", "
         "(k?\",\":\"\"), k}'); while read -r line; do case \"$line\" in "
         "*hello*) echo '{\"ready\": true}';; *measure*) i=$((i+1)); "
         "if [ $i -gt " +
         std::to_string(answers) + " ]; then " + after +
         "; fi; echo \"{\\\"spectrum\\\": [$spec]}\";; *bye*) exit 0;; esac; "
         "done";
}

json Metrics(const Workspace& ws, const std::string& id) {
  return ws.Json({"metrics", id, "--json"})["series"];
}

}  // namespace

TEST_CASE(
    "dkl-al: a replay run logs every step and its three outputs, each "
    "derived from the experiment") {
  Workspace ws;
  Generate(ws, "s.h5", kSmall);
  Outcome o = ws(SmallRun({"--steps", "4", "--out", "res"}));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  CHECK(o.err.find("results in res/") != std::string::npos);
  json e = ws.Log()[0];
  CHECK(e["status"] == "ok");
  CHECK(e["params"]["steps"] == 4);
  CHECK(e["params"]["acquisition"] == "mu");
  CHECK(e["params"]["instrument"] == "replay");
  CHECK(e["properties"]["plugin"] == "dkl");
  CHECK(e["properties"]["candidates"] == 17 * 17);
  CHECK(e["properties"]["measured_points"] == 6);  // 2 seed points + 4 steps
  REQUIRE(e["inputs"].size() == 1);
  CHECK(e["inputs"][0]["kind"] == "dataset");
  std::map<std::string, std::string> kinds;
  for (const json& out : e["outputs"])
    kinds[fs::path(out["path"].get<std::string>()).filename()] = out["kind"];
  CHECK(kinds ==
        std::map<std::string, std::string>{{"maps.h5", "dataset"},
                                           {"measured.h5", "dataslice"},
                                           {"model.pt", "model"}});
  json m = Metrics(ws, e["id"]);
  for (const char* series :
       {"x", "y", "acquisition", "uncertainty", "max_uncertainty", "train_loss",
        "step_seconds", "rmse"}) {
    INFO(series);
    CHECK(m[series].size() == 4);
  }
  // The chosen point's uncertainty is one of the unmeasured candidates'.
  for (std::size_t k = 0; k < 4; ++k) {
    CHECK(m["uncertainty"][k][1].get<double>() >= 0);
    CHECK(m["uncertainty"][k][1].get<double>() <=
          m["max_uncertainty"][k][1].get<double>() + 1e-12);
  }
  for (const json& point : m["x"]) {
    CHECK(point[1].get<double>() >= 4);  // a patch centre: w/2 .. W - w/2
    CHECK(point[1].get<double>() <= 20);
  }
  // The measured points are a slice of the experiment, and travel as such.
  std::vector<float> xs =
      cmf::test::ReadFloatDataset(ws / "res/measured.h5", "spectra");
  CHECK(xs.size() == 6u * 64u);
  json lineage = ws.Json({"lineage", "res/measured.h5", "--json"});
  bool derived = false;
  for (const json& edge : lineage["edges"])
    derived |= edge["type"] == "derived_from";
  CHECK(derived);
  // PyTorch in Python reads the checkpoint (doc/dkl-checkpoint.md).
  Outcome py = cmf::test::RunProcess(
      {"/usr/bin/python3", "-c",
       "import json, torch\n"
       "d = torch.load('res/model.pt')\n"
       "meta = json.loads(d['meta'])\n"
       "s = d['state']\n"
       "assert meta['format'] == 'cmf-dkl-checkpoint', meta\n"
       "assert tuple(s['extractor.0.weight'].shape) == (64, 64)\n"
       "assert tuple(s['train.x'].shape) == (6, 64)\n"
       "print('ok', meta['kernel'])\n"},
      ws.dir.path());
  INFO(py.err);
  CHECK(py.exit_code == 0);
  CHECK(py.out == "ok rbf\n");
}

TEST_CASE(
    "dkl-al: on generated data, ei finds the top 1 % sooner than random, "
    "and 50 steps lower the map's error below the seed points' alone") {
  Workspace ws;
  Generate(ws, "s.h5", {"--seed", "0"});
  const int steps = 50;
  double ei_sum = 0, random_sum = 0;
  for (int seed : {0, 1, 2}) {
    for (const std::string acquisition : {"ei", "random"}) {
      Outcome o = ws({"run", "-q", "dkl-al", "--data", "s.h5", "--steps",
                      std::to_string(steps), "--acquisition", acquisition,
                      "--seed", std::to_string(seed), "--architecture", "small",
                      "--out", acquisition + std::to_string(seed)});
      INFO(o.err);
      REQUIRE(o.exit_code == 0);
      json e = ws.Log()[0];
      std::int64_t first = e["properties"]["first_top1_step"];
      (acquisition == "ei" ? ei_sum : random_sum) +=
          first < 0 ? steps + 1 : first;  // not found: counted as steps + 1
      if (acquisition == "ei") {
        json rmse = Metrics(ws, e["id"])["rmse"];
        REQUIRE(rmse.size() == steps);
        // Step 1's map comes from the seed points alone.
        CHECK(rmse[steps - 1][1].get<double>() < rmse[0][1].get<double>());
      }
    }
  }
  INFO("mean first step in the top 1 %: ei " << ei_sum / 3 << ", random "
                                             << random_sum / 3);
  CHECK(ei_sum * 2 <= random_sum);
}

TEST_CASE(
    "dkl-al: after the first step each step goes on from the last step's "
    "model for --warm-epochs (0: every step trains afresh)") {
  Workspace ws;
  Generate(ws, "s.h5", {"--seed", "0", "--height", "24", "--width", "24"});
  // With --epochs 0 the first step trains nothing (its loss is NaN); the
  // steps after it train --warm-epochs each, on from the step before.
  auto losses = [&](const std::vector<std::string>& more) {
    std::vector<std::string> argv = {
        "run", "-q",       "dkl-al", "--data",         "s.h5", "--steps",
        "4",   "--epochs", "0",      "--architecture", "small"};
    argv.insert(argv.end(), more.begin(), more.end());
    Outcome o = ws(argv);
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
    json e = ws.Log()[0];
    std::vector<double> out;
    const json series = Metrics(ws, e["id"]);
    for (const json& point : series["train_loss"])
      out.push_back(point[1].is_number() ? point[1].get<double>()
                                         : std::nan(""));
    return std::make_pair(out, e["params"]);
  };
  auto [warm, params] = losses({});
  CHECK(params["warm-epochs"] == 5);
  REQUIRE(warm.size() == 4);
  CHECK(std::isnan(warm[0]));
  for (std::size_t i = 1; i < warm.size(); ++i) CHECK(std::isfinite(warm[i]));
  auto [fresh, fresh_params] = losses({"--warm-epochs", "0"});
  REQUIRE(fresh.size() == 4);
  for (double loss : fresh) CHECK(std::isnan(loss));
  Outcome bad =
      ws({"run", "-q", "dkl-al", "--data", "s.h5", "--warm-epochs", "-1"});
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("--warm-epochs must not be negative") !=
        std::string::npos);
}

TEST_CASE(
    "dkl-al: a controller process measures through the documented "
    "protocol") {
  Workspace ws;
  Generate(ws, "s.h5", kSmall);
  Outcome o =
      ws(SmallRun({"--steps", "3", "--instrument", Controller(100, "true")}));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  CHECK(e["status"] == "ok");
  json m = Metrics(ws, e["id"]);
  CHECK(m["x"].size() == 3);
  CHECK_FALSE(m.contains("rmse"));  // no truth to compare with when live
  CHECK(e["properties"]["measured_points"] == 5);
}

TEST_CASE("dkl-al: the sample microscope simulator drives a run") {
  Workspace ws;
  Generate(ws, "s.h5", kSmall);
  std::string sim = Env("CMF_SOURCE_ROOT") + "/samples/microscope_sim.py";
  Outcome o = ws(SmallRun({"--steps", "2", "--instrument",
                           "proc:/usr/bin/python3 '" + sim + "' s.h5"}));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  CHECK(ws.Log()[0]["properties"]["measured_points"] == 4);
}

TEST_CASE(
    "dkl-al: a controller that dies, hangs, or answers garbage ends the "
    "run with a clear error, and every step so far is kept") {
  struct Case {
    std::string name;
    std::string instrument;
    std::string error;
    std::vector<std::string> extra;
  };
  for (const Case& c : std::vector<Case>{
           {"dies", Controller(4, "exit 3"), "exited with status 3"},
           {"hangs",
            Controller(4, "sleep 30"),
            "did not answer within 1 s",
            {"--instrument-timeout", "1"}},
           {"garbage", Controller(4, "echo 'not json'; continue"),
            "not a JSON object: 'not json'"},
           {"short spectrum",
            Controller(4, "echo '{\"spectrum\": [1, 2]}'; continue"),
            "a spectrum of 2 values; the energy axis has 64"},
           {"error answer",
            Controller(4, "echo '{\"error\": \"stage drift\"}'; continue"),
            "reported an error at"},
       }) {
    INFO(c.name);
    Workspace ws;
    Generate(ws, "s.h5", kSmall);
    std::vector<std::string> extra = {
        "--steps", "6", "--out", "res", "--instrument", c.instrument};
    extra.insert(extra.end(), c.extra.begin(), c.extra.end());
    Outcome o = ws(SmallRun(extra));
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, c.error));
    json e = ws.Log()[0];
    CHECK(e["status"] == "failed");
    // 2 seed points and 2 steps were measured before the controller failed.
    json m = Metrics(ws, e["id"]);
    CHECK(m["x"].size() == 2);
    bool kept = false;
    for (const json& out : e["outputs"]) kept |= out["kind"] == "dataslice";
    CHECK(kept);
    CHECK(
        cmf::test::ReadFloatDataset(ws / "res/measured.h5", "spectra").size() ==
        4u * 64u);
  }
  Workspace ws;
  Generate(ws, "s.h5", kSmall);
  Outcome silent = ws(SmallRun({"--instrument", "proc:exit 0"}));
  CHECK(silent.exit_code == 1);
  CHECK(IsError(silent, "exited with status 0 before answering"));
}

TEST_CASE(
    "dkl-al: --init starts from a model and records it as an input it "
    "derives from") {
  Workspace ws;
  Generate(ws, "s.h5", kSmall);
  REQUIRE(ws(SmallRun({"--steps", "1", "--out", "first"})).exit_code == 0);
  Outcome o = ws(SmallRun(
      {"--steps", "1", "--out", "second", "--init", "first/model.pt"}));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  REQUIRE(e["inputs"].size() == 2);
  CHECK(e["inputs"][1]["kind"] == "model");
  json lineage = ws.Json({"lineage", "second/model.pt", "--json"});
  int derived = 0;
  for (const json& edge : lineage["edges"])
    derived += edge["type"] == "derived_from";
  CHECK(derived >= 2);  // from the experiment and from the seed model
  // A model for another window does not fit.
  Outcome bad = ws(SmallRun({"--window", "6", "--init", "first/model.pt"}));
  CHECK(bad.exit_code == 1);
  CHECK(IsError(bad, "takes 64 features"));

  // The default extractor is the small one: a run that names none starts from
  // it, and a model of the large one (or its old name, default) is refused
  // with both names.
  std::vector<std::string> plain = SmallRun({"--steps", "1"});
  auto named = std::find(plain.begin(), plain.end(), "--architecture");
  plain.erase(named, named + 2);
  REQUIRE(std::find(plain.begin(), plain.end(), "small") == plain.end());
  std::vector<std::string> from_small = plain;
  for (const char* a : {"--out", "third", "--init", "first/model.pt"})
    from_small.push_back(a);
  Outcome fits = ws(from_small);
  INFO(fits.err);
  CHECK(fits.exit_code == 0);
  REQUIRE(
      ws(SmallRun({"--steps", "1", "--out", "big", "--architecture", "large"}))
          .exit_code == 0);
  REQUIRE(ws(SmallRun(
                 {"--steps", "1", "--out", "old", "--architecture", "default"}))
              .exit_code == 0);
  for (const char* model : {"big/model.pt", "old/model.pt"}) {
    std::vector<std::string> from_large = plain;
    for (const char* a : {"--out", "fourth", "--init", model})
      from_large.push_back(a);
    Outcome refused = ws(from_large);
    CHECK(refused.exit_code == 1);
    CHECK(IsError(refused,
                  "trained with --architecture large, this run has small"));
  }
}

TEST_CASE(
    "dkl-al: a replay run learns targets normalised over the points "
    "measured so far, as a live run, and scores its map on the truth's "
    "scale") {
  Workspace ws;
  // 12x12 with a window of 8: 25 candidates, every one measured by the end.
  Generate(ws, "s.h5",
           {"--height", "12", "--width", "12", "--channels", "64",
            "--particles", "2", "--seed", "3"});
  auto final_rmse = [&](const std::string& normalise) {
    Outcome o = ws(SmallRun({"--steps", "23", "--normalise", normalise, "--out",
                             "r-" + normalise}));
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
    json e = ws.Log()[0];
    CHECK(e["params"]["normalise"] == normalise);
    CHECK(e["properties"]["measured_points"] == 25);
    json m = Metrics(ws, e["id"]);
    return std::make_pair(e["properties"]["final_rmse"].get<double>(),
                          m["rmse"]);
  };
  auto [measured, measured_curve] = final_rmse("measured");
  auto [all, all_curve] = final_rmse("all");
  // With every point measured the two ranges are one: the final models learn
  // the same targets, and the scores agree.
  CHECK(measured == doctest::Approx(all).epsilon(1e-3));
  // Before that they learn different targets (the first steps see a few
  // points, whose range is narrower than the map's).
  CHECK(measured_curve[0][1].get<double>() != all_curve[0][1].get<double>());
  // The default is what a live run does.
  Outcome o = ws(SmallRun({"--steps", "1", "--out", "r-default"}));
  REQUIRE(o.exit_code == 0);
  CHECK(ws.Log()[0]["params"]["normalise"] == "measured");
}

TEST_CASE("dkl-al: bad input is a clear error before anything is measured") {
  Workspace ws;
  Generate(ws, "s.h5", kSmall);
  cmf::test::WriteFile(ws / "notes.txt", "not hdf5");
  cmf::test::WriteFloatDataset(ws / "image-only.h5", "image", {24, 24});
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{"--data", "missing.h5"}, "'missing.h5' does not exist"},
           {{"--data", "notes.txt"}, "is not an HDF5 file"},
           {{"--data", "image-only.h5"}, "has no /spectra to replay"},
           {{"--window", "40"}, "does not fit in a 24x24 image"},
           {{"--scalarizer", "band-mean:9:10"}, "holds no pooled channel"},
           {{"--scalarizer", "vector", "--acquisition", "ei"},
            "needs one target value"},
           {{"--pool", "100"}, "exceeds the 64 channels"},
           {{"--normalise", "all", "--instrument", "proc:true"},
            "--normalise all needs --instrument replay"},
       }) {
    std::vector<std::string> args = SmallRun({});
    args.insert(args.end(), c.args.begin(), c.args.end());
    Outcome o = ws(args);
    INFO(c.error);
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, c.error));
  }
  // Usage errors are caught by the host before a run is recorded.
  Outcome usage =
      ws({"run", "dkl-al", "--data", "s.h5", "--acquisition", "best"});
  CHECK(usage.exit_code == 2);
}
