#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cmf/clock.h"
#include "json_output.h"

using namespace cmf;
using nlohmann::json;

namespace {

ExecutionRecord Sample(int i) {
  ExecutionRecord r;
  r.id = NewUuidV7(1'700'000'000'000 + i).value();
  r.pipeline = "ALDKL";
  r.stage = "train";
  r.command = {"./train", "--name", "it's \"quoted\"\n"};
  r.params = {
      {"lr", 0.01}, {"epochs", std::int64_t{3}}, {"tag", std::string("a")}};
  r.started_ms = 1'700'000'000'123;
  r.ended_ms = r.started_ms + 10;
  r.exit_code = 0;
  r.status = ExecStatus::kOk;
  r.outputs = {{"model.pt", std::string(64, 'f'), 12, ArtifactKind::kModel}};
  return r;
}

}  // namespace

TEST_CASE("json: an execution has the contract's keys and types") {
  json j = json::parse(ExecutionJson(Sample(0)));
  for (const char* key :
       {"id", "pipeline", "stage", "command", "status", "exit_code", "started",
        "ended", "params", "code", "inputs", "outputs"}) {
    CHECK(j.contains(key));
  }
  CHECK(j["started"] == "2023-11-14T22:13:20.123Z");
  CHECK(j["params"]["lr"] == 0.01);
  CHECK(j["params"]["epochs"] == 3);
  CHECK(j["code"].is_null());
  CHECK(j["outputs"][0] == json{{"path", "model.pt"},
                                {"hash", std::string(64, 'f')},
                                {"size", 12},
                                {"kind", "model"}});
  CHECK(j["command"][2] == "it's \"quoted\"\n");
}

TEST_CASE("json: a running execution has null exit_code and ended") {
  ExecutionRecord r = Sample(0);
  r.status = ExecStatus::kRunning;
  r.exit_code.reset();
  r.ended_ms.reset();
  json j = json::parse(ExecutionJson(r));
  CHECK(j["status"] == "running");
  CHECK(j["exit_code"].is_null());
  CHECK(j["ended"].is_null());
}

TEST_CASE(
    "json: the paged writer prints exactly what the one-shot form prints") {
  std::vector<ExecutionRecord> all = {Sample(0), Sample(1), Sample(2)};
  ExecutionsJsonWriter writer;
  std::string paged = writer.Begin();
  paged += writer.Add({all[0], all[1]});
  paged += writer.Add({all[2]});
  paged += writer.End();
  CHECK(paged == ExecutionsJson(all));
  ExecutionsJsonWriter empty;
  CHECK(empty.Begin() + empty.End() == ExecutionsJson({}));
}

TEST_CASE("json: metrics are [step, value] pairs with NaN as null") {
  MetricSeries s = {{"loss", {{0, 1.5}, {1, NAN}}}};
  CHECK(json::parse(MetricsJson(s)) ==
        json{{"series", {{"loss", {{0, 1.5}, {1, nullptr}}}}}});
}

TEST_CASE(
    "json: a listing writes each execution exactly as ExecutionJson does") {
  std::vector<ExecutionRecord> records;
  ExecutionRecord plain = Sample(1);
  records.push_back(plain);
  ExecutionRecord odd = Sample(2);
  odd.command.clear();
  odd.params.clear();
  odd.params["flag"] = true;
  odd.params["ratio"] = 1.0 / 3.0;
  odd.properties["note"] =
      std::string("tab\there, bell\a, back\\slash, \xce\xbc-m\xc3\xa9tre");
  odd.code = CodeVersion{std::string(40, 'a'), true, "/home/sci/\"repo\""};
  odd.message = "ctrl \x01 and newline\n";
  odd.inputs = {{"r\xc3\xa9sum\xc3\xa9.h5", std::string(64, 'e'), 1,
                 ArtifactKind::kDataset}};
  odd.ended_ms.reset();
  odd.exit_code.reset();
  records.push_back(odd);
  ExecutionsJsonWriter writer;
  std::string listing = writer.Begin();
  listing += writer.Add(records);
  listing += writer.End();
  std::string expected = "[";
  for (std::size_t i = 0; i < records.size(); ++i) {
    std::string one = ExecutionJson(records[i]);
    expected += i ? ",\n  " : "\n  ";
    for (char c : one) {
      expected += c;
      if (c == '\n') expected += "  ";
    }
  }
  expected += "\n]";
  CHECK(listing == expected);
  CHECK(json::parse(listing).size() == 2);
}
