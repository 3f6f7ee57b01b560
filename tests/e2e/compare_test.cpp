// cmf compare, diff and tag, and --where on log and query, through the real
// binary.
#include <doctest/doctest.h>

#include "workspace.h"

using namespace cmf::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Records a run of STAGE with parameters lr and acquisition whose series rmse
// steps through VALUES.
std::string Train(const Workspace& w, const std::string& lr,
                  const std::string& acquisition,
                  const std::vector<double>& values,
                  const std::string& stage = "dkl-al") {
  std::string script;
  for (std::size_t i = 0; i < values.size(); ++i) {
    script += "echo 'rmse " + std::to_string(i) + " " +
              std::to_string(values[i]) + "' >&$CMF_METRICS_FD; ";
  }
  Outcome o = w({"exec", "-q", "--stage", stage, "-p", "lr=" + lr, "-p",
                 "acquisition=" + acquisition, "--", "sh", "-c", script});
  Ok(o);
  return w.Log()[0]["id"];
}

}  // namespace

TEST_CASE("compare: a row per execution, summaries, filters and formats") {
  Workspace w;
  const std::string a = Train(w, "0.01", "ei", {0.3, 0.1, 0.02});
  const std::string b = Train(w, "0.02", "ei", {0.4, 0.2, 0.05});
  const std::string c = Train(w, "0.02", "ucb", {0.5, 0.01, 0.03});
  Train(w, "0.5", "ei", {1.0}, "other");

  json rows = w.Json({"compare", "--stage", "dkl-al", "--json"});
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["id"] == c);  // newest first
  CHECK(rows[2]["metrics"]["rmse"].get<double>() == doctest::Approx(0.02));
  CHECK(rows[2]["params"]["acquisition"] == "ei");

  // The published kind of question: which ei run ended below 0.04?
  rows =
      w.Json({"compare", "--where",
              "metrics.rmse < 0.04 and params.acquisition = 'ei'", "--json"});
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["id"] == a);
  // --metric: the best value of the series instead of its last.
  rows = w.Json({"compare", "--stage", "dkl-al", "--metric", "rmse=min",
                 "--sort-by", "metrics.rmse", "--json"});
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["id"] == c);
  CHECK(rows[0]["metrics"]["rmse"].get<double>() == doctest::Approx(0.01));
  CHECK(rows[2]["id"] == b);
  rows = w.Json({"compare", "--stage", "dkl-al", "--sort-by", "params.lr",
                 "--sort-order", "desc", "--json"});
  CHECK(rows[2]["id"] == a);
  // -n with --sort-by: the first N of every row sorted, not of the newest N.
  rows = w.Json({"compare", "--stage", "dkl-al", "--metric", "rmse=min",
                 "--sort-by", "metrics.rmse", "--sort-order", "desc", "-n", "1",
                 "--json"});
  REQUIRE(rows.size() == 1);
  CHECK(rows[0]["id"] == b);
  // Without, the newest N.
  Outcome newest = w({"compare", "-n", "1", "--csv"});
  Ok(newest);
  CHECK(newest.out.find(",other,") != std::string::npos);
  // Named executions, in the order named; --only-changed drops what is equal.
  rows = w.Json({"compare", a, b, "--only-changed", "--json"});
  REQUIRE(rows.size() == 2);
  CHECK(rows[0]["id"] == a);
  CHECK(rows[0]["params"].contains("lr"));
  CHECK_FALSE(rows[0]["params"].contains("acquisition"));

  Outcome text = w({"compare", "--stage", "dkl-al"});
  Ok(text);
  CHECK(text.out.find("params.lr") != std::string::npos);
  CHECK(text.out.find("metrics.rmse") != std::string::npos);
  Outcome csv = w({"compare", a, "--csv"});
  Ok(csv);
  CHECK(csv.out.rfind("id,pipeline,stage,status,started,params.acquisition,"
                      "params.lr,metrics.rmse\n" +
                          a + ",",
                      0) == 0);
  Outcome md = w({"compare", a, "--md"});
  Ok(md);
  CHECK(md.out.find("| --- |") != std::string::npos);

  // Bad input is a usage error that says where.
  Outcome bad = w({"compare", "--where", "metrics.rmse <"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("cmf: error: --where: expected a value") == 0);
  CHECK(bad.err.find("at character 15") != std::string::npos);
  CHECK(w({"compare", "--sort-by", "colour"}).exit_code == 2);
  CHECK(w({"compare", "--metric", "rmse=median"}).exit_code == 2);
  CHECK(w({"compare", "ffffffff"}).exit_code == 1);

  // A column only rows cut off by -n had is left out.
  Ok(w({"exec", "-q", "--stage", "dkl-al", "-p", "extra=7", "--", "true"}));
  Outcome top = w({"compare", "--stage", "dkl-al", "--sort-by", "params.lr",
                   "-n", "1", "--csv"});
  Ok(top);
  CHECK(top.out.find("params.extra") == std::string::npos);
  CHECK(top.out.find(a) != std::string::npos);
  CHECK(w({"compare", "--stage", "dkl-al", "--csv"}).out.find("params.extra") !=
        std::string::npos);
}

TEST_CASE("log and query executions take --where; query keeps NAME=VALUE") {
  Workspace w;
  const std::string a = Train(w, "0.01", "ei", {0.3, 0.02});
  Train(w, "0.02", "ucb", {0.4, 0.2});
  json log = w.Json({"log", "--json", "--where", "metrics.rmse < 0.1"});
  REQUIRE(log.size() == 1);
  CHECK(log[0]["id"] == a);
  json q =
      w.Json({"query", "executions", "--where", "acquisition=ei", "--json"});
  REQUIRE(q.size() == 1);  // the older form: a parameter with that value
  CHECK(q[0]["id"] == a);
  q = w.Json({"query", "executions", "--where", "params.lr >= 0.01", "--where",
              "status = ok", "-n", "1", "--json"});
  CHECK(q.size() == 1);
  CHECK(w({"log", "--where", "acquisition=ei"}).exit_code == 2);
}

TEST_CASE("diff: a changed parameter, metric and environment") {
  Workspace w;
  // A Python folder on PYTHONPATH: upgrading a distribution in it between
  // two runs changes their environments.
  fs::create_directories(w / "py" / "numpy-1.24.2.dist-info");
  w.env["PYTHONPATH"] = (w / "py").string();
  const std::string a = Train(w, "0.01", "ei", {0.3, 0.02});
  fs::rename(w / "py" / "numpy-1.24.2.dist-info",
             w / "py" / "numpy-1.26.4.dist-info");
  const std::string b = Train(w, "0.05", "ei", {0.3, 0.05});

  json d = w.Json({"diff", a, b, "--json"});
  CHECK(d["a"] == a);
  CHECK(d["params"]["lr"]["old"] == "0.01");
  CHECK(d["params"]["lr"]["new"] == "0.05");
  CHECK_FALSE(d["params"].contains("acquisition"));  // equal: left out
  CHECK(d["metrics"]["rmse"]["change"].get<double>() == doctest::Approx(0.03));
  CHECK(d["environment"]["old"] != d["environment"]["new"]);
  CHECK(d["environment"]["complete"] == true);
  CHECK(d["environment"]["packages"]["python numpy"]["old"] == "1.24.2");
  CHECK(d["environment"]["packages"]["python numpy"]["new"] == "1.26.4");
  CHECK(d["environment"]["packages"].size() == 1);

  Outcome text = w({"diff", a, b});
  Ok(text);
  CHECK(text.out.find("lr: 0.01 -> 0.05") != std::string::npos);
  CHECK(text.out.find("rmse: 0.02 -> 0.05 (+0.03)") != std::string::npos);
  CHECK(text.out.find("python numpy: 1.24.2 -> 1.26.4") != std::string::npos);

  // Two runs of one environment share its artifact.
  const std::string c = Train(w, "0.05", "ei", {0.3, 0.05});
  json same = w.Json({"diff", b, c, "--json"});
  CHECK(same["environment"]["old"] == same["environment"]["new"]);
  CHECK(same["params"].empty());
  CHECK(same["metrics"].empty());
  Outcome nothing = w({"diff", b, c});
  CHECK(nothing.out.find("No differences") != std::string::npos);
  // gc keeps the descriptions the executions name.
  Ok(w({"gc", "--force"}));
  CHECK(w.Json({"diff", a, b, "--json"})["environment"]["complete"] == true);
  CHECK(w({"diff", a}).exit_code == 2);
  CHECK(w({"diff", a, "0000"}).exit_code == 1);
}

TEST_CASE("tag: tags are facts that travel by push and pull, and aliases") {
  TempDir remotes;
  Ok(Cmf({"init", "--bare", (remotes / "hub").string()}, remotes.path()));
  Workspace edge, hpc;
  Ok(edge({"remote", "add", "hub", (remotes / "hub").string()}));
  Ok(hpc({"remote", "add", "hub", (remotes / "hub").string()}));
  Produce(hpc, "meta.pt", "meta-model weights\n", "reptile");
  const std::string run = hpc.Log()[0]["id"];
  Ok(hpc({"tag", "meta.pt", "deployed=microscope-2"}));
  Ok(hpc({"tag", run, "reviewed"}));
  json tags = hpc.Json({"tag", run, "--json"});
  CHECK(tags == json{{"reviewed", ""}});
  Ok(hpc({"commit", "-q", "-m", "meta-model"}));
  Ok(hpc({"push", "-q", "hub"}));
  Ok(edge({"pull", "-q", "hub"}));

  // The alias resolves at the edge to the artifact and its lineage.
  json shown =
      edge.Json({"show", "--artifact", "@deployed=microscope-2", "--json"});
  CHECK(shown["kind"] == "model");
  CHECK(shown["tags"]["deployed"] == "microscope-2");
  CHECK(shown["lineage"]["nodes"].size() >= 2);
  json q = edge.Json({"compare", "--where", "tags.reviewed = ''", "--json"});
  REQUIRE(q.size() == 1);
  CHECK(q[0]["id"] == run);
  CHECK(edge.Json({"show", run, "--json"})["tags"]["reviewed"] == "");

  // The edge moves the tag away; the hub learns it, newest wins.
  Ok(edge({"tag", "-d", "@deployed=microscope-2", "deployed"}));
  Ok(edge({"commit", "-q", "-m", "retire"}));
  Ok(edge({"push", "-q", "hub"}));
  Ok(hpc({"pull", "-q", "hub"}));
  Outcome gone = hpc({"show", "--artifact", "@deployed=microscope-2"});
  CHECK(gone.exit_code == 1);
  CHECK(gone.err.find("no execution or artifact is tagged") !=
        std::string::npos);

  CHECK(hpc({"tag", run, "-d", "never-set"}).exit_code == 1);
  CHECK(hpc({"tag", "-d", run}).exit_code == 2);
  CHECK(hpc({"tag", "no-such-thing", "x=1"}).exit_code == 1);
}

TEST_CASE("diff: two commits of the log, by what each one's records say") {
  Workspace w;
  const std::string a_run = Train(w, "0.01", "ei", {0.3});
  const std::string first = w.Json({"commit", "--json"})["commit"];
  const std::string b_run = Train(w, "0.02", "ucb", {0.2, 0.1});
  Ok(w({"tag", a_run, "baseline"}));
  const std::string second = w.Json({"commit", "--json"})["commit"];

  json d = w.Json({"diff", first, second, "--json"});
  CHECK(d["a"] == first);
  CHECK(d["b"] == second);
  const json& added = d["only_in_b"];
  CHECK(added["segments"] == 1);
  REQUIRE(added["executions"].size() == 1);
  CHECK(added["executions"][0]["id"] == b_run);
  CHECK(added["executions"][0]["params"]["acquisition"] == "ucb");
  REQUIRE(added["tags"].size() == 1);
  CHECK(added["tags"][0]["target"] == a_run);
  CHECK(added["tags"][0]["name"] == "baseline");
  REQUIRE(added["metrics"].size() == 1);
  CHECK(added["metrics"][0]["steps"] == 2);
  CHECK(d["only_in_a"]["segments"] == 0);
  // main names the tip; the other way round, the sides swap.
  CHECK(w.Json({"diff", second, first, "--json"})["only_in_a"]["segments"] ==
        1);
  CHECK(w.Json({"diff", first, "main", "--json"})["b"] == second);
  Outcome text = w({"diff", first, second});
  Ok(text);
  CHECK(text.out.find("execution " + b_run) != std::string::npos);
  CHECK(text.out.find("tag " + a_run + " baseline") != std::string::npos);
  Outcome missing = w({"diff", first, std::string(40, '0')});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("no commit") != std::string::npos);
}
