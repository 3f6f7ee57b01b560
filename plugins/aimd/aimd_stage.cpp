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

// The options of aimd-al, checked.
struct Params {
  LoopOptions o;
  std::string features;
  bool absolute = false;
  int calibration = 0;
  fs::path out;
  std::string energy;  // "replay" or "proc:CMD"
  bool replay = false;
  double timeout = 0;  // --energy-timeout
};

Params ReadParams(Context& ctx) {
  // Every integer is checked as the 64-bit value given before it is narrowed.
  auto bounded = [&ctx](const char* name, std::int64_t lo, std::int64_t hi) {
    const std::int64_t v = ctx.IntParam(name);
    Require(v >= lo && v <= hi, std::string("--") + name + " must be " +
                                    std::to_string(lo) + " to " +
                                    std::to_string(hi));
    return v;
  };
  Params p;
  LoopOptions& o = p.o;
  o.steps = static_cast<int>(bounded("steps", 1, 1'000'000));
  o.seed_frames = static_cast<int>(bounded("seed-frames", 1, 1'000'000));
  o.pick = ParsePick(ctx.Param("acquisition"));
  o.kappa = ctx.RealParam("kappa");
  o.epochs = static_cast<int>(bounded("epochs", 1, 100'000));
  o.seed = static_cast<std::uint64_t>(bounded("seed", 0, INT64_MAX));
  o.model.hidden = ml::DklConfig::Architecture(ctx.Param("architecture"));
  p.features = ctx.Param("features");
  p.absolute = ctx.BoolParam("absolute");
  p.calibration = static_cast<int>(bounded("calibration", 0, 1'000'000));
  Require(o.kappa >= 0, "--kappa must not be negative");
  p.out = ctx.Param("out");
  p.energy = ctx.Param("energy");
  p.replay = p.energy == "replay";
  p.timeout = ctx.RealParam("energy-timeout");
  Require(p.timeout > 0, "--energy-timeout must be positive");
  return p;
}

// The trajectories of --trajectories, each read and recorded as an input.
std::vector<Source> ReadSources(Context& ctx, bool replay) {
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
  return sources;
}

// The meta-model of --init, recorded as an input; its hash, or "" without
// --init.
std::string ReadInit(Context& ctx, const std::string& features,
                     LoopOptions* o) {
  std::string init_hash;
  if (ctx.HasParam("init")) {
    Require(features == "image",
            "--init needs --features image: a meta-model trained on "
            "microscope patches reads 16 x 16 images, not bond histograms");
    o->init = ctx.Param("init");
    init_hash = ctx.LogInput(o->init, "model");
  }
  return init_hash;
}

// Every frame of the sources in pool order: frame I of the pool is frame
// FRAME_OF[I] of TRAJECTORIES[TRAJ_OF[I]].
struct FrameIndex {
  std::vector<const md::Trajectory*> trajectories;
  std::vector<int> traj_of, frame_of;
};

FrameIndex IndexFrames(const std::vector<Source>& sources) {
  FrameIndex index;
  for (std::size_t k = 0; k < sources.size(); ++k) {
    index.trajectories.push_back(&sources[k].t);
    for (int f = 0; f < sources[k].t.frames(); ++f) {
      index.traj_of.push_back(static_cast<int>(k));
      index.frame_of.push_back(f);
    }
  }
  return index;
}

// The features of every frame, with progress; sets the properties of the
// pool's size.
Pool MakeFramePool(Context& ctx, const FrameIndex& index,
                   const std::string& features) {
  Pool pool =
      MakePool(index.trajectories, features, [&ctx](int done, int total) {
        ctx.Progress(done, total, "features of frame " + std::to_string(done));
        return !ctx.Cancelled();
      });
  ctx.SetProperty("frames", static_cast<std::int64_t>(pool.count));
  ctx.SetProperty("features_width", static_cast<std::int64_t>(pool.features));
  return pool;
}

// Every evaluation, as it happens: what evaluated.h5 keeps, even when the
// driver fails half-way.
struct Evaluation {
  int trajectory, frame;
  double energy;  // eV, the whole frame
};

// Where the energies come from and what they gave: the recorded ones (replay,
// with every frame's target known) or a driver's.
struct Search {
  std::vector<double> truth;                 // replay: every frame's target
  int true_min = -1;                         // replay: the frame of the lowest
  std::unique_ptr<md::EnergyDriver> driver;  // otherwise
  std::vector<Evaluation> evaluations;
  int found_at =
      -1;  // the evaluation that first reached the true minimum (replay)
};

// Sets up SEARCH (and P's centring) for the energies of --energy: replay sets
// the properties of the true minimum; a driver is started.
void StartSearch(Context& ctx, const FrameIndex& index, Params* p,
                 Search* search) {
  // The target: energy per atom, centred per trajectory unless --absolute.
  // Replay centres by the mean of every recorded frame, as the published
  // work did; a driver's energies are centred by the mean of the frames of
  // that trajectory evaluated so far (recomputed at every step).
  std::vector<double>& truth = search->truth;
  if (p->replay) {
    truth = Targets(index.trajectories, p->absolute);
    const int true_min = static_cast<int>(
        std::min_element(truth.begin(), truth.end()) - truth.begin());
    search->true_min = true_min;
    ctx.SetProperty("true_minimum", truth[true_min]);
    ctx.SetProperty("true_minimum_trajectory",
                    static_cast<std::int64_t>(index.traj_of[true_min]));
    ctx.SetProperty("true_minimum_frame",
                    static_cast<std::int64_t>(index.frame_of[true_min]));
  } else if (!p->absolute) {
    p->o.centre_groups = index.traj_of;
  }
  if (!p->replay)
    search->driver = std::make_unique<md::EnergyDriver>(
        p->energy.substr(5), p->timeout, [&ctx] { return ctx.Cancelled(); });
}

// Writes OUT/evaluated.h5 (creating OUT) from EVALUATIONS, recorded as a
// dataset derived from every source.
void SaveEvaluations(Context& ctx, const Params& p,
                     const std::vector<Source>& sources,
                     const std::vector<Evaluation>& evaluations) {
  std::error_code ec;
  fs::create_directories(p.out, ec);
  Require(fs::is_directory(p.out),
          "cannot create the folder '" + p.out.string() + "'");
  h5::NewFile f(p.out / "evaluated.h5");
  const hsize_t n = static_cast<hsize_t>(evaluations.size());
  std::vector<int> t, fr;
  std::vector<double> e, per_atom;
  for (const Evaluation& v : evaluations) {
    t.push_back(v.trajectory);
    fr.push_back(v.frame);
    e.push_back(v.energy);
    per_atom.push_back(v.energy / sources[v.trajectory].t.atoms());
  }
  h5::Write(f.get(), "trajectory", H5T_NATIVE_INT, H5T_STD_I32LE, {n}, t.data(),
            f.path());
  h5::Write(f.get(), "frame", H5T_NATIVE_INT, H5T_STD_I32LE, {n}, fr.data(),
            f.path());
  h5::Write(f.get(), "energy", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {n}, e.data(),
            f.path());
  h5::Write(f.get(), "energy_per_atom", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, {n},
            per_atom.data(), f.path());
  h5::Attribute(f.get(), "energy_source", p.energy);
  f.Commit();
  const std::string hash =
      ctx.LogOutput((p.out / "evaluated.h5").string(), "dataset");
  for (const Source& s : sources) ctx.LogDerivedFrom(hash, s.hash);
}

// Step S of the loop as metrics and progress; false when the run is
// cancelled.
bool LogStep(Context& ctx, const Params& p, const FrameIndex& index,
             const StepLog& s) {
  ctx.LogMetric("trajectory", s.step, index.traj_of[s.index]);
  ctx.LogMetric("frame", s.step, index.frame_of[s.index]);
  ctx.LogMetric("predicted", s.step, s.predicted);
  ctx.LogMetric("uncertainty", s.step, s.uncertainty);
  ctx.LogMetric("best", s.step, s.best);
  ctx.LogMetric("max_uncertainty", s.step, s.max_uncertainty);
  if (p.replay) ctx.LogMetric("regret", s.step, s.regret);
  if (p.replay) ctx.LogMetric("rmse", s.step, s.rmse);
  ctx.LogMetric("step_seconds", s.step, s.seconds);
  ctx.Progress(s.step, p.o.steps,
               "step " + std::to_string(s.step) + "/" +
                   std::to_string(p.o.steps) + ", best " +
                   std::to_string(s.best));
  return !ctx.Cancelled();
}

// Runs the active-learning loop over POOL, keeping every evaluation in
// SEARCH. When it fails, what was evaluated is saved before the failure
// goes on.
LoopResult RunSearch(Context& ctx, const Params& p, const Pool& pool,
                     const std::vector<Source>& sources,
                     const FrameIndex& index, Search* search) {
  auto evaluate = [&](int i) {
    const Source& s = sources[index.traj_of[i]];
    const int f = index.frame_of[i];
    const double e = p.replay
                         ? s.t.energy[f]
                         : search->driver->Energy(s.t, index.traj_of[i], f);
    search->evaluations.push_back({index.traj_of[i], f, e});
    if (i == search->true_min && search->found_at < 0)
      search->found_at = static_cast<int>(search->evaluations.size());
    return p.replay ? search->truth[i] : e / s.t.atoms();
  };
  try {
    return RunLoop(pool, p.o, evaluate, p.replay ? &search->truth : nullptr,
                   [&](const StepLog& s) { return LogStep(ctx, p, index, s); });
  } catch (...) {
    // The driver (or the model) failed: keep what was evaluated.
    try {
      if (!search->evaluations.empty())
        SaveEvaluations(ctx, p, sources, search->evaluations);
    } catch (...) {
    }
    throw;
  }
}

// Writes OUT/predictions.h5: the last model's prediction of every frame and
// what was evaluated, recorded as a dataset derived from every source (and
// the meta-model of --init).
void WritePredictions(Context& ctx, const Params& p, const Pool& pool,
                      const FrameIndex& index, const LoopResult& r,
                      const std::vector<Source>& sources,
                      const std::string& init_hash) {
  {
    h5::NewFile f(p.out / "predictions.h5");
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
              index.traj_of.data(), f.path());
    h5::Write(f.get(), "frame", H5T_NATIVE_INT, H5T_STD_I32LE, {n},
              index.frame_of.data(), f.path());
    h5::Write(f.get(), "order", H5T_NATIVE_INT, H5T_STD_I32LE,
              {static_cast<hsize_t>(r.order.size())}, r.order.data(), f.path());
    h5::Attribute(f.get(), "target",
                  p.absolute ? "energy per atom (eV)"
                             : "energy per atom (eV), centred per trajectory");
    h5::Attribute(f.get(), "features", p.features);
    f.Commit();
  }
  const std::string predictions_hash =
      ctx.LogOutput((p.out / "predictions.h5").string(), "dataset");
  for (const Source& s : sources) ctx.LogDerivedFrom(predictions_hash, s.hash);
  if (!init_hash.empty()) ctx.LogDerivedFrom(predictions_hash, init_hash);
}

// Frame BEST of the pool, of target TARGET, as a data slice, a LAMMPS data
// file and extended XYZ in OUT, recorded, and its properties.
void WriteMostStable(Context& ctx, const fs::path& out,
                     const std::vector<Source>& sources,
                     const FrameIndex& index, int best, double target) {
  const std::vector<int>& traj_of = index.traj_of;
  const std::vector<int>& frame_of = index.frame_of;
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
  ctx.SetProperty("most_stable_target", target);
}

// Calibration: the frames not evaluated that the last model is least sure
// of, one slice per trajectory that has any.
void WriteCalibration(Context& ctx, const Params& p, const Pool& pool,
                      const FrameIndex& index, const LoopResult& r,
                      const std::vector<Source>& sources) {
  std::vector<int> open;
  for (int i = 0; i < pool.count; ++i)
    if (std::find(r.order.begin(), r.order.end(), i) == r.order.end())
      open.push_back(i);
  std::stable_sort(open.begin(), open.end(), [&](int a, int b) {
    return r.uncertainty[a] > r.uncertainty[b];
  });
  if (static_cast<int>(open.size()) > p.calibration) open.resize(p.calibration);
  for (std::size_t k = 0; k < sources.size(); ++k) {
    std::vector<int> frames;
    for (int i : open)
      if (index.traj_of[i] == static_cast<int>(k))
        frames.push_back(index.frame_of[i]);
    if (frames.empty()) continue;
    std::sort(frames.begin(), frames.end());
    WriteSlice(ctx, p.out / ("calibration-" + std::to_string(k) + ".h5"),
               sources[k], frames,
               "the frames aimd-al's model is least sure of");
  }
}

int Run(Context& ctx) {
  Params p = ReadParams(ctx);
  const std::vector<Source> sources = ReadSources(ctx, p.replay);
  const std::string init_hash = ReadInit(ctx, p.features, &p.o);
  const FrameIndex index = IndexFrames(sources);
  const Pool pool = MakeFramePool(ctx, index, p.features);
  Search search;
  StartSearch(ctx, index, &p, &search);
  const LoopResult r = RunSearch(ctx, p, pool, sources, index, &search);
  ctx.SetProperty("evaluations", static_cast<std::int64_t>(r.order.size()));
  if (p.replay)
    ctx.SetProperty("found_minimum_at",
                    static_cast<std::int64_t>(search.found_at));

  // Outputs, each written whole or not at all.
  SaveEvaluations(ctx, p, sources, search.evaluations);
  WritePredictions(ctx, p, pool, index, r, sources, init_hash);

  // The most stable frame evaluated.
  std::size_t best_k = static_cast<std::size_t>(
      std::min_element(r.target.begin(), r.target.end()) - r.target.begin());
  const int best = r.order[best_k];
  const Source& bs = sources[index.traj_of[best]];
  WriteMostStable(ctx, p.out, sources, index, best, r.target[best_k]);

  WriteCalibration(ctx, p, pool, index, r, sources);
  ctx.Info("most stable frame: " + std::to_string(index.frame_of[best]) +
           " of " + bs.path + " (" + std::to_string(r.target[best_k]) +
           " eV/atom" + (p.absolute ? "" : " from its mean") + ") after " +
           std::to_string(r.order.size()) + " of " +
           std::to_string(pool.count) + " frames evaluated; results in " +
           p.out.string() + "/");
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
