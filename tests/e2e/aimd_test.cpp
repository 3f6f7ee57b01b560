// cmf run aimd-al end to end, on trajectories that md-mos2 makes with real
// LAMMPS: what a run logs and writes, the lineage of the most stable frame
// back to the MD inputs, the acquisitions, the refusals, and that it finds
// the lowest-energy frame sooner than random over a fixed set of seeds.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "hdf5_fixture.h"
#include "lammps.h"
#include "lammps_check.h"
#include "support.h"
#include "trajectory.h"
#include "workspace.h"

using cmf::test::HaveLammps;
using cmf::test::IsError;
using cmf::test::Ok;
using cmf::test::Outcome;
using cmf::test::Workspace;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Two small trajectories (3 x 3 cells, 0 and 1 vacancy, 31 frames each).
void Simulate(const Workspace& ws) {
  for (int k = 0; k < 2; ++k)
    Ok(ws({"run", "-q", "md-mos2", "--supercell", "3", "--vacancies",
           std::to_string(k), "--steps", "300", "--every", "10",
           "--equilibrate", "200", "--seed", std::to_string(k), "-o",
           "t" + std::to_string(k) + ".h5"}));
}

std::vector<std::string> Run(std::vector<std::string> extra) {
  std::vector<std::string> args = {"run", "aimd-al", "--trajectories", "t0.h5",
                                   "t1.h5"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

json Metrics(const Workspace& ws) {
  std::string id = ws.Log()[0]["id"];
  return ws.Json({"metrics", id.substr(0, 13), "--json"})["series"];
}

}  // namespace

TEST_CASE(
    "aimd-al: a replay run logs every step, writes its results, and the most "
    "stable "
    "frame's lineage leads back to the MD runs and their inputs") {
  if (!HaveLammps()) return;
  Workspace ws;
  Simulate(ws);
  Outcome o = ws(Run({"--steps", "8", "--seed-frames", "3", "-o", "res"}));
  Ok(o);
  json e = ws.Log()[0];
  CHECK(e["status"] == "ok");
  CHECK(e["params"]["acquisition"] == "lcb");
  CHECK(e["params"]["features"] == "bonds");
  CHECK(e["properties"]["frames"] == 62);
  CHECK(e["properties"]["evaluations"] == 11);
  json m = Metrics(ws);
  for (const char* series : {"trajectory", "frame", "predicted", "uncertainty",
                             "best", "max_uncertainty", "regret", "rmse"}) {
    CAPTURE(series);
    REQUIRE(m.contains(series));
    CHECK(m[series].size() == 8u);
  }
  // best never rises; regret is best minus the true minimum, never negative.
  const double true_min = e["properties"]["true_minimum"];
  double last = 1e9;
  for (std::size_t k = 0; k < 8; ++k) {
    double best = m["best"][k][1], regret = m["regret"][k][1];
    CHECK(best <= last);
    last = best;
    CHECK(regret == doctest::Approx(best - true_min));
    CHECK(regret >= 0);
    CHECK(m["uncertainty"][k][1].get<double>() <=
          m["max_uncertainty"][k][1].get<double>() + 1e-12);
    CHECK(m["trajectory"][k][1].get<double>() >= 0);
    CHECK(m["frame"][k][1].get<double>() <= 30);
  }
  // The most stable frame: a slice of its trajectory holding that frame.
  cmf::md::Trajectory slice =
      cmf::md::ReadTrajectory(ws / "res/most_stable.h5");
  const int traj = e["properties"]["most_stable_trajectory"];
  const int frame = e["properties"]["most_stable_frame"];
  cmf::md::Trajectory parent =
      cmf::md::ReadTrajectory(ws / ("t" + std::to_string(traj) + ".h5"));
  REQUIRE(slice.frames() == 1);
  CHECK(slice.energy[0] == parent.energy[frame]);
  CHECK(slice.positions[0] ==
        parent.positions[static_cast<std::size_t>(frame) * parent.atoms() * 3]);
  CHECK(e["properties"]["most_stable_target"].get<double>() ==
        doctest::Approx(last));
  // LAMMPS reads the data file and gives the frame's energy back.
  cmf::test::WriteFile(
      ws / "check.in",
      "kim init SW_MX2_WenShirodkarPlechac_2017_MoS__MO_201919462778_001 "
      "metal\n"
      "boundary p p p\natom_style atomic\nread_data res/most_stable.data\n"
      "kim interactions Mo S\nthermo_style custom step pe\n"
      "thermo_modify format float %.10f\nrun 0\n");
  Outcome lmp = cmf::test::RunProcess(
      {"lmp", "-in", "check.in", "-log", "none"}, ws.dir.path());
  INFO(lmp.out);
  REQUIRE(lmp.exit_code == 0);
  std::size_t at = lmp.out.find("Step PotEng");
  REQUIRE(at != std::string::npos);
  double again =
      std::stod(lmp.out.substr(lmp.out.find('\n', at) + 1).substr(9));
  CHECK(again == doctest::Approx(parent.energy[frame]).epsilon(1e-5));
  // Extended XYZ of the same frame; the predictions of every frame.
  CHECK(cmf::test::ReadFile(ws / "res/most_stable.xyz")
            .rfind(std::to_string(parent.atoms()) + "\n", 0) == 0);
  std::vector<float> predicted =
      cmf::test::ReadFloatDataset(ws / "res/predictions.h5", "predicted");
  CHECK(predicted.size() == 62u);
  bool calibration = fs::exists(ws / "res/calibration-0.h5") ||
                     fs::exists(ws / "res/calibration-1.h5");
  CHECK(calibration);
  // Lineage: most_stable.h5 <- aimd-al <- t*.h5 <- md-mos2 <- t*.lammps.
  json lineage = ws.Json({"lineage", "res/most_stable.h5", "--json"});
  bool aimd = false, md = false, input = false;
  for (const json& n : lineage["nodes"]) {
    aimd |= n.value("stage", "") == "aimd-al";
    md |= n.value("stage", "") == "md-mos2";
    input |= n.contains("paths") && n["paths"][0] == "t0.lammps";
  }
  CHECK(aimd);
  CHECK(md);
  CHECK(input);
  // Its page (cmf ui): a chart per trajectory with the recorded energy, the
  // prediction's band and the 11 evaluations numbered, the best ringed.
  Ok(ws({"ui", "--export", "site", std::string(e["id"])}));
  const std::string page = cmf::test::ReadFile(
      ws / "site/execution" / (std::string(e["id"]) + ".html"));
  std::size_t charts = 0, marks = 0, rings = 0, not_recorded = 0;
  for (const auto& [what, count] :
       {std::pair<const char*, std::size_t*>{"<figure class=\"aimd\"", &charts},
        {"<g class=\"evaluation\"", &marks},
        {"<circle class=\"best\"", &rings},
        {"<polyline class=\"recorded\" points=\"\"", &not_recorded}}) {
    for (std::size_t at = page.find(what); at != std::string::npos;
         at = page.find(what, at + 1)) {
      ++*count;
    }
  }
  CHECK(charts == 2);
  CHECK(marks == 11);
  CHECK(rings == 1);
  CHECK(not_recorded == 0);  // both trajectories' bytes are here
}

TEST_CASE(
    "aimd-al: each acquisition runs; mu takes the most uncertain frame; the "
    "choices differ") {
  if (!HaveLammps()) return;
  Workspace ws;
  Simulate(ws);
  std::map<std::string, std::vector<double>> frames;
  for (const char* a : {"lcb", "mu", "ei", "random"}) {
    CAPTURE(a);
    Ok(ws(Run({"--steps", "6", "--seed-frames", "3", "--acquisition", a, "-o",
               std::string("r-") + a})));
    json m = Metrics(ws);
    REQUIRE(m["frame"].size() == 6u);
    for (std::size_t k = 0; k < 6; ++k)
      frames[a].push_back(m["trajectory"][k][1].get<double>() * 100 +
                          m["frame"][k][1].get<double>());
    if (std::string(a) == "mu")
      for (std::size_t k = 0; k < 6; ++k)
        CHECK(m["uncertainty"][k][1].get<double>() ==
              doctest::Approx(m["max_uncertainty"][k][1].get<double>()));
  }
  CHECK(frames["lcb"] != frames["mu"]);
  CHECK(frames["mu"] != frames["random"]);
  // The same seed repeats a run exactly.
  Ok(ws(Run({"--steps", "6", "--seed-frames", "3", "--acquisition", "lcb", "-o",
             "again"})));
  json m = Metrics(ws);
  std::vector<double> again;
  for (std::size_t k = 0; k < 6; ++k)
    again.push_back(m["trajectory"][k][1].get<double>() * 100 +
                    m["frame"][k][1].get<double>());
  CHECK(again == frames["lcb"]);
}

TEST_CASE(
    "aimd-al: on generated trajectories it finds the lowest-energy frame "
    "sooner than "
    "random, over a fixed set of seeds") {
  if (!HaveLammps()) return;
  Workspace ws;
  Simulate(ws);
  auto evaluations = [&](const std::string& acquisition, int seed) {
    Ok(ws(Run({"--steps", "40", "--seed-frames", "3", "--acquisition",
               acquisition, "--seed", std::to_string(seed), "-o", "s"})));
    int found = ws.Log()[0]["properties"]["found_minimum_at"];
    return found < 0 ? 44 : found;  // not found in 43: counts as 44
  };
  std::vector<int> lcb, random;
  for (int seed = 0; seed < 6; ++seed) {
    lcb.push_back(evaluations("lcb", seed));
    random.push_back(evaluations("random", seed));
  }
  std::sort(lcb.begin(), lcb.end());
  std::sort(random.begin(), random.end());
  const double lcb_median = 0.5 * (lcb[2] + lcb[3]),
               random_median = 0.5 * (random[2] + random[3]);
  MESSAGE("evaluations to the minimum of 62 frames, median of 6 seeds: lcb "
          << lcb_median << ", random " << random_median);
  CHECK(lcb_median < random_median);
}

TEST_CASE(
    "aimd-al: trajectories without energies, unreadable files and impossible "
    "settings "
    "are clear errors") {
  if (!HaveLammps()) return;
  Workspace ws;
  Simulate(ws);
  // A trajectory without /energy: positions only, imported from a dump.
  cmf::md::Trajectory t = cmf::md::ReadTrajectory(ws / "t0.h5");
  t.energy.clear();
  cmf::md::WriteTrajectory(ws / "bare.h5", t);
  CHECK(IsError(ws({"run", "aimd-al", "--trajectories", "bare.h5"}),
                "has no /energy"));
  cmf::test::WriteFile(ws / "junk.h5", "not a trajectory");
  CHECK(IsError(ws({"run", "aimd-al", "--trajectories", "junk.h5"}),
                "is not an HDF5 file"));
  CHECK(IsError(ws({"run", "aimd-al", "--trajectories", "missing.h5"}),
                "missing.h5"));
  CHECK(
      IsError(ws(Run({"--init", "meta.pt"})), "--init needs --features image"));
  CHECK(IsError(ws(Run({"--seed-frames", "62"})),
                "--seed-frames must be 1 to 61"));
  CHECK(ws(Run({"--acquisition", "ucb"})).exit_code == 2);
  CHECK(ws(Run({"--energy", "dft"})).exit_code == 2);
  CHECK(!fs::exists(ws / "aimd/predictions.h5"));
}

namespace {

// A driver (sh) that greets, answers N energies of -500.5 eV, then does AFTER.
std::string Driver(int n, const std::string& after) {
  return "proc:n=0; while read -r line; do case \"$line\" in *hello*) echo "
         "'{\"ready\": true}';; "
         "*energy*) n=$((n+1)); if [ $n -gt " +
         std::to_string(n) + " ]; then " + after +
         "; fi; echo '{\"energy\": -500.5}';; *bye*) exit 0;; esac; done";
}

}  // namespace

TEST_CASE(
    "aimd-al: the sample LAMMPS driver gives the energies md-mos2 recorded") {
  if (!HaveLammps()) return;
  Workspace ws;
  Simulate(ws);
  const std::string driver = (fs::path(std::getenv("CMF_SOURCE_ROOT")) /
                              "samples/energy_driver_lammps.py")
                                 .string();
  Outcome o = ws(Run({"--steps", "3", "--seed-frames", "2", "--energy",
                      "proc:/usr/bin/python3 '" + driver + "'", "-o", "drv"}));
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
  json e = ws.Log()[0];
  CHECK(e["properties"]["evaluations"] == 5);
  CHECK(!e["properties"].contains(
      "found_minimum_at"));  // no truth without replay
  std::vector<float> energy =
      cmf::test::ReadFloatDataset(ws / "drv/evaluated.h5", "energy");
  std::vector<float> traj =
      cmf::test::ReadFloatDataset(ws / "drv/evaluated.h5", "trajectory");
  std::vector<float> frame =
      cmf::test::ReadFloatDataset(ws / "drv/evaluated.h5", "frame");
  REQUIRE(energy.size() == 5u);
  for (std::size_t k = 0; k < energy.size(); ++k) {
    cmf::md::Trajectory t = cmf::md::ReadTrajectory(
        ws / ("t" + std::to_string(int(traj[k])) + ".h5"));
    // Single points of float32 positions against the MD's own energies.
    CHECK(energy[k] == doctest::Approx(t.energy[int(frame[k])]).epsilon(1e-6));
  }
  CHECK(Metrics(ws)["best"].size() == 3u);
  CHECK(!Metrics(ws).contains("regret"));
}

TEST_CASE(
    "aimd-al: a driver that dies, hangs, or answers garbage ends the run with "
    "a clear "
    "error, and every evaluation so far is kept") {
  if (!HaveLammps()) return;
  Workspace ws;
  Simulate(ws);
  struct Case {
    std::string name, energy, error;
    std::vector<std::string> extra;
  };
  for (const Case& c : std::vector<Case>{
           {"dies", Driver(4, "exit 3"), "exited with status 3"},
           {"hangs",
            Driver(4, "sleep 30"),
            "did not answer within 1 s",
            {"--energy-timeout", "1"}},
           {"garbage", Driver(4, "echo 'not json'; continue"),
            "not a JSON object: 'not json'"},
           {"no number", Driver(4, "echo '{\"energy\": \"low\"}'; continue"),
            "without a number"},
           {"error answer",
            Driver(4, "echo '{\"error\": \"SCF did not converge\"}'; continue"),
            "reported an error for frame"},
       }) {
    CAPTURE(c.name);
    std::vector<std::string> extra = {
        "--steps", "6",  "--seed-frames", "3", "--energy",
        c.energy,  "-o", "res-" + c.name};
    extra.insert(extra.end(), c.extra.begin(), c.extra.end());
    Outcome o = ws(Run(extra));
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, c.error));
    json e = ws.Log()[0];
    CHECK(e["status"] == "failed");
    // 3 seed frames and 1 step were evaluated before the driver failed.
    CHECK(Metrics(ws)["frame"].size() == 1u);
    std::vector<float> kept = cmf::test::ReadFloatDataset(
        ws / ("res-" + c.name + "/evaluated.h5"), "energy");
    CHECK(kept.size() == 4u);
    bool logged = false;
    for (const json& out : e["outputs"])
      logged |= out["path"] == "res-" + c.name + "/evaluated.h5";
    CHECK(logged);
  }
  Outcome silent = ws(Run({"--energy", "proc:exit 0"}));
  CHECK(IsError(silent, "exited with status 0 before answering"));
  // Ctrl-C while the driver computes (a DFT step may take hours): the run
  // stops at once, interrupted, with what was evaluated kept.
  std::vector<std::string> args = {
      "timeout", "--foreground",        "--preserve-status", "-s", "INT",
      "8",       cmf::test::CmfBinary()};
  for (const std::string& a :
       Run({"--steps", "6", "--seed-frames", "3", "--energy",
            Driver(4, "sleep 300"), "-o", "res-cut"}))
    args.push_back(a);
  auto start = std::chrono::steady_clock::now();
  Outcome cut = cmf::test::RunProcess(args, ws.dir.path());
  CHECK(cut.exit_code == 130);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
  CHECK(ws.Log()[0]["status"] == "interrupted");
  CHECK(cmf::test::ReadFloatDataset(ws / "res-cut/evaluated.h5", "energy")
            .size() == 4u);
}
