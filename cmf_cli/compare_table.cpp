#include "compare_table.h"

#include <fmt/compile.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <variant>

#include "cmf/byte_strings.h"
#include "cmf/clock.h"
#include "json_output.h"

namespace cmf::cli {
namespace {

// A sortable cell: absent, a number or a text.
using SortCell = std::variant<std::monostate, double, std::string>;

SortCell ValueCell(const Value& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v))
    return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
  return std::get<std::string>(v);
}

void AppendCsvField(std::string& out, std::string_view text) {
  if (text.find_first_of(",\"\n\r") == std::string_view::npos) {
    out += text;
    return;
  }
  out += '"';
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

void AppendMarkdownField(std::string& out, std::string_view text) {
  for (char c : text) {
    if (c == '|') out += '\\';
    out += (c == '\n' || c == '\r') ? ' ' : c;
  }
}

}  // namespace

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "nan";
  // As printf's %.6g.
  char text[32];
  auto [end, ec] =
      std::to_chars(text, text + sizeof text, v, std::chars_format::general, 6);
  return ec == std::errc() ? std::string(text, end) : fmt::format("{:.6g}", v);
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

MetricAggregate MetricChoice::Of(const std::string& name) const {
  auto it = how.find(name);
  return it == how.end() ? MetricAggregate::kLast : it->second;
}

std::optional<double> MetricChoice::Value(const ExecutionRecord& r,
                                          const std::string& name) const {
  auto it = r.metric_summaries.find(name);
  if (it == r.metric_summaries.end()) return std::nullopt;
  return Summarise(it->second, Of(name));
}

CompareTable::Column CompareTable::Names::Number(const std::string& name) {
  auto [it, added] =
      numbers.try_emplace(name, static_cast<Column>(names.size()));
  if (added) names.push_back(name);
  return it->second;
}

std::optional<CompareTable::Column> CompareTable::Names::Find(
    const std::string& name) const {
  auto it = numbers.find(name);
  if (it == numbers.end()) return std::nullopt;
  return it->second;
}

void CompareTable::Add(ExecutionRecord&& r) {
  Row& row = rows_.emplace_back();
  row.id = std::move(r.id);
  row.pipeline = texts_.Number(r.pipeline);
  row.stage = texts_.Number(r.stage);
  row.status = r.status;
  row.started_ms = r.started_ms;
  row.ended_ms = r.ended_ms;
  row.params.reserve(r.params.size());
  for (auto& [name, value] : r.params) {
    row.params.emplace_back(param_names_.Number(name), std::move(value));
  }
  row.metrics.reserve(r.metric_summaries.size());
  for (const auto& [name, summary] : r.metric_summaries) {
    const Column c = metric_names_.Number(name);
    if (c == metric_how_.size()) metric_how_.push_back(choice_.Of(name));
    row.metrics.emplace_back(c, Summarise(summary, metric_how_[c]));
  }
  row.tags.assign(std::make_move_iterator(r.tags.begin()),
                  std::make_move_iterator(r.tags.end()));
}

const Value* CompareTable::Param(const Row& r, Column c) const {
  for (const auto& [column, value] : r.params) {
    if (column == c) return &value;
  }
  return nullptr;
}

const double* CompareTable::MetricCell(const Row& r, Column c) const {
  for (const auto& [column, value] : r.metrics) {
    if (column == c) return &value;
  }
  return nullptr;
}

void CompareTable::AddPage(std::vector<ExecutionRecord>& page) {
  for (ExecutionRecord& r : page) Add(std::move(r));
}

void CompareTable::Truncate(std::size_t n) {
  if (rows_.size() > n)
    rows_.erase(rows_.begin() + static_cast<std::ptrdiff_t>(n), rows_.end());
}

void CompareTable::Sort(const SortKey& key, bool descending) {
  std::optional<Column> column;
  if (key.field == SortKey::Field::kParam) column = param_names_.Find(key.name);
  if (key.field == SortKey::Field::kMetric)
    column = metric_names_.Find(key.name);
  auto cell = [&](const Row& r) -> SortCell {
    switch (key.field) {
      case SortKey::Field::kParam: {
        const Value* v = column ? Param(r, *column) : nullptr;
        if (v == nullptr) return std::monostate{};
        return ValueCell(*v);
      }
      case SortKey::Field::kMetric: {
        const double* v = column ? MetricCell(r, *column) : nullptr;
        if (v == nullptr || std::isnan(*v)) return std::monostate{};
        return *v;
      }
      case SortKey::Field::kTag: {
        for (const auto& [name, value] : r.tags) {
          if (name == key.name) return value;
        }
        return std::monostate{};
      }
      case SortKey::Field::kStarted:
        return static_cast<double>(r.started_ms);
      case SortKey::Field::kStage:
        return texts_.names[r.stage];
      case SortKey::Field::kStatus:
        return std::string(ToString(r.status));
      case SortKey::Field::kId:
        return r.id;
    }
    return std::monostate{};
  };
  std::vector<std::pair<SortCell, std::size_t>> keyed;
  keyed.reserve(rows_.size());
  for (std::size_t i = 0; i < rows_.size(); ++i)
    keyed.emplace_back(cell(rows_[i]), i);
  std::stable_sort(
      keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
        const bool a_none = a.first.index() == 0, b_none = b.first.index() == 0;
        if (a_none || b_none) return !a_none && b_none;  // absent values last
        // Numbers before texts; within a kind, by value.
        if (a.first.index() != b.first.index())
          return (a.first.index() < b.first.index()) != descending;
        return descending ? b.first < a.first : a.first < b.first;
      });
  std::vector<Row> sorted;
  sorted.reserve(rows_.size());
  for (const auto& [c, i] : keyed) sorted.push_back(std::move(rows_[i]));
  rows_ = std::move(sorted);
}

void CompareTable::Columns(bool only_changed) {
  // Every name some row has (not one only rows cut off by -n had), in name
  // order.
  std::vector<bool> has_param(param_names_.names.size()),
      has_metric(metric_names_.names.size());
  for (const Row& r : rows_) {
    for (const auto& [c, v] : r.params) has_param[c] = true;
    for (const auto& [c, v] : r.metrics) has_metric[c] = true;
  }
  auto by_name = [](const Names& n, const std::vector<bool>& has) {
    std::vector<Column> columns;
    for (Column c = 0; c < has.size(); ++c) {
      if (has[c]) columns.push_back(c);
    }
    std::sort(columns.begin(), columns.end(),
              [&](Column a, Column b) { return n.names[a] < n.names[b]; });
    return columns;
  };
  params_ = by_name(param_names_, has_param);
  metrics_ = by_name(metric_names_, has_metric);
  if (!only_changed || rows_.size() < 2) return;
  std::erase_if(params_, [&](Column c) {
    const Value* first = Param(rows_.front(), c);
    return std::all_of(rows_.begin(), rows_.end(), [&](const Row& r) {
      const Value* v = Param(r, c);
      return (v == nullptr) == (first == nullptr) && (!v || *v == *first);
    });
  });
  std::erase_if(metrics_, [&](Column c) {
    const double* first = MetricCell(rows_.front(), c);
    return std::all_of(rows_.begin(), rows_.end(), [&](const Row& r) {
      const double* v = MetricCell(r, c);
      if ((v == nullptr) != (first == nullptr)) return false;
      return !v || *v == *first || (std::isnan(*v) && std::isnan(*first));
    });
  });
}

// What each output writes: the header, which columns are numbers, and each
// row's cells handed to a callback one at a time (no table of strings is
// built: on 10,000 rows its allocations cost more than the store's reads).
class CompareTable::Cells {
 public:
  Cells(const CompareTable& t, bool short_ids, bool escape)
      : t_(t), short_ids_(short_ids), escape_(escape) {
    header_ = {"id", "pipeline", "stage", "status", "started"};
    numeric_.assign(header_.size(), false);
    for (Column p : t.params_) {
      header_.push_back("params." + t.param_names_.names[p]);
      numeric_.push_back(false);
    }
    for (Column m : t.metrics_) {
      std::string name = "metrics." + t.metric_names_.names[m];
      if (t.metric_how_[m] != MetricAggregate::kLast) {
        name += ':';
        name += ToString(t.metric_how_[m]);
      }
      header_.push_back(std::move(name));
      numeric_.push_back(true);
    }
  }

  const std::vector<std::string>& header() const { return header_; }
  const std::vector<bool>& numeric() const { return numeric_; }

  // Calls EMIT(column, text) for each cell of ROW; an absent value is "-".
  template <typename F>
  void ForEachCell(const Row& r, F&& emit) {
    std::size_t col = 0;
    // The short form of an id (ShortId: its last 12 digits) where asked.
    std::string_view id = r.id;
    if (short_ids_ && id.size() == 36) id.remove_prefix(36 - kShortIdLength);
    emit(col++, id);
    emit(col++, Text(t_.texts_.names[r.pipeline]));
    emit(col++, Text(t_.texts_.names[r.stage]));
    emit(col++, ToString(r.status));
    emit(col++, std::string_view(FormatIsoUtc(r.started_ms)));
    for (Column p : t_.params_) {
      const Value* v = t_.Param(r, p);
      if (v == nullptr) {
        emit(col++, "-");
      } else {
        scratch_ = ToText(*v);
        emit(col++, Text(scratch_));
      }
    }
    for (Column m : t_.metrics_) {
      const double* v = t_.MetricCell(r, m);
      if (v == nullptr) {
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
  bool short_ids_;
  bool escape_;
  std::vector<std::string> header_;
  std::vector<bool> numeric_;
  std::string scratch_, number_, shown_;
};

namespace {

// Output leaves in pieces of about 64 KiB: a table of ten thousand rows is
// never held whole (its pages, first touched, cost more than writing it).
void Spill(std::string& out, std::FILE* file, bool last = false) {
  if (out.size() < (1u << 16) && !last) return;
  std::fwrite(out.data(), 1, out.size(), file);
  out.clear();
}

void AppendJsonNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  // The shortest text that reads back as V (a compiled format: twice as fast
  // as std::to_chars here, and 70,000 numbers in a 10,000-row table).
  char text[32];
  out.append(text, fmt::format_to(text, FMT_COMPILE("{}"), v));
}

}  // namespace

void CompareTable::WriteText(std::FILE* file) const {
  Cells cells(*this, /*short_ids=*/true, /*escape=*/true);
  const std::size_t n = cells.header().size();
  std::vector<std::size_t> width(n);
  for (std::size_t i = 0; i < n; ++i) width[i] = cells.header()[i].size();
  // Every cell twice: once for the widths, once to write it.
  for (const Row& row : rows_) {
    cells.ForEachCell(row, [&](std::size_t i, std::string_view c) {
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
  for (const Row& row : rows_) {
    cells.ForEachCell(row, put);
    Spill(out, file);
  }
  Spill(out, file, /*last=*/true);
}

void CompareTable::WriteCsv(std::FILE* file) const {
  Cells cells(*this, /*short_ids=*/false, /*escape=*/false);
  const std::size_t n = cells.header().size();
  std::string out;
  auto put = [&](std::size_t i, std::string_view c) {
    // CSV: an empty field is no value.
    if (c != "-" || i < 5) AppendCsvField(out, c);
    out += i + 1 < n ? ',' : '\n';
  };
  for (std::size_t i = 0; i < n; ++i) put(i, cells.header()[i]);
  for (const Row& row : rows_) {
    cells.ForEachCell(row, put);
    Spill(out, file);
  }
  Spill(out, file, /*last=*/true);
}

void CompareTable::WriteMarkdown(std::FILE* file) const {
  Cells cells(*this, /*short_ids=*/true, /*escape=*/true);
  const std::size_t n = cells.header().size();
  std::string out;
  auto put = [&](std::size_t i, std::string_view c) {
    out += i == 0 ? "| " : " ";
    AppendMarkdownField(out, c);
    out += i + 1 < n ? " |" : " |\n";
  };
  for (std::size_t i = 0; i < n; ++i) put(i, cells.header()[i]);
  out += "|";
  for (bool numeric : cells.numeric()) out += numeric ? " ---: |" : " --- |";
  out += "\n";
  for (const Row& row : rows_) {
    cells.ForEachCell(row, put);
    Spill(out, file);
  }
  Spill(out, file, /*last=*/true);
}

// Written directly rather than through a JSON document: a table of 10,000
// rows spent more on building the document than on reading the store.
void CompareTable::WriteJson(std::FILE* file) const {
  // Each name in its JSON form once, not once per row.
  auto quoted = [](const std::vector<std::string>& names, const char* after) {
    std::vector<std::string> out(names.size());
    for (std::size_t i = 0; i < names.size(); ++i) {
      AppendJsonString(out[i], names[i]);
      out[i] += after;
    }
    return out;
  };
  const std::vector<std::string> texts = quoted(texts_.names, ",");
  const std::vector<std::string> param_keys = quoted(param_names_.names, ": ");
  const std::vector<std::string> metric_keys =
      quoted(metric_names_.names, ": ");
  std::string out = "[";
  bool first_row = true;
  for (const Row& r : rows_) {
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
    out += texts[r.pipeline];
    key("stage");
    out += texts[r.stage];
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
    for (Column p : params_) {
      const Value* v = Param(r, p);
      if (v == nullptr) continue;
      out += first ? "" : ", ";
      first = false;
      out += param_keys[p];
      AppendJsonValue(out, *v);
    }
    out += "},";
    key("metrics");
    out += '{';
    first = true;
    for (Column m : metrics_) {
      const double* v = MetricCell(r, m);
      if (v == nullptr) continue;
      out += first ? "" : ", ";
      first = false;
      out += metric_keys[m];
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
    Spill(out, file);
  }
  out += rows_.empty() ? "]\n" : "\n]\n";
  Spill(out, file, /*last=*/true);
}

}  // namespace cmf::cli
