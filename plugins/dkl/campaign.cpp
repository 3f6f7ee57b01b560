// The active-learning loop of dkl-al (campaign.h).
#include "campaign.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace cmf::dkl {

namespace fs = std::filesystem;
using plugin::Context;

namespace {

// The targets of the measured points, from their pooled spectra: normalised
// by RANGE, then scalarized.
std::vector<double> Targets(const std::vector<std::vector<double>>& pooled,
                            const ml::Range& range,
                            const ml::Scalarizer& scalarizer,
                            const std::vector<int>& band, int groups) {
  const int outputs = scalarizer.Outputs(groups);
  std::vector<double> y(pooled.size() * outputs);
  std::vector<double> norm(groups);
  for (std::size_t i = 0; i < pooled.size(); ++i) {
    for (int g = 0; g < groups; ++g) norm[g] = range.Normalise(pooled[i][g]);
    scalarizer.Apply(norm.data(), band, groups, y.data() + i * outputs);
  }
  return y;
}

}  // namespace

Campaign::Campaign(Context& ctx, const Settings& s, const Survey& survey,
                   const Truth& truth, ml::DklModel& model,
                   Instrument& instrument, const std::string& data_hash)
    : ctx_(ctx),
      s_(s),
      survey_(survey),
      truth_(truth),
      model_(model),
      instrument_(instrument),
      data_hash_(data_hash),
      measured_(survey.patches.count, 0),
      rng_(s.seed * 0x9e3779b97f4a7c15ULL + 1) {
  points_.window = s.window;
  points_.channels = survey.experiment.channels;
  points_.energy = survey.experiment.energy;
  slice_attributes_ = {
      {"parent_sha256", data_hash},
      {"parent_path", s.data.string()},
      {"execution", ctx.ExecutionId()},
      {"scalarizer", s.scalarizer.ToString()},
      {"pool", std::to_string(s.pool)},
      {"acquisition", ml::ToString(s.acquisition)},
      {"instrument", instrument.Describe()},
  };
}

void Campaign::Measure(int index, int step) {
  const ml::Experiment& experiment = survey_.experiment;
  int x = survey_.patches.CentreX(index);
  int y = survey_.patches.CentreY(index);
  std::vector<float> spectrum = instrument_.Measure(x, y);
  measured_[index] = 1;
  chosen_.push_back(index);
  pooled_.push_back(
      ml::PoolSpectrum(spectrum.data(), experiment.channels, s_.pool));
  points_.x.push_back(x);
  points_.y.push_back(y);
  points_.step.push_back(step);
  std::vector<float> patch =
      ml::RawPatch(experiment.image, experiment.width, s_.window, x, y);
  points_.patches.insert(points_.patches.end(), patch.begin(), patch.end());
  points_.spectra.insert(points_.spectra.end(), spectrum.begin(),
                         spectrum.end());
}

void Campaign::TrainingSet(std::vector<float>* x, std::vector<double>* y) {
  const ml::Patches& patches = survey_.patches;
  const int outputs = survey_.outputs;
  x->clear();
  for (int i : chosen_)
    x->insert(
        x->end(),
        patches.values.begin() + static_cast<std::size_t>(i) * patches.features,
        patches.values.begin() +
            static_cast<std::size_t>(i + 1) * patches.features);
  if (s_.normalise_all) {
    y->clear();
    for (int i : chosen_)
      y->insert(
          y->end(),
          truth_.values.begin() + static_cast<std::size_t>(i) * outputs,
          truth_.values.begin() + static_cast<std::size_t>(i + 1) * outputs);
  } else {
    // As a live instrument: normalise over what has been measured so far.
    std::vector<double> flat;
    for (const auto& p : pooled_) flat.insert(flat.end(), p.begin(), p.end());
    measured_range_ = ml::RangeOf(flat);
    *y = Targets(pooled_, measured_range_, s_.scalarizer, survey_.band,
                 survey_.groups);
  }
}

std::vector<double> Campaign::FitAndPredict() {
  TrainingSet(&train_x_, &train_y_);
  // One new point moves the posterior a little: the last step's model is a
  // good start, and a few Adam steps bring it to the new data.
  const bool warm = s_.warm_epochs > 0 && fitted_;
  if (!warm) model_.Reset();
  std::vector<double> losses =
      model_.Train(train_x_, static_cast<int>(chosen_.size()), train_y_,
                   warm ? s_.warm_epochs : s_.epochs);
  fitted_ = true;
  prediction_ =
      model_.Predict(survey_.patches.values.data(), survey_.patches.count);
  return losses;
}

void Campaign::SaveMeasured() {
  fs::path file = s_.out / "measured.h5";
  ml::WriteMeasured(file, points_, slice_attributes_);
  std::string hash = ctx_.LogOutput(file.string(), "dataslice");
  ctx_.LogDerivedFrom(hash, data_hash_);
}

double Campaign::MapRmse() const {
  const ml::Range& replay_range = truth_.range;
  const std::vector<double>& truth = truth_.values;
  // Measured scale -> raw -> the truth's scale.
  const double width = replay_range.max - replay_range.min;
  double scale = 1, shift = 0;
  if (!s_.normalise_all) {
    // A flat map's truth is 0 everywhere (ml::Range).
    scale = width > 0 ? (measured_range_.max - measured_range_.min) / width : 0;
    shift = width > 0 ? (measured_range_.min - replay_range.min) / width : 0;
  }
  double sum = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    double d = prediction_.mean[i] * scale + shift - truth[i];
    sum += d * d;
  }
  return std::sqrt(sum / static_cast<double>(truth.size()));
}

int Campaign::Run() {
  int step = 0;
  try {
    // Seed points, uniformly at random.
    while (static_cast<int>(chosen_.size()) < s_.seed_points) {
      int i = ml::UniformIndex(&rng_, survey_.patches.count);
      if (!measured_[i]) Measure(i, 0);
    }
    for (step = 1; step <= s_.steps; ++step) {
      if (ctx_.Cancelled()) break;
      if (static_cast<int>(chosen_.size()) >= survey_.patches.count) break;
      if (!Step(step)) break;
    }
  } catch (...) {
    // The controller failed (or the model): keep what was measured.
    try {
      if (!chosen_.empty()) SaveMeasured();
    } catch (...) {
    }
    throw;
  }
  return std::min(step - 1, s_.steps);
}

bool Campaign::Step(int step) {
  auto start = std::chrono::steady_clock::now();
  std::vector<double> losses = FitAndPredict();
  Choice choice = ChooseNext();
  if (choice.next < 0) return false;
  double rmse = survey_.replay ? MapRmse() : 0;

  Measure(choice.next, step);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  if (first_top1_step_ < 0 && survey_.replay && survey_.outputs == 1 &&
      truth_.values[choice.next] >= truth_.top1)
    first_top1_step_ = step;
  LogStep(step, choice, losses, seconds, rmse);
  return true;
}

Campaign::Choice Campaign::ChooseNext() {
  const int count = survey_.patches.count;
  const int outputs = survey_.outputs;
  // One value per candidate for the acquisition: the target itself, or
  // for a vector target the mean of the outputs' variances.
  std::vector<double> mean(count), variance(count);
  for (int i = 0; i < count; ++i) {
    double m = 0, v = 0;
    for (int o = 0; o < outputs; ++o) {
      m += prediction_.mean[static_cast<std::size_t>(i) * outputs + o];
      v += prediction_.variance[static_cast<std::size_t>(i) * outputs + o];
    }
    mean[i] = m / outputs;
    variance[i] = v / outputs;
  }
  double best = -std::numeric_limits<double>::infinity();
  if (outputs == 1)
    for (double v : train_y_) best = std::max(best, v);
  Choice choice;
  choice.values = ml::AcquisitionValues(s_.acquisition, mean, variance, best,
                                        s_.acq_params);
  choice.next = ml::Choose(s_.acquisition, choice.values, measured_, &rng_);
  if (choice.next < 0) return choice;
  choice.sd = std::sqrt(variance[choice.next]);
  for (int i = 0; i < count; ++i)
    if (!measured_[i])
      choice.max_sd = std::max(choice.max_sd, std::sqrt(variance[i]));
  return choice;
}

void Campaign::LogStep(int step, const Choice& choice,
                       const std::vector<double>& losses, double seconds,
                       double rmse) {
  const int next = choice.next;
  ctx_.LogMetric("x", step, survey_.patches.CentreX(next));
  ctx_.LogMetric("y", step, survey_.patches.CentreY(next));
  ctx_.LogMetric(
      "acquisition", step,
      s_.acquisition == ml::Acquisition::kRandom ? 0.0 : choice.values[next]);
  ctx_.LogMetric("uncertainty", step, choice.sd);
  ctx_.LogMetric("max_uncertainty", step, choice.max_sd);
  ctx_.LogMetric("train_loss", step,
                 losses.empty() ? std::nan("") : losses.back());
  ctx_.LogMetric("step_seconds", step, seconds);
  if (survey_.replay) ctx_.LogMetric("rmse", step, rmse);
  ctx_.Progress(step, s_.steps,
                "step " + std::to_string(step) + "/" +
                    std::to_string(s_.steps) +
                    (survey_.replay ? ", rmse " + std::to_string(rmse) : ""));
}

std::vector<double> Campaign::SaveResults(const std::string& init_hash) {
  // The final model, conditioned on every measured point, and its maps.
  std::vector<double> losses = FitAndPredict();
  fs::path model_file = s_.out / "model.pt";
  model_.Save(model_file, {{"execution", ctx_.ExecutionId()},
                           {"data_sha256", data_hash_},
                           {"scalarizer", s_.scalarizer.ToString()},
                           {"window", std::to_string(s_.window)},
                           {"pool", std::to_string(s_.pool)},
                           {"plugin", std::string("dkl ") + kVersion}});
  fs::path maps_file = s_.out / "maps.h5";
  std::map<std::string, std::string> maps_attributes = slice_attributes_;
  maps_attributes["what"] =
      "posterior mean and standard deviation of the normalised target at "
      "every candidate centre";
  ml::WriteMaps(maps_file, survey_.patches, survey_.outputs, prediction_.mean,
                prediction_.variance, measured_, maps_attributes);
  SaveMeasured();
  std::string model_hash = ctx_.LogOutput(model_file.string(), "model");
  ctx_.LogDerivedFrom(model_hash, data_hash_);
  if (!init_hash.empty()) ctx_.LogDerivedFrom(model_hash, init_hash);
  std::string maps_hash = ctx_.LogOutput(maps_file.string(), "dataset");
  ctx_.LogDerivedFrom(maps_hash, model_hash);
  return losses;
}

void Campaign::Report(int completed, const std::vector<double>& losses) {
  ctx_.SetProperty("steps_completed", static_cast<std::int64_t>(completed));
  ctx_.SetProperty("measured_points",
                   static_cast<std::int64_t>(chosen_.size()));
  if (!losses.empty()) ctx_.SetProperty("final_train_loss", losses.back());
  if (survey_.replay) {
    ctx_.SetProperty("final_rmse", MapRmse());
    if (survey_.outputs == 1)
      ctx_.SetProperty("first_top1_step", first_top1_step_);
  }
  if (!ctx_.Cancelled())
    ctx_.Info("measured " + std::to_string(chosen_.size()) +
              " points; results in " + s_.out.string() +
              "/ (model.pt, maps.h5, measured.h5)");
}

}  // namespace cmf::dkl
