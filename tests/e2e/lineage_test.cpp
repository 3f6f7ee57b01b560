// cmf lineage and cmf query, end to end.
#include <doctest/doctest.h>

#include <set>

#include "e2e/workspace.h"
#include "support.h"

using cmf::test::IsError;
using cmf::test::Outcome;
using cmf::test::Workspace;
using cmf::test::WriteFile;
using nlohmann::json;

namespace {

// acquire -> raw.csv -> prepare -> patches.csv -> train -> model.pt
struct Pipeline : Workspace {
  Pipeline() {
    Run({"exec", "-q", "--stage", "acquire", "--out", "raw.csv", "--", "sh",
         "-c", "echo raw > raw.csv"});
    Run({"exec", "-q", "--stage", "prepare", "--in", "raw.csv", "--out",
         "patches.csv", "--", "sh", "-c", "echo patches > patches.csv"});
    Run({"exec", "-q", "--stage", "train", "-p", "lr=0.01", "--in",
         "patches.csv", "--out", "model.pt", "--", "sh", "-c",
         "echo weights > model.pt"});
  }
  void Run(const std::vector<std::string>& args) {
    Outcome o = (*this)(args);
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
  }
};

std::set<std::string> Types(const json& graph, const std::string& type) {
  std::set<std::string> out;
  for (const auto& n : graph["nodes"]) {
    if (n["type"] == type) {
      out.insert(type == "artifact" ? n["paths"][0].get<std::string>()
                                    : n["stage"].get<std::string>());
    }
  }
  return out;
}

}  // namespace

TEST_CASE(
    "lineage: up from a model is every execution and input that made it") {
  Pipeline w;
  json g = w.Json({"lineage", "model.pt", "--json"});
  CHECK(Types(g, "execution") ==
        std::set<std::string>{"acquire", "prepare", "train"});
  CHECK(Types(g, "artifact") ==
        std::set<std::string>{"model.pt", "patches.csv", "raw.csv"});
  CHECK(g["nodes"][0]["paths"][0] == "model.pt");  // the target first
  CHECK(g["nodes"][0]["depth"] == 0);
  std::multiset<std::string> types;
  for (const auto& e : g["edges"]) types.insert(e["type"]);
  CHECK(types.count("input") == 2);
  CHECK(types.count("output") == 3);
  for (const auto& n : g["nodes"]) {
    if (n["type"] == "execution") {
      CHECK(n.contains("pipeline"));
      CHECK(n["started"].get<std::string>().size() >= 20);
      CHECK(n["depth"].get<int>() < 0);
    } else {
      CHECK(n["hash"].get<std::string>().size() == 64);
      CHECK(n.contains("kind"));
    }
  }

  json near = w.Json({"lineage", "model.pt", "--depth", "1", "--json"});
  CHECK(Types(near, "execution") == std::set<std::string>{"train"});
  CHECK(Types(near, "artifact") == std::set<std::string>{"model.pt"});

  Outcome text = w({"lineage", "model.pt"});
  CHECK(text.exit_code == 0);
  CHECK(text.out.find("made by") != std::string::npos);
  CHECK(text.out.find("input patches.csv") != std::string::npos);
  Outcome dot = w({"lineage", "model.pt", "--format", "dot"});
  CHECK(dot.out.rfind("digraph lineage {", 0) == 0);
  CHECK(dot.out.find("->") != std::string::npos);
}

TEST_CASE("lineage: down, both ways, and every kind of target") {
  Pipeline w;
  json down = w.Json({"lineage", "raw.csv", "--down", "--json"});
  CHECK(Types(down, "execution") == std::set<std::string>{"prepare", "train"});
  CHECK(Types(down, "artifact") ==
        std::set<std::string>{"model.pt", "patches.csv", "raw.csv"});
  json both = w.Json(
      {"lineage", "patches.csv", "--up", "--down", "--depth", "1", "--json"});
  CHECK(Types(both, "execution") == std::set<std::string>{"prepare", "train"});

  // By hash prefix and by execution id prefix.
  std::string hash = down["nodes"][0]["hash"];
  CHECK(w.Json({"lineage", hash.substr(0, 10), "--json"})["root"] == hash);
  std::string train;
  for (const auto& e : w.Log()) {
    if (e["stage"] == "train") train = e["id"];
  }
  json from_exec = w.Json({"lineage", train.substr(0, 13), "--json"});
  CHECK(from_exec["root"] == train);
  CHECK(Types(from_exec, "execution").count("acquire") == 1);

  CHECK(IsError(w({"lineage", "nothing-here.txt"}), "no recorded path"));
  CHECK(w({"lineage", "model.pt", "--format", "png"}).exit_code == 2);

  // Output that cannot be written is an error, not a silent success.
  Outcome full = cmf::test::RunProcess(
      {"sh", "-c", "exec \"$0\" lineage raw.csv --down --json > /dev/full",
       cmf::test::CmfBinary()},
      w.dir.path());
  CHECK(full.exit_code == 1);
  CHECK(full.err.find("cannot write the lineage") != std::string::npos);
}

TEST_CASE("query: executions by stage, date and value; artifacts by kind") {
  Pipeline w;
  json train = w.Json({"query", "executions", "--stage", "train", "--json"});
  REQUIRE(train.size() == 1);
  CHECK(train[0]["params"]["lr"] == "0.01");
  CHECK(
      w.Json({"query", "executions", "--where", "lr=0.01", "--json"}).size() ==
      1);
  CHECK(
      w.Json({"query", "executions", "--where", "lr=0.02", "--json"}).empty());
  CHECK(w.Json({"query", "executions", "--since", "2000-01-01", "--json"})
            .size() == 3);
  CHECK(w.Json({"query", "executions", "--since", "2999-01-01", "--json"})
            .empty());
  CHECK(w.Json({"query", "executions", "--until", "2000-01-01T00:00:00Z",
                "--json"})
            .empty());
  CHECK(w.Json({"query", "executions", "-n", "2", "--json"}).size() == 2);
  Outcome bad = w({"query", "executions", "--since", "yesterday"});
  CHECK(bad.exit_code == 2);
  CHECK(IsError(bad, "not a date"));
  CHECK(w({"query", "executions", "--where", "lr"}).exit_code == 2);
  CHECK(w({"query"}).exit_code == 2);

  // The three the runs used and made, and the environment they ran in.
  json all = w.Json({"query", "artifacts", "--json"});
  CHECK(all.size() == 4);
  json models = w.Json({"query", "artifacts", "--kind", "model", "--json"});
  REQUIRE(models.size() == 1);
  CHECK(models[0]["paths"][0] == "model.pt");
  CHECK(models[0]["size"] == 8);
}

TEST_CASE(
    "lineage: --format svg draws every node and edge with Graphviz; names "
    "from outside stay text") {
  Pipeline w;
  // A file name that is markup, and one that is not UTF-8, as the input and
  // output of one more run.
  const std::string markup = "<script>alert(1)</script>&.csv";
  const std::string latin1 = "caf\xe9.csv";
  WriteFile(w / markup, "x\n");
  w.Run({"exec", "-q", "--stage", "<b>bold&", "--in", markup, "--in",
         "model.pt", "--out", latin1, "--", "sh", "-c", "echo y > \"$1\"", "sh",
         latin1});
  json g = w.Json({"lineage", latin1, "--json"});
  Outcome svg = w({"lineage", latin1, "--format", "svg"});
  INFO(svg.err);
  REQUIRE(svg.exit_code == 0);
  CHECK(svg.out.rfind("<?xml", 0) == 0);
  CHECK(svg.out.find("</svg>") != std::string::npos);
  // A <g class="node"> for each node, titled with its full id or hash; a
  // <g class="edge"> for each edge.
  auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = svg.out.find(what); at != std::string::npos;
         at = svg.out.find(what, at + 1)) {
      ++n;
    }
    return n;
  };
  CHECK(count("class=\"node\"") == g["nodes"].size());
  CHECK(count("class=\"edge\"") == g["edges"].size());
  for (const auto& n : g["nodes"]) {
    std::string id = n["id"];
    std::string shown;  // Graphviz writes '-' as &#45;
    for (char c : id)
      shown += c == '-' ? std::string("&#45;") : std::string(1, c);
    CHECK(svg.out.find("<title>" + shown + "</title>") != std::string::npos);
  }
  // Markup from a file name or a stage name is escaped text, never markup;
  // a byte that is not UTF-8 is shown as \xe9.
  CHECK(svg.out.find("<script") == std::string::npos);
  CHECK(svg.out.find("<b>") == std::string::npos);
  CHECK(svg.out.find("&lt;b&gt;bold&amp;") != std::string::npos);
  CHECK(svg.out.find("&lt;script&gt;alert(1)&lt;/script&gt;&amp;.csv") !=
        std::string::npos);
  CHECK(svg.out.find("\\xe9") != std::string::npos);
  CHECK(svg.out.find('\xe9') == std::string::npos);

  // Without the Graphviz module: a clear error, nothing on stdout.
  w.env["CMF_GRAPHVIZ_MODULE"] = (w / "no-such-module.so").string();
  Outcome missing = w({"lineage", "model.pt", "--format", "svg"});
  CHECK(missing.exit_code == 1);
  CHECK(IsError(missing, "Graphviz support is not installed"));
  CHECK(missing.out.empty());
}
