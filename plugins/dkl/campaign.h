// The active-learning loop of dkl-al: a campaign of measurements over the
// candidate patches of a survey. Each step trains a fresh DKL model on what
// has been measured, measures where the acquisition points, and logs the step
// through the host; at the end the final model, its maps and the measured
// points are written and logged. dkl_al.cpp reads the settings and the data
// and sets the campaign up.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "acquisition.h"
#include "cmf/plugin_cpp.h"
#include "data.h"
#include "dkl.h"
#include "instrument.h"
#include "results.h"

namespace cmf::dkl {

// The plugin's version: in its table and in the models it writes.
inline constexpr const char* kVersion = "0.1.0";

// Everything the loop needs, read and checked before anything is measured.
struct Settings {
  std::filesystem::path data;
  int steps = 0;
  int seed_points = 0;
  ml::Acquisition acquisition = ml::Acquisition::kMaxUncertainty;
  ml::AcquisitionParams acq_params;
  ml::Scalarizer scalarizer;
  int window = 0;
  int pool = 0;
  std::filesystem::path init;
  std::string instrument;
  double instrument_timeout = 0;
  bool normalise_all = false;  // replay: targets over the whole recorded map
  int epochs = 0;
  // Adam steps of each step after the first, continuing from the model the
  // step before trained; 0: every step trains a fresh model for EPOCHS.
  int warm_epochs = 0;
  double lr = 0;
  double extractor_lr = 0;
  std::uint64_t seed = 0;
  std::vector<int> hidden;
  ml::Kernel kernel = ml::Kernel::kRbf;
  double noise_floor = 0;
  std::filesystem::path out;
  int threads = 0;
  int batch = 0;
};

// The survey: the image cut into candidate patches, and the shape of the
// targets.
struct Survey {
  bool replay = false;  // the recorded spectra answer, not a controller
  ml::Experiment experiment;
  ml::Patches patches;
  int groups = 0;         // pooled channels
  std::vector<int> band;  // the groups the scalarizer reads
  int outputs = 0;        // target values per candidate
};

// Replay: the truth of every candidate, normalised over the whole set. The
// model learns it so only with --normalise all; by default it learns, as
// with a live instrument, targets normalised over the points measured so
// far, and its map is brought to the truth's scale for the RMSE (every
// scalarizer commutes with the min-max map: it takes band means, peaks or
// channels of the normalised spectrum).
struct Truth {
  std::vector<double> values;  // count * outputs
  ml::Range range;             // of every recorded pooled spectrum
  // The top 1 % of the scalarized truth: what the experiment looks for.
  double top1 = std::numeric_limits<double>::infinity();
};

// One run of the loop: the model, the instrument, and the points measured so
// far, with what is logged about them.
class Campaign {
 public:
  Campaign(plugin::Context& ctx, const Settings& s, const Survey& survey,
           const Truth& truth, ml::DklModel& model, Instrument& instrument,
           const std::string& data_hash);

  // Measures the seed points, then runs the active-learning steps; returns
  // how many steps were completed. When the controller or the model fails,
  // saves what was measured and rethrows.
  int Run();
  // The final model, conditioned on every measured point, and its maps:
  // writes and logs them with the measured points. Returns the final
  // training's losses.
  std::vector<double> SaveResults(const std::string& init_hash);
  // Sets the run's properties and tells the user where the results are.
  void Report(int completed, const std::vector<double>& losses);

 private:
  // Where a step measures next, and what the acquisition saw.
  struct Choice {
    std::vector<double> values;  // the acquisition's, per candidate
    int next = -1;               // -1: no candidate left
    double max_sd = 0;           // the largest sd of an unmeasured candidate
    double sd = 0;               // the sd at the chosen candidate
  };

  // Measures candidate INDEX at STEP (0: a seed point).
  void Measure(int index, int step);
  // The measured points' patches (X) and targets (Y).
  void TrainingSet(std::vector<float>* x, std::vector<double>* y);
  // Trains the model on the measured points (afresh, or on from the last
  // step's model with --warm-epochs) and predicts the map into prediction_;
  // the training's losses.
  std::vector<double> FitAndPredict();
  // Writes and logs the measured points; also when the run ends early, so
  // that what was measured is never lost.
  void SaveMeasured();
  // The RMSE of the predicted map against the recorded truth (replay).
  double MapRmse() const;
  // One active-learning step; false when no candidate is left to choose.
  bool Step(int step);
  // The acquisition over the prediction of every candidate.
  Choice ChooseNext();
  void LogStep(int step, const Choice& choice,
               const std::vector<double>& losses, double seconds, double rmse);

  plugin::Context& ctx_;
  const Settings& s_;
  const Survey& survey_;
  const Truth& truth_;
  ml::DklModel& model_;
  Instrument& instrument_;
  const std::string data_hash_;

  // The measured points: indices, raw spectra, pooled spectra.
  std::vector<char> measured_;
  ml::MeasuredPoints points_;
  std::vector<int> chosen_;
  std::vector<std::vector<double>> pooled_;
  ml::Range measured_range_;  // of the pooled spectra measured so far
  std::map<std::string, std::string> slice_attributes_;

  std::uint64_t rng_;
  std::int64_t first_top1_step_ = -1;
  bool fitted_ = false;  // the model holds a step's training
  std::vector<float> train_x_;
  std::vector<double> train_y_;
  ml::Prediction prediction_;
};

}  // namespace cmf::dkl
