// The extended XYZ reader (readers.h), for the files that ASE writes.
#include <map>
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
using reader_input::ParseInt;
using reader_input::Quote;
using reader_input::Split;
using reader_input::Trim;

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
