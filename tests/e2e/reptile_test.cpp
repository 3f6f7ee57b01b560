// End-to-end tests of `cmf run reptile` (the reptile plugin of the build tree)
// on families of experiments made by samples/cmf-gen-eels.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "hdf5_fixture.h"
#include "support.h"
#include "workspace.h"

using cmf::test::IsError;
using cmf::test::Outcome;
using cmf::test::Workspace;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string GenEels() {
  const char* v = std::getenv("CMF_GEN_EELS");
  REQUIRE(v != nullptr);
  return v;
}

// N small related experiments priors/fam-00.h5 ... in the workspace.
void Family(const Workspace& ws, int n) {
  Outcome o = cmf::test::RunProcess(
      {GenEels(), "--family", "fam", "--family-size", std::to_string(n),
       "--out-dir", (ws / "priors").string(), "--height", "24", "--width", "24",
       "--channels", "64", "--particles", "3"},
      ws.dir.path());
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
}

std::string Prior(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "priors/fam-%02d.h5", i);
  return name;
}

// reptile on the small experiments: window 8, pool 8, a band that every
// pooled channel falls in, the small extractor.
std::vector<std::string> Reptile(std::vector<std::string> extra) {
  std::vector<std::string> args = {"run",
                                   "reptile",
                                   "--window",
                                   "8",
                                   "--pool",
                                   "8",
                                   "--scalarizer",
                                   "band-mean:0.5:3.5",
                                   "--architecture",
                                   "small",
                                   "--batch-size",
                                   "16",
                                   "--inner-steps",
                                   "3"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// True when the tensors of two checkpoints are equal (PyTorch in Python).
bool SameTensors(const Workspace& ws, const std::string& a,
                 const std::string& b) {
  Outcome o = cmf::test::RunProcess(
      {"/usr/bin/python3", "-c",
       "import sys, torch\n"
       "a = torch.load(sys.argv[1])['state']; b = "
       "torch.load(sys.argv[2])['state']\n"
       "ok = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)\n"
       "sys.exit(0 if ok else 3)\n",
       a, b},
      ws.dir.path());
  INFO(o.err);
  return o.exit_code == 0;
}

}  // namespace

TEST_CASE(
    "reptile: meta-trains over experiment files and logs the tasks, "
    "every iteration and each checkpoint derived from the previous") {
  Workspace ws;
  Family(ws, 3);
  Outcome o = ws(Reptile({"--tasks", Prior(0), Prior(1), Prior(2),
                          "--iterations", "4", "--tasks-per-iteration", "2",
                          "--checkpoint-every", "2", "-o", "meta.pt"}));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  CHECK(e["stage"] == "reptile");
  CHECK(e["status"] == "ok");
  CHECK(e["params"]["iterations"] == 4);
  CHECK(e["params"]["epsilon"] == 1.0);
  CHECK(e["params"]["meta-gp"] == true);
  CHECK(e["params"]["out"] == "meta.pt");
  CHECK(e["properties"]["tasks"] == 3);
  CHECK(e["inputs"].size() == 3);
  REQUIRE(e["outputs"].size() == 2);  // meta-iter2.pt, meta.pt
  json m = ws.Json({"metrics", e["id"], "--json"})["series"];
  for (const char* series :
       {"meta_loss", "adapted_loss", "epsilon", "iteration_seconds"}) {
    INFO(series);
    CHECK(m[series].size() == 4);
  }
  CHECK(m["epsilon"][0][1] == 1.0);
  CHECK(m["epsilon"][3][1].get<double>() == doctest::Approx(0.25));
  json lineage = ws.Json({"lineage", "meta.pt", "--json"});
  std::set<std::string> paths;
  for (const json& node : lineage["nodes"])
    if (node["type"] == "artifact")
      for (const json& p : node["paths"]) paths.insert(p.get<std::string>());
  CHECK(paths.contains("meta-iter2.pt"));
  CHECK(paths.contains(Prior(0)));
  // dkl-al starts from the meta-model and records it.
  cmf::test::RunProcess({GenEels(), "-o", "new.h5", "--height", "24", "--width",
                         "24", "--channels", "64", "--seed", "9"},
                        ws.dir.path());
  Outcome al = ws({"run",
                   "dkl-al",
                   "--data",
                   "new.h5",
                   "--init",
                   "meta.pt",
                   "--window",
                   "8",
                   "--pool",
                   "8",
                   "--scalarizer",
                   "band-mean:0.5:3.5",
                   "--architecture",
                   "small",
                   "--steps",
                   "2",
                   "--epochs",
                   "3",
                   "--out",
                   "al"});
  INFO(al.err);
  CHECK(al.exit_code == 0);
  CHECK(ws.Log()[0]["inputs"][1]["kind"] == "model");
}

TEST_CASE(
    "reptile: a resumed run equals an uninterrupted one, and resuming "
    "with other settings is refused") {
  Workspace ws;
  Family(ws, 3);
  std::vector<std::string> common = {"--tasks",
                                     Prior(0),
                                     Prior(1),
                                     Prior(2),
                                     "--iterations",
                                     "4",
                                     "--tasks-per-iteration",
                                     "2",
                                     "--seed",
                                     "5"};
  std::vector<std::string> a = common;
  a.insert(a.end(), {"--checkpoint-every", "2", "-o", "whole.pt"});
  REQUIRE(ws(Reptile(a)).exit_code == 0);
  std::vector<std::string> b = common;
  b.insert(b.end(), {"--resume", "whole-iter2.pt", "-o", "resumed.pt"});
  Outcome o = ws(Reptile(b));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  CHECK(SameTensors(ws, "whole.pt", "resumed.pt"));
  // A checkpoint file that the store has not recorded (copied in) resumes too.
  fs::copy_file(ws / "whole-iter2.pt", ws / "copied.pt");
  std::vector<std::string> copied = common;
  copied.insert(copied.end(), {"--resume", "copied.pt", "-o", "from-copy.pt"});
  Outcome from_copy = ws(Reptile(copied));
  INFO(from_copy.err);
  REQUIRE(from_copy.exit_code == 0);
  CHECK(SameTensors(ws, "whole.pt", "from-copy.pt"));
  CHECK_FALSE(SameTensors(ws, "whole.pt", "whole-iter2.pt"));
  std::vector<std::string> c = common;
  c.insert(c.end(),
           {"--resume", "whole-iter2.pt", "--inner-lr", "0.5", "-o", "x.pt"});
  Outcome bad = ws(Reptile(c));
  CHECK(bad.exit_code == 1);
  CHECK(IsError(bad, "was made with other settings or tasks"));
  // A Reptile checkpoint does not resume the pretrain baseline.
  std::vector<std::string> d = common;
  d.insert(d.end(), {"--resume", "whole-iter2.pt", "--method", "pretrain", "-o",
                     "p.pt"});
  Outcome other_method = ws(Reptile(d));
  CHECK(other_method.exit_code == 1);
  CHECK(IsError(other_method, "was made with other settings or tasks"));
}

TEST_CASE(
    "reptile: --method pretrain writes the baseline, one model fitted to "
    "the tasks pooled, which dkl-al starts from as from a meta-model") {
  Workspace ws;
  Family(ws, 3);
  std::vector<std::string> common = {"--tasks",
                                     Prior(0),
                                     Prior(1),
                                     Prior(2),
                                     "--iterations",
                                     "3",
                                     "--tasks-per-iteration",
                                     "2"};
  std::vector<std::string> pre = common;
  pre.insert(pre.end(), {"--method", "pretrain", "-o", "pre.pt"});
  Outcome o = ws(Reptile(pre));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  CHECK(e["params"]["method"] == "pretrain");
  json m = ws.Json({"metrics", e["id"], "--json"})["series"];
  REQUIRE(m["epsilon"].size() == 3);
  for (const json& point : m["epsilon"])
    CHECK(point[1] == 1.0);  // no meta step
  std::vector<std::string> rep = common;
  rep.insert(rep.end(), {"-o", "meta.pt"});
  REQUIRE(ws(Reptile(rep)).exit_code == 0);
  CHECK(ws.Log()[0]["params"]["method"] == "reptile");
  CHECK_FALSE(SameTensors(ws, "pre.pt", "meta.pt"));
  Outcome al = ws({"run",
                   "dkl-al",
                   "--data",
                   Prior(0),
                   "--init",
                   "pre.pt",
                   "--window",
                   "8",
                   "--pool",
                   "8",
                   "--scalarizer",
                   "band-mean:0.5:3.5",
                   "--architecture",
                   "small",
                   "--steps",
                   "2",
                   "--epochs",
                   "3",
                   "--out",
                   "al"});
  INFO(al.err);
  CHECK(al.exit_code == 0);
  Outcome bad = ws(Reptile({"--tasks", Prior(0), "--method", "maml"}));
  CHECK(bad.exit_code == 2);
}

TEST_CASE(
    "reptile: missing, unreadable and incompatible tasks are clear errors "
    "before any training") {
  Workspace ws;
  Family(ws, 1);
  cmf::test::WriteFile(ws / "notes.txt", "not hdf5");
  cmf::test::WriteFloatDataset(ws / "image-only.h5", "image", {24, 24});
  // A measured-points slice made with a window of 6.
  REQUIRE(ws({"run", "dkl-al", "--data", Prior(0), "--window", "6", "--pool",
              "8", "--scalarizer", "band-mean:0.5:3.5", "--architecture",
              "small", "--steps", "1", "--epochs", "1", "--out", "w6"})
              .exit_code == 0);
  struct Case {
    std::string task;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {"missing.h5", "'missing.h5' is neither a file nor an artifact"},
           {"notes.txt", "is not an HDF5 file"},
           {"image-only.h5", "has no /spectra: a task needs measured spectra"},
           {"w6/measured.h5",
            "was measured with a window of 6 pixels; this run uses 8"},
       }) {
    INFO(c.task);
    Outcome o = ws(Reptile(
        {"--tasks", Prior(0), c.task, "--iterations", "1", "-o", "never.pt"}));
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, c.error));
    CHECK(ws.Log()[0]["status"] == "failed");
    CHECK_FALSE(fs::exists(ws / "never.pt"));
  }
  Outcome none = ws(Reptile({"--iterations", "1"}));
  CHECK(none.exit_code == 1);
  CHECK(IsError(none, "no tasks"));
}

TEST_CASE(
    "reptile: --tasks-from-stage takes every measured-points slice that "
    "dkl-al logged; a task may also be an artifact id") {
  Workspace ws;
  Family(ws, 2);
  for (int i = 0; i < 2; ++i) {
    REQUIRE(ws({"run", "dkl-al", "--data", Prior(i), "--window", "8", "--pool",
                "8", "--scalarizer", "band-mean:0.5:3.5", "--architecture",
                "small", "--steps", "6", "--epochs", "2", "--out",
                "edge" + std::to_string(i)})
                .exit_code == 0);
  }
  Outcome o = ws(Reptile({"--tasks-from-stage", "dkl-al", "--iterations", "2",
                          "--tasks-per-iteration", "2", "--batch-size", "4"}));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  CHECK(e["properties"]["tasks"] == 2);
  REQUIRE(e["inputs"].size() == 2);
  for (const json& in : e["inputs"]) CHECK(in["kind"] == "dataslice");
  Outcome empty = ws(Reptile({"--tasks-from-stage", "no-such-stage"}));
  CHECK(empty.exit_code == 1);
  CHECK(IsError(empty, "no successful run of stage 'no-such-stage'"));
  // By artifact id: the bytes come from the object cache.
  REQUIRE(ws({"add", "-q", Prior(0)}).exit_code == 0);
  json tracked = ws.Json({"query", "artifacts", "--kind", "dataset", "--json"});
  std::string id;
  for (const json& a : tracked)
    for (const json& p : a["paths"])
      if (p == Prior(0)) id = a["hash"].get<std::string>().substr(0, 16);
  REQUIRE_FALSE(id.empty());
  fs::rename(ws / Prior(0), ws / "moved.h5");
  Outcome by_id = ws(Reptile({"--tasks", id, "--iterations", "1",
                              "--tasks-per-iteration", "1", "-o", "by-id.pt"}));
  INFO(by_id.err);
  CHECK(by_id.exit_code == 0);
}

TEST_CASE(
    "reptile-eval: K-fold cross-validation prints and logs few-shot "
    "scores from the meta-model beside a cold start") {
  Workspace ws;
  Family(ws, 4);
  // Reptile() names the stage reptile; this one is reptile-eval.
  std::vector<std::string> args =
      Reptile({"--tasks", Prior(0), Prior(1), Prior(2), Prior(3), "--folds",
               "2", "--iterations", "2,4", "--shots", "8", "--epochs", "3",
               "--tasks-per-iteration", "2", "--meta-seeds", "2"});
  args[1] = "reptile-eval";
  Outcome eval = ws(args);
  INFO(eval.err);
  REQUIRE(eval.exit_code == 0);
  CHECK(eval.out.find("fold") != std::string::npos);
  CHECK(eval.out.find("meta4") != std::string::npos);
  CHECK(eval.out.find("pretrain4") != std::string::npos);
  // The summary over the 4 held-out tasks, each with its interval, and the
  // change against the cold start for every other start.
  std::size_t summary =
      eval.out.find("over 4 held-out tasks (each once), 2 meta-training seeds");
  REQUIRE(summary != std::string::npos);
  std::string table = eval.out.substr(summary);
  for (const char* label :
       {"cold", "pretrain2", "pretrain4", "meta2", "meta4"}) {
    INFO(label);
    std::size_t at = table.find(std::string("\n") + label + " ");
    REQUIRE(at != std::string::npos);
    std::string line = table.substr(at + 1, table.find('\n', at + 1) - at - 1);
    CHECK(line.find("±") != std::string::npos);
    CHECK((line.find("%") != std::string::npos) ==
          (std::string(label) != "cold"));
  }
  json e = ws.Log()[0];
  CHECK(e["stage"] == "reptile-eval");
  json m = ws.Json({"metrics", e["id"], "--json"})["series"];
  for (const char* series : {"rmse/cold", "rmse/meta2", "rmse/meta4",
                             "mll/cold", "mll/meta4", "rmse/pretrain4"}) {
    INFO(series);
    CHECK(m[series].size() == 2);  // one point per fold
  }
  CHECK(e["properties"].contains("mean_rmse_cold"));
  CHECK(e["properties"].contains("mean_rmse_meta4"));
  CHECK(e["properties"].contains("mean_rmse_pretrain4"));
  CHECK(e["properties"].contains("rmse_ci95_meta4"));
  std::vector<std::string> too_many = args;
  too_many[std::find(args.begin(), args.end(), "--folds") - args.begin() + 1] =
      "9";
  Outcome bad = ws(too_many);
  CHECK(bad.exit_code == 1);
  CHECK(IsError(bad, "--folds 9 needs at least as many tasks"));
}
