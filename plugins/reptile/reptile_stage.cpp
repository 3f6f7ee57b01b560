// The reptile plugin: `cmf run reptile` meta-trains a DKL model over prior
// experiments (tasks) at the datacenter; `dkl-al --init` adapts from it at
// the edge. The algorithm is plugins/ml/reptile.h; this file is the stage:
// parameters, tasks, logging, checkpoints and resuming.
#include <cstdio>
#include <iterator>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cmf/plugin.h"
#include "cmf/plugin_cpp.h"
#include "data.h"
#include "dkl.h"
#include "reptile.h"
#include "tasks.h"

namespace cmf::reptile {
namespace {

namespace fs = std::filesystem;
using plugin::Context;

constexpr const char* kVersion = "0.1.0";

void Require(bool ok, const std::string& message) {
  if (!ok) throw plugin::Error(message);
}

// What must match for a checkpoint to be resumed: every setting that changes
// the sequence of updates, and the tasks.
std::string Schedule(const ml::ReptileOptions& o,
                     const std::vector<ml::Task>& tasks) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "iterations=%d tasks-per-iteration=%d inner-steps=%d batch=%d "
                "inner-lr=%.17g epsilon=%.17g epsilon-final=%.17g meta-gp=%d "
                "seed=%llu",
                o.iterations, o.tasks_per_iteration, o.inner_steps, o.batch,
                o.inner_lr, o.epsilon, o.epsilon_final, o.meta_gp ? 1 : 0,
                static_cast<unsigned long long>(o.seed));
  std::string s = buf;
  for (const ml::Task& t : tasks) s += " " + t.hash;
  return s;
}

int RunReptile(Context& ctx) {
  ml::ReptileOptions o;
  o.iterations = static_cast<int>(ctx.IntParam("iterations"));
  o.tasks_per_iteration = static_cast<int>(ctx.IntParam("tasks-per-iteration"));
  o.inner_steps = static_cast<int>(ctx.IntParam("inner-steps"));
  o.batch = static_cast<int>(ctx.IntParam("batch-size"));
  o.inner_lr = ctx.RealParam("inner-lr");
  o.epsilon = ctx.RealParam("epsilon");
  o.epsilon_final = ctx.RealParam("epsilon-final");
  o.meta_gp = ctx.BoolParam("meta-gp");
  o.threads = static_cast<int>(ctx.IntParam("threads"));
  o.seed = static_cast<std::uint64_t>(ctx.IntParam("seed"));
  Require(o.iterations >= 1, "--iterations must be at least 1");
  Require(o.tasks_per_iteration >= 1, "--tasks-per-iteration must be at least 1");
  Require(o.inner_steps >= 1, "--inner-steps must be at least 1");
  Require(o.batch >= 2, "--batch-size must be at least 2");
  Require(o.inner_lr > 0, "--inner-lr must be positive");
  Require(o.threads >= 1, "--threads must be at least 1");
  const int checkpoint_every = static_cast<int>(ctx.IntParam("checkpoint-every"));
  Require(checkpoint_every >= 0, "--checkpoint-every must not be negative");
  ml::TaskPreparation prep;
  prep.window = static_cast<int>(ctx.IntParam("window"));
  prep.pool = static_cast<int>(ctx.IntParam("pool"));
  prep.scalarizer = ml::Scalarizer::Parse(ctx.Param("scalarizer"));
  Require(prep.window >= 1 && prep.pool >= 1, "--window and --pool must be positive");
  fs::path out = ctx.Param("out");

  // The tasks: paths or artifact ids, and every measured-points slice of a
  // stage. All are read and checked before any training.
  struct Ref {
    std::string name;
    std::string path;
    std::string hash;
    bool in_store;  // named by hash: logged by hash
  };
  std::vector<Ref> refs;
  for (const std::string& t : ctx.Params("tasks")) {
    std::string hash;
    std::string path = ctx.ResolveArtifact(t, &hash);
    refs.push_back({t, path, hash, path != t});
  }
  if (ctx.HasParam("tasks-from-stage")) {
    for (const auto& o2 : ctx.StageOutputs(ctx.Param("tasks-from-stage"),
                                           ctx.Param("pipeline"), "dataslice")) {
      std::string hash;
      std::string path = ctx.ResolveArtifact(o2.hash, &hash);
      refs.push_back({o2.path + " (" + o2.execution.substr(0, 13) + ")", path,
                      hash, true});
    }
    Require(!refs.empty(), "no successful run of stage '" +
                               ctx.Param("tasks-from-stage") +
                               "' has a measured-points slice");
  }
  Require(!refs.empty(), "no tasks: give --tasks FILE... or --tasks-from-stage STAGE");
  std::vector<ml::Task> tasks;
  std::set<std::string> seen;
  for (const Ref& r : refs) {
    if (!seen.insert(r.hash).second) continue;  // the same bytes twice
    ml::Task task = ml::LoadTask(r.path, prep);
    task.name = r.name;
    task.hash = r.hash;
    if (!tasks.empty()) {
      Require(task.outputs == tasks.front().outputs,
              "task '" + r.name + "' has " + std::to_string(task.outputs) +
                  " outputs, task '" + tasks.front().name + "' " +
                  std::to_string(tasks.front().outputs));
    }
    tasks.push_back(std::move(task));
  }
  for (const Ref& r : refs) {
    if (r.in_store)
      ctx.LogInputHash(r.hash);
    else
      ctx.LogInput(r.path, nullptr);
  }
  ctx.SetProperty("tasks", static_cast<std::int64_t>(tasks.size()));

  ml::DklConfig config;
  config.features = prep.window * prep.window;
  config.hidden = ml::DklConfig::Architecture(ctx.Param("architecture"));
  config.kernel = ctx.Param("kernel") == "matern52" ? ml::Kernel::kMatern52
                                                    : ml::Kernel::kRbf;
  config.outputs = tasks.front().outputs;
  config.noise_floor = ctx.RealParam("noise-floor");
  ml::SetTorchThreads(1);  // the parallelism is over tasks (--threads)
  ml::DklModel model(config, o.seed);
  ml::MetaParameters theta = ml::ParametersOf(model);
  const std::string schedule = Schedule(o, tasks);

  int first = 0;
  std::string previous;  // the hash of the last checkpoint logged
  if (ctx.HasParam("resume")) {
    std::string resume_hash;
    fs::path resume = ctx.ResolveArtifact(ctx.Param("resume"), &resume_hash);
    nlohmann::json info = nlohmann::json::parse(
        ml::DklModel::ReadMetadata(resume)["info"], nullptr, false);
    Require(info.is_object() && info.contains("reptile_schedule"),
            "'" + ctx.Param("resume") + "' is not a Reptile checkpoint");
    Require(info["reptile_schedule"] == schedule,
            "'" + ctx.Param("resume") +
                "' was made with other settings or tasks; resuming needs the "
                "same ones (its settings: " +
                info["reptile_schedule"].get<std::string>().substr(0, 160) +
                ")");
    model.Load(resume);
    theta = ml::ParametersOf(model);
    first = std::stoi(info["reptile_iterations_done"].get<std::string>());
    previous = resume_hash;
    ctx.LogInputHash(resume_hash);
    ctx.Info("resuming after iteration " + std::to_string(first));
  }

  auto save = [&](const fs::path& file, int done) {
    ml::SetParameters(model, theta);
    model.Save(file, {{"reptile_schedule", schedule},
                      {"reptile_iterations_done", std::to_string(done)},
                      {"execution", ctx.ExecutionId()},
                      {"window", std::to_string(prep.window)},
                      {"pool", std::to_string(prep.pool)},
                      {"scalarizer", prep.scalarizer.ToString()},
                      {"plugin", std::string("reptile ") + kVersion}});
    std::string hash = ctx.LogOutput(file.string(), "model");
    if (!previous.empty()) ctx.LogDerivedFrom(hash, previous);
    previous = hash;
  };

  if (!out.parent_path().empty()) fs::create_directories(out.parent_path());
  int done = first;
  ml::MetaTrain(config, tasks, o, first, theta,
                [&](const ml::IterationReport& r) {
                  done = r.iteration + 1;
                  ctx.LogMetric("meta_loss", done, r.meta_loss);
                  ctx.LogMetric("adapted_loss", done, r.adapted_loss);
                  ctx.LogMetric("epsilon", done, r.epsilon);
                  ctx.LogMetric("iteration_seconds", done, r.seconds);
                  ctx.Progress(done, o.iterations,
                               "iteration " + std::to_string(done) + "/" +
                                   std::to_string(o.iterations));
                  if (checkpoint_every > 0 && done % checkpoint_every == 0 &&
                      done < o.iterations) {
                    fs::path ckpt = out;
                    ckpt.replace_filename(out.stem().string() + "-iter" +
                                          std::to_string(done) + ".pt");
                    save(ckpt, done);
                  }
                  return !ctx.Cancelled();
                });
  save(out, done);
  ctx.SetProperty("iterations_done", static_cast<std::int64_t>(done));
  if (!ctx.Cancelled())
    ctx.Info("meta-model " + out.string() + " after " + std::to_string(done) +
             " iterations over " + std::to_string(tasks.size()) +
             " tasks; seed dkl-al with --init " + out.string());
  return 0;
}

const char* const kScalarizers[] = {"band-mean:", "band-peak:", "vector",
                                    nullptr};
const char* const kArchitectures[] = {"default", "small", nullptr};
const char* const kKernels[] = {"rbf", "matern52", nullptr};

const cmf_param kParams[] = {
    {"tasks", CMF_PARAM_PATH, nullptr,
     "experiment files or measured-points slices, as paths or artifact ids",
     nullptr, CMF_PARAM_MULTIPLE},
    {"tasks-from-stage", CMF_PARAM_STRING, nullptr,
     "also every measured-points slice output by this stage (dkl-al)", nullptr,
     0},
    {"pipeline", CMF_PARAM_STRING, nullptr,
     "with --tasks-from-stage: only runs of this pipeline", nullptr, 0},
    {"iterations", CMF_PARAM_INT, "50", "meta-iterations", nullptr, 0},
    {"tasks-per-iteration", CMF_PARAM_INT, "10", "tasks sampled per iteration",
     nullptr, 0},
    {"inner-steps", CMF_PARAM_INT, "16", "Adam steps of each inner loop",
     nullptr, 0},
    {"inner-lr", CMF_PARAM_REAL, "0.01", "Adam's learning rate in the inner loop",
     nullptr, 0},
    {"batch-size", CMF_PARAM_INT, "64", "points per inner step", nullptr, 0},
    {"epsilon", CMF_PARAM_REAL, "0.1", "the meta step size at the first iteration",
     nullptr, 0},
    {"epsilon-final", CMF_PARAM_REAL, "0",
     "the meta step size at the last (annealed linearly)", nullptr, 0},
    {"meta-gp", CMF_PARAM_BOOL, "true",
     "meta-learn the GP's hyperparameters too (--no-meta-gp: only the extractor)",
     nullptr, 0},
    {"threads", CMF_PARAM_INT, "1",
     "inner loops run in parallel (the result does not depend on it)", nullptr, 0},
    {"seed", CMF_PARAM_INT, "0", "seeds the initial model and every choice",
     nullptr, 0},
    {"checkpoint-every", CMF_PARAM_INT, "0",
     "write OUT-iterN.pt every N iterations (0: never)", nullptr, 0},
    {"resume", CMF_PARAM_PATH, nullptr,
     "continue from a checkpoint of a run with the same settings and tasks",
     nullptr, 0},
    {"window", CMF_PARAM_INT, "16", "patch size in pixels (as dkl-al)", nullptr, 0},
    {"pool", CMF_PARAM_INT, "32", "spectral channels averaged into one", nullptr, 0},
    {"scalarizer", CMF_PARAM_STRING, "band-peak:0.85:0.95",
     "the target, as dkl-al's --scalarizer", kScalarizers, 0},
    {"architecture", CMF_PARAM_STRING, "default",
     "feature extractor: default or small (as dkl-al)", kArchitectures, 0},
    {"kernel", CMF_PARAM_STRING, "rbf", "GP kernel", kKernels, 0},
    {"noise-floor", CMF_PARAM_REAL, "0.0001", "the GP noise's lower bound",
     nullptr, 0},
    {"out", CMF_PARAM_PATH, "meta.pt", "the meta-model to write", nullptr, 0,
     "o"},
};

const cmf_stage kStages[] = {
    {"reptile",
     "Reptile meta-learning of a DKL model over prior experiments (seeds "
     "dkl-al --init)",
     kParams, std::size(kParams), &plugin::Invoke<&RunReptile>},
};

const cmf_plugin kPlugin = {CMF_PLUGIN_ABI_VERSION, "reptile", kVersion,
                            "Reptile meta-learning for few-shot active learning",
                            kStages, std::size(kStages)};

}  // namespace
}  // namespace cmf::reptile

extern "C" const cmf_plugin* cmf_plugin_entry(uint32_t) {
  return &cmf::reptile::kPlugin;
}
