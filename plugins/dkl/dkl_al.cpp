// The dkl plugin: `cmf run dkl-al`, deep kernel learning active learning that
// chooses where the microscope measures next. Every step's choice,
// uncertainty and result is logged through the host; the final model, the
// predicted maps and the measured points (a data slice of the input) are the
// run's outputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "acquisition.h"
#include "cmf/plugin.h"
#include "cmf/plugin_cpp.h"
#include "data.h"
#include "dkl.h"
#include "instrument.h"
#include "results.h"

namespace cmf::dkl {
namespace {

namespace fs = std::filesystem;
using plugin::Context;

constexpr const char* kVersion = "0.1.0";

// Everything the loop needs, read and checked before anything is measured.
struct Settings {
  fs::path data;
  int steps = 0;
  int seed_points = 0;
  ml::Acquisition acquisition = ml::Acquisition::kMaxUncertainty;
  ml::AcquisitionParams acq_params;
  ml::Scalarizer scalarizer;
  int window = 0;
  int pool = 0;
  fs::path init;
  std::string instrument;
  double instrument_timeout = 0;
  bool normalise_all = false;  // replay: targets over the whole recorded map
  int epochs = 0;
  double lr = 0;
  double extractor_lr = 0;
  std::uint64_t seed = 0;
  std::vector<int> hidden;
  ml::Kernel kernel = ml::Kernel::kRbf;
  double noise_floor = 0;
  fs::path out;
  int threads = 0;
  int batch = 0;
};

void Require(bool ok, const std::string& message) {
  if (!ok) throw plugin::Error(message);
}

Settings ReadSettings(Context& ctx) {
  Settings s;
  s.data = ctx.Param("data");
  s.steps = static_cast<int>(ctx.IntParam("steps"));
  Require(s.steps >= 0, "--steps must not be negative");
  s.seed_points = static_cast<int>(ctx.IntParam("seed-points"));
  Require(s.seed_points >= 1, "--seed-points must be at least 1");
  s.acquisition = ml::ParseAcquisition(ctx.Param("acquisition"));
  s.acq_params.xi = ctx.RealParam("xi");
  s.acq_params.beta = ctx.RealParam("beta");
  s.scalarizer = ml::Scalarizer::Parse(ctx.Param("scalarizer"));
  Require(s.scalarizer.kind != ml::Scalarizer::Kind::kVector ||
              s.acquisition == ml::Acquisition::kMaxUncertainty ||
              s.acquisition == ml::Acquisition::kRandom,
          "--acquisition " + ml::ToString(s.acquisition) +
              " needs one target value; use a band-mean or band-peak "
              "scalarizer (vector works with mu and random)");
  s.window = static_cast<int>(ctx.IntParam("window"));
  Require(s.window >= 1, "--window must be at least 1");
  s.pool = static_cast<int>(ctx.IntParam("pool"));
  Require(s.pool >= 1, "--pool must be at least 1");
  if (ctx.HasParam("init")) s.init = ctx.Param("init");
  s.instrument = ctx.Param("instrument");
  s.instrument_timeout = ctx.RealParam("instrument-timeout");
  s.normalise_all = ctx.Param("normalise") == "all";
  Require(!s.normalise_all || s.instrument == "replay",
          "--normalise all needs --instrument replay (a live instrument only "
          "knows what it has measured)");
  Require(s.instrument_timeout > 0, "--instrument-timeout must be positive");
  s.epochs = static_cast<int>(ctx.IntParam("epochs"));
  Require(s.epochs >= 0, "--epochs must not be negative");
  s.lr = ctx.RealParam("lr");
  Require(s.lr > 0, "--lr must be positive");
  s.extractor_lr = ctx.RealParam("extractor-lr");
  Require(s.extractor_lr > 0, "--extractor-lr must be positive");
  s.seed = static_cast<std::uint64_t>(ctx.IntParam("seed"));
  s.hidden = ml::DklConfig::Architecture(ctx.Param("architecture"));
  s.kernel = ctx.Param("kernel") == "matern52" ? ml::Kernel::kMatern52
                                               : ml::Kernel::kRbf;
  s.noise_floor = ctx.RealParam("noise-floor");
  Require(s.noise_floor > 0, "--noise-floor must be positive");
  s.out = ctx.HasParam("out") ? fs::path(ctx.Param("out"))
                              : fs::path("dkl-al") / ctx.ExecutionId();
  s.threads = static_cast<int>(ctx.IntParam("threads"));
  s.batch = static_cast<int>(ctx.IntParam("batch"));
  Require(s.batch >= 1, "--batch must be at least 1");
  return s;
}

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

int RunDklAl(Context& ctx) {
  Settings s = ReadSettings(ctx);
  ml::SetTorchThreads(s.threads);

  // Data: the survey image always; the recorded spectra when replaying.
  const bool replay = s.instrument == "replay";
  ml::Experiment experiment = ml::ReadExperiment(s.data, replay);
  ml::Patches patches = ml::MakePatches(experiment.image, experiment.height,
                                        experiment.width, s.window);
  const int groups = experiment.channels / s.pool;
  Require(groups >= 1, "--pool " + std::to_string(s.pool) + " exceeds the " +
                           std::to_string(experiment.channels) +
                           " channels of the spectra");
  std::vector<double> group_energy = ml::PoolEnergy(experiment.energy, s.pool);
  std::vector<int> band = s.scalarizer.Band(group_energy);
  const int outputs = s.scalarizer.Outputs(groups);
  Require(s.seed_points <= patches.count, "--seed-points exceeds the " +
                                              std::to_string(patches.count) +
                                              " candidate locations");

  ml::DklConfig config;
  config.features = patches.features;
  config.hidden = s.hidden;
  config.kernel = s.kernel;
  config.outputs = outputs;
  config.noise_floor = s.noise_floor;
  config.learning_rate = s.lr;
  config.extractor_learning_rate = s.extractor_lr;
  config.predict_batch = s.batch;
  ml::DklModel model(config, s.seed);
  std::string data_hash = ctx.LogInput(s.data.string(), "dataset");
  std::string init_hash;
  if (!s.init.empty()) {
    init_hash = ctx.LogInput(s.init.string(), "model");
    model.Load(s.init);
    model.SetInitialToCurrent();
  }

  // Replay: the truth of every candidate, normalised over the whole set. The
  // model learns it so only with --normalise all; by default it learns, as
  // with a live instrument, targets normalised over the points measured so
  // far, and its map is brought to the truth's scale for the RMSE (every
  // scalarizer commutes with the min-max map: it takes band means, peaks or
  // channels of the normalised spectrum).
  std::vector<double> truth;  // count * outputs
  std::vector<double> all_pooled;
  ml::Range replay_range;
  if (replay) {
    all_pooled = experiment.PooledAtCentres(patches, s.pool);
    replay_range = ml::RangeOf(all_pooled);
    truth.resize(static_cast<std::size_t>(patches.count) * outputs);
    std::vector<double> norm(groups);
    for (int i = 0; i < patches.count; ++i) {
      for (int g = 0; g < groups; ++g)
        norm[g] = replay_range.Normalise(all_pooled[i * groups + g]);
      s.scalarizer.Apply(norm.data(), band, groups, truth.data() + i * outputs);
    }
  }
  // The top 1 % of the scalarized truth: what the experiment looks for.
  double top1 = std::numeric_limits<double>::infinity();
  if (replay && outputs == 1) {
    std::vector<double> sorted = truth;
    std::size_t k = std::max<std::size_t>(1, sorted.size() / 100);
    std::nth_element(sorted.begin(), sorted.end() - k, sorted.end());
    top1 = *(sorted.end() - k);
  }

  std::unique_ptr<Instrument> instrument =
      replay ? MakeReplay(experiment)
             : MakeProcess(s.instrument.substr(5), experiment,
                           s.instrument_timeout);

  fs::create_directories(s.out);
  ctx.SetProperty("candidates", static_cast<std::int64_t>(patches.count));
  ctx.SetProperty("pooled_channels", static_cast<std::int64_t>(groups));
  ctx.SetProperty("output_dir", s.out.string());

  // The measured points: indices, raw spectra, pooled spectra.
  std::vector<char> measured(patches.count, 0);
  ml::MeasuredPoints points;
  points.window = s.window;
  points.channels = experiment.channels;
  points.energy = experiment.energy;
  std::vector<int> chosen;
  std::vector<std::vector<double>> pooled;
  auto measure = [&](int index, int step) {
    int x = patches.CentreX(index);
    int y = patches.CentreY(index);
    std::vector<float> spectrum = instrument->Measure(x, y);
    measured[index] = 1;
    chosen.push_back(index);
    pooled.push_back(
        ml::PoolSpectrum(spectrum.data(), experiment.channels, s.pool));
    points.x.push_back(x);
    points.y.push_back(y);
    points.step.push_back(step);
    std::vector<float> patch =
        ml::RawPatch(experiment.image, experiment.width, s.window, x, y);
    points.patches.insert(points.patches.end(), patch.begin(), patch.end());
    points.spectra.insert(points.spectra.end(), spectrum.begin(),
                          spectrum.end());
  };
  ml::Range measured_range;  // of the pooled spectra measured so far
  auto training_set = [&](std::vector<float>* x, std::vector<double>* y) {
    x->clear();
    for (int i : chosen)
      x->insert(x->end(),
                patches.values.begin() +
                    static_cast<std::size_t>(i) * patches.features,
                patches.values.begin() +
                    static_cast<std::size_t>(i + 1) * patches.features);
    if (s.normalise_all) {
      y->clear();
      for (int i : chosen)
        y->insert(y->end(),
                  truth.begin() + static_cast<std::size_t>(i) * outputs,
                  truth.begin() + static_cast<std::size_t>(i + 1) * outputs);
    } else {
      // As a live instrument: normalise over what has been measured so far.
      std::vector<double> flat;
      for (const auto& p : pooled) flat.insert(flat.end(), p.begin(), p.end());
      measured_range = ml::RangeOf(flat);
      *y = Targets(pooled, measured_range, s.scalarizer, band, groups);
    }
  };

  std::map<std::string, std::string> slice_attributes = {
      {"parent_sha256", data_hash},
      {"parent_path", s.data.string()},
      {"execution", ctx.ExecutionId()},
      {"scalarizer", s.scalarizer.ToString()},
      {"pool", std::to_string(s.pool)},
      {"acquisition", ml::ToString(s.acquisition)},
      {"instrument", instrument->Describe()},
  };
  // Writes and logs the measured points; also when the run ends early, so
  // that what was measured is never lost.
  auto save_measured = [&]() {
    fs::path file = s.out / "measured.h5";
    ml::WriteMeasured(file, points, slice_attributes);
    std::string hash = ctx.LogOutput(file.string(), "dataslice");
    ctx.LogDerivedFrom(hash, data_hash);
  };

  std::uint64_t rng = s.seed * 0x9e3779b97f4a7c15ULL + 1;
  std::int64_t first_top1_step = -1;
  std::vector<float> train_x;
  std::vector<double> train_y;
  ml::Prediction prediction;
  // The RMSE of the predicted map against the recorded truth (replay).
  auto map_rmse = [&]() {
    // Measured scale -> raw -> the truth's scale.
    const double width = replay_range.max - replay_range.min;
    double scale = 1, shift = 0;
    if (!s.normalise_all) {
      // A flat map's truth is 0 everywhere (ml::Range).
      scale = width > 0 ? (measured_range.max - measured_range.min) / width : 0;
      shift = width > 0 ? (measured_range.min - replay_range.min) / width : 0;
    }
    double sum = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
      double d = prediction.mean[i] * scale + shift - truth[i];
      sum += d * d;
    }
    return std::sqrt(sum / static_cast<double>(truth.size()));
  };
  int step = 0;
  try {
    // Seed points, uniformly at random.
    while (static_cast<int>(chosen.size()) < s.seed_points) {
      int i = ml::UniformIndex(&rng, patches.count);
      if (!measured[i]) measure(i, 0);
    }
    for (step = 1; step <= s.steps; ++step) {
      if (ctx.Cancelled()) break;
      if (static_cast<int>(chosen.size()) >= patches.count) break;
      auto start = std::chrono::steady_clock::now();
      training_set(&train_x, &train_y);
      model.Reset();
      std::vector<double> losses = model.Train(
          train_x, static_cast<int>(chosen.size()), train_y, s.epochs);
      prediction = model.Predict(patches.values.data(), patches.count);

      // One value per candidate for the acquisition: the target itself, or
      // for a vector target the mean of the outputs' variances.
      std::vector<double> mean(patches.count), variance(patches.count);
      for (int i = 0; i < patches.count; ++i) {
        double m = 0, v = 0;
        for (int o = 0; o < outputs; ++o) {
          m += prediction.mean[static_cast<std::size_t>(i) * outputs + o];
          v += prediction.variance[static_cast<std::size_t>(i) * outputs + o];
        }
        mean[i] = m / outputs;
        variance[i] = v / outputs;
      }
      double best = -std::numeric_limits<double>::infinity();
      if (outputs == 1)
        for (double v : train_y) best = std::max(best, v);
      std::vector<double> values = ml::AcquisitionValues(
          s.acquisition, mean, variance, best, s.acq_params);
      int next = ml::Choose(s.acquisition, values, measured, &rng);
      if (next < 0) break;
      double max_sd = 0;
      for (int i = 0; i < patches.count; ++i)
        if (!measured[i]) max_sd = std::max(max_sd, std::sqrt(variance[i]));
      double rmse = replay ? map_rmse() : 0;

      measure(next, step);
      double seconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start)
                           .count();
      if (first_top1_step < 0 && replay && outputs == 1 && truth[next] >= top1)
        first_top1_step = step;

      ctx.LogMetric("x", step, patches.CentreX(next));
      ctx.LogMetric("y", step, patches.CentreY(next));
      ctx.LogMetric(
          "acquisition", step,
          s.acquisition == ml::Acquisition::kRandom ? 0.0 : values[next]);
      ctx.LogMetric("max_uncertainty", step, max_sd);
      ctx.LogMetric("train_loss", step,
                    losses.empty() ? std::nan("") : losses.back());
      ctx.LogMetric("step_seconds", step, seconds);
      if (replay) ctx.LogMetric("rmse", step, rmse);
      ctx.Progress(step, s.steps,
                   "step " + std::to_string(step) + "/" +
                       std::to_string(s.steps) +
                       (replay ? ", rmse " + std::to_string(rmse) : ""));
    }
  } catch (...) {
    // The controller failed (or the model): keep what was measured.
    try {
      if (!chosen.empty()) save_measured();
    } catch (...) {
    }
    throw;
  }
  const int completed = std::min(step - 1, s.steps);

  // The final model, conditioned on every measured point, and its maps.
  training_set(&train_x, &train_y);
  model.Reset();
  std::vector<double> losses =
      model.Train(train_x, static_cast<int>(chosen.size()), train_y, s.epochs);
  prediction = model.Predict(patches.values.data(), patches.count);
  fs::path model_file = s.out / "model.pt";
  model.Save(model_file, {{"execution", ctx.ExecutionId()},
                          {"data_sha256", data_hash},
                          {"scalarizer", s.scalarizer.ToString()},
                          {"window", std::to_string(s.window)},
                          {"pool", std::to_string(s.pool)},
                          {"plugin", std::string("dkl ") + kVersion}});
  fs::path maps_file = s.out / "maps.h5";
  std::map<std::string, std::string> maps_attributes = slice_attributes;
  maps_attributes["what"] =
      "posterior mean and standard deviation of the normalised target at "
      "every candidate centre";
  ml::WriteMaps(maps_file, patches, outputs, prediction.mean,
                prediction.variance, measured, maps_attributes);
  save_measured();
  std::string model_hash = ctx.LogOutput(model_file.string(), "model");
  ctx.LogDerivedFrom(model_hash, data_hash);
  if (!init_hash.empty()) ctx.LogDerivedFrom(model_hash, init_hash);
  std::string maps_hash = ctx.LogOutput(maps_file.string(), "dataset");
  ctx.LogDerivedFrom(maps_hash, model_hash);

  ctx.SetProperty("steps_completed", static_cast<std::int64_t>(completed));
  ctx.SetProperty("measured_points", static_cast<std::int64_t>(chosen.size()));
  if (!losses.empty()) ctx.SetProperty("final_train_loss", losses.back());
  if (replay) {
    ctx.SetProperty("final_rmse", map_rmse());
    if (outputs == 1) ctx.SetProperty("first_top1_step", first_top1_step);
  }
  if (!ctx.Cancelled())
    ctx.Info("measured " + std::to_string(chosen.size()) +
             " points; results in " + s.out.string() +
             "/ (model.pt, maps.h5, measured.h5)");
  return 0;
}

const char* const kAcquisitions[] = {"mu", "ei", "ucb", "random", nullptr};
const char* const kInstruments[] = {"replay", "proc:", nullptr};
const char* const kNormalisations[] = {"measured", "all", nullptr};

const cmf_param kParams[] = {
    {"data", CMF_PARAM_PATH, nullptr,
     "the experiment file (HDF5: /image, /energy, and /spectra to replay)",
     nullptr, CMF_PARAM_REQUIRED},
    {"steps", CMF_PARAM_INT, "100", "active-learning steps", nullptr, 0},
    {"seed-points", CMF_PARAM_INT, "2",
     "locations measured at random before the first step", nullptr, 0},
    {"acquisition", CMF_PARAM_STRING, "mu",
     "mu: maximum uncertainty; ei: expected improvement; ucb: upper "
     "confidence bound; random",
     kAcquisitions, 0},
    {"xi", CMF_PARAM_REAL, "0.01", "ei: the improvement that counts", nullptr,
     0},
    {"beta", CMF_PARAM_REAL, "2", "ucb: mean + beta * sd", nullptr, 0},
    {"scalarizer", CMF_PARAM_STRING, "band-peak:0.85:0.95",
     "the target: band-mean:LO:HI or band-peak:LO:HI (eV) of the pooled "
     "spectrum, or vector (every pooled channel)",
     ml::kScalarizerChoices, 0},
    {"window", CMF_PARAM_INT, "16", "patch size in pixels", nullptr, 0},
    {"pool", CMF_PARAM_INT, "32", "spectral channels averaged into one",
     nullptr, 0},
    {"init", CMF_PARAM_PATH, nullptr,
     "a model (model.pt of dkl-al or a meta-model) every step starts from",
     nullptr, 0},
    {"instrument", CMF_PARAM_STRING, "replay",
     "replay: the recorded spectra of --data; proc:CMD: a controller speaking "
     "doc/instrument-protocol.md",
     kInstruments, 0},
    {"instrument-timeout", CMF_PARAM_REAL, "60",
     "seconds to wait for each answer of a controller", nullptr, 0},
    {"normalise", CMF_PARAM_STRING, "measured",
     "targets min-max normalised over the points measured so far, as a live "
     "run must; all: over the whole recorded map (replay only; knows more "
     "than a microscope can)",
     kNormalisations, 0},
    {"epochs", CMF_PARAM_INT, "20", "Adam steps per active-learning step",
     nullptr, 0},
    {"lr", CMF_PARAM_REAL, "0.01",
     "Adam's learning rate for the GP's hyperparameters", nullptr, 0},
    {"extractor-lr", CMF_PARAM_REAL, "0.001",
     "Adam's learning rate for the feature extractor", nullptr, 0},
    {"seed", CMF_PARAM_INT, "0", "seeds the weights and every random choice",
     nullptr, 0},
    {"architecture", CMF_PARAM_STRING, "small",
     "feature extractor: small (w*w-64-64-2) or large (w*w-1000-500-50-2; "
     "'default' is its old name)",
     ml::kArchitectureChoices, 0},
    {"kernel", CMF_PARAM_STRING, "rbf", "GP kernel", ml::kKernelChoices, 0},
    {"noise-floor", CMF_PARAM_REAL, "0.0001", "the GP noise's lower bound",
     nullptr, 0},
    {"out", CMF_PARAM_PATH, nullptr,
     "folder for model.pt, maps.h5 and measured.h5 (default "
     "dkl-al/<execution id>)",
     nullptr, 0},
    {"threads", CMF_PARAM_INT, "1",
     "LibTorch's own threads (OpenBLAS uses every core for the matrix "
     "products either way; 0: LibTorch's default)",
     nullptr, 0},
    {"batch", CMF_PARAM_INT, "4096", "candidates per prediction batch", nullptr,
     0},
};

const cmf_stage kStages[] = {
    {"dkl-al",
     "Deep kernel learning active learning: measure where the model is least "
     "sure",
     kParams, std::size(kParams), &plugin::Invoke<&RunDklAl>},
};

const cmf_plugin kPlugin = {CMF_PLUGIN_ABI_VERSION,
                            "dkl",
                            kVersion,
                            "Deep kernel learning (MLP + exact GP) on image "
                            "patches and spectra",
                            kStages,
                            std::size(kStages)};

}  // namespace
}  // namespace cmf::dkl

extern "C" const cmf_plugin* cmf_plugin_entry(uint32_t) {
  return &cmf::dkl::kPlugin;
}
