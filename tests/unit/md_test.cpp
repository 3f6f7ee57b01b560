// The md plugin's torch-free parts: the trajectory readers on small files
// written here by hand (every number known), their refusals of bad bytes, the
// trajectory file's round trip, and the MoS2 builder.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

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
    "       N       E                     dE             d eps       ncg     rms          rms(c)\n"
    "DAV:   1    -0.123456789E+02   -0.12346E+02   -0.4E+02   100   0.2E+02\n"
    "   1 T=   300. E= -.10000000E+02 F= -.11000000E+02 E0= -.11000000E+02  EK= 0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n"
    "DAV:   1    -0.123456789E+02   -0.12346E+02   -0.4E+02   100   0.2E+02\n"
    "   2 T=   310. E= -.10500000E+02 F= -.11500000E+02 E0= -.11500000E+02  EK= 0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n"
    "   3 T=   320. E= -.10600000E+02 F= -.11600000E+02 E0= -.11600000E+02  EK= 0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n"
    "   4 T=   330. E= -.10700000E+02 F=-.11700000E+02 E0= -.11700000E+02  EK= 0.1E+01 SP= 0.0E+00 SK= 0.0E+00\n";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  std::size_t at = s.find(from);
  REQUIRE(at != std::string::npos);
  return s.replace(at, from.size(), to);
}

}  // namespace

TEST_CASE("md readers: VASP XDATCAR and OSZICAR, aligned by ionic step, F= not E=") {
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

TEST_CASE("md readers: a variable-cell XDATCAR repeats its header; VASP 4 needs --species") {
  std::string header(kXdatcar, std::string(kXdatcar).find("Direct"));
  std::string second = Replace(header, "     4.0000000000", "     4.4000000000");
  std::string text = std::string(kXdatcar).substr(0, std::string(kXdatcar).find("Direct configuration=     4")) +
                     second + "Direct configuration=     4\n"
                     "  0.50000000  0.00000000  0.50000000\n"
                     "  0.50000000  0.50000000  0.60000000\n"
                     "  0.50000000  0.25000000  0.40000000\n";
  Trajectory t = ReadVasp({"XDATCAR", text}, nullptr, {});
  REQUIRE(t.variable_cell());
  CHECK(t.cell_of(1)[0] == doctest::Approx(4.4));
  CHECK(t.positions[9] == doctest::Approx(2.2));  // 0.5 of the longer a1

  std::string vasp4 = Replace(kXdatcar, "   Mo   S\n", "");
  CHECK(ErrorOf([&] { ReadVasp({"XDATCAR", vasp4}, nullptr, {}); }).find("--species") !=
        std::string::npos);
  ReadOptions opt;
  opt.species = {"Mo", "S"};
  CHECK(ReadVasp({"XDATCAR", vasp4}, nullptr, opt).species[2] == "S");
}

TEST_CASE("md readers: VASP files that are cut, garbled or from different runs are refused "
          "with the file and line") {
  Source o{"OSZICAR", kOszicar};
  // Truncated in the second configuration.
  std::string cut = std::string(kXdatcar).substr(0, std::string(kXdatcar).size() - 30);
  std::string e = ErrorOf([&] { ReadVasp({"XDATCAR", cut}, &o, {}); });
  CHECK(e.find("XDATCAR:15") != std::string::npos);
  CHECK(e.find("truncated") != std::string::npos);
  // A coordinate that is not a number, with the bytes quoted safely.
  e = ErrorOf([&] { ReadVasp({"XDATCAR", Replace(kXdatcar, "0.25000000  0.60000000", "0.2\xff  0.6")}, &o, {}); });
  CHECK(e.find("XDATCAR:10") != std::string::npos);
  CHECK(e.find("\\xff") != std::string::npos);
  // Counts that do not match the species.
  e = ErrorOf([&] { ReadVasp({"XDATCAR", Replace(kXdatcar, "    1    2\n", "    1\n")}, &o, {}); });
  CHECK(e.find("XDATCAR:7") != std::string::npos);
  // A configuration OSZICAR does not have: refused, not guessed.
  e = ErrorOf([&] { ReadVasp({"XDATCAR", Replace(kXdatcar, "=     4", "=     9")}, &o, {}); });
  CHECK(e.find("no ionic step 9") != std::string::npos);
  CHECK(e.find("XDATCAR:12") != std::string::npos);
  // An OSZICAR value that is not a number; one without ionic steps.
  Source garbled{"OSZICAR", Replace(kOszicar, "F= -.11500000E+02", "F= ******")};
  e = ErrorOf([&] { ReadVasp({"XDATCAR", kXdatcar}, &garbled, {}); });
  CHECK(e.find("OSZICAR:5") != std::string::npos);
  e = ErrorOf([&] { Source empty{"OSZICAR", "DAV: 1 2 3\n"}; ReadVasp({"XDATCAR", kXdatcar}, &empty, {}); });
  CHECK(e.find("no ionic step") != std::string::npos);
  // Configurations out of order; an element that is not one; an empty file.
  CHECK(ErrorOf([&] { ReadVasp({"XDATCAR", Replace(kXdatcar, "=     4", "=     1")}, &o, {}); }).find("XDATCAR:12") != std::string::npos);
  CHECK(ErrorOf([&] { ReadVasp({"XDATCAR", Replace(kXdatcar, "Mo   S", "Mo   Xx")}, &o, {}); }).find("'Xx' is not an element") != std::string::npos);
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

TEST_CASE("md readers: a LAMMPS triclinic dump (unscaled and scaled) with its log") {
  Source d{"dump.lammpstrj", kDump}, l{"log.lammps", kLog};
  Trajectory t = ReadLammps(d, &l, {});
  REQUIRE(t.frames() == 2);
  CHECK(t.species == std::vector<std::string>{"Mo", "S", "S"});  // kim interactions, by type
  CHECK(t.energy == std::vector<double>{-10.5, -10.75});
  CHECK(t.time_fs[1] == doctest::Approx(20.0));  // step 10 x 0.002 ps
  // The bounding box -1..5 with xy = 2 is the cell 0..4 from x = -1: a1 = (4, 0, 0).
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

TEST_CASE("md readers: bad LAMMPS dumps and logs are refused with the file and line") {
  Source l{"log.lammps", kLog};
  auto dump_error = [&](const std::string& text) {
    return ErrorOf([&] { ReadLammps({"dump", text}, &l, {}); });
  };
  CHECK(dump_error(std::string(kDump).substr(0, std::string(kDump).size() - 10)).find("dump:24") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "NUMBER OF ATOMS\n3\nITEM: BOX BOUNDS xy xz yz pp pp pp\n-1.0 5.0 2.0\n0.0 3.0 0.0\n-5.0 5.0 0.0\nITEM: ATOMS id type xs",
                           "NUMBER OF ATOMS\n2\nITEM: BOX BOUNDS xy xz yz pp pp pp\n-1.0 5.0 2.0\n0.0 3.0 0.0\n-5.0 5.0 0.0\nITEM: ATOMS id type xs"))
            .find("the first frame has 3") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "2 2 1.0 1.0 1.0", "2 2 1.0 abc 1.0")).find("dump:12") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "3 2 1.0 1.0 -1.0 0.1 0.2 0.3", "1 2 1.0 1.0 -1.0 0.1 0.2 0.3")).find("appears twice") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "TIMESTEP\n10", "TIMESTEP\n0")).find("follows step") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "id type x y z", "id type q r s")).find("no x y z") != std::string::npos);
  CHECK(dump_error("garbage\n").find("dump:1") != std::string::npos);
  CHECK(dump_error(Replace(kDump, "NUMBER OF ATOMS\n3", "NUMBER OF ATOMS\n99999999999")).find("limit") != std::string::npos);
  Source d{"dump", kDump};
  auto log_error = [&](const std::string& text) {
    return ErrorOf([&] { Source bad{"log.lammps", text}; ReadLammps(d, &bad, {}); });
  };
  // A row cut short; a thermo interval that misses the dump's steps; no PotEng; lj units.
  CHECK(log_error(Replace(kLog, "   -10.6   -10.1 ", "   -10.6")).find("log.lammps:8") != std::string::npos);
  CHECK(log_error(Replace(kLog, "      10          302   -10.75  -10.2 \n", "")).find("no thermo row for step 10") != std::string::npos);
  CHECK(log_error(Replace(kLog, "PotEng", "E_pair")).find("PotEng") != std::string::npos);
  CHECK(log_error(Replace(kLog, "units metal", "units lj")).find("log.lammps:2") != std::string::npos);
  CHECK(log_error(Replace(kLog, "-10.75", "nan")).find("log.lammps:9") != std::string::npos);
  // Types with nothing that names their elements.
  CHECK(ErrorOf([&] { ReadLammps(d, nullptr, {}); }).find("--species") != std::string::npos);
}

namespace {

const char* kXyz =
    "3\n"
    "Lattice=\"4.0 0.0 0.0 2.0 3.0 0.0 0.0 0.0 10.0\" Properties=species:S:1:pos:R:3:forces:R:3 energy=-10.25 pbc=\"T T T\"\n"
    "Mo 0.0 0.0 5.0 0.0 0.0 0.0\n"
    "S  1.0 1.0 6.5 0.1 0.2 0.3\n"
    "S  1.0 1.0 3.5 -0.1 -0.2 -0.3\n"
    "3\n"
    "energy=-10.5 Properties=species:S:1:pos:R:3:forces:R:3 Lattice=\"4.0 0.0 0.0 2.0 3.0 0.0 0.0 0.0 10.0\"\n"
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
  auto error = [&](const std::string& text) { return ErrorOf([&] { ReadExtxyz({"traj.xyz", text}, {}); }); };
  CHECK(error(Replace(kXyz, "energy=-10.5 ", "")).find("traj.xyz:7") != std::string::npos);
  CHECK(error(Replace(kXyz, "S  1.0 1.1", "Se 1.0 1.1")).find("traj.xyz:9") != std::string::npos);
  CHECK(error(std::string(kXyz).substr(0, std::string(kXyz).size() - 26)).find("truncated") != std::string::npos);
  CHECK(error(Replace(kXyz, "3\nenergy", "4\nenergy")).find("the first frame has 3") != std::string::npos);
  CHECK(error(Replace(kXyz, " Lattice=\"4.0 0.0 0.0 2.0 3.0 0.0 0.0 0.0 10.0\"\n", "\n")).find("no Lattice") != std::string::npos);
  CHECK(error(Replace(kXyz, "Lattice=\"4.0", "Lattice=\"4.0 0.0 0.0 2.0 3.0 0.0 0.0 0.0 10.0")).empty());  // extra values are ignored
  CHECK(error(Replace(kXyz, "pbc=\"T T T\"", "pbc=\"T T T")).find("not closed") != std::string::npos);
  CHECK(error(Replace(kXyz, "Mo 0.0 0.0 5.0", "Mo 0.0 1e999 5.0")).find("traj.xyz:3") != std::string::npos);
  CHECK(error(Replace(kXyz, "Lattice=\"4.0 0.0 0.0 2.0 3.0", "Lattice=\"0.0 0.0 0.0 0.0 0.0")).find("no positive volume") != std::string::npos);
}

TEST_CASE("md: a trajectory file round-trips, and a file of inconsistent shapes is refused") {
  cmf::test::TempDir dir;
  Trajectory t = ReadExtxyz({"traj.xyz", kXyz}, {});
  t.text["engine"] = "test";
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
  CHECK(back.real["temperature_K"] == 300);
  // Validation happens before anything is written.
  Trajectory bad = t;
  bad.energy.pop_back();
  CHECK(ErrorOf([&] { cmf::md::WriteTrajectory(dir / "bad.h5", bad); }).find("1 energies for 2 frames") != std::string::npos);
  CHECK(!std::filesystem::exists(dir / "bad.h5"));
  CHECK(!std::filesystem::exists(dir / "bad.h5.tmp"));
  cmf::test::WriteFile(dir / "not.h5", "not hdf5");
  CHECK(ErrorOf([&] { cmf::md::ReadTrajectory(dir / "not.h5"); }).find("not an HDF5 file") != std::string::npos);
}

TEST_CASE("md: the MoS2 builder places 3 n^2 - K atoms with a Mo-S bond of 2.4 Å, the same for a seed") {
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
  double dx = s.positions[3] - s.positions[0], dy = s.positions[4] - s.positions[1],
         dz = s.positions[5] - s.positions[2];
  if (s.species[1] == "S") CHECK(std::sqrt(dx * dx + dy * dy + dz * dz) == doctest::Approx(2.41).epsilon(0.01));
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
  for (std::size_t at = in.find("create_atoms"); at != std::string::npos; at = in.find("create_atoms", at + 1)) ++atoms;
  CHECK(atoms == s.species.size());
}
