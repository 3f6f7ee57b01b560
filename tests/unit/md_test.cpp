// The md plugin's torch-free parts: the trajectory readers on small files
// written here by hand (every number known), their refusals of bad bytes, the
// trajectory file's round trip, and the MoS2 builder.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "energy_driver.h"
#include "frame_features.h"
#include "mos2.h"
#include "readers.h"
#include "support.h"
#include "trajectory.h"

using cmf::md::ReadExtxyz;
using cmf::md::ReadLammps;
using cmf::md::ReadOptions;
using cmf::md::ReadVasp;
using cmf::md::Source;
using cmf::md::Trajectory;
using nlohmann::json;

namespace {

// The message of the std::runtime_error that FN throws ("" when none).
template <typename Fn>
std::string ErrorOf(Fn fn) {
  try {
    fn();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

const char* kXdatcar =
    "MoS2 test\n"
    "   1.00000000\n"
    "     4.0000000000    0.0000000000    0.0000000000\n"
    "     2.0000000000    3.0000000000    0.0000000000\n"
    "     0.0000000000    0.0000000000   10.0000000000\n"
    "   Mo   S\n"
    "    1    2\n"
    "Direct configuration=     2\n"
    "  0.00000000  0.00000000  0.50000000\n"
    "  0.50000000  0.25000000  0.60000000\n"
    "  0.50000000  0.25000000  0.40000000\n"
    "Direct configuration=     4\n"
    "  0.10000000  0.00000000  0.50000000\n"
    "  0.50000000  0.50000000  0.60000000\n"
    "  0.50000000  0.25000000  0.40000000\n";

const char* kOszicar =
    "       N       E                     dE             d eps       ncg     "
    "rms          rms(c)\n"
    "DAV:   1    -0.123456789E+02   -0.12346E+02   -0.4E+02   100   0.2E+02\n"
    "   1 T=   300. E= -.10000000E+02 F= -.11000000E+02 E0= -.11000000E+02  "
    "EK= 0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n"
    "DAV:   1    -0.123456789E+02   -0.12346E+02   -0.4E+02   100   0.2E+02\n"
    "   2 T=   310. E= -.10500000E+02 F= -.11500000E+02 E0= -.11500000E+02  "
    "EK= 0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n"
    "   3 T=   320. E= -.10600000E+02 F= -.11600000E+02 E0= -.11600000E+02  "
    "EK= 0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n"
    "   4 T=   330. E= -.10700000E+02 F=-.11700000E+02 E0= -.11700000E+02  EK= "
    "0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n";

std::string Replace(std::string s, const std::string& from,
                    const std::string& to) {
  std::size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE(
    "md readers: VASP XDATCAR and OSZICAR, aligned by ionic step, F= not E=") {
  Source x{"XDATCAR", kXdatcar}, o{"OSZICAR", kOszicar};
  ReadOptions opt;
  opt.timestep_fs = 2;
  Trajectory t = ReadVasp(x, &o, opt);
  REQUIRE(t.frames() == 2);
  REQUIRE(t.atoms() == 3);
  CHECK(t.species == std::vector<std::string>{"Mo", "S", "S"});
  CHECK(t.step == std::vector<std::int64_t>{2, 4});
  CHECK(t.energy == std::vector<double>{-11.5, -11.7});  // F=, of steps 2 and 4
  CHECK(t.time_fs == std::vector<double>{4, 8});
  CHECK(!t.variable_cell());
  // Fractional (0.5, 0.25, 0.6) in the cell: 0.5 a1 + 0.25 a2 + 0.6 a3.
  CHECK(t.positions[3] == doctest::Approx(2.5));
  CHECK(t.positions[4] == doctest::Approx(0.75));
  CHECK(t.positions[5] == doctest::Approx(6.0));
  CHECK(t.positions[9] == doctest::Approx(0.4));  // frame 1, atom 0: 0.1 a1
  // Without OSZICAR: positions only.
  CHECK(ReadVasp(x, nullptr, {}).energy.empty());
}

TEST_CASE(
    "md readers: a variable-cell XDATCAR repeats its header; VASP 4 needs "
    "--species") {
  std::string header(kXdatcar, std::string(kXdatcar).find("Direct"));
  std::string second =
      Replace(header, "     4.0000000000", "     4.4000000000");
  std::string text =
      std::string(kXdatcar).substr(
          0, std::string(kXdatcar).find("Direct configuration=     4")) +
      second +
      "Direct configuration=     4\n"
      "  0.50000000  0.00000000  0.50000000\n"
      "  0.50000000  0.50000000  0.60000000\n"
      "  0.50000000  0.25000000  0.40000000\n";
  Trajectory t = ReadVasp({"XDATCAR", text}, nullptr, {});
  REQUIRE(t.variable_cell());
  CHECK(t.cell_of(1)[0] == doctest::Approx(4.4));
  CHECK(t.positions[9] == doctest::Approx(2.2));  // 0.5 of the longer a1

  std::string vasp4 = Replace(kXdatcar, "   Mo   S\n", "");
  CHECK(ErrorOf([&] {
          ReadVasp({"XDATCAR", vasp4}, nullptr, {});
        }).find("--species") != std::string::npos);
  ReadOptions opt;
  opt.species = {"Mo", "S"};
  CHECK(ReadVasp({"XDATCAR", vasp4}, nullptr, opt).species[2] == "S");
}

TEST_CASE(
    "md readers: VASP files that are cut, garbled or from different runs are "
    "refused "
    "with the file and line") {
  Source o{"OSZICAR", kOszicar};
  // Truncated in the second configuration.
  std::string cut =
      std::string(kXdatcar).substr(0, std::string(kXdatcar).size() - 30);
  std::string e = ErrorOf([&] { ReadVasp({"XDATCAR", cut}, &o, {}); });
  CHECK(e.find("XDATCAR:15") != std::string::npos);
  CHECK(e.find("truncated") != std::string::npos);
  // A coordinate that is not a number, with the bytes quoted safely.
  e = ErrorOf([&] {
    ReadVasp({"XDATCAR",
              Replace(kXdatcar, "0.25000000  0.60000000", "0.2\xff  0.6")},
             &o, {});
  });
  CHECK(e.find("XDATCAR:10") != std::string::npos);
  CHECK(e.find("\\xff") != std::string::npos);
  // Counts that do not match the species.
  e = ErrorOf([&] {
    ReadVasp({"XDATCAR", Replace(kXdatcar, "    1    2\n", "    1\n")}, &o, {});
  });
  CHECK(e.find("XDATCAR:7") != std::string::npos);
  // A configuration OSZICAR does not have: refused, not guessed.
  e = ErrorOf([&] {
    ReadVasp({"XDATCAR", Replace(kXdatcar, "=     4", "=     9")}, &o, {});
  });
  CHECK(e.find("no ionic step 9") != std::string::npos);
  CHECK(e.find("XDATCAR:12") != std::string::npos);
  // An OSZICAR value that is not a number; one without ionic steps.
  Source garbled{"OSZICAR",
                 Replace(kOszicar, "F= -.11500000E+02", "F= ******")};
  e = ErrorOf([&] { ReadVasp({"XDATCAR", kXdatcar}, &garbled, {}); });
  CHECK(e.find("OSZICAR:5") != std::string::npos);
  e = ErrorOf([&] {
    Source empty{"OSZICAR", "DAV: 1 2 3\n"};
    ReadVasp({"XDATCAR", kXdatcar}, &empty, {});
  });
  CHECK(e.find("no ionic step") != std::string::npos);
  // Configurations out of order; an element that is not one; an empty file.
  CHECK(
      ErrorOf([&] {
        ReadVasp({"XDATCAR", Replace(kXdatcar, "=     4", "=     1")}, &o, {});
      }).find("XDATCAR:12") != std::string::npos);
  CHECK(ErrorOf([&] {
          ReadVasp({"XDATCAR", Replace(kXdatcar, "Mo   S", "Mo   Xx")}, &o, {});
        }).find("'Xx' is not an element") != std::string::npos);
  CHECK(!ErrorOf([&] { ReadVasp({"XDATCAR", ""}, &o, {}); }).empty());
}

namespace {

const char* kDump =
    "ITEM: TIMESTEP\n0\nITEM: NUMBER OF ATOMS\n3\n"
    "ITEM: BOX BOUNDS xy xz yz pp pp pp\n"
    "-1.0 5.0 2.0\n0.0 3.0 0.0\n-5.0 5.0 0.0\n"
    "ITEM: ATOMS id type x y z fx fy fz\n"
    "3 2 1.0 1.0 -1.0 0.1 0.2 0.3\n"
    "1 1 0.0 0.0 0.0 0.0 0.0 0.0\n"
    "2 2 1.0 1.0 1.0 -0.1 -0.2 -0.3\n"
    "ITEM: TIMESTEP\n10\nITEM: NUMBER OF ATOMS\n3\n"
    "ITEM: BOX BOUNDS xy xz yz pp pp pp\n"
    "-1.0 5.0 2.0\n0.0 3.0 0.0\n-5.0 5.0 0.0\n"
    "ITEM: ATOMS id type xs ys zs fx fy fz\n"
    "1 1 0.5 0.0 0.5 0 0 0\n"
    "2 2 0.5 0.5 0.5 0 0 0\n"
    "3 2 0.0 0.0 0.0 0 0 0\n";

const char* kLog =
    "LAMMPS (29 Sep 2021 - Update 2)\n"
    "units metal\n"
    "timestep 0.002\n"
    "kim interactions Mo S\n"
    "Step Temp PotEng TotEng \n"
    "       0          300   -10.5   -10.0 \n"
    "WARNING: something the run survived (src/x.cpp:1)\n"
    "       5          301   -10.6   -10.1 \n"
    "      10          302   -10.75  -10.2 \n"
    "Loop time of 0.1 on 1 procs for 10 steps with 3 atoms\n";

}  // namespace

TEST_CASE(
    "md readers: a LAMMPS triclinic dump (unscaled and scaled) with its log") {
  Source d{"dump.lammpstrj", kDump}, l{"log.lammps", kLog};
  Trajectory t = ReadLammps(d, &l, {});
  REQUIRE(t.frames() == 2);
  CHECK(t.species ==
        std::vector<std::string>{"Mo", "S", "S"});  // kim interactions, by type
  CHECK(t.energy == std::vector<double>{-10.5, -10.75});
  CHECK(t.time_fs[1] == doctest::Approx(20.0));  // step 10 x 0.002 ps
  // The bounding box -1..5 with xy = 2 is the cell 0..4 from x = -1: a1 = (4,
  // 0, 0).
  CHECK(t.cell[0] == doctest::Approx(4.0));
  CHECK(t.cell[3] == doctest::Approx(2.0));
  CHECK(t.cell[4] == doctest::Approx(3.0));
  CHECK(t.cell[8] == doctest::Approx(10.0));
  // Sorted by id, relative to the origin (-1, 0, -5).
  CHECK(t.positions[0] == doctest::Approx(1.0));
  CHECK(t.positions[2] == doctest::Approx(5.0));
  CHECK(t.forces[3] == doctest::Approx(-0.1f));
  // Frame 1 is scaled: atom 2 at (0.5, 0.5) is 0.5 a1 + 0.5 a2 + 0.5 a3.
  CHECK(t.positions[9 + 3] == doctest::Approx(3.0));
  CHECK(t.positions[9 + 4] == doctest::Approx(1.5));
  CHECK(t.positions[9 + 5] == doctest::Approx(5.0));
  // real units: kcal/mol to eV, fs.
  std::string real = Replace(kLog, "units metal", "units real");
  Source lr{"log.lammps", real};
  Trajectory r = ReadLammps(d, &lr, {});
  CHECK(r.energy[0] == doctest::Approx(-10.5 * 0.0433641043));
  CHECK(r.time_fs[1] == doctest::Approx(0.02));
  // --species overrides the log.
  ReadOptions opt;
  opt.species = {"W", "Se"};
  CHECK(ReadLammps(d, &l, opt).species[1] == "Se");
}

TEST_CASE(
    "md readers: bad LAMMPS dumps and logs are refused with the file and "
    "line") {
  Source l{"log.lammps", kLog};
  auto dump_error = [&](const std::string& text) {
    return ErrorOf([&] { ReadLammps({"dump", text}, &l, {}); });
  };
  CHECK(dump_error(std::string(kDump).substr(0, std::string(kDump).size() - 10))
            .find("dump:24") != std::string::npos);
  CHECK(dump_error(
            Replace(
                kDump,
                "NUMBER OF ATOMS\n3\nITEM: BOX BOUNDS xy xz yz pp pp pp\n-1.0 "
                "5.0 2.0\n0.0 3.0 0.0\n-5.0 5.0 0.0\nITEM: ATOMS id type xs",
                "NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS xy xz yz pp pp pp\n-1.0 "
                "5.0 2.0\n0.0 3.0 0.0\n-5.0 5.0 0.0\nITEM: ATOMS id type xs"))
            .find("the first frame has 3") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "2 2 1.0 1.0 1.0", "2 2 1.0 abc 1.0"))
            .find("dump:12") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "3 2 1.0 1.0 -1.0 0.1 0.2 0.3",
                           "1 2 1.0 1.0 -1.0 0.1 0.2 0.3"))
            .find("appears twice") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "TIMESTEP\n10", "TIMESTEP\n0"))
            .find("follows step") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "id type x y z", "id type q r s"))
            .find("no x y z") != std::string::npos);
  CHECK(dump_error("garbage\n").find("dump:1") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "NUMBER OF ATOMS\n3",
                           "NUMBER OF ATOMS\n99999999999"))
            .find("limit") != std::string::npos);
  Source d{"dump", kDump};
  auto log_error = [&](const std::string& text) {
    return ErrorOf([&] {
      Source bad{"log.lammps", text};
      ReadLammps(d, &bad, {});
    });
  };
  // A row cut short; a thermo interval that misses the dump's steps; no PotEng;
  // lj units.
  CHECK(log_error(Replace(kLog, "   -10.6   -10.1 ", "   -10.6"))
            .find("log.lammps:8") != std::string::npos);
  CHECK(log_error(Replace(kLog, "      10          302   -10.75  -10.2 \n", ""))
            .find("no thermo row for step 10") != std::string::npos);
  CHECK(log_error(Replace(kLog, "PotEng", "E_pair")).find("PotEng") !=
        std::string::npos);
  CHECK(log_error(Replace(kLog, "units metal", "units lj"))
            .find("log.lammps:2") != std::string::npos);
  CHECK(log_error(Replace(kLog, "-10.75", "nan")).find("log.lammps:9") !=
        std::string::npos);
  // Two runs that reuse step numbers (reset_timestep) with other energies: a
  // frame of step 10 could be of either, so the log is refused; the same
  // state at the end of one run and the start of the next is fine.
  std::string twice = std::string(kLog) +
                      "reset_timestep 0\nStep Temp PotEng TotEng \n"
                      "       0          300   -10.5   -10.0 \n      10        "
                      "  302   -11.0  -10.2 \n";
  CHECK(log_error(twice).find(
            "log.lammps:14: step 10 is in an earlier thermo table") !=
        std::string::npos);
  std::string continued =
      std::string(kLog) +
      "Step Temp PotEng TotEng \n      10          302   -10.75  -10.2 \n";
  CHECK(log_error(continued).empty());
  // Types with nothing that names their elements.
  CHECK(ErrorOf([&] { ReadLammps(d, nullptr, {}); }).find("--species") !=
        std::string::npos);
}

namespace {

const char* kXyz =
    "3\n"
    "Lattice=\"4.0 0.0 0.0 2.0 3.0 0.0 0.0 0.0 10.0\" "
    "Properties=species:S:1:pos:R:3:forces:R:3 energy=-10.25 pbc=\"T T T\"\n"
    "Mo 0.0 0.0 5.0 0.0 0.0 0.0\n"
    "S  1.0 1.0 6.5 0.1 0.2 0.3\n"
    "S  1.0 1.0 3.5 -0.1 -0.2 -0.3\n"
    "3\n"
    "energy=-10.5 Properties=species:S:1:pos:R:3:forces:R:3 Lattice=\"4.0 0.0 "
    "0.0 2.0 3.0 0.0 0.0 0.0 10.0\"\n"
    "Mo 0.1 0.0 5.0 0.0 0.0 0.0\n"
    "S  1.0 1.1 6.5 0.1 0.2 0.3\n"
    "S  1.0 1.0 3.4 -0.1 -0.2 -0.3\n";

}  // namespace

TEST_CASE("md readers: extended XYZ as ASE writes it, and its faults") {
  ReadOptions opt;
  opt.timestep_fs = 5;
  Trajectory t = ReadExtxyz({"traj.xyz", kXyz}, opt);
  REQUIRE(t.frames() == 2);
  CHECK(t.energy == std::vector<double>{-10.25, -10.5});
  CHECK(t.species[0] == "Mo");
  CHECK(t.positions[9] == doctest::Approx(0.1));
  CHECK(t.forces[5] == doctest::Approx(0.3f));
  CHECK(t.time_fs[1] == doctest::Approx(5.0));
  CHECK(t.cell[3] == doctest::Approx(2.0));
  auto error = [&](const std::string& text) {
    return ErrorOf([&] { ReadExtxyz({"traj.xyz", text}, {}); });
  };
  CHECK(error(Replace(kXyz, "energy=-10.5 ", "")).find("traj.xyz:7") !=
        std::string::npos);
  CHECK(error(Replace(kXyz, "S  1.0 1.1", "Se 1.0 1.1")).find("traj.xyz:9") !=
        std::string::npos);
  CHECK(error(std::string(kXyz).substr(0, std::string(kXyz).size() - 26))
            .find("truncated") != std::string::npos);
  CHECK(error(Replace(kXyz, "3\nenergy", "4\nenergy"))
            .find("the first frame has 3") != std::string::npos);
  CHECK(
      error(Replace(kXyz, " Lattice=\"4.0 0.0 0.0 2.0 3.0 0.0 0.0 0.0 10.0\"\n",
                    "\n"))
          .find("no Lattice") != std::string::npos);
  CHECK(error(Replace(kXyz, "Lattice=\"4.0",
                      "Lattice=\"4.0 0.0 0.0 2.0 3.0 0.0 0.0 0.0 10.0"))
            .empty());  // extra values are ignored
  CHECK(
      error(Replace(kXyz, "pbc=\"T T T\"", "pbc=\"T T T")).find("not closed") !=
      std::string::npos);
  CHECK(error(Replace(kXyz, "Mo 0.0 0.0 5.0", "Mo 0.0 1e999 5.0"))
            .find("traj.xyz:3") != std::string::npos);
  CHECK(error(Replace(kXyz, "Lattice=\"4.0 0.0 0.0 2.0 3.0",
                      "Lattice=\"0.0 0.0 0.0 0.0 0.0"))
            .find("no positive volume") != std::string::npos);
}

TEST_CASE(
    "md: a trajectory file round-trips, and a file of inconsistent shapes is "
    "refused") {
  cmf::test::TempDir dir;
  Trajectory t = ReadExtxyz({"traj.xyz", kXyz}, {});
  t.text["engine"] = "test";
  t.text["source"] =
      std::string("caf\xe9/traj-\xc3\x85.xyz");  // a Latin-1 byte, then UTF-8 Å
  t.real["temperature_K"] = 300;
  cmf::md::WriteTrajectory(dir / "t.h5", t);
  CHECK(!std::filesystem::exists(dir / "t.h5.tmp"));
  Trajectory back = cmf::md::ReadTrajectory(dir / "t.h5");
  CHECK(back.species == t.species);
  CHECK(back.positions == t.positions);
  CHECK(back.energy == t.energy);
  CHECK(back.forces == t.forces);
  CHECK(back.cell == t.cell);
  CHECK(back.step == t.step);
  CHECK(back.text["engine"] == "test");
  // An attribute stays well-formed UTF-8: the stray byte as \xNN, the valid Å
  // as it is.
  CHECK(back.text["source"] == "caf\\xe9/traj-\xc3\x85.xyz");
  CHECK(back.real["temperature_K"] == 300);
  // Validation happens before anything is written.
  Trajectory bad = t;
  bad.energy.pop_back();
  CHECK(ErrorOf([&] {
          cmf::md::WriteTrajectory(dir / "bad.h5", bad);
        }).find("1 energies for 2 frames") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "bad.h5"));
  CHECK(!std::filesystem::exists(dir / "bad.h5.tmp"));
  cmf::test::WriteFile(dir / "not.h5", "not hdf5");
  CHECK(ErrorOf([&] {
          cmf::md::ReadTrajectory(dir / "not.h5");
        }).find("not an HDF5 file") != std::string::npos);
}

TEST_CASE(
    "md: the MoS2 builder places 3 n^2 - K atoms with a Mo-S bond of 2.4 Å, "
    "the same for a seed") {
  cmf::md::Mos2Options o;
  o.supercell = 4;
  o.vacancies = 3;
  o.displacement = 0;
  o.seed = 7;
  cmf::md::Structure s = cmf::md::BuildMos2(o);
  CHECK(s.species.size() == 3u * 16u - 3u);
  CHECK(std::count(s.species.begin(), s.species.end(), "Mo") == 16);
  CHECK(s.vacancy_sites.size() == 3u);
  // The first Mo and the S above it.
  double dx = s.positions[3] - s.positions[0],
         dy = s.positions[4] - s.positions[1],
         dz = s.positions[5] - s.positions[2];
  if (s.species[1] == "S")
    CHECK(std::sqrt(dx * dx + dy * dy + dz * dz) ==
          doctest::Approx(2.41).epsilon(0.01));
  CHECK(s.cell[0] == doctest::Approx(4 * 3.16));
  CHECK(s.cell[8] - 3.17 >= 15.0);  // vacuum of at least 15 Å
  cmf::md::Structure again = cmf::md::BuildMos2(o);
  CHECK(again.positions == s.positions);
  o.seed = 8;
  CHECK(cmf::md::BuildMos2(o).vacancy_sites != s.vacancy_sites);
  o.vacancies = 32;
  CHECK_THROWS_AS(cmf::md::BuildMos2(o), std::invalid_argument);
  // The input names the model and creates every atom.
  std::string in = cmf::md::LammpsInput(s, {}, "f.lammpstrj");
  CHECK(in.find(cmf::md::kMos2KimModel) != std::string::npos);
  std::size_t atoms = 0;
  for (std::size_t at = in.find("create_atoms"); at != std::string::npos;
       at = in.find("create_atoms", at + 1))
    ++atoms;
  CHECK(atoms == s.species.size());
}

namespace {

// A one-frame trajectory of the seeded MoS2 structure.
Trajectory Mos2Frame(int supercell, int vacancies, double displacement,
                     std::uint64_t seed) {
  cmf::md::Mos2Options o;
  o.supercell = supercell;
  o.vacancies = vacancies;
  o.displacement = displacement;
  o.seed = seed;
  cmf::md::Structure s = cmf::md::BuildMos2(o);
  Trajectory t;
  t.species = s.species;
  t.cell.assign(s.cell, s.cell + 9);
  t.positions.assign(s.positions.begin(), s.positions.end());
  t.step = {0};
  return t;
}

}  // namespace

TEST_CASE(
    "md features: the bond descriptor does not change when a frame is rotated, "
    "moved or "
    "renumbered, and does change when the atoms move") {
  Trajectory t = Mos2Frame(3, 1, 0.08, 11);
  cmf::md::BondOptions o;
  std::vector<float> f = cmf::md::BondFeatures(t, 0, o);
  REQUIRE(static_cast<int>(f.size()) == cmf::md::BondFeatureCount(2, o));
  // The Mo-S histogram holds 6 bonds per Mo (each counted half from each end,
  // per atom): 9 Mo x 6 - the bonds of the missing S, over 26 atoms.
  double mos = 0;
  for (int b = 0; b < o.r_bins; ++b) mos += f[o.r_bins + b];
  double bonds_in_range =
      0;  // Mo-S pairs between 2.0 and 3.6 Å: the 6 nearest per Mo
  bonds_in_range = (9 * 6 - 3) / 26.0;
  CHECK(mos == doctest::Approx(bonds_in_range).epsilon(0.02));

  // Rotate cell and positions by one rotation, shift, and reverse the atoms.
  const double a = 0.7, b = -1.1;
  const double r[9] = {
      std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double q[9] = {1, 0,           0,          0, std::cos(b), -std::sin(b),
                       0, std::sin(b), std::cos(b)};
  double rq[9];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      rq[3 * i + j] = 0;
      for (int k = 0; k < 3; ++k) rq[3 * i + j] += r[3 * i + k] * q[3 * k + j];
    }
  auto turn = [&](const double* v, double* out) {
    for (int i = 0; i < 3; ++i)
      out[i] = rq[3 * i] * v[0] + rq[3 * i + 1] * v[1] + rq[3 * i + 2] * v[2];
  };
  Trajectory u = t;
  for (int row = 0; row < 3; ++row)
    turn(t.cell.data() + 3 * row, u.cell.data() + 3 * row);
  const int n = t.atoms();
  for (int i = 0; i < n; ++i) {
    const int from = n - 1 - i;
    double v[3] = {t.positions[3 * from] + 1.5,
                   t.positions[3 * from + 1] - 0.25, t.positions[3 * from + 2]};
    double w[3];
    turn(v, w);
    for (int k = 0; k < 3; ++k)
      u.positions[3 * i + k] = static_cast<float>(w[k]);
    u.species[i] = t.species[from];
  }
  // The species' order of first appearance changed with the renumbering: S
  // comes first now, so compare the histograms by pair, not by position.
  std::vector<float> g = cmf::md::BondFeatures(u, 0, o);
  REQUIRE(g.size() == f.size());
  const int rb = o.r_bins, ab = o.angle_bins;
  auto same = [&](int fi, int gi, int count) {
    double worst = 0;
    for (int k = 0; k < count; ++k)
      worst = std::max(worst, std::fabs(double(f[fi + k]) - g[gi + k]));
    return worst;
  };
  // f: Mo-Mo, Mo-S, S-S, angles at Mo, at S; g: S-S, S-Mo, Mo-Mo, at S, at Mo.
  CHECK(same(0, 2 * rb, rb) < 1e-4);
  CHECK(same(rb, rb, rb) < 1e-4);
  CHECK(same(2 * rb, 0, rb) < 1e-4);
  CHECK(same(3 * rb, 3 * rb + ab, ab) < 1e-4);
  CHECK(same(3 * rb + ab, 3 * rb, ab) < 1e-4);
  // Another thermal configuration gives other features.
  std::vector<float> h = cmf::md::BondFeatures(Mos2Frame(3, 1, 0.08, 12), 0, o);
  double moved = 0;
  for (std::size_t k = 0; k < f.size(); ++k)
    moved = std::max(moved, std::fabs(double(f[k]) - h[k]));
  CHECK(moved > 1e-2);
}

TEST_CASE(
    "md features: the ADF renderer puts an atom where the cell says, periodic "
    "images "
    "included, with Z-contrast") {
  Trajectory t;
  t.species = {"Mo", "S"};
  t.cell = {30, 0, 0, 0, 30, 0, 0, 0, 20};
  // Mo at (12.35, 16.05), S at (19.95, 13.05): both inside a 10 Å window.
  t.positions = {12.35f, 16.05f, 10.f, 19.95f, 13.05f, 10.f};
  t.step = {0};
  cmf::md::RenderOptions o;
  o.pixel = 0.1;
  o.size = 100;  // a 10 Å window centred on the cell's centre (15, 15): x, y
                 // from 10 to 20
  std::vector<float> img = cmf::md::RenderAdf(t, 0, o);
  auto at = [&](int row, int col) {
    return img[static_cast<std::size_t>(row) * o.size + col];
  };
  // Pixel (row, col) is centred at (10 + (col + 0.5) 0.1, 10 + (row + 0.5)
  // 0.1).
  int best =
      static_cast<int>(std::max_element(img.begin(), img.end()) - img.begin());
  CHECK(best / o.size == 60);  // y = 16.05
  CHECK(best % o.size == 23);  // x = 12.35
  // Z-contrast: Mo (42) over S (16) at their centres, (42/16)^1.7.
  CHECK(at(60, 23) / at(30, 99) ==
        doctest::Approx(std::pow(42.0 / 16.0, 1.7)).epsilon(0.05));
  // A window larger than the cell (40 Å: x and y from -5 to 35): an atom at
  // x = 2.05 shows again at 32.05, one cell vector away, equally bright.
  t.positions = {2.05f, 16.05f, 10.f, 19.95f, 13.05f, 10.f};
  o.size = 400;
  img = cmf::md::RenderAdf(t, 0, o);
  auto big = [&](int row, int col) {
    return img[static_cast<std::size_t>(row) * 400 + col];
  };
  CHECK(big(210, 70) > 0);
  CHECK(big(210, 370) == doctest::Approx(big(210, 70)).epsilon(1e-4));
  CHECK(big(210, 220) < 1e-3f * big(210, 70));  // nothing half-way
  // Pooling keeps the mean.
  std::vector<float> pooled = cmf::md::Pool(img, 400, 20);
  double a = 0, b = 0;
  for (float v : img) a += v;
  for (float v : pooled) b += v;
  CHECK(b / pooled.size() == doctest::Approx(a / img.size()).epsilon(1e-4));
}

TEST_CASE(
    "md: an energy driver's answers are checked before they are believed") {
  CHECK(cmf::md::ParseEnergyReply("{\"energy\": -541.25}", 0, 3) == -541.25);
  CHECK(cmf::md::ParseEnergyReply(
            "  {\"energy\": -1e2, \"note\": \"ignored\"}  ", 1, 0) == -100);
  auto error = [](const std::string& line) {
    return ErrorOf([&] { cmf::md::ParseEnergyReply(line, 2, 7); });
  };
  CHECK(error("{\"error\": \"SCF did not converge\"}")
            .find("frame 7 of trajectory 2: SCF did not converge") !=
        std::string::npos);
  CHECK(error("not json").find("not a JSON object") != std::string::npos);
  CHECK(error("[1, 2]").find("not a JSON object") != std::string::npos);
  CHECK(error("{\"energy\": \"low\"}").find("without a number") !=
        std::string::npos);
  CHECK(error("{\"energy\": 1e300}").find("not a finite number below 1e9") !=
        std::string::npos);
  CHECK(error("{\"energy\": NaN}").find("not a JSON object") !=
        std::string::npos);
  CHECK(error("{}").find("without a number") != std::string::npos);
  CHECK(error(std::string(100000, '[')).find("not a JSON object") !=
        std::string::npos);
  CHECK(ErrorOf([] {
          cmf::md::CheckDriverGreeting("{\"ready\": true}");
        }).empty());
  CHECK(
      !ErrorOf([] { cmf::md::CheckDriverGreeting("{\"hello\": 1}"); }).empty());
  // The request holds what a DFT code needs: species, positions, cell.
  Trajectory t = ReadExtxyz({"traj.xyz", kXyz}, {});
  json r = json::parse(cmf::md::EnergyRequest(t, 1, 1));
  CHECK(r["energy"]["frame"] == 1);
  CHECK(r["energy"]["trajectory"] == 1);
  CHECK(r["energy"]["species"][2] == "S");
  CHECK(r["energy"]["positions"][0][0].get<double>() == doctest::Approx(0.1));
  CHECK(r["energy"]["cell"][1][0].get<double>() == doctest::Approx(2.0));
}
