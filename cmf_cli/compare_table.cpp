#include "compare_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <variant>

#include "cmf/byte_strings.h"
#include "cmf/clock.h"

namespace cmf::cli {
namespace {

using nlohmann::json;

json ValueToJson(const Value& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

json NumberJson(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

// A sortable cell: absent, a number or a text.
using Cell = std::variant<std::monostate, double, std::string>;

Cell ValueCell(const Value& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v))
    return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
  return std::get<std::string>(v);
}

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string MarkdownField(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += '\\';
    out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return out;
}

}  // namespace

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "nan";
  return fmt::format("{:.6g}", v);
}

Result<SortKey> ParseSortKey(const std::string& text) {
  static const std::map<std::string, SortKey::Field> kPlain = {
      {"started", SortKey::Field::kStarted},
      {"stage", SortKey::Field::kStage},
      {"status", SortKey::Field::kStatus},
      {"id", SortKey::Field::kId}};
  static const std::map<std::string, SortKey::Field> kNamed = {
      {"params", SortKey::Field::kParam},
      {"metrics", SortKey::Field::kMetric},
      {"tags", SortKey::Field::kTag}};
  if (auto it = kPlain.find(text); it != kPlain.end()) {
    return SortKey{it->second, ""};
  }
  auto dot = text.find('.');
  if (dot != std::string::npos && dot + 1 < text.size()) {
    if (auto it = kNamed.find(text.substr(0, dot)); it != kNamed.end()) {
      return SortKey{it->second, text.substr(dot + 1)};
    }
  }
  return Status::InvalidArgument(
      "--sort-by takes params.NAME, metrics.NAME, tags.NAME, started, stage, "
      "status or id, not '" +
      text + "'");
}

void CompareTable::Add(ExecutionRecord record, const MetricSummaries& m) {
  rows.push_back({std::move(record), m});
}

MetricAggregate CompareTable::AggregateOf(const std::string& name) const {
  auto it = aggregates.find(name);
  return it == aggregates.end() ? MetricAggregate::kLast : it->second;
}

std::optional<double> CompareTable::Metric(const Row& row,
                                           const std::string& name) const {
  auto it = row.metrics.find(name);
  if (it == row.metrics.end()) return std::nullopt;
  return Summarise(it->second, AggregateOf(name));
}

void CompareTable::Sort(const SortKey& key, bool descending) {
  auto cell = [&](const Row& row) -> Cell {
    const ExecutionRecord& r = row.record;
    switch (key.field) {
      case SortKey::Field::kParam: {
        auto it = r.params.find(key.name);
        if (it == r.params.end()) return std::monostate{};
        return ValueCell(it->second);
      }
      case SortKey::Field::kMetric: {
        std::optional<double> v = Metric(row, key.name);
        if (!v || std::isnan(*v)) return std::monostate{};
        return *v;
      }
      case SortKey::Field::kTag: {
        auto it = r.tags.find(key.name);
        if (it == r.tags.end()) return std::monostate{};
        return it->second;
      }
      case SortKey::Field::kStarted:
        return static_cast<double>(r.started_ms);
      case SortKey::Field::kStage:
        return r.stage;
      case SortKey::Field::kStatus:
        return std::string(ToString(r.status));
      case SortKey::Field::kId:
        return r.id;
    }
    return std::monostate{};
  };
  std::vector<std::pair<Cell, Row>> keyed;
  keyed.reserve(rows.size());
  for (Row& row : rows) keyed.emplace_back(cell(row), std::move(row));
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    const bool a_none = a.first.index() == 0, b_none = b.first.index() == 0;
    if (a_none || b_none) return !a_none && b_none;  // absent values last
    // Numbers before texts; within a kind, by value.
    if (a.first.index() != b.first.index())
      return (a.first.index() < b.first.index()) != descending;
    return descending ? b.first < a.first : a.first < b.first;
  });
  rows.clear();
  for (auto& [c, row] : keyed) rows.push_back(std::move(row));
}

void CompareTable::Columns(bool only_changed) {
  std::set<std::string> p, m;
  for (const Row& row : rows) {
    for (const auto& [name, v] : row.record.params) p.insert(name);
    for (const auto& [name, s] : row.metrics) m.insert(name);
  }
  params.assign(p.begin(), p.end());
  metrics.assign(m.begin(), m.end());
  if (!only_changed || rows.size() < 2) return;
  std::erase_if(params, [&](const std::string& name) {
    auto first = rows.front().record.params.find(name);
    for (const Row& row : rows) {
      auto it = row.record.params.find(name);
      const bool has = it != row.record.params.end();
      const bool first_has = first != rows.front().record.params.end();
      if (has != first_has || (has && !(it->second == first->second)))
        return false;
    }
    return true;
  });
  std::erase_if(metrics, [&](const std::string& name) {
    std::optional<double> first = Metric(rows.front(), name);
    for (const Row& row : rows) {
      std::optional<double> v = Metric(row, name);
      if (v.has_value() != first.has_value()) return false;
      if (v && !(*v == *first || (std::isnan(*v) && std::isnan(*first))))
        return false;
    }
    return true;
  });
}

namespace {

// The header and the cells of every row, as text (ids shortened to the
// fewest characters, at least 8, that tell the rows apart, when SHORT).
struct Grid {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> cells;
  std::vector<bool> numeric;  // per column: right-aligned
};

Grid MakeGrid(const CompareTable& t, bool short_ids, bool escape) {
  Grid g;
  g.header = {"id", "pipeline", "stage", "status", "started"};
  g.numeric.assign(g.header.size(), false);
  for (const std::string& p : t.params) {
    g.header.push_back("params." + p);
    g.numeric.push_back(false);
  }
  for (const std::string& m : t.metrics) {
    const MetricAggregate how = t.AggregateOf(m);
    g.header.push_back("metrics." + m +
                       (how == MetricAggregate::kLast
                            ? ""
                            : ":" + std::string(ToString(how))));
    g.numeric.push_back(true);
  }
  std::size_t id_length = 36;
  if (short_ids) {
    for (id_length = 8; id_length < 36; ++id_length) {
      std::set<std::string> seen;
      bool distinct = true;
      for (const auto& row : t.rows) {
        distinct = distinct && seen.insert(row.record.id.substr(0, id_length)).second;
      }
      if (distinct) break;
    }
  }
  auto text = [&](const std::string& s) {
    return escape ? EscapeForDisplay(s) : s;
  };
  for (const auto& row : t.rows) {
    const ExecutionRecord& r = row.record;
    std::vector<std::string> c = {r.id.substr(0, id_length), text(r.pipeline),
                                  text(r.stage), std::string(ToString(r.status)),
                                  FormatIsoUtc(r.started_ms)};
    for (const std::string& p : t.params) {
      auto it = r.params.find(p);
      c.push_back(it == r.params.end() ? "-" : text(ToText(it->second)));
    }
    for (const std::string& m : t.metrics) {
      std::optional<double> v = t.Metric(row, m);
      c.push_back(v ? FormatNumber(*v) : "-");
    }
    g.cells.push_back(std::move(c));
  }
  return g;
}

}  // namespace

std::string CompareTable::Text() const {
  Grid g = MakeGrid(*this, /*short_ids=*/true, /*escape=*/true);
  std::vector<std::size_t> width(g.header.size());
  for (std::size_t i = 0; i < g.header.size(); ++i) {
    width[i] = g.header[i].size();
    for (const auto& c : g.cells) width[i] = std::max(width[i], c[i].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& c) {
    std::string l;
    for (std::size_t i = 0; i < c.size(); ++i) {
      const std::size_t pad = width[i] - c[i].size();
      if (g.numeric[i]) l += std::string(pad, ' ');
      l += c[i];
      if (!g.numeric[i] && i + 1 < c.size()) l += std::string(pad, ' ');
      if (i + 1 < c.size()) l += "  ";
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  };
  line(g.header);
  for (const auto& c : g.cells) line(c);
  return out;
}

std::string CompareTable::Csv() const {
  Grid g = MakeGrid(*this, /*short_ids=*/false, /*escape=*/false);
  std::string out;
  auto line = [&](const std::vector<std::string>& c) {
    for (std::size_t i = 0; i < c.size(); ++i) {
      out += CsvField(c[i]);
      out += i + 1 < c.size() ? "," : "\n";
    }
  };
  line(g.header);
  for (auto c : g.cells) {
    for (std::string& cell : c) {
      if (cell == "-") cell.clear();  // CSV: an empty field is no value
    }
    line(c);
  }
  return out;
}

std::string CompareTable::Markdown() const {
  Grid g = MakeGrid(*this, /*short_ids=*/true, /*escape=*/true);
  std::string out;
  auto line = [&](const std::vector<std::string>& c) {
    out += "|";
    for (const std::string& cell : c) out += " " + MarkdownField(cell) + " |";
    out += "\n";
  };
  line(g.header);
  out += "|";
  for (bool numeric : g.numeric) out += numeric ? " ---: |" : " --- |";
  out += "\n";
  for (const auto& c : g.cells) line(c);
  return out;
}

std::string CompareTable::Json() const {
  json out = json::array();
  for (const Row& row : rows) {
    const ExecutionRecord& r = row.record;
    json params = json::object();
    for (const std::string& p : this->params) {
      auto it = r.params.find(p);
      if (it != r.params.end()) params[p] = ValueToJson(it->second);
    }
    json metrics = json::object();
    for (const std::string& m : this->metrics) {
      if (std::optional<double> v = Metric(row, m)) metrics[m] = NumberJson(*v);
    }
    out.push_back({{"id", r.id},
                   {"pipeline", r.pipeline},
                   {"stage", r.stage},
                   {"status", std::string(ToString(r.status))},
                   {"started", FormatIsoUtc(r.started_ms)},
                   {"ended", r.ended_ms ? json(FormatIsoUtc(*r.ended_ms))
                                        : json(nullptr)},
                   {"params", params},
                   {"metrics", metrics},
                   {"tags", r.tags}});
  }
  return out.dump(2, ' ', false, json::error_handler_t::replace);
}

}  // namespace cmf::cli
