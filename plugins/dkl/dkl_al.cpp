// The dkl plugin: `cmf run dkl-al`, deep kernel learning active learning that
// chooses where the microscope measures next. Every step's choice,
// uncertainty and result is logged through the host; the final model, the
// predicted maps and the measured points (a data slice of the input) are the
// run's outputs. This file is the stage: its parameters, reading the settings
// and the data, and setting up the loop of campaign.h.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "acquisition.h"
#include "campaign.h"
#include "cmf/plugin.h"
#include "cmf/plugin_cpp.h"
#include "data.h"
#include "dkl.h"
#include "instrument.h"

namespace cmf::dkl {
namespace {

namespace fs = std::filesystem;
using plugin::Context;

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
  s.warm_epochs = static_cast<int>(ctx.IntParam("warm-epochs"));
  Require(s.warm_epochs >= 0, "--warm-epochs must not be negative");
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

// Reads the data of S and checks the settings that depend on it.
Survey ReadSurvey(const Settings& s) {
  Survey v;
  // Data: the survey image always; the recorded spectra when replaying.
  v.replay = s.instrument == "replay";
  v.experiment = ml::ReadExperiment(s.data, v.replay);
  v.patches = ml::MakePatches(v.experiment.image, v.experiment.height,
                              v.experiment.width, s.window);
  v.groups = v.experiment.channels / s.pool;
  Require(v.groups >= 1, "--pool " + std::to_string(s.pool) + " exceeds the " +
                             std::to_string(v.experiment.channels) +
                             " channels of the spectra");
  std::vector<double> group_energy =
      ml::PoolEnergy(v.experiment.energy, s.pool);
  v.band = s.scalarizer.Band(group_energy);
  v.outputs = s.scalarizer.Outputs(v.groups);
  Require(s.seed_points <= v.patches.count,
          "--seed-points exceeds the " + std::to_string(v.patches.count) +
              " candidate locations");
  return v;
}

ml::DklConfig ModelConfig(const Settings& s, const Survey& v) {
  ml::DklConfig config;
  config.features = v.patches.features;
  config.hidden = s.hidden;
  config.kernel = s.kernel;
  config.outputs = v.outputs;
  config.noise_floor = s.noise_floor;
  config.learning_rate = s.lr;
  config.extractor_learning_rate = s.extractor_lr;
  config.predict_batch = s.batch;
  return config;
}

struct InputHashes {
  std::string data;
  std::string init;  // empty without --init
};

// Logs the run's inputs: the data, and the model of --init, which MODEL loads
// and every step then starts from.
InputHashes LogInputs(Context& ctx, const Settings& s, ml::DklModel* model) {
  InputHashes hashes;
  hashes.data = ctx.LogInput(s.data.string(), "dataset");
  if (!s.init.empty()) {
    hashes.init = ctx.LogInput(s.init.string(), "model");
    model->Load(s.init);
    model->SetInitialToCurrent();
  }
  return hashes;
}

// The truth when replaying; without a recorded map, none.
Truth ReplayTruth(const Settings& s, const Survey& v) {
  Truth truth;
  if (v.replay) {
    std::vector<double> all_pooled =
        v.experiment.PooledAtCentres(v.patches, s.pool);
    truth.range = ml::RangeOf(all_pooled);
    truth.values.resize(static_cast<std::size_t>(v.patches.count) * v.outputs);
    std::vector<double> norm(v.groups);
    for (int i = 0; i < v.patches.count; ++i) {
      for (int g = 0; g < v.groups; ++g)
        norm[g] = truth.range.Normalise(all_pooled[i * v.groups + g]);
      s.scalarizer.Apply(norm.data(), v.band, v.groups,
                         truth.values.data() + i * v.outputs);
    }
  }
  if (v.replay && v.outputs == 1) {
    std::vector<double> sorted = truth.values;
    std::size_t k = std::max<std::size_t>(1, sorted.size() / 100);
    std::nth_element(sorted.begin(), sorted.end() - k, sorted.end());
    truth.top1 = *(sorted.end() - k);
  }
  return truth;
}

int RunDklAl(Context& ctx) {
  Settings s = ReadSettings(ctx);
  ml::SetTorchThreads(s.threads);
  const Survey survey = ReadSurvey(s);
  ml::DklModel model(ModelConfig(s, survey), s.seed);
  const InputHashes inputs = LogInputs(ctx, s, &model);
  const Truth truth = ReplayTruth(s, survey);

  std::unique_ptr<Instrument> instrument =
      survey.replay ? MakeReplay(survey.experiment)
                    : MakeProcess(s.instrument.substr(5), survey.experiment,
                                  s.instrument_timeout);

  fs::create_directories(s.out);
  ctx.SetProperty("candidates",
                  static_cast<std::int64_t>(survey.patches.count));
  ctx.SetProperty("pooled_channels", static_cast<std::int64_t>(survey.groups));
  ctx.SetProperty("output_dir", s.out.string());

  Campaign campaign(ctx, s, survey, truth, model, *instrument, inputs.data);
  const int completed = campaign.Run();
  std::vector<double> losses = campaign.SaveResults(inputs.init);
  campaign.Report(completed, losses);
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
    {"warm-epochs", CMF_PARAM_INT, "5",
     "after the first step, continue from the last step's model for this "
     "many Adam steps instead of training a fresh one (0: fresh every step)",
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
