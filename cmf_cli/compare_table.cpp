#include "compare_table.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <variant>

#include "cmf/byte_strings.h"
#include "cmf/clock.h"
#include "cmf/json_output.h"

namespace cmf::cli {
namespace {

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

void CompareTable::Add(ExecutionRecord record) {
  std::vector<ExecutionRecord> page;
  page.push_back(std::move(record));
  AddPage(std::move(page));
}

void CompareTable::AddPage(std::vector<ExecutionRecord> page) {
  pages_.push_back(std::make_unique<std::vector<ExecutionRecord>>(
      std::move(page)));
  for (const ExecutionRecord& r : *pages_.back()) rows.push_back({&r});
}

MetricAggregate CompareTable::AggregateOf(const std::string& name) const {
  auto it = aggregates.find(name);
  return it == aggregates.end() ? MetricAggregate::kLast : it->second;
}

std::optional<double> CompareTable::Metric(const ExecutionRecord& r,
                                           const std::string& name) const {
  auto it = r.metric_summaries.find(name);
  if (it == r.metric_summaries.end()) return std::nullopt;
  return Summarise(it->second, AggregateOf(name));
}

void CompareTable::Sort(const SortKey& key, bool descending) {
  auto cell = [&](const Row& row) -> Cell {
    const ExecutionRecord& r = *row.record;
    switch (key.field) {
      case SortKey::Field::kParam: {
        auto it = r.params.find(key.name);
        if (it == r.params.end()) return std::monostate{};
        return ValueCell(it->second);
      }
      case SortKey::Field::kMetric: {
        std::optional<double> v = Metric(*row.record, key.name);
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
    for (const auto& [name, v] : row.record->params) p.insert(name);
    for (const auto& [name, s] : row.record->metric_summaries) m.insert(name);
  }
  params.assign(p.begin(), p.end());
  metrics.assign(m.begin(), m.end());
  if (!only_changed || rows.size() < 2) return;
  std::erase_if(params, [&](const std::string& name) {
    auto first = rows.front().record->params.find(name);
    for (const Row& row : rows) {
      auto it = row.record->params.find(name);
      const bool has = it != row.record->params.end();
      const bool first_has = first != rows.front().record->params.end();
      if (has != first_has || (has && !(it->second == first->second)))
        return false;
    }
    return true;
  });
  std::erase_if(metrics, [&](const std::string& name) {
    std::optional<double> first = Metric(*rows.front().record, name);
    for (const Row& row : rows) {
      std::optional<double> v = Metric(*row.record, name);
      if (v.has_value() != first.has_value()) return false;
      if (v && !(*v == *first || (std::isnan(*v) && std::isnan(*first))))
        return false;
    }
    return true;
  });
}

namespace {

// What each output writes: the header, which columns are numbers, and each
// row's cells handed to a callback one at a time (no table of strings is
// built: on 10,000 rows its allocations cost more than the store's reads).
class Cells {
 public:
  Cells(const CompareTable& t, bool short_ids, bool escape)
      : t_(t), escape_(escape) {
    header_ = {"id", "pipeline", "stage", "status", "started"};
    numeric_.assign(header_.size(), false);
    for (const std::string& p : t.params) {
      header_.push_back("params." + p);
      numeric_.push_back(false);
    }
    for (const std::string& m : t.metrics) {
      const MetricAggregate how = t.AggregateOf(m);
      header_.push_back("metrics." + m +
                        (how == MetricAggregate::kLast
                             ? ""
                             : ":" + std::string(ToString(how))));
      numeric_.push_back(true);
    }
    if (short_ids) {
      // The fewest characters (at least 8) that tell the rows apart: one
      // more than the longest prefix two neighbours share, once sorted.
      std::vector<std::string_view> ids;
      ids.reserve(t.rows.size());
      for (const auto& row : t.rows) ids.push_back(row.record->id);
      std::sort(ids.begin(), ids.end());
      id_length_ = 8;
      for (std::size_t i = 1; i < ids.size(); ++i) {
        std::size_t common = 0;
        while (common < ids[i].size() && common < ids[i - 1].size() &&
               ids[i][common] == ids[i - 1][common]) {
          ++common;
        }
        id_length_ = std::max(id_length_, common + 1);
      }
      id_length_ = std::min<std::size_t>(id_length_, 36);
    }
  }

  const std::vector<std::string>& header() const { return header_; }
  const std::vector<bool>& numeric() const { return numeric_; }

  // Calls EMIT(column, text) for each cell of ROW; an absent value is "-".
  template <typename F>
  void Row(const ExecutionRecord& r, F&& emit) {
    std::size_t col = 0;
    emit(col++, std::string_view(r.id).substr(0, id_length_));
    emit(col++, Text(r.pipeline));
    emit(col++, Text(r.stage));
    emit(col++, ToString(r.status));
    emit(col++, std::string_view(FormatIsoUtc(r.started_ms)));
    for (const std::string& p : t_.params) {
      auto it = r.params.find(p);
      if (it == r.params.end()) {
        emit(col++, "-");
      } else {
        scratch_ = ToText(it->second);
        emit(col++, Text(scratch_));
      }
    }
    for (const std::string& m : t_.metrics) {
      std::optional<double> v = t_.Metric(r, m);
      if (!v) {
        emit(col++, "-");
      } else {
        number_ = FormatNumber(*v);
        emit(col++, std::string_view(number_));
      }
    }
  }

 private:
  std::string_view Text(const std::string& s) {
    // Printable ASCII shows as it is (most names and values): no copy.
    const bool plain = std::all_of(s.begin(), s.end(), [](char c) {
      return c >= 0x20 && c < 0x7f && c != '\\' && c != '"';
    });
    if (!escape_ || plain) return s;
    shown_ = EscapeForDisplay(s);
    return shown_;
  }

  const CompareTable& t_;
  bool escape_;
  std::vector<std::string> header_;
  std::vector<bool> numeric_;
  std::size_t id_length_ = 36;
  std::string scratch_, number_, shown_;
};

}  // namespace

std::string CompareTable::Text() const {
  Cells cells(*this, /*short_ids=*/true, /*escape=*/true);
  const std::size_t n = cells.header().size();
  std::vector<std::size_t> width(n);
  for (std::size_t i = 0; i < n; ++i) width[i] = cells.header()[i].size();
  // Every cell twice: once for the widths, once to write it.
  for (const auto& row : rows) {
    cells.Row(*row.record, [&](std::size_t i, std::string_view c) {
      width[i] = std::max(width[i], c.size());
    });
  }
  std::string out, line;
  auto put = [&](std::size_t i, std::string_view c) {
    const std::size_t pad = width[i] - c.size();
    if (cells.numeric()[i]) line.append(pad, ' ');
    line += c;
    if (i + 1 < n) {
      if (!cells.numeric()[i]) line.append(pad, ' ');
      line += "  ";
    } else {
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line;
      out += '\n';
      line.clear();
    }
  };
  for (std::size_t i = 0; i < n; ++i) put(i, cells.header()[i]);
  for (const auto& row : rows) cells.Row(*row.record, put);
  return out;
}

std::string CompareTable::Csv() const {
  Cells cells(*this, /*short_ids=*/false, /*escape=*/false);
  const std::size_t n = cells.header().size();
  std::string out;
  auto put = [&](std::size_t i, std::string_view c) {
    // CSV: an empty field is no value.
    if (c != "-" || i < 5) out += CsvField(std::string(c));
    out += i + 1 < n ? ',' : '\n';
  };
  for (std::size_t i = 0; i < n; ++i) put(i, cells.header()[i]);
  for (const auto& row : rows) cells.Row(*row.record, put);
  return out;
}

std::string CompareTable::Markdown() const {
  Cells cells(*this, /*short_ids=*/true, /*escape=*/true);
  const std::size_t n = cells.header().size();
  std::string out;
  auto put = [&](std::size_t i, std::string_view c) {
    out += i == 0 ? "| " : " ";
    out += MarkdownField(std::string(c));
    out += i + 1 < n ? " |" : " |\n";
  };
  for (std::size_t i = 0; i < n; ++i) put(i, cells.header()[i]);
  out += "|";
  for (bool numeric : cells.numeric()) out += numeric ? " ---: |" : " --- |";
  out += "\n";
  for (const auto& row : rows) cells.Row(*row.record, put);
  return out;
}

namespace {

void AppendJsonNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
}

}  // namespace

// Written directly rather than through a JSON document: a table of 10,000
// rows spent more on building the document than on reading the store.
std::string CompareTable::Json() const {
  std::string out = "[";
  out.reserve(rows.size() * 512);
  bool first_row = true;
  for (const Row& row : rows) {
    const ExecutionRecord& r = *row.record;
    out += first_row ? "\n  {" : ",\n  {";
    first_row = false;
    auto key = [&](const char* k) {
      out += "\n    \"";
      out += k;
      out += "\": ";
    };
    key("id");
    AppendJsonString(out, r.id);
    out += ',';
    key("pipeline");
    AppendJsonString(out, r.pipeline);
    out += ',';
    key("stage");
    AppendJsonString(out, r.stage);
    out += ',';
    key("status");
    AppendJsonString(out, ToString(r.status));
    out += ',';
    key("started");
    AppendJsonString(out, FormatIsoUtc(r.started_ms));
    out += ',';
    key("ended");
    if (r.ended_ms) {
      AppendJsonString(out, FormatIsoUtc(*r.ended_ms));
    } else {
      out += "null";
    }
    out += ',';
    key("params");
    out += '{';
    bool first = true;
    for (const std::string& p : params) {
      auto it = r.params.find(p);
      if (it == r.params.end()) continue;
      out += first ? "" : ", ";
      first = false;
      AppendJsonString(out, p);
      out += ": ";
      AppendJsonValue(out, it->second);
    }
    out += "},";
    key("metrics");
    out += '{';
    first = true;
    for (const std::string& m : metrics) {
      std::optional<double> v = Metric(*row.record, m);
      if (!v) continue;
      out += first ? "" : ", ";
      first = false;
      AppendJsonString(out, m);
      out += ": ";
      AppendJsonNumber(out, *v);
    }
    out += "},";
    key("tags");
    out += '{';
    first = true;
    for (const auto& [name, value] : r.tags) {
      out += first ? "" : ", ";
      first = false;
      AppendJsonString(out, name);
      out += ": ";
      AppendJsonString(out, value);
    }
    out += "}\n  }";
  }
  out += rows.empty() ? "]" : "\n]";
  return out;
}

}  // namespace cmf::cli
