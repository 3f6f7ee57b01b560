#include <fmt/format.h>

#include <optional>

#include "../json_output.h"
#include "../verb.h"

namespace cmf::cli {
namespace {

// NAME as a CSV field: quoted when it holds a comma, a quote or a line break.
std::string CsvField(const std::string& name) {
  if (name.find_first_of(",\"\n\r") == std::string::npos) return name;
  std::string out = "\"";
  for (char c : name) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

class MetricsVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("id", id_, "Execution id, or any unique prefix of it")
        ->required();
    app.add_option("--series", series_, "Only this series");
    auto* json = app.add_flag(
        "--json", json_, "Print {\"series\": {NAME: [[step, value], ...]}}");
    auto* csv = app.add_flag("--csv", csv_, "Print CSV: series,step,value");
    json->excludes(csv);
  }

  int Run(Context& ctx) override {
    Store& store = ctx.repo->store();
    Result<std::string> id = store.ResolveExecution(id_);
    if (!id.ok()) return Fail(id.status());
    Result<MetricSeries> series = store.GetMetrics(*id, series_);
    if (!series.ok()) return Fail(series.status());
    if (json_) {
      fmt::print("{}\n", MetricsJson(*series));
      return kExitOk;
    }
    std::string out;
    if (csv_) {
      out = "series,step,value\n";
      for (const auto& [name, points] : *series) {
        for (const MetricPoint& p : points) {
          out += fmt::format("{},{},{}\n", CsvField(name), p.step, p.value);
        }
      }
    } else {
      for (const auto& [name, points] : *series) {
        out += fmt::format("{}{} ({} steps)\n", out.empty() ? "" : "\n", name,
                           points.size());
        for (const MetricPoint& p : points)
          out += fmt::format("  {:>8}  {}\n", p.step, p.value);
      }
    }
    fmt::print("{}", out);
    return kExitOk;
  }

 private:
  std::string id_;
  std::optional<std::string> series_;
  bool json_ = false;
  bool csv_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeMetricsVerb() {
  return std::make_unique<MetricsVerb>();
}

}  // namespace cmf::cli
