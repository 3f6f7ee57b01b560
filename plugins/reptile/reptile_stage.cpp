// The reptile plugin: `cmf run reptile` meta-trains a DKL model over prior
// experiments (tasks) at the datacenter; `dkl-al --init` adapts from it at
// the edge. The algorithm is plugins/ml/reptile.h; this file is the stage:
// parameters, tasks, logging, checkpoints and resuming. The reptile-eval stage
// is reptile_eval.cpp.
#include "reptile_stage.h"

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
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

namespace fs = std::filesystem;
using plugin::Context;

void Require(bool ok, const std::string& message) {
  if (!ok) throw plugin::Error(message);
}

ml::ReptileOptions ReadOptions(Context& ctx, bool with_iterations) {
  ml::ReptileOptions o;
  if (with_iterations)
    o.iterations = static_cast<int>(ctx.IntParam("iterations"));
  o.tasks_per_iteration = static_cast<int>(ctx.IntParam("tasks-per-iteration"));
  o.inner_steps = static_cast<int>(ctx.IntParam("inner-steps"));
  o.batch = static_cast<int>(ctx.IntParam("batch-size"));
  o.inner_lr = ctx.RealParam("inner-lr");
  o.inner_extractor_lr = ctx.RealParam("inner-extractor-lr");
  Require(o.inner_extractor_lr > 0, "--inner-extractor-lr must be positive");
  o.epsilon = ctx.RealParam("epsilon");
  o.epsilon_final = ctx.RealParam("epsilon-final");
  o.meta_gp = ctx.BoolParam("meta-gp");
  o.threads = static_cast<int>(ctx.IntParam("threads"));
  o.seed = static_cast<std::uint64_t>(ctx.IntParam("seed"));
  Require(o.iterations >= 1, "--iterations must be at least 1");
  Require(o.tasks_per_iteration >= 1,
          "--tasks-per-iteration must be at least 1");
  Require(o.inner_steps >= 1, "--inner-steps must be at least 1");
  Require(o.batch >= 2, "--batch-size must be at least 2");
  Require(o.inner_lr > 0, "--inner-lr must be positive");
  Require(o.threads >= 1, "--threads must be at least 1");
  return o;
}

ml::TaskPreparation ReadPreparation(Context& ctx) {
  ml::TaskPreparation prep;
  prep.window = static_cast<int>(ctx.IntParam("window"));
  prep.pool = static_cast<int>(ctx.IntParam("pool"));
  prep.scalarizer = ml::Scalarizer::Parse(ctx.Param("scalarizer"));
  Require(prep.window >= 1 && prep.pool >= 1,
          "--window and --pool must be positive");
  return prep;
}

std::vector<ml::Task> LoadTasks(Context& ctx, const ml::TaskPreparation& prep) {
  struct Ref {
    std::string name;
    std::string path;
    std::string hash;
    bool in_store;        // named by hash: logged by hash
    std::string seen_at;  // the path another run recorded it at
  };
  std::vector<Ref> refs;
  for (const std::string& t : ctx.Params("tasks")) {
    std::string hash;
    std::string path = ctx.ResolveArtifact(t, &hash);
    refs.push_back({t, path, hash, path != t, ""});
  }
  if (ctx.HasParam("tasks-from-stage")) {
    std::size_t before = refs.size();
    for (const auto& o2 :
         ctx.StageOutputs(ctx.Param("tasks-from-stage"), ctx.Param("pipeline"),
                          "dataslice")) {
      std::string hash;
      std::string path = ctx.ResolveArtifact(o2.hash, &hash);
      refs.push_back({o2.path + " (" + o2.execution.substr(0, 13) + ")", path,
                      hash, true, o2.path});
    }
    Require(refs.size() > before, "no successful run of stage '" +
                                      ctx.Param("tasks-from-stage") +
                                      "' has a measured-points slice");
  }
  Require(!refs.empty(),
          "no tasks: give --tasks FILE... or --tasks-from-stage STAGE");
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
      ctx.LogInputHash(r.hash, r.seen_at);
    else
      ctx.LogInput(r.path, nullptr);
  }
  ctx.SetProperty("tasks", static_cast<std::int64_t>(tasks.size()));
  return tasks;
}

ml::DklConfig ModelConfig(Context& ctx, const ml::TaskPreparation& prep,
                          int outputs) {
  ml::DklConfig config;
  config.features = prep.window * prep.window;
  config.hidden = ml::DklConfig::Architecture(ctx.Param("architecture"));
  config.kernel = ctx.Param("kernel") == "matern52" ? ml::Kernel::kMatern52
                                                    : ml::Kernel::kRbf;
  config.outputs = outputs;
  config.noise_floor = ctx.RealParam("noise-floor");
  return config;
}

namespace {

constexpr const char* kVersion = "0.1.0";

// What must match for a checkpoint to be resumed: every setting that changes
// the sequence of updates, and the tasks.
std::string Schedule(const ml::ReptileOptions& o,
                     const ml::TaskPreparation& prep,
                     const std::vector<ml::Task>& tasks) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "iterations=%d tasks-per-iteration=%d inner-steps=%d batch=%d "
                "inner-lr=%.17g inner-extractor-lr=%.17g epsilon=%.17g "
                "epsilon-final=%.17g meta-gp=%d seed=%llu",
                o.iterations, o.tasks_per_iteration, o.inner_steps, o.batch,
                o.inner_lr, o.inner_extractor_lr, o.epsilon, o.epsilon_final,
                o.meta_gp ? 1 : 0, static_cast<unsigned long long>(o.seed));
  std::string s = buf;
  if (o.method == ml::MetaMethod::kPretrain) s += " method=pretrain";
  s += " window=" + std::to_string(prep.window) +
       " pool=" + std::to_string(prep.pool) +
       " scalarizer=" + prep.scalarizer.ToString();
  for (const ml::Task& t : tasks) s += " " + t.hash;
  return s;
}

int RunReptile(Context& ctx) {
  ml::ReptileOptions o = ReadOptions(ctx, true);
  if (ctx.Param("method") == "pretrain") o.method = ml::MetaMethod::kPretrain;
  const int checkpoint_every =
      static_cast<int>(ctx.IntParam("checkpoint-every"));
  Require(checkpoint_every >= 0, "--checkpoint-every must not be negative");
  ml::TaskPreparation prep = ReadPreparation(ctx);
  fs::path out = ctx.Param("out");
  std::vector<ml::Task> tasks = LoadTasks(ctx, prep);
  ml::DklConfig config = ModelConfig(ctx, prep, tasks.front().outputs);
  ml::SetTorchThreads(1);  // the parallelism is over tasks (--threads)
  ml::DklModel model(config, o.seed);
  ml::MetaParameters theta = ml::ParametersOf(model);
  const std::string schedule = Schedule(o, prep, tasks);

  int first = 0;
  std::string previous;  // the hash of the last checkpoint logged
  if (ctx.HasParam("resume")) {
    std::string resume_hash;
    fs::path resume = ctx.ResolveArtifact(ctx.Param("resume"), &resume_hash);
    nlohmann::json info = nlohmann::json::parse(
        ml::DklModel::ReadMetadata(resume)["info"], nullptr, false);
    Require(info.is_object() && info.contains("reptile_schedule") &&
                info.contains("reptile_iterations_done"),
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
    if (resume == fs::path(ctx.Param("resume")))
      ctx.LogInput(resume.string(), "model");  // a file of the workspace
    else
      ctx.LogInputHash(resume_hash);  // an artifact id of the store
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

// Parameters both stages take, after their own.
const cmf_param kCommon[] = {
    {"tasks", CMF_PARAM_PATH, nullptr,
     "experiment files or measured-points slices, as paths or artifact ids",
     nullptr, CMF_PARAM_MULTIPLE},
    {"tasks-from-stage", CMF_PARAM_STRING, nullptr,
     "also every measured-points slice output by this stage (dkl-al)", nullptr,
     0},
    {"pipeline", CMF_PARAM_STRING, nullptr,
     "with --tasks-from-stage: only runs of this pipeline", nullptr, 0},
    {"tasks-per-iteration", CMF_PARAM_INT, "10", "tasks sampled per iteration",
     nullptr, 0},
    {"inner-steps", CMF_PARAM_INT, "16", "Adam steps of each inner loop",
     nullptr, 0},
    {"inner-lr", CMF_PARAM_REAL, "0.01",
     "Adam's learning rate in the inner loop, for the GP's hyperparameters",
     nullptr, 0},
    {"inner-extractor-lr", CMF_PARAM_REAL, "0.001",
     "Adam's learning rate in the inner loop, for the feature extractor",
     nullptr, 0},
    {"batch-size", CMF_PARAM_INT, "64", "points per inner step", nullptr, 0},
    {"epsilon", CMF_PARAM_REAL, "1",
     "the meta step size at the first iteration", nullptr, 0},
    {"epsilon-final", CMF_PARAM_REAL, "0",
     "the meta step size at the last (annealed linearly)", nullptr, 0},
    {"meta-gp", CMF_PARAM_BOOL, "true",
     "meta-learn the GP's hyperparameters too (--no-meta-gp: only the "
     "extractor)",
     nullptr, 0},
    {"threads", CMF_PARAM_INT, "1",
     "inner loops run in parallel (the result does not depend on it)", nullptr,
     0},
    {"seed", CMF_PARAM_INT, "0", "seeds the initial model and every choice",
     nullptr, 0},
    {"window", CMF_PARAM_INT, "16", "patch size in pixels (as dkl-al)", nullptr,
     0},
    {"pool", CMF_PARAM_INT, "32", "spectral channels averaged into one",
     nullptr, 0},
    {"scalarizer", CMF_PARAM_STRING, "band-peak:0.85:0.95",
     "the target, as dkl-al's --scalarizer", ml::kScalarizerChoices, 0},
    {"architecture", CMF_PARAM_STRING, "small",
     "feature extractor: small or large (as dkl-al)", ml::kArchitectureChoices,
     0},
    {"kernel", CMF_PARAM_STRING, "rbf", "GP kernel", ml::kKernelChoices, 0},
    {"noise-floor", CMF_PARAM_REAL, "0.0001", "the GP noise's lower bound",
     nullptr, 0},
};

const cmf_param kReptileOwn[] = {
    {"iterations", CMF_PARAM_INT, "50", "meta-iterations", nullptr, 0},
    {"method", CMF_PARAM_STRING, "reptile",
     "reptile, or pretrain: the baseline, one model fitted to the tasks pooled "
     "(as many Adam steps, no meta step)",
     ml::kMetaMethodChoices, 0},
    {"out", CMF_PARAM_PATH, "meta.pt", "the meta-model to write", nullptr, 0,
     "o"},
    {"checkpoint-every", CMF_PARAM_INT, "0",
     "write OUT-iterN.pt every N iterations (0: never)", nullptr, 0},
    {"resume", CMF_PARAM_PATH, nullptr,
     "continue from a checkpoint of a run with the same settings and tasks",
     nullptr, 0},
};

const cmf_param kEvalOwn[] = {
    {"folds", CMF_PARAM_INT, "3", "K of the K-fold cross-validation over tasks",
     nullptr, 0},
    {"iterations", CMF_PARAM_STRING, "30,50",
     "meta-iteration counts to evaluate (one annealing schedule to the "
     "largest)",
     nullptr, 0},
    {"shots", CMF_PARAM_INT, "10", "points each held-out task adapts on",
     nullptr, 0},
    {"epochs", CMF_PARAM_INT, "20", "Adam steps of the adaptation", nullptr, 0},
    {"meta-seeds", CMF_PARAM_INT, "1",
     "meta-training seeds (--seed, --seed + 1, ...), each a meta-model per "
     "fold",
     nullptr, 0},
};

std::vector<cmf_param> Join(const cmf_param* own, std::size_t n) {
  std::vector<cmf_param> all(own, own + n);
  all.insert(all.end(), std::begin(kCommon), std::end(kCommon));
  return all;
}

const std::vector<cmf_param> kReptileParams =
    Join(kReptileOwn, std::size(kReptileOwn));
const std::vector<cmf_param> kEvalParams = Join(kEvalOwn, std::size(kEvalOwn));

const cmf_stage kStages[] = {
    {"reptile",
     "Reptile meta-learning of a DKL model over prior experiments (seeds "
     "dkl-al --init)",
     kReptileParams.data(), kReptileParams.size(),
     &plugin::Invoke<&RunReptile>},
    {"reptile-eval",
     "K-fold cross-validation of Reptile: few-shot adaptation from the "
     "meta-model against a cold start",
     kEvalParams.data(), kEvalParams.size(), &plugin::Invoke<&RunReptileEval>},
};

const cmf_plugin kPlugin = {
    CMF_PLUGIN_ABI_VERSION,
    "reptile",
    kVersion,
    "Reptile meta-learning for few-shot active learning",
    kStages,
    std::size(kStages)};

}  // namespace
}  // namespace cmf::reptile

extern "C" const cmf_plugin* cmf_plugin_entry(uint32_t) {
  return &cmf::reptile::kPlugin;
}
