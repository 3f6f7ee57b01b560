#include "readers.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string_view>

namespace cmf::md {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

// TEXT for a message: at most 40 bytes, anything but printable ASCII as \xNN.
std::string Quote(std::string_view text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < 40; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (text.size() > 40) out += "...";
  return out + "'";
}

bool ParseDouble(std::string_view s, double* v) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(*v);
}

bool ParseInt(std::string_view s, long long* v) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// The lines of a source, numbered from 1, each without its line ending.
class Lines {
 public:
  explicit Lines(const Source& s) : name_(s.name), text_(s.text) {}

  bool Next(std::string_view* line) {
    if (pos_ >= text_.size()) return false;
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    *line = text_.substr(pos_, end - pos_);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    unterminated_ = end == text_.size();
    pos_ = end + 1;
    ++number_;
    return true;
  }
  // The next line that is not blank.
  bool NextNonBlank(std::string_view* line) {
    while (Next(line))
      if (!Trim(*line).empty()) return true;
    return false;
  }
  // The next line, which must exist: WHAT says what was expected.
  std::string_view Require(const std::string& what) {
    std::string_view line;
    if (!Next(&line)) FailEnd(what);
    return line;
  }
  long long number() const { return number_; }
  const std::string& name() const { return name_; }

  [[noreturn]] void FailHere(const std::string& message) const {
    // A last line without its newline is most often a file cut short.
    Fail(name_ + ":" + std::to_string(number_) + ": " + message +
         (unterminated_ ? " (the file ends in this line: truncated?)" : ""));
  }
  [[noreturn]] void FailEnd(const std::string& what) const {
    Fail(name_ + ":" + std::to_string(number_) + ": the file ends where " +
         what + " should be (truncated?)");
  }

  double Double(std::string_view token, const std::string& what) const {
    double v;
    if (!ParseDouble(token, &v))
      FailHere(what + " " + Quote(token) + " is not a finite number");
    return v;
  }
  long long Int(std::string_view token, const std::string& what) const {
    long long v;
    if (!ParseInt(token, &v))
      FailHere(what + " " + Quote(token) + " is not an integer");
    return v;
  }
  // Reads K numbers from LINE's first K tokens (at least K tokens).
  void Numbers(std::string_view line, int k, double* out,
               const std::string& what) const {
    std::vector<std::string_view> t = Split(line);
    if (static_cast<int>(t.size()) < k)
      FailHere(what + ": " + std::to_string(k) + " numbers expected, found " +
               std::to_string(t.size()));
    for (int i = 0; i < k; ++i) out[i] = Double(t[i], what);
  }

 private:
  std::string name_;
  std::string_view text_;
  std::size_t pos_ = 0;
  long long number_ = 0;
  bool unterminated_ = false;
};

std::string CheckedSymbol(const Lines& in, std::string_view symbol) {
  std::string s(symbol);
  if (AtomicNumber(s) == 0)
    in.FailHere(Quote(symbol) + " is not an element symbol");
  return s;
}

double Det(const double* m) {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) -
         m[1] * (m[3] * m[8] - m[5] * m[6]) +
         m[2] * (m[3] * m[7] - m[4] * m[6]);
}

// Cartesian position of fractional F in the cell M (rows are vectors).
void ToCartesian(const double* m, const double* f, float* out) {
  for (int k = 0; k < 3; ++k)
    out[k] =
        static_cast<float>(f[0] * m[k] + f[1] * m[3 + k] + f[2] * m[6 + k]);
}

void CheckAtoms(const Lines& in, long long n, const ReadOptions& o) {
  if (n <= 0) in.FailHere("a frame of " + std::to_string(n) + " atoms");
  if (static_cast<unsigned long long>(n) > o.max_atoms)
    in.FailHere(std::to_string(n) + " atoms is more than the limit of " +
                std::to_string(o.max_atoms));
}

// ---------------------------------------------------------------- VASP

struct VaspHeader {
  double cell[9];
  std::vector<std::string> species;  // per atom
};

// Reads a POSCAR-like header after its comment line: scale, lattice, species
// names (VASP 5), counts.
VaspHeader ReadVaspHeader(Lines& in, const ReadOptions& o) {
  VaspHeader h;
  double scale;
  in.Numbers(in.Require("the scale factor"), 1, &scale, "scale factor");
  if (scale == 0) in.FailHere("the scale factor is 0");
  for (int i = 0; i < 3; ++i)
    in.Numbers(in.Require("a lattice vector"), 3, h.cell + 3 * i,
               "lattice vector");
  double det = Det(h.cell);
  if (!(std::fabs(det) > 1e-12))
    in.FailHere("the lattice vectors span no volume");
  // A negative scale is the cell's volume.
  double s = scale > 0 ? scale : std::cbrt(-scale / std::fabs(det));
  for (double& v : h.cell) v *= s;
  std::vector<std::string_view> t =
      Split(in.Require("the species or their counts"));
  std::vector<std::string> names;
  long long probe;
  if (!t.empty() && !ParseInt(t[0], &probe)) {
    for (std::string_view name : t) {
      // VASP 6 may write a POTCAR's name ("Mo_pv", "S/1a2b"): the element
      // is what comes before '_' or '/'.
      std::size_t cut = name.find_first_of("_/");
      names.push_back(CheckedSymbol(in, name.substr(0, cut)));
    }
    if (!o.species.empty() && o.species != names)
      in.FailHere("the file names its species, and --species gives others");
    t = Split(in.Require("the counts of atoms"));
  } else {
    if (o.species.empty())
      in.FailHere(
          "this XDATCAR does not name its species (VASP 4): give them with "
          "--species");
    names = o.species;
  }
  if (t.size() != names.size())
    in.FailHere(std::to_string(t.size()) + " counts for " +
                std::to_string(names.size()) + " species");
  long long total = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    long long c = in.Int(t[i], "count of atoms");
    if (c <= 0) in.FailHere("count of atoms " + std::to_string(c));
    CheckAtoms(in, c, o);  // before the sum, which could overflow
    total += c;
    CheckAtoms(in, total, o);
    h.species.insert(h.species.end(), static_cast<std::size_t>(c), names[i]);
  }
  return h;
}

std::map<long long, double> ReadOszicar(const Source& src) {
  Lines in(src);
  std::map<long long, double> energy;
  long long last = 0;
  std::string_view line;
  while (in.Next(&line)) {
    std::vector<std::string_view> t = Split(line);
    long long step;
    if (t.size() < 2 || !ParseInt(t[0], &step))
      continue;  // electronic steps, headers
    std::optional<double> f;
    for (std::size_t i = 1; i < t.size(); ++i) {
      if (!StartsWith(t[i], "F=")) continue;
      std::string_view v = t[i].substr(2);
      if (v.empty()) {
        if (i + 1 >= t.size()) in.FailHere("F= has no value");
        v = t[i + 1];
      }
      f = in.Double(v, "F=");
      break;
    }
    if (!f) continue;
    if (step <= last)
      in.FailHere("ionic step " + std::to_string(step) + " follows step " +
                  std::to_string(last) + " (two runs in one file?)");
    last = step;
    energy[step] = *f;
  }
  if (energy.empty()) Fail(src.name + ": no ionic step (no line with F=)");
  return energy;
}

// ---------------------------------------------------------------- LAMMPS

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

}  // namespace

Source ReadSource(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot open '" + path + "'");
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) Fail("cannot read '" + path + "'");
  if (static_cast<unsigned long long>(size) > max_bytes)
    Fail("'" + path + "' is " + std::to_string(size) +
         " bytes, more than the limit of " + std::to_string(max_bytes));
  in.seekg(0);
  Source s{path, std::string(static_cast<std::size_t>(size), '\0')};
  if (size > 0 && !in.read(s.text.data(), size))
    Fail("cannot read '" + path + "'");
  return s;
}

Trajectory ReadVasp(const Source& xdatcar, const Source* oszicar,
                    const ReadOptions& o) {
  Lines in(xdatcar);
  std::string_view line;
  if (!in.NextNonBlank(&line)) Fail(xdatcar.name + ": the file is empty");
  VaspHeader first = ReadVaspHeader(in, o);
  VaspHeader h = first;
  Trajectory t;
  t.species = first.species;
  const std::size_t n = first.species.size();
  std::vector<long long> config_line;
  while (in.NextNonBlank(&line)) {
    std::string_view s = Trim(line);
    bool direct = StartsWith(s, "Direct");
    if (!direct && !StartsWith(s, "Cartesian")) {
      // A variable cell repeats the header (from its comment line) before a
      // configuration.
      h = ReadVaspHeader(in, o);
      if (h.species != first.species)
        in.FailHere("a header whose atoms differ from the first header's");
      continue;
    }
    std::size_t eq = s.find('=');
    if (eq == std::string_view::npos)
      in.FailHere("a configuration line without '= N'");
    long long step = in.Int(Trim(s.substr(eq + 1)), "configuration number");
    if (!t.step.empty() && step <= t.step.back())
      in.FailHere("configuration " + std::to_string(step) +
                  " follows configuration " + std::to_string(t.step.back()));
    t.step.push_back(step);
    config_line.push_back(in.number());
    t.cell.insert(t.cell.end(), h.cell, h.cell + 9);
    for (std::size_t i = 0; i < n; ++i) {
      double v[3];
      in.Numbers(in.Require("atom " + std::to_string(i + 1) +
                            " of configuration " + std::to_string(step)),
                 3, v, "coordinate");
      float r[3];
      if (direct) {
        ToCartesian(h.cell, v, r);
      } else {
        // Cartesian configurations are in the scaled lattice's units, Å.
        for (int k = 0; k < 3; ++k) r[k] = static_cast<float>(v[k]);
      }
      t.positions.insert(t.positions.end(), r, r + 3);
    }
  }
  if (t.step.empty())
    Fail(xdatcar.name + ": no configuration (no 'Direct configuration=' line)");
  CollapseCell(&t);
  if (oszicar != nullptr) {
    std::map<long long, double> f = ReadOszicar(*oszicar);
    for (std::size_t i = 0; i < t.step.size(); ++i) {
      auto it = f.find(t.step[i]);
      if (it == f.end())
        Fail(oszicar->name + ": no ionic step " + std::to_string(t.step[i]) +
             " for the configuration at " + xdatcar.name + ":" +
             std::to_string(config_line[i]) + " (steps " +
             std::to_string(f.begin()->first) + " to " +
             std::to_string(f.rbegin()->first) +
             "): these files do not come from the same run");
      t.energy.push_back(it->second);
    }
  }
  if (o.timestep_fs > 0)
    for (std::int64_t s : t.step)
      t.time_fs.push_back(static_cast<double>(s) * o.timestep_fs);
  t.text["engine"] = "VASP";
  t.text["units"] = "Å, eV (F=, the free energy TOTEN)";
  Validate(t, xdatcar.name);
  return t;
}

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
    struct Row {
      long long id, type;
      std::string element;
      float r[3], f[3];
    };
    std::vector<Row> rows;
    rows.reserve(std::min<std::size_t>(static_cast<std::size_t>(n),
                                       dump.text.size() / 8 + 1));
    for (long long i = 0; i < n; ++i) {
      std::string_view a = in.Require("atom " + std::to_string(i + 1) +
                                      " of step " + std::to_string(step));
      std::vector<std::string_view> v = Split(a);
      if (v.size() != c.count)
        in.FailHere(std::to_string(v.size()) + " values for " +
                    std::to_string(c.count) + " columns");
      Row row{};
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
              [](const Row& a, const Row& b) { return a.id < b.id; });
    for (std::size_t i = 1; i < rows.size(); ++i)
      if (rows[i].id == rows[i - 1].id)
        in.FailHere("atom id " + std::to_string(rows[i].id) +
                    " appears twice in step " + std::to_string(step));
    if (t.step.empty()) {
      for (const Row& r : rows) {
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
    for (const Row& r : rows) {
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

  // Element symbols: given, in the dump, or from the log's potential.
  std::vector<std::string> by_type = o.species;
  if (by_type.empty() && log) by_type = log->elements;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (!elements[i].empty()) {
      t.species.push_back(elements[i]);
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
    t.species.push_back(by_type[static_cast<std::size_t>(types[i]) - 1]);
  }
  for (const std::string& s : t.species)
    if (AtomicNumber(s) == 0)
      Fail(dump.name + ": '" + s + "' is not an element symbol");

  if (log) {
    for (std::size_t i = 0; i < t.step.size(); ++i) {
      auto it = log->energy.find(t.step[i]);
      if (it == log->energy.end())
        Fail(log_source->name + ": no thermo row for step " +
             std::to_string(t.step[i]) + " (the frame at " + dump.name + ":" +
             std::to_string(frame_line[i]) +
             "): make the thermo interval divide the dump interval, or these "
             "files are not of "
             "one run");
      t.energy.push_back(it->second);
      t.time_fs.push_back(log->time_fs.at(t.step[i]));
    }
    t.text["units"] = "LAMMPS " + log->units.name + ", converted to Å and eV";
    if (!log->version.empty()) t.text["engine_version"] = log->version;
  }
  t.text["engine"] = "LAMMPS";
  Validate(t, dump.name);
  return t;
}

namespace {

// The key=value pairs of an extended XYZ comment line; a bare key is "T".
std::map<std::string, std::string> ParseComment(const Lines& in,
                                                std::string_view s) {
  std::map<std::string, std::string> out;
  std::size_t i = 0;
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    if (i >= s.size()) break;
    std::size_t k = i;
    while (i < s.size() && s[i] != '=' && s[i] != ' ' && s[i] != '\t') ++i;
    std::string key(s.substr(k, i - k));
    if (i >= s.size() || s[i] != '=') {
      out[key] = "T";
      continue;
    }
    ++i;
    std::string value;
    if (i < s.size() && (s[i] == '"' || s[i] == '{')) {
      char close = s[i] == '"' ? '"' : '}';
      ++i;
      while (i < s.size() && s[i] != close) {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        value += s[i++];
      }
      if (i >= s.size())
        in.FailHere("the value of " + Quote(key) + " is not closed");
      ++i;
    } else {
      std::size_t v = i;
      while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
      value = std::string(s.substr(v, i - v));
    }
    out[key] = value;
  }
  return out;
}

struct XyzColumns {
  int species = -1, pos = -1, forces = -1;
  std::size_t count = 0;
};

XyzColumns ParseProperties(const Lines& in, const std::string& spec) {
  XyzColumns c;
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(
        start, colon == std::string::npos ? std::string::npos : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  if (parts.size() % 3 != 0)
    in.FailHere("Properties=" + Quote(spec) +
                " is not name:type:count triples");
  for (std::size_t i = 0; i < parts.size(); i += 3) {
    const std::string& name = parts[i];
    const std::string& type = parts[i + 1];
    long long n;
    if (!ParseInt(parts[i + 2], &n) || n < 1 || n > 64)
      in.FailHere("Properties: " + Quote(parts[i + 2]) +
                  " is not a column count");
    if (type != "S" && type != "R" && type != "I" && type != "L")
      in.FailHere("Properties: type " + Quote(type) +
                  " (S, R, I or L expected)");
    int at = static_cast<int>(c.count);
    if ((name == "species" || name == "symbols") && type == "S" && n == 1)
      c.species = at;
    if ((name == "pos" || name == "positions") && type == "R" && n == 3)
      c.pos = at;
    if ((name == "forces" || name == "force") && type == "R" && n == 3)
      c.forces = at;
    c.count += static_cast<std::size_t>(n);
  }
  if (c.species < 0 || c.pos < 0)
    in.FailHere("Properties=" + Quote(spec) + " lacks species:S:1 or pos:R:3");
  return c;
}

}  // namespace

Trajectory ReadExtxyz(const Source& xyz, const ReadOptions& o) {
  Lines in(xyz);
  Trajectory t;
  std::vector<long long> frame_line;
  bool energies = false;
  std::string_view line;
  while (in.NextNonBlank(&line)) {
    long long n = in.Int(Trim(line), "the atom count");
    CheckAtoms(in, n, o);
    if (!t.step.empty() && static_cast<std::size_t>(n) != t.species.size())
      in.FailHere("a frame of " + std::to_string(n) +
                  " atoms; the first frame has " +
                  std::to_string(t.species.size()));
    const int frame = t.frames();
    frame_line.push_back(in.number());
    auto kv = ParseComment(
        in, in.Require("the comment line of frame " + std::to_string(frame)));
    auto lattice = kv.find("Lattice");
    if (lattice == kv.end())
      in.FailHere("frame " + std::to_string(frame) + " has no Lattice=");
    double cell[9];
    in.Numbers(lattice->second, 9, cell, "Lattice");
    XyzColumns c = ParseProperties(
        in, kv.count("Properties") ? kv["Properties"] : "species:S:1:pos:R:3");
    auto e = kv.find("energy");
    if (frame == 0) energies = e != kv.end();
    if ((e != kv.end()) != energies)
      in.FailHere("frame " + std::to_string(frame) +
                  (energies ? " has no energy=" : " has an energy=") +
                  ", unlike the first frame");
    if (energies) t.energy.push_back(in.Double(e->second, "energy"));
    if (frame == 0 && c.forces >= 0)
      t.forces.reserve(static_cast<std::size_t>(n) * 3);
    if (frame > 0 && (c.forces >= 0) != !t.forces.empty())
      in.FailHere("forces in some frames but not in others");
    for (long long i = 0; i < n; ++i) {
      std::vector<std::string_view> v =
          Split(in.Require("atom " + std::to_string(i + 1) + " of frame " +
                           std::to_string(frame)));
      if (v.size() != c.count)
        in.FailHere(std::to_string(v.size()) + " values for " +
                    std::to_string(c.count) + " columns");
      std::string symbol = CheckedSymbol(in, v[c.species]);
      if (frame == 0) {
        t.species.push_back(symbol);
      } else if (t.species[static_cast<std::size_t>(i)] != symbol) {
        in.FailHere("atom " + std::to_string(i + 1) + " is " + symbol +
                    " here and " + t.species[static_cast<std::size_t>(i)] +
                    " in the first frame");
      }
      for (int k = 0; k < 3; ++k)
        t.positions.push_back(
            static_cast<float>(in.Double(v[c.pos + k], "coordinate")));
      if (c.forces >= 0)
        for (int k = 0; k < 3; ++k)
          t.forces.push_back(
              static_cast<float>(in.Double(v[c.forces + k], "force")));
    }
    t.step.push_back(frame);
    t.cell.insert(t.cell.end(), cell, cell + 9);
  }
  if (t.step.empty()) Fail(xyz.name + ": no frame");
  CollapseCell(&t);
  if (o.timestep_fs > 0)
    for (std::int64_t s : t.step)
      t.time_fs.push_back(static_cast<double>(s) * o.timestep_fs);
  t.text["engine"] = "extended XYZ";
  Validate(t, xyz.name);
  return t;
}

}  // namespace cmf::md
