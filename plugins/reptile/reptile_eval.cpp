// The reptile-eval stage: K-fold cross-validation over tasks of few-shot
// adaptation from a meta-model (Reptile's, and pretraining's as the baseline)
// against a cold start. Each fold meta-trains on the other folds' tasks and
// adapts to each of its own; the scores go to stdout, the metrics and the
// run's properties.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "acquisition.h"
#include "cmf/plugin_cpp.h"
#include "dkl.h"
#include "reptile.h"
#include "reptile_stage.h"
#include "stats.h"
#include "tasks.h"

namespace cmf::reptile {
namespace {

using plugin::Context;

// Iteration counts: "30,50" -> {30, 50}, ascending.
std::vector<int> ParseCounts(const std::string& text) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t comma = text.find(',', pos);
    std::string part = text.substr(
        pos, comma == std::string::npos ? std::string::npos : comma - pos);
    char* end = nullptr;
    long v = std::strtol(part.c_str(), &end, 10);
    Require(!part.empty() && *end == '\0' && v >= 1,
            "--iterations wants counts like 30,50, not '" + text + "'");
    out.push_back(static_cast<int>(v));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

struct Score {
  double mll = 0;   // exact GP marginal log likelihood per point of the rest
  double rmse = 0;  // of the posterior mean on the rest
};

// Adapts MODEL (already at its starting point) to SHOTS random points of TASK
// with EPOCHS epochs, and scores it on the other points.
Score Adapt(ml::DklModel& model, const ml::Task& task, int shots, int epochs,
            std::uint64_t seed) {
  std::vector<int> order(task.points);
  for (int i = 0; i < task.points; ++i) order[i] = i;
  std::uint64_t state = seed;
  for (int i = 0; i < shots; ++i)
    std::swap(order[i], order[i + ml::UniformIndex(&state, task.points - i)]);
  const int f = task.features, c = task.outputs;
  auto gather = [&](int from, int to, std::vector<float>* x,
                    std::vector<double>* y) {
    for (int i = from; i < to; ++i) {
      x->insert(x->end(),
                task.x.begin() + static_cast<std::size_t>(order[i]) * f,
                task.x.begin() + static_cast<std::size_t>(order[i] + 1) * f);
      y->insert(y->end(),
                task.y.begin() + static_cast<std::size_t>(order[i]) * c,
                task.y.begin() + static_cast<std::size_t>(order[i] + 1) * c);
    }
  };
  std::vector<float> xs, xr;
  std::vector<double> ys, yr;
  gather(0, shots, &xs, &ys);
  gather(shots, task.points, &xr, &yr);
  model.Train(xs, shots, ys, epochs);
  const int rest = task.points - shots;
  Score score;
  score.mll = -model.Loss(xr, rest, yr);
  ml::Prediction p = model.Predict(xr.data(), rest);
  double sum = 0;
  for (std::size_t i = 0; i < yr.size(); ++i)
    sum += (p.mean[i] - yr[i]) * (p.mean[i] - yr[i]);
  score.rmse = std::sqrt(sum / static_cast<double>(yr.size()));
  return score;
}

// reptile-eval's own settings, read before the tasks.
struct EvalSettings {
  ml::ReptileOptions o;
  std::vector<int> counts;  // meta-iteration counts to evaluate, ascending
  int folds = 0;
  int shots = 0;
  int epochs = 0;
};

EvalSettings ReadEvalSettings(Context& ctx) {
  EvalSettings e;
  e.o = ReadOptions(ctx, false);
  e.counts = ParseCounts(ctx.Param("iterations"));
  e.o.iterations = e.counts.back();
  e.folds = static_cast<int>(ctx.IntParam("folds"));
  e.shots = static_cast<int>(ctx.IntParam("shots"));
  e.epochs = static_cast<int>(ctx.IntParam("epochs"));
  Require(e.folds >= 2, "--folds must be at least 2");
  Require(e.shots >= 1, "--shots must be at least 1");
  return e;
}

// Every fold needs a task to hold out, and every task more points than the
// shots it adapts on.
void CheckTasks(const EvalSettings& e, const std::vector<ml::Task>& tasks) {
  Require(static_cast<int>(tasks.size()) >= e.folds,
          "--folds " + std::to_string(e.folds) +
              " needs at least as many tasks; there are " +
              std::to_string(tasks.size()));
  for (const ml::Task& t : tasks)
    Require(t.points > e.shots,
            "task '" + t.name + "' has no more than --shots points");
}

// Folds: tasks shuffled by the seed, then dealt round-robin. The order in
// which COUNT tasks are dealt.
std::vector<int> ShuffleTasks(std::size_t count, std::uint64_t seed) {
  std::vector<int> order(count);
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 7;
  for (int i = static_cast<int>(order.size()) - 1; i > 0; --i)
    std::swap(order[i], order[ml::UniformIndex(&state, i + 1)]);
  return order;
}

// One fold: the tasks it meta-trains on and those it holds out.
struct Fold {
  int index = 0;
  std::vector<ml::Task> train, test;
  std::vector<int> test_ids;  // the held-out tasks' indices
};

// Fold FOLD of FOLDS, dealing the tasks in ORDER.
Fold DealFold(const std::vector<ml::Task>& tasks, const std::vector<int>& order,
              int folds, int fold) {
  Fold f;
  f.index = fold;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (static_cast<int>(i) % folds == fold) {
      f.test.push_back(tasks[order[i]]);
      f.test_ids.push_back(order[i]);
    } else {
      f.train.push_back(tasks[order[i]]);
    }
  }
  return f;
}

// label -> mean over the test tasks
using FoldTotal = std::map<std::string, Score>;

// The cross-validation's scores as the folds add to them, and what every fold
// shares.
class CrossValidation {
 public:
  CrossValidation(Context& ctx, const EvalSettings& e,
                  const ml::DklConfig& config, int meta_seeds);

  // Scores FOLD from a cold start and from meta-models of each count, then
  // prints and logs its means. False when the run was cancelled (the fold
  // is not printed then).
  bool RunFold(const Fold& fold);
  // Over the held-out tasks: the mean with its 95 % confidence interval, and
  // the RMSE's change against the cold start, paired by task. Prints them
  // and sets them as the run's properties.
  void Summarise(std::size_t tasks);

 private:
  // Scores every held-out task from THETA (none: cold), weighted by 1/WEIGHT.
  void Evaluate(const Fold& fold, const std::string& label,
                const ml::MetaParameters* theta, double weight,
                FoldTotal* fold_total);
  // For each meta-seed, pretrains and meta-trains on the fold's training
  // tasks and scores each count of iterations. False when cancelled.
  bool MetaTrainAndScore(const Fold& fold, FoldTotal* fold_total);
  void PrintFold(const Fold& fold, FoldTotal& fold_total);

  Context& ctx_;
  const EvalSettings& e_;
  const ml::DklConfig& config_;
  const int meta_seeds_;
  std::vector<std::string> labels_;
  // Per held-out task and start: its scores, averaged over meta-seeds.
  std::map<std::string, std::map<int, Score>>
      per_task_;  // label -> task -> score
};

CrossValidation::CrossValidation(Context& ctx, const EvalSettings& e,
                                 const ml::DklConfig& config, int meta_seeds)
    : ctx_(ctx), e_(e), config_(config), meta_seeds_(meta_seeds) {
  labels_ = {"cold"};
  for (int count : e.counts)
    labels_.push_back("pretrain" + std::to_string(count));
  for (int count : e.counts) labels_.push_back("meta" + std::to_string(count));
}

bool CrossValidation::RunFold(const Fold& fold) {
  FoldTotal fold_total;
  Evaluate(fold, "cold", nullptr, 1, &fold_total);
  if (!MetaTrainAndScore(fold, &fold_total)) return false;
  PrintFold(fold, fold_total);
  return true;
}

void CrossValidation::Evaluate(const Fold& f, const std::string& label,
                               const ml::MetaParameters* theta, double weight,
                               FoldTotal* fold_total) {
  const ml::ReptileOptions& o = e_.o;
  const int fold = f.index;
  const std::vector<ml::Task>& test = f.test;
  for (std::size_t t = 0; t < test.size(); ++t) {
    std::uint64_t seed = o.seed + 1000 * (fold + 1) + t;
    ml::DklModel model(config_, seed);
    if (theta != nullptr) {
      ml::SetParameters(model, *theta);
      model.SetInitialToCurrent();
      model.Reset();
    }
    Score s = Adapt(model, test[t], e_.shots, e_.epochs, seed);
    per_task_[label][f.test_ids[t]].mll += s.mll / weight;
    per_task_[label][f.test_ids[t]].rmse += s.rmse / weight;
    (*fold_total)[label].mll +=
        s.mll / static_cast<double>(test.size()) / weight;
    (*fold_total)[label].rmse +=
        s.rmse / static_cast<double>(test.size()) / weight;
  }
}

bool CrossValidation::MetaTrainAndScore(const Fold& f, FoldTotal* fold_total) {
  const ml::ReptileOptions& o = e_.o;
  const int fold = f.index;
  const int meta_seeds = meta_seeds_;
  for (int m = 0; m < meta_seeds && !f.train.empty(); ++m) {
    for (ml::MetaMethod method :
         {ml::MetaMethod::kPretrain, ml::MetaMethod::kReptile}) {
      const std::string name =
          method == ml::MetaMethod::kPretrain ? "pretrain" : "meta";
      ml::ReptileOptions upto =
          o;  // one annealing schedule, to the largest count
      upto.method = method;
      upto.seed = o.seed + static_cast<std::uint64_t>(m);
      ml::DklModel start(config_, upto.seed);
      ml::MetaParameters theta = ml::ParametersOf(start);
      int done = 0;
      for (int count : e_.counts) {
        ml::MetaTrain(
            config_, f.train, upto, done, theta,
            [&](const ml::IterationReport& r) {
              const int run = (fold * meta_seeds + m) * 2 +
                              (method == ml::MetaMethod::kReptile ? 1 : 0);
              ctx_.Progress(run * o.iterations + r.iteration + 1,
                            e_.folds * meta_seeds * 2 * o.iterations,
                            "fold " + std::to_string(fold + 1) + ", " + name);
              return r.iteration + 1 < count && !ctx_.Cancelled();
            });
        done = count;
        if (ctx_.Cancelled()) return false;
        Evaluate(f, name + std::to_string(count), &theta, meta_seeds,
                 fold_total);
      }
    }
  }
  return true;
}

void CrossValidation::PrintFold(const Fold& f, FoldTotal& fold_total) {
  const int fold = f.index;
  for (const std::string& label : labels_) {
    if (!fold_total.contains(label)) continue;
    const Score& total = fold_total[label];
    std::printf("%-5d %6zu %5zu  %-12s %10.4f %10.4f\n", fold + 1,
                f.train.size(), f.test.size(), label.c_str(), total.mll,
                total.rmse);
    ctx_.LogMetric(("mll/" + label).c_str(), fold + 1, total.mll);
    ctx_.LogMetric(("rmse/" + label).c_str(), fold + 1, total.rmse);
  }
  std::fflush(stdout);
}

void CrossValidation::Summarise(std::size_t tasks) {
  const int meta_seeds = meta_seeds_;
  std::map<std::string, std::map<int, Score>>& per_task = per_task_;
  std::printf(
      "\nover %zu held-out tasks (each once), %d meta-training seed%s, "
      "mean and 95 %% CI:\n",
      tasks, meta_seeds, meta_seeds == 1 ? "" : "s");
  std::printf("%-12s %19s %19s %26s\n", "start", "MLL/point", "RMSE",
              "RMSE against cold");
  for (const std::string& label : labels_) {
    if (!per_task.contains(label)) continue;
    std::vector<double> mll, rmse, change;
    for (const auto& [task, score] : per_task[label]) {
      mll.push_back(score.mll);
      rmse.push_back(score.rmse);
      change.push_back(score.rmse / per_task["cold"][task].rmse - 1);
    }
    ml::Stats a = ml::Summarise(mll), b = ml::Summarise(rmse),
              c = ml::Summarise(change);
    std::printf("%-12s %9.4f ± %7.4f %9.4f ± %7.4f", label.c_str(), a.mean,
                a.half, b.mean, b.half);
    if (label == "cold")
      std::printf("\n");
    else
      std::printf("   %+5.1f %% (%+5.1f to %+5.1f %%)\n", 100 * c.mean,
                  100 * (c.mean - c.half), 100 * (c.mean + c.half));
    ctx_.SetProperty(("mean_rmse_" + label).c_str(), b.mean);
    ctx_.SetProperty(("rmse_ci95_" + label).c_str(), b.half);
  }
}

}  // namespace

int RunReptileEval(Context& ctx) {
  EvalSettings e = ReadEvalSettings(ctx);
  ml::TaskPreparation prep = ReadPreparation(ctx);
  std::vector<ml::Task> tasks = LoadTasks(ctx, prep);
  CheckTasks(e, tasks);
  ml::DklConfig config = ModelConfig(ctx, prep, tasks.front().outputs);
  ml::SetTorchThreads(1);
  std::vector<int> order = ShuffleTasks(tasks.size(), e.o.seed);

  const int meta_seeds = static_cast<int>(ctx.IntParam("meta-seeds"));
  Require(meta_seeds >= 1, "--meta-seeds must be at least 1");

  std::printf("%-5s %6s %5s  %-12s %10s %10s\n", "fold", "train", "test",
              "start", "MLL/point", "RMSE");
  CrossValidation cv(ctx, e, config, meta_seeds);
  for (int fold = 0; fold < e.folds; ++fold)
    if (!cv.RunFold(DealFold(tasks, order, e.folds, fold))) return 0;
  cv.Summarise(tasks.size());
  return 0;
}

}  // namespace cmf::reptile
