// The LAMMPS reader (readers.h): a `dump custom` file's frames, with the
// energies, times, units and elements of its log.lammps.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reader_input.h"
#include "readers.h"
#include "trajectory.h"

namespace cmf::md {
namespace {

using reader_input::CheckAtoms;
using reader_input::CheckedSymbol;
using reader_input::Fail;
using reader_input::Lines;
using reader_input::ParseDouble;
using reader_input::Quote;
using reader_input::Split;
using reader_input::StartsWith;
using reader_input::ToCartesian;
using reader_input::Trim;

struct Units {
  std::string name;
  double energy_ev = 1;         // one energy unit in eV
  double time_fs = 1;           // one time unit in fs
  double default_timestep = 0;  // in the time unit
};

Units UnitsNamed(const Lines& in, std::string_view name) {
  if (name == "metal") return {"metal", 1.0, 1000.0, 0.001};
  // 1 kcal/mol = 4184 J / 6.02214076e23 = 0.0433641 eV.
  if (name == "real") return {"real", 0.0433641043, 1.0, 1.0};
  in.FailHere(
      "units " + std::string(name) +
      ": cmf converts LAMMPS units metal and real to Å and eV, not these");
}

struct LammpsLog {
  Units units;
  std::map<long long, double> energy;   // step -> eV
  std::map<long long, double> time_fs;  // step -> fs
  std::vector<std::string> elements;    // from kim interactions / pair_coeff
  std::string version;
};

LammpsLog ReadLammpsLog(const Source& src) {
  Lines in(src);
  LammpsLog log;
  std::optional<Units> units;
  std::optional<double> timestep;
  bool any_table = false;
  std::string_view line;
  while (in.Next(&line)) {
    std::vector<std::string_view> t = Split(line);
    if (t.empty()) continue;
    if (in.number() == 1 && StartsWith(line, "LAMMPS (") && line.back() == ')')
      log.version = std::string(line.substr(8, line.size() - 9));
    if (t[0] == "units" && t.size() >= 2) {
      units = UnitsNamed(in, t[1]);
    } else if (t[0] == "timestep" && t.size() >= 2) {
      double dt = in.Double(t[1], "timestep");
      if (!(dt > 0)) in.FailHere("timestep " + std::to_string(dt));
      timestep = dt;
    } else if ((t[0] == "kim" && t.size() >= 3 && t[1] == "interactions") ||
               t[0] == "kim_interactions") {
      log.elements.clear();
      for (std::size_t i = t[0] == "kim" ? 2 : 1;
           i < t.size() && t[i][0] != '#'; ++i)
        log.elements.emplace_back(t[i]);
    } else if (t[0] == "pair_coeff" && t.size() >= 4 && t[1] == "*" &&
               t[2] == "*") {
      // pair_coeff * * FILE A B ...: the trailing element symbols.
      std::vector<std::string> trailing;
      for (std::size_t i = t.size(); i > 3 && AtomicNumber(t[i - 1]) != 0; --i)
        trailing.insert(trailing.begin(), std::string(t[i - 1]));
      if (!trailing.empty()) log.elements = trailing;
    } else if (t[0] == "Step" && t.size() >= 2) {
      if (!units)
        in.FailHere(
            "a thermo table before any 'units' line: the log's units are "
            "unknown");
      std::size_t pe = t.size(), time = t.size();
      for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] == "PotEng") pe = i;
        if (t[i] == "Time") time = i;
      }
      if (pe == t.size())
        in.FailHere(
            "this thermo table has no PotEng column (add pe to thermo_style "
            "custom)");
      any_table = true;
      const std::size_t columns = t.size();
      const double dt = timestep.value_or(units->default_timestep);
      std::string_view row;
      while (in.Next(&row)) {
        std::vector<std::string_view> r = Split(row);
        if (r.empty() || StartsWith(Trim(row), "WARNING")) continue;
        double first;
        if (!ParseDouble(r[0], &first))
          break;  // "Loop time of ...", an ERROR line, ...
        if (r.size() != columns)
          in.FailHere("a thermo row of " + std::to_string(r.size()) +
                      " values under " + std::to_string(columns) +
                      " columns (truncated?)");
        long long step = in.Int(r[0], "step");
        const double energy = in.Double(r[pe], "PotEng") * units->energy_ev;
        // A step in two tables is the end of one run and the start of the
        // next (the same state, the same energy), or two runs that reused
        // the step numbers (reset_timestep): then a dump frame of that step
        // could belong to either, and the pair cannot be aligned.
        if (auto it = log.energy.find(step);
            it != log.energy.end() &&
            std::fabs(it->second - energy) >
                1e-9 * std::max(1.0, std::fabs(energy)))
          in.FailHere("step " + std::to_string(step) +
                      " is in an earlier thermo table with "
                      "another PotEng (reset_timestep?): a dump frame of that "
                      "step could be of "
                      "either run");
        log.energy[step] = energy;
        log.time_fs[step] =
            time < columns ? in.Double(r[time], "Time") * units->time_fs
                           : static_cast<double>(step) * dt * units->time_fs;
        for (std::size_t i = 1; i < columns; ++i)
          (void)in.Double(r[i], "a thermo value");
      }
    }
  }
  if (!any_table)
    Fail(src.name + ": no thermo table (no line that starts with Step)");
  log.units = *units;
  return log;
}

struct DumpColumns {
  int id = -1, type = -1, element = -1;
  int pos[3] = {-1, -1, -1};
  bool scaled = false;
  int force[3] = {-1, -1, -1};
  std::size_t count = 0;
};

DumpColumns ParseDumpColumns(const Lines& in,
                             const std::vector<std::string_view>& names) {
  DumpColumns c;
  c.count = names.size();
  auto find = [&](std::string_view n) {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == n) return static_cast<int>(i);
    return -1;
  };
  c.id = find("id");
  c.type = find("type");
  c.element = find("element");
  static const char* kSets[4][3] = {{"x", "y", "z"},
                                    {"xu", "yu", "zu"},
                                    {"xs", "ys", "zs"},
                                    {"xsu", "ysu", "zsu"}};
  for (int s = 0; s < 4 && c.pos[0] < 0; ++s) {
    int a = find(kSets[s][0]), b = find(kSets[s][1]), d = find(kSets[s][2]);
    if (a >= 0 && b >= 0 && d >= 0) {
      c.pos[0] = a, c.pos[1] = b, c.pos[2] = d;
      c.scaled = s >= 2;
    }
  }
  if (c.pos[0] < 0)
    in.FailHere("the atoms have no x y z (or xs ys zs, xu yu zu) columns");
  if (c.type < 0 && c.element < 0)
    in.FailHere("the atoms have neither a type nor an element column");
  c.force[0] = find("fx"), c.force[1] = find("fy"), c.force[2] = find("fz");
  if ((c.force[0] < 0) != (c.force[2] < 0) ||
      (c.force[0] < 0) != (c.force[1] < 0))
    in.FailHere("some but not all of fx fy fz");
  return c;
}

// The box of a dump frame: origin and cell rows, from the three bound lines.
void ReadDumpBox(Lines& in, bool triclinic, double* origin, double* cell) {
  double b[3][3] = {};
  for (int i = 0; i < 3; ++i)
    in.Numbers(in.Require("the box bounds"), triclinic ? 3 : 2, b[i],
               "box bound");
  double xy = triclinic ? b[0][2] : 0, xz = triclinic ? b[1][2] : 0,
         yz = triclinic ? b[2][2] : 0;
  // A triclinic dump gives the bounding box; the cell's own bounds are inside.
  double xlo = b[0][0] - std::min({0.0, xy, xz, xy + xz});
  double xhi = b[0][1] - std::max({0.0, xy, xz, xy + xz});
  double ylo = b[1][0] - std::min(0.0, yz), yhi = b[1][1] - std::max(0.0, yz);
  double zlo = b[2][0], zhi = b[2][1];
  origin[0] = xlo, origin[1] = ylo, origin[2] = zlo;
  const double m[9] = {xhi - xlo, 0, 0, xy, yhi - ylo, 0, xz, yz, zhi - zlo};
  std::copy(m, m + 9, cell);
  if (!(m[0] > 0 && m[4] > 0 && m[8] > 0)) in.FailHere("the box has no volume");
}

// An atom of a dump frame, as its row gives it.
struct DumpRow {
  long long id, type;
  std::string element;
  float r[3], f[3];
};

// The N atom rows of STEP's frame under the columns C, with positions in the
// box of ORIGIN and CELL, sorted by id; fails on an id that appears twice.
std::vector<DumpRow> ReadDumpRows(Lines& in, const Source& dump,
                                  const DumpColumns& c, const double* origin,
                                  const double* cell, long long n,
                                  long long step) {
  std::vector<DumpRow> rows;
  rows.reserve(std::min<std::size_t>(static_cast<std::size_t>(n),
                                     dump.text.size() / 8 + 1));
  for (long long i = 0; i < n; ++i) {
    std::string_view a = in.Require("atom " + std::to_string(i + 1) +
                                    " of step " + std::to_string(step));
    std::vector<std::string_view> v = Split(a);
    if (v.size() != c.count)
      in.FailHere(std::to_string(v.size()) + " values for " +
                  std::to_string(c.count) + " columns");
    DumpRow row{};
    row.id = c.id >= 0 ? in.Int(v[c.id], "atom id") : i + 1;
    row.type = c.type >= 0 ? in.Int(v[c.type], "atom type") : 0;
    if (c.element >= 0) row.element = CheckedSymbol(in, v[c.element]);
    double p[3];
    for (int k = 0; k < 3; ++k) p[k] = in.Double(v[c.pos[k]], "coordinate");
    if (c.scaled) {
      ToCartesian(cell, p, row.r);
    } else {
      for (int k = 0; k < 3; ++k)
        row.r[k] = static_cast<float>(p[k] - origin[k]);
    }
    for (int k = 0; k < 3; ++k)
      row.f[k] = c.force[0] >= 0
                     ? static_cast<float>(in.Double(v[c.force[k]], "force"))
                     : 0.f;
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(),
            [](const DumpRow& a, const DumpRow& b) { return a.id < b.id; });
  for (std::size_t i = 1; i < rows.size(); ++i)
    if (rows[i].id == rows[i - 1].id)
      in.FailHere("atom id " + std::to_string(rows[i].id) +
                  " appears twice in step " + std::to_string(step));
  return rows;
}

// Element symbols: given, in the dump, or from the log's potential. Sets T's
// species from the first frame's TYPES and ELEMENTS (in id order); LOG may be
// nullptr.
void SetDumpSpecies(const Source& dump, const ReadOptions& o,
                    const LammpsLog* log, const std::vector<long long>& types,
                    const std::vector<std::string>& elements, Trajectory* t) {
  std::vector<std::string> by_type = o.species;
  if (by_type.empty() && log != nullptr) by_type = log->elements;
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (!elements[i].empty()) {
      t->species.push_back(elements[i]);
      continue;
    }
    if (by_type.empty())
      Fail(dump.name +
           ": the dump gives atom types, not elements, and nothing names them: "
           "give "
           "--species (one symbol per type, type 1 first)");
    if (types[i] < 1 || static_cast<std::size_t>(types[i]) > by_type.size())
      Fail(dump.name + ": atom type " + std::to_string(types[i]) +
           ", but only " + std::to_string(by_type.size()) +
           " element symbols for the types");
    t->species.push_back(by_type[static_cast<std::size_t>(types[i]) - 1]);
  }
  for (const std::string& s : t->species)
    if (AtomicNumber(s) == 0)
      Fail(dump.name + ": '" + s + "' is not an element symbol");
}

// Each frame's energy and time from LOG (of LOG_SOURCE), matched by step
// (FRAME_LINE: where each frame starts in DUMP), and the log's units and
// LAMMPS version into T's attributes.
void AddLogEnergies(const LammpsLog& log, const Source& log_source,
                    const Source& dump,
                    const std::vector<long long>& frame_line, Trajectory* t) {
  for (std::size_t i = 0; i < t->step.size(); ++i) {
    auto it = log.energy.find(t->step[i]);
    if (it == log.energy.end())
      Fail(log_source.name + ": no thermo row for step " +
           std::to_string(t->step[i]) + " (the frame at " + dump.name + ":" +
           std::to_string(frame_line[i]) +
           "): make the thermo interval divide the dump interval, or these "
           "files are not of "
           "one run");
    t->energy.push_back(it->second);
    t->time_fs.push_back(log.time_fs.at(t->step[i]));
  }
  t->text["units"] = "LAMMPS " + log.units.name + ", converted to Å and eV";
  if (!log.version.empty()) t->text["engine_version"] = log.version;
}

}  // namespace

Trajectory ReadLammps(const Source& dump, const Source* log_source,
                      const ReadOptions& o) {
  std::optional<LammpsLog> log;
  if (log_source != nullptr) log = ReadLammpsLog(*log_source);
  Lines in(dump);
  Trajectory t;
  std::vector<long long> ids, types;  // of the first frame, in id order
  std::vector<std::string> elements;  // per atom, when the dump names them
  std::vector<long long> frame_line;
  std::string_view line;
  while (in.NextNonBlank(&line)) {
    if (Trim(line) != "ITEM: TIMESTEP")
      in.FailHere("'ITEM: TIMESTEP' expected, found " + Quote(line));
    frame_line.push_back(in.number());
    long long step = in.Int(Trim(in.Require("the time step")), "time step");
    if (!t.step.empty() && step <= t.step.back())
      in.FailHere("step " + std::to_string(step) + " follows step " +
                  std::to_string(t.step.back()));
    if (Trim(in.Require("ITEM: NUMBER OF ATOMS")) != "ITEM: NUMBER OF ATOMS")
      in.FailHere("'ITEM: NUMBER OF ATOMS' expected");
    long long n =
        in.Int(Trim(in.Require("the number of atoms")), "number of atoms");
    CheckAtoms(in, n, o);
    if (!t.step.empty() && static_cast<std::size_t>(n) != ids.size())
      in.FailHere("a frame of " + std::to_string(n) +
                  " atoms; the first frame has " + std::to_string(ids.size()));
    std::string_view box = Trim(in.Require("ITEM: BOX BOUNDS"));
    if (!StartsWith(box, "ITEM: BOX BOUNDS"))
      in.FailHere("'ITEM: BOX BOUNDS' expected");
    bool triclinic = box.find("xy") != std::string_view::npos;
    double origin[3], cell[9];
    ReadDumpBox(in, triclinic, origin, cell);
    std::string_view header = Trim(in.Require("ITEM: ATOMS"));
    if (!StartsWith(header, "ITEM: ATOMS"))
      in.FailHere("'ITEM: ATOMS' expected");
    std::vector<std::string_view> names = Split(header.substr(11));
    DumpColumns c = ParseDumpColumns(in, names);
    std::vector<DumpRow> rows =
        ReadDumpRows(in, dump, c, origin, cell, n, step);
    if (t.step.empty()) {
      for (const DumpRow& r : rows) {
        ids.push_back(r.id);
        types.push_back(r.type);
        elements.push_back(r.element);
      }
      if (c.force[0] >= 0) t.forces.reserve(rows.size() * 3);
    } else {
      for (std::size_t i = 0; i < rows.size(); ++i)
        if (rows[i].id != ids[i] || rows[i].type != types[i] ||
            rows[i].element != elements[i])
          in.FailHere("step " + std::to_string(step) +
                      " has other atoms (ids or types) than the first frame");
      if ((c.force[0] >= 0) != !t.forces.empty())
        in.FailHere("forces in some frames but not in others");
    }
    double scale_f = log ? log->units.energy_ev : 1.0;
    for (const DumpRow& r : rows) {
      t.positions.insert(t.positions.end(), r.r, r.r + 3);
      if (c.force[0] >= 0)
        for (int k = 0; k < 3; ++k)
          t.forces.push_back(static_cast<float>(r.f[k] * scale_f));
    }
    t.step.push_back(step);
    t.cell.insert(t.cell.end(), cell, cell + 9);
  }
  if (t.step.empty()) Fail(dump.name + ": no frame (no 'ITEM: TIMESTEP')");
  CollapseCell(&t);

  SetDumpSpecies(dump, o, log ? &*log : nullptr, types, elements, &t);

  if (log) AddLogEnergies(*log, *log_source, dump, frame_line, &t);
  t.text["engine"] = "LAMMPS";
  Validate(t, dump.name);
  return t;
}

}  // namespace cmf::md
