// cmf run md-mos2 and cmf run trajectory-import end to end: real LAMMPS with
// the OpenKIM MoS2 model, under MPI too; the three readers on files that an
// independent writer (tests/md/formats.py) made from those frames; and what
// a missing, failing or interrupted LAMMPS and bad files do.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

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

// A small, quick run: a 3x3 cell (27 sites), 200 recorded steps.
std::vector<std::string> Small(std::vector<std::string> extra) {
  std::vector<std::string> args = {
      "run",     "md-mos2", "--supercell",   "3",  "--steps", "200",
      "--every", "10",      "--equilibrate", "100"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// OpenMPI refuses to start as root unless told; CI runs as root.
const std::map<std::string, std::string> kMpiEnv = {
    {"OMPI_ALLOW_RUN_AS_ROOT", "1"}, {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"}};

bool LeftoverWorkDir(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(".cmf-md-", 0) == 0) return true;
  return false;
}

// True when a process of this machine has FRAGMENT in its command line.
bool Running(const std::string& fragment) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string cmdline = cmf::test::ReadFile(e.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(fragment) != std::string::npos) return true;
  }
  return false;
}

std::string Python() { return "/usr/bin/python3"; }

std::string FormatsScript() {
  return (fs::path(std::getenv("CMF_SOURCE_ROOT")) / "tests/md/formats.py")
      .string();
}

}  // namespace

TEST_CASE(
    "md-mos2: a seeded MoS2 trajectory with its energies, its input file and "
    "lineage") {
  if (!HaveLammps()) return;
  Workspace ws;
  Ok(ws(Small({"--vacancies", "2", "--seed", "4", "-o", "traj.h5"})));
  cmf::md::Trajectory t = cmf::md::ReadTrajectory(ws / "traj.h5");
  CHECK(t.frames() == 21);
  CHECK(t.atoms() == 27 - 2);
  CHECK(std::count(t.species.begin(), t.species.end(), "Mo") == 9);
  REQUIRE(t.energy.size() == 21u);
  // About -5 eV per atom for this potential, and moving: thermal frames.
  CHECK(t.energy[0] / t.atoms() == doctest::Approx(-5.0).epsilon(0.05));
  CHECK(t.energy[0] != t.energy[20]);
  CHECK(t.step[0] == 100);  // steps count from the start: equilibration first
  CHECK(t.time_fs[20] == doctest::Approx(300.0));
  CHECK(t.forces.size() == t.positions.size());
  CHECK(t.text["potential"] ==
        "SW_MX2_WenShirodkarPlechac_2017_MoS__MO_201919462778_001");
  CHECK(t.cell[8] >= 15.0 + 3.0);  // vacuum

  json e = ws.Log()[0];
  CHECK(e["status"] == "ok");
  CHECK(e["properties"]["kim_model"] == t.text["potential"]);
  CHECK(e["properties"]["lammps_version"].get<std::string>().size() > 4);
  CHECK(e["inputs"][0]["path"] == "traj.lammps");
  CHECK(e["outputs"][0]["kind"] == "dataset");
  json m = ws.Json({"metrics", e["id"].get<std::string>().substr(0, 13),
                    "--json"})["series"];
  CHECK(m["energy"].size() == 21u);
  // lineage: the trajectory, the MD execution, its input script.
  json lineage = ws.Json({"lineage", "traj.h5", "--json"});
  bool md = false, input = false;
  for (const json& n : lineage["nodes"]) {
    md |= n.value("stage", "") == "md-mos2";
    input |= n.contains("paths") && n["paths"][0] == "traj.lammps";
  }
  CHECK(md);
  CHECK(input);
  CHECK(!LeftoverWorkDir(ws.dir.path()));

  // The same seed gives the same frames; another seed other vacancies.
  Ok(ws(Small({"--vacancies", "2", "--seed", "4", "-o", "again.h5"})));
  CHECK(cmf::md::ReadTrajectory(ws / "again.h5").energy == t.energy);
  Ok(ws(Small({"--vacancies", "2", "--seed", "5", "-o", "other.h5"})));
  CHECK(ws.Log()[0]["properties"]["vacancy_sites"] !=
        e["properties"]["vacancy_sites"]);
}

TEST_CASE(
    "md-mos2: two MPI ranks give the energies of one, within 1e-6 eV per "
    "atom") {
  if (!HaveLammps()) return;
  if (cmf::md::FindProgram("mpirun").empty()) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true")
      FAIL("CI=true and mpirun is missing");
    MESSAGE(
        "skipped: mpirun is not installed (apt-get install mpi-default-bin)");
    return;
  }
  Workspace ws;
  ws.env = kMpiEnv;
  Ok(ws(Small({"--vacancies", "1", "-o", "one.h5"})));
  Outcome two = ws(Small({"--vacancies", "1", "--mpi-ranks", "2", "--mpirun",
                          "mpirun --oversubscribe", "-o", "two.h5"}));
  Ok(two);
  CHECK(ws.Log()[0]["params"]["mpi-ranks"] == 2);
  cmf::md::Trajectory a = cmf::md::ReadTrajectory(ws / "one.h5");
  cmf::md::Trajectory b = cmf::md::ReadTrajectory(ws / "two.h5");
  REQUIRE(a.energy.size() == b.energy.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.energy.size(); ++i)
    worst = std::max(worst, std::fabs(a.energy[i] - b.energy[i]) / a.atoms());
  MESSAGE("largest difference between 1 and 2 ranks: " << worst
                                                       << " eV per atom");
  CHECK(worst < 1e-6);
}

TEST_CASE(
    "md-mos2: a LAMMPS that is missing, fails or is interrupted is a clear "
    "error and "
    "leaves no trajectory") {
  if (!HaveLammps()) return;
  Workspace ws;
  Outcome missing = ws(Small({"--lammps", "/nonexistent/lmp"}));
  CHECK(missing.exit_code == 1);
  CHECK(IsError(missing, "cannot run LAMMPS: '/nonexistent/lmp'"));
  // A LAMMPS that stops with its own ERROR line: the line reaches the user.
  cmf::test::WriteFile(ws / "bad-lmp",
                       "#!/bin/sh\necho 'ERROR: Unknown pair style "
                       "(src/force.cpp:1)'\nexit 1\n");
  fs::permissions(ws / "bad-lmp", fs::perms::owner_all);
  Outcome failed = ws(Small({"--lammps", "./bad-lmp"}));
  CHECK(failed.exit_code == 1);
  CHECK(IsError(failed,
                "LAMMPS failed (exit status 1): ERROR: Unknown pair style"));
  CHECK(ws.Log()[0]["status"] == "failed");
  CHECK(!fs::exists(ws / "traj.h5"));
  CHECK(!LeftoverWorkDir(ws.dir.path()));
  // Ctrl-C during a long run (one SIGINT, to cmf alone, as a terminal sends
  // it): LAMMPS is stopped, the execution is interrupted.
  Outcome cut = cmf::test::RunProcess(
      {"timeout", "--foreground", "--preserve-status", "-s", "INT", "3",
       cmf::test::CmfBinary(), "run", "md-mos2", "--steps", "100000000",
       "--every", "1000000", "-o", "long.h5"},
      ws.dir.path());
  CHECK(cut.exit_code == 130);
  CHECK(ws.Log()[0]["status"] == "interrupted");
  CHECK(!fs::exists(ws / "long.h5"));
  CHECK(!LeftoverWorkDir(ws.dir.path()));
  CHECK(!Running((ws / "long.lammps").string()));
  // cmf killed outright (kill -9): LAMMPS ends with it, and the next run
  // removes the scratch folder the killed one left.
  Outcome killed = cmf::test::RunProcess(
      {"timeout", "--foreground", "-s", "KILL", "3", cmf::test::CmfBinary(),
       "run", "md-mos2", "--steps", "100000000", "--every", "1000000", "-o",
       "killed.h5"},
      ws.dir.path());
  CHECK(killed.exit_code == 137);
  CHECK(LeftoverWorkDir(ws.dir.path()));
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = !Running((ws / "killed.lammps").string());
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(gone);
  CHECK(!fs::exists(ws / "killed.h5"));
  Ok(ws(Small({"-o", "after.h5"})));
  CHECK(!LeftoverWorkDir(ws.dir.path()));
  // Out-of-range settings are refused before LAMMPS starts.
  CHECK(
      IsError(ws(Small({"--vacancies", "18"})), "--vacancies must be 0 to 17"));
  CHECK(IsError(ws(Small({"--every", "500"})), "--every must be 1 to --steps"));
  CHECK(IsError(ws(Small({"--steps", "4294967396"})),
                "--steps must be 1 to 100000000"));
  CHECK(IsError(ws({"run", "md-mos2", "--steps", "100000000", "--every", "1"}),
                "more than the 4 GiB cmf reads back"));
}

TEST_CASE(
    "trajectory-import: VASP, LAMMPS and extended XYZ files of md-mos2's "
    "frames read "
    "back to the same numbers") {
  if (!HaveLammps()) return;
  Workspace ws;
  Ok(ws(Small({"--vacancies", "1", "-o", "md.h5"})));
  fs::create_directory(ws / "f");
  Outcome w = cmf::test::RunProcess(
      {Python(), FormatsScript(), "write", "md.h5", "f"}, ws.dir.path());
  INFO(w.err);
  REQUIRE(w.exit_code == 0);
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"vasp", {"f/XDATCAR", "f/OSZICAR"}},
      {"lammps", {"f/dump.lammpstrj", "f/log.lammps"}},
      {"extxyz", {"f/traj.xyz"}}};
  for (const auto& [format, files] : cases) {
    CAPTURE(format);
    std::vector<std::string> args = {"run", "trajectory-import", "--format",
                                     format, "--files"};
    args.insert(args.end(), files.begin(), files.end());
    args.insert(args.end(), {"-o", format + ".h5"});
    Ok(ws(args));
    Outcome c = cmf::test::RunProcess(
        {Python(), FormatsScript(), "check", "md.h5", format + ".h5", format},
        ws.dir.path());
    INFO(c.out);
    INFO(c.err);
    CHECK(c.exit_code == 0);
    json e = ws.Log()[0];
    CHECK(e["inputs"].size() == files.size());
    CHECK(e["outputs"][0]["kind"] == "dataset");
    CHECK(e["properties"]["frames"] == 21);
  }
  // Without the energy file: positions only.
  Ok(ws({"run", "trajectory-import", "--format", "lammps", "--files",
         "f/dump.lammpstrj", "--species", "Mo", "S", "-o", "positions.h5"}));
  CHECK(cmf::md::ReadTrajectory(ws / "positions.h5").energy.empty());
}

TEST_CASE(
    "trajectory-import: cut, mismatched or garbled files are errors naming the "
    "file "
    "and line, and nothing is written") {
  if (!HaveLammps()) return;
  Workspace ws;
  Ok(ws(Small({"-o", "md.h5"})));
  fs::create_directory(ws / "f");
  REQUIRE(cmf::test::RunProcess(
              {Python(), FormatsScript(), "write", "md.h5", "f"}, ws.dir.path())
              .exit_code == 0);
  const std::string dump = cmf::test::ReadFile(ws / "f/dump.lammpstrj");
  cmf::test::WriteFile(ws / "cut.lammpstrj", dump.substr(0, dump.size() / 2));
  std::string xyz = cmf::test::ReadFile(ws / "f/traj.xyz");
  xyz.replace(xyz.find("Mo "), 3, "Mo x");
  cmf::test::WriteFile(ws / "garbled.xyz", xyz);
  // An OSZICAR of another run: its ionic steps stop before the XDATCAR's do.
  std::string osz = cmf::test::ReadFile(ws / "f/OSZICAR");
  cmf::test::WriteFile(ws / "short.OSZICAR", osz.substr(0, osz.size() / 2));
  const int before = static_cast<int>(ws.Log().size());
  struct Bad {
    std::vector<std::string> args;
    std::string error;
  };
  const std::vector<Bad> bad = {
      {{"--format", "lammps", "--files", "cut.lammpstrj", "f/log.lammps"},
       "cut.lammpstrj:"},
      {{"--format", "extxyz", "--files", "garbled.xyz"}, "garbled.xyz:3:"},
      {{"--format", "vasp", "--files", "f/XDATCAR", "short.OSZICAR"},
       "short.OSZICAR: no ionic step"},
      {{"--format", "vasp", "--files", "f/OSZICAR"}, "f/OSZICAR:"},
      {{"--format", "vasp", "--files", "f/XDATCAR", "f/OSZICAR", "f/traj.xyz"},
       "takes --files XDATCAR [OSZICAR]"},
      {{"--format", "extxyz", "--files", "missing.xyz"},
       "'missing.xyz' is not a file"},
      {{"--format", "lammps", "--files", "f/dump.lammpstrj", "--species", "Mo",
        "Qq"},
       "'Qq' is not an element"},
  };
  for (const Bad& b : bad) {
    std::vector<std::string> args = {"run", "trajectory-import"};
    args.insert(args.end(), b.args.begin(), b.args.end());
    args.insert(args.end(), {"-o", "out.h5"});
    Outcome o = ws(args);
    CAPTURE(b.error);
    INFO(o.err);
    CHECK(o.exit_code == 1);
    CHECK(IsError(o, b.error));
    CHECK(!fs::exists(ws / "out.h5"));
    CHECK(!fs::exists(ws / "out.h5.tmp"));
  }
  CHECK(static_cast<int>(ws.Log().size()) ==
        before + static_cast<int>(bad.size()));
  for (const json& e : ws.Log())
    if (e["stage"] == "trajectory-import") CHECK(e["status"] == "failed");
  // A wrong format name is a usage error (exit 2), before anything is recorded.
  CHECK(ws({"run", "trajectory-import", "--format", "pdb", "--files", "md.h5"})
            .exit_code == 2);
}
