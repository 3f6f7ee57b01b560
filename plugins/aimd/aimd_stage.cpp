// The aimd-al plugin: `cmf run aimd-al` searches the frames of molecular
// dynamics trajectories for the most stable structure with few energy
// evaluations (active learning with deep kernel learning, aimd_loop.h), and
// hands back what it learned: the predicted energy of every frame, the most
// stable frame found (a data slice of its trajectory, also as a LAMMPS data
// file and extended XYZ for the next MD), and the frames the model is least
// sure of (calibration slices for the next simulations).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aimd_loop.h"
#include "aimd_pool.h"
#include "cmf/plugin.h"
#include "cmf/plugin_cpp.h"
#include "dkl.h"
#include "energy_driver.h"
#include "h5io.h"
#include "text_file.h"
#include "trajectory.h"

namespace cmf::aimd {
namespace {

namespace fs = std::filesystem;
using plugin::Context;

constexpr const char* kVersion = "0.1.0";
void Require(bool ok, const std::string& message) {
  if (!ok) throw plugin::Error(message);
}

struct Source {
  std::string path;
  std::string hash;
  md::Trajectory t;
};

// Frames of SOURCE as a data slice: the frames' own trajectory file, with the
// attributes that name its parent and the selection.
std::string WriteSlice(Context& ctx, const fs::path& path, const Source& s,
                       const std::vector<int>& frames, const std::string& why) {
  md::Trajectory slice = md::Subset(s.t, frames);
  std::string list;
  for (int f : frames) list += (list.empty() ? "" : " ") + std::to_string(f);
  slice.text["parent_sha256"] = s.hash;
  slice.text["parent_path"] = s.path;
  slice.text["dataset"] = "/positions";
  slice.text["selection"] = "frames " + list + " (0-based): " + why;
  md::WriteTrajectory(path, slice);
  std::string hash = ctx.LogOutput(path.string(), "dataslice");
  ctx.LogDerivedFrom(hash, s.hash);
  return hash;
}

int Run(Context& ctx) {
  // Every integer is checked as the 64-bit value given before it is narrowed.
  auto bounded = [&ctx](const char* name, std::int64_t lo, std::int64_t hi) {
    const std::int64_t v = ctx.IntParam(name);
    Require(v >= lo && v <= hi, std::string("--") + name + " must be " +
                                    std::to_string(lo) + " to " +
                                    std::to_string(hi));
    return v;
  };
  LoopOptions o;
  o.steps = static_cast<int>(bounded("steps", 1, 1'000'000));
  o.seed_frames = static_cast<int>(bounded("seed-frames", 1, 1'000'000));
  o.pick = ParsePick(ctx.Param("acquisition"));
  o.kappa = ctx.RealParam("kappa");
  o.epochs = static_cast<int>(bounded("epochs", 1, 100'000));
  o.seed = static_cast<std::uint64_t>(bounded("seed", 0, INT64_MAX));
  o.model.hidden = ml::DklConfig::Architecture(ctx.Param("architecture"));
  const std::string features = ctx.Param("features");
  const bool absolute = ctx.BoolParam("absolute");
  const int calibration =
      static_cast<int>(bounded("calibration", 0, 1'000'000));
  Require(o.kappa >= 0, "--kappa must not be negative");
  const fs::path out = ctx.Param("out");
  const std::string energy = ctx.Param("energy");
  const bool replay = energy == "replay";
  const double timeout = ctx.RealParam("energy-timeout");
  Require(timeout > 0, "--energy-timeout must be positive");

  std::vector<Source> sources;
  for (const std::string& path : ctx.Params("trajectories")) {
    Source s;
    s.path = path;
    s.t = md::ReadTrajectory(path);
    Require(!replay || !s.t.energy.empty(),
            "'" + path +
                "' has no /energy: --energy replay reveals the recorded "
                "energies, and "
                "this trajectory has none (ask a driver: --energy proc:CMD)");
    s.hash = ctx.LogInput(path, "dataset");
    sources.push_back(std::move(s));
  }
  std::string init_hash;
  if (ctx.HasParam("init")) {
    Require(features == "image",
            "--init needs --features image: a meta-model trained on "
            "microscope patches reads 16 x 16 images, not bond histograms");
    o.init = ctx.Param("init");
    init_hash = ctx.LogInput(o.init, "model");
  }

  std::vector<const md::Trajectory*> trajectories;
  std::vector<int> traj_of, frame_of;
  for (std::size_t k = 0; k < sources.size(); ++k) {
    trajectories.push_back(&sources[k].t);
    for (int f = 0; f < sources[k].t.frames(); ++f) {
      traj_of.push_back(static_cast<int>(k));
      frame_of.push_back(f);
    }
  }
  Pool pool = MakePool(trajectories, features, [&ctx](int done, int total) {
    ctx.Progress(done, total, "features of frame " + std::to_string(done));
    return !ctx.Cancelled();
  });
  ctx.SetProperty("frames", static_cast<std::int64_t>(pool.count));
  ctx.SetProperty("features_width", static_cast<std::int64_t>(pool.features));

  // The target: energy per atom, centred per trajectory unless --absolute.
  // Replay centres by the mean of every recorded frame, as the published
  // work did; a driver's energies are centred by the mean of the frames of
  // that trajectory evaluated so far (recomputed at every step).
  std::vector<double> truth;
  int true_min = -1;
  if (replay) {
    truth = Targets(trajectories, absolute);
    true_min = static_cast<int>(std::min_element(truth.begin(), truth.end()) -
                                truth.begin());
    ctx.SetProperty("true_minimum", truth[true_min]);
    ctx.SetProperty("true_minimum_trajectory",
                    static_cast<std::int64_t>(traj_of[true_min]));
    ctx.SetProperty("true_minimum_frame",
                    static_cast<std::int64_t>(frame_of[true_min]));
  } else if (!absolute) {
    o.centre_groups = traj_of;
  }
  std::unique_ptr<md::EnergyDriver> driver;
  if (!replay)
    driver = std::make_unique<md::EnergyDriver>(
        energy.substr(5), timeout, [&ctx] { return ctx.Cancelled(); });

  // Every evaluation, as it happens: what evaluated.h5 keeps, even when the
  // driver fails half-way.
  struct Evaluation {
    int trajectory, frame;
    double energy;  // eV, the whole frame
  };
  std::vector<Evaluation> evaluations;
  int found_at =
      -1;  // the evaluation that first reached the true minimum (replay)
  auto evaluate = [&](int i) {
    const Source& s = sources[traj_of[i]];
    const int f = frame_of[i];
    const double e =
        replay ? s.t.energy[f] : driver->Energy(s.t, traj_of[i], f);
    evaluations.push_back({traj_of[i], f, e});
    if (i == true_min && found_at < 0)
      found_at = static_cast<int>(evaluations.size());
    return replay ? truth[i] : e / s.t.atoms();
  };
  auto save_evaluations = [&]() {
    std::error_code ec;
    fs::create_directories(out, ec);
    Require(fs::is_directory(out),
            "cannot create the folder '" + out.string() + "'");
    h5::NewFile f(out / "evaluated.h5");
    const hsize_t n = static_cast<hsize_t>(evaluations.size());
    std::vector<int> t, fr;
    std::vector<double> e, per_atom;
    for (const Evaluation& v : evaluations) {
      t.push_back(v.trajectory);
      fr.push_back(v.frame);
      e.push_back(v.energy);
      per_atom.push_back(v.energy / sources[v.trajectory].t.atoms());
    }
    h5::Write(f.get(), "trajectory", H5T_NATIVE_INT, H5T_STD_I32LE, {n},
              t.data(), f.path());
    h5::Write(f.get(), "frame", H5T_NATIVE_INT, H5T_STD_I32LE, {n}, fr.data(),
              f.path());
    h5::Write(f.get(), "energy", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {n},
              e.data(), f.path());
    h5::Write(f.get(), "energy_per_atom", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE,
              {n}, per_atom.data(), f.path());
    h5::Attribute(f.get(), "energy_source", energy);
    f.Commit();
    const std::string hash =
        ctx.LogOutput((out / "evaluated.h5").string(), "dataset");
    for (const Source& s : sources) ctx.LogDerivedFrom(hash, s.hash);
  };
  LoopResult r;
  try {
    r = RunLoop(pool, o, evaluate, replay ? &truth : nullptr,
                [&](const StepLog& s) {
                  ctx.LogMetric("trajectory", s.step, traj_of[s.index]);
                  ctx.LogMetric("frame", s.step, frame_of[s.index]);
                  ctx.LogMetric("predicted", s.step, s.predicted);
                  ctx.LogMetric("uncertainty", s.step, s.uncertainty);
                  ctx.LogMetric("best", s.step, s.best);
                  ctx.LogMetric("max_uncertainty", s.step, s.max_uncertainty);
                  if (replay) ctx.LogMetric("regret", s.step, s.regret);
                  if (replay) ctx.LogMetric("rmse", s.step, s.rmse);
                  ctx.LogMetric("step_seconds", s.step, s.seconds);
                  ctx.Progress(s.step, o.steps,
                               "step " + std::to_string(s.step) + "/" +
                                   std::to_string(o.steps) + ", best " +
                                   std::to_string(s.best));
                  return !ctx.Cancelled();
                });
  } catch (...) {
    // The driver (or the model) failed: keep what was evaluated.
    try {
      if (!evaluations.empty()) save_evaluations();
    } catch (...) {
    }
    throw;
  }
  ctx.SetProperty("evaluations", static_cast<std::int64_t>(r.order.size()));
  if (replay)
    ctx.SetProperty("found_minimum_at", static_cast<std::int64_t>(found_at));

  // Outputs, each written whole or not at all.
  save_evaluations();
  {
    h5::NewFile f(out / "predictions.h5");
    const hsize_t n = static_cast<hsize_t>(pool.count);
    std::vector<unsigned char> evaluated(pool.count, 0);
    std::vector<double> target(pool.count,
                               std::numeric_limits<double>::quiet_NaN());
    for (std::size_t k = 0; k < r.order.size(); ++k) {
      evaluated[r.order[k]] = 1;
      target[r.order[k]] = r.target[k];
    }
    h5::Write(f.get(), "predicted", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {n},
              r.predicted.data(), f.path());
    h5::Write(f.get(), "uncertainty", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {n},
              r.uncertainty.data(), f.path());
    h5::Write(f.get(), "evaluated", H5T_NATIVE_UCHAR, H5T_STD_U8LE, {n},
              evaluated.data(), f.path());
    h5::Write(f.get(), "target", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {n},
              target.data(), f.path());
    h5::Write(f.get(), "trajectory", H5T_NATIVE_INT, H5T_STD_I32LE, {n},
              traj_of.data(), f.path());
    h5::Write(f.get(), "frame", H5T_NATIVE_INT, H5T_STD_I32LE, {n},
              frame_of.data(), f.path());
    h5::Write(f.get(), "order", H5T_NATIVE_INT, H5T_STD_I32LE,
              {static_cast<hsize_t>(r.order.size())}, r.order.data(), f.path());
    h5::Attribute(f.get(), "target",
                  absolute ? "energy per atom (eV)"
                           : "energy per atom (eV), centred per trajectory");
    h5::Attribute(f.get(), "features", features);
    f.Commit();
  }
  const std::string predictions_hash =
      ctx.LogOutput((out / "predictions.h5").string(), "dataset");
  for (const Source& s : sources) ctx.LogDerivedFrom(predictions_hash, s.hash);
  if (!init_hash.empty()) ctx.LogDerivedFrom(predictions_hash, init_hash);

  // The most stable frame evaluated.
  std::size_t best_k = static_cast<std::size_t>(
      std::min_element(r.target.begin(), r.target.end()) - r.target.begin());
  const int best = r.order[best_k];
  const Source& bs = sources[traj_of[best]];
  const std::string slice_hash =
      WriteSlice(ctx, out / "most_stable.h5", bs, {frame_of[best]},
                 "the lowest energy aimd-al evaluated");
  h5::WriteTextFile(
      out / "most_stable.data",
      md::LammpsData(bs.t, frame_of[best],
                     "most stable frame " + std::to_string(frame_of[best]) +
                         " of " + bs.path + " (cmf run aimd-al)"));
  h5::WriteTextFile(out / "most_stable.xyz",
                    md::ExtxyzFrame(bs.t, frame_of[best]));
  for (const char* name : {"most_stable.data", "most_stable.xyz"})
    ctx.LogDerivedFrom(ctx.LogOutput((out / name).string(), "file"),
                       slice_hash);
  ctx.SetProperty("most_stable_trajectory",
                  static_cast<std::int64_t>(traj_of[best]));
  ctx.SetProperty("most_stable_frame",
                  static_cast<std::int64_t>(frame_of[best]));
  ctx.SetProperty("most_stable_target", r.target[best_k]);

  // Calibration: the frames not evaluated that the last model is least sure
  // of, one slice per trajectory that has any.
  std::vector<int> open;
  for (int i = 0; i < pool.count; ++i)
    if (std::find(r.order.begin(), r.order.end(), i) == r.order.end())
      open.push_back(i);
  std::stable_sort(open.begin(), open.end(), [&](int a, int b) {
    return r.uncertainty[a] > r.uncertainty[b];
  });
  if (static_cast<int>(open.size()) > calibration) open.resize(calibration);
  for (std::size_t k = 0; k < sources.size(); ++k) {
    std::vector<int> frames;
    for (int i : open)
      if (traj_of[i] == static_cast<int>(k)) frames.push_back(frame_of[i]);
    if (frames.empty()) continue;
    std::sort(frames.begin(), frames.end());
    WriteSlice(ctx, out / ("calibration-" + std::to_string(k) + ".h5"),
               sources[k], frames,
               "the frames aimd-al's model is least sure of");
  }
  ctx.Info("most stable frame: " + std::to_string(frame_of[best]) + " of " +
           bs.path + " (" + std::to_string(r.target[best_k]) + " eV/atom" +
           (absolute ? "" : " from its mean") + ") after " +
           std::to_string(r.order.size()) + " of " +
           std::to_string(pool.count) + " frames evaluated; results in " +
           out.string() + "/");
  return r.stopped && ctx.Cancelled() ? 1 : 0;
}

const char* const kFeatures[] = {"bonds", "image", nullptr};
const char* const kEnergy[] = {"replay", "proc:", nullptr};

const cmf_param kParams[] = {
    {"trajectories", CMF_PARAM_PATH, nullptr,
     "trajectory files (md-mos2, trajectory-import)", nullptr,
     CMF_PARAM_MULTIPLE | CMF_PARAM_REQUIRED},
    {"steps", CMF_PARAM_INT, "30", "energy evaluations after the seed frames",
     nullptr, 0},
    {"seed-frames", CMF_PARAM_INT, "5", "frames evaluated at random first",
     nullptr, 0},
    {"features", CMF_PARAM_STRING, "bonds", "what the model reads of a frame",
     kFeatures, 0},
    {"acquisition", CMF_PARAM_STRING, "lcb", "how the next frame is chosen",
     kPickChoices, 0},
    {"kappa", CMF_PARAM_REAL, "2", "lcb: mean - kappa * sd", nullptr, 0},
    {"energy", CMF_PARAM_STRING, "replay",
     "replay (the recorded /energy) or proc:CMD (a driver, doc/aimd.md)",
     kEnergy, 0},
    {"energy-timeout", CMF_PARAM_REAL, "3600",
     "seconds the driver may take for one energy", nullptr, 0},
    {"init", CMF_PARAM_PATH, nullptr,
     "a DKL meta-model (reptile) to start from (--features image)", nullptr, 0},
    {"architecture", CMF_PARAM_STRING, "small", "the feature extractor",
     ml::kArchitectureChoices, 0},
    {"epochs", CMF_PARAM_INT, "20", "Adam steps per retraining", nullptr, 0},
    {"absolute", CMF_PARAM_BOOL, "false",
     "target the absolute energy per atom, not centred per trajectory", nullptr,
     0},
    {"calibration", CMF_PARAM_INT, "10", "frames in the calibration slices",
     nullptr, 0},
    {"seed", CMF_PARAM_INT, "0", "seed frames, model weights, random choices",
     nullptr, 0},
    {"out", CMF_PARAM_PATH, "aimd", "the folder of the results", nullptr, 0,
     "o"},
};

const cmf_stage kStages[] = {
    {"aimd-al",
     "Active learning over MD frames: the most stable structure in few "
     "evaluations",
     kParams, std::size(kParams), &plugin::Invoke<&Run>},
};

const cmf_plugin kPlugin = {
    CMF_PLUGIN_ABI_VERSION,
    "aimd",
    kVersion,
    "Active learning over molecular-dynamics trajectories",
    kStages,
    std::size(kStages)};

}  // namespace
}  // namespace cmf::aimd

extern "C" const cmf_plugin* cmf_plugin_entry(uint32_t) {
  return &cmf::aimd::kPlugin;
}
