// The VASP reader (readers.h): an XDATCAR's configurations, with the
// energies of its OSZICAR.
#include <cmath>
#include <cstdint>
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
using reader_input::Det;
using reader_input::Fail;
using reader_input::Lines;
using reader_input::ParseInt;
using reader_input::Split;
using reader_input::StartsWith;
using reader_input::ToCartesian;
using reader_input::Trim;

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

}  // namespace

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

}  // namespace cmf::md
