// The md plugin: `cmf run md-mos2` runs molecular dynamics of a MoS2
// monolayer with LAMMPS (a child process, under MPI when asked) and writes
// its frames as a trajectory file; `cmf run trajectory-import` reads what a
// site's own VASP or LAMMPS runs (or ASE) wrote into the same layout. Both
// record their sources as inputs and the trajectory as a dataset output.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "cmf/plugin.h"
#include "cmf/plugin_cpp.h"
#include "lammps.h"
#include "mos2.h"
#include "readers.h"
#include "text_file.h"
#include "trajectory.h"

namespace cmf::md {
namespace {

namespace fs = std::filesystem;
using plugin::Context;

constexpr const char* kVersion = "0.1.0";
// The largest source file trajectory-import reads (it holds a file whole).
constexpr std::size_t kMaxSourceBytes = std::size_t{4} << 30;

void Require(bool ok, const std::string& message) {
  if (!ok) throw plugin::Error(message);
}

// A directory that removes itself and what is in it. Its name holds this
// host's name and this process's id, so that a later run on the same host can
// remove the folder of a run that was killed (kill -9 gives no chance to clean
// up); a folder of another host (a shared file system) is never touched.
class TempDir {
 public:
  explicit TempDir(const fs::path& near) {
    RemoveStale(near);
    std::string pattern =
        (near / (Prefix() + std::to_string(::getpid()) + "-XXXXXX")).string();
    Require(::mkdtemp(pattern.data()) != nullptr,
            "cannot create a working directory in '" + near.string() + "'");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  // ".cmf-md-HOST-": the host name with anything but [A-Za-z0-9.] as '_'.
  static std::string Prefix() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0)
      std::snprintf(host, sizeof host, "unknown");
    std::string name = host;
    for (char& c : name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.') c = '_';
    return ".cmf-md-" + name + "-";
  }

  // Removes the scratch folders in DIR of this host's md-mos2 runs whose
  // process is gone.
  static void RemoveStale(const fs::path& dir) {
    const std::string prefix = Prefix();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind(prefix, 0) != 0) continue;
      long pid = std::strtol(name.c_str() + prefix.size(), nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        fs::remove_all(e.path(), ec);
    }
  }

  fs::path path_;
};

std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  return {std::istream_iterator<std::string>(in),
          std::istream_iterator<std::string>()};
}

// Per-frame energies as the step series `energy`, and their summary.
void LogEnergies(Context& ctx, const Trajectory& t) {
  if (t.energy.empty()) return;
  auto lowest = std::min_element(t.energy.begin(), t.energy.end());
  for (int i = 0; i < t.frames(); ++i) ctx.LogMetric("energy", i, t.energy[i]);
  ctx.SetProperty("energy_min", *lowest);
  ctx.SetProperty("energy_min_frame",
                  static_cast<std::int64_t>(lowest - t.energy.begin()));
}

fs::path Stem(const fs::path& out) {
  fs::path p = out;
  if (p.extension() == ".h5" || p.extension() == ".hdf5") p.replace_extension();
  return p;
}

// The options of md-mos2, checked.
struct MdRun {
  Mos2Options mo;
  MdOptions md;
  int ranks = 1;  // --mpi-ranks
};

MdRun ReadMdParams(Context& ctx) {
  // Every integer is checked as the 64-bit value given before it is narrowed.
  auto bounded = [&ctx](const char* name, std::int64_t lo, std::int64_t hi) {
    const std::int64_t v = ctx.IntParam(name);
    Require(v >= lo && v <= hi, std::string("--") + name + " must be " +
                                    std::to_string(lo) + " to " +
                                    std::to_string(hi));
    return v;
  };
  MdRun run;
  Mos2Options& mo = run.mo;
  mo.supercell = static_cast<int>(bounded("supercell", 1, 50));
  mo.vacancies = static_cast<int>(
      bounded("vacancies", 0, 2 * mo.supercell * mo.supercell - 1));
  mo.displacement = ctx.RealParam("displacement");
  mo.seed = static_cast<std::uint64_t>(bounded("seed", 0, INT64_MAX));
  MdOptions& md = run.md;
  md.temperature = ctx.RealParam("temperature");
  md.timestep_fs = ctx.RealParam("timestep");
  md.steps = static_cast<int>(bounded("steps", 1, 100'000'000));
  md.every = static_cast<int>(ctx.IntParam("every"));
  Require(ctx.IntParam("every") >= 1 && ctx.IntParam("every") <= md.steps,
          "--every must be 1 to --steps");
  md.equilibrate = static_cast<int>(bounded("equilibrate", 0, 100'000'000));
  md.seed = mo.seed;
  run.ranks = static_cast<int>(bounded("mpi-ranks", 1, 4096));
  Require(md.temperature > 0 && md.temperature <= 5000,
          "--temperature must be above 0 and at most 5000 K");
  Require(md.timestep_fs > 0 && md.timestep_fs <= 10,
          "--timestep must be above 0 and at most 10 fs");
  // The dump is read back whole: refuse a run whose frames it could not hold
  // (about 100 bytes an atom a frame) before spending hours on it.
  const double dump_bytes =
      100.0 * (md.steps / md.every + 1) * 3 * mo.supercell * mo.supercell;
  Require(dump_bytes < static_cast<double>(kMaxSourceBytes),
          "--steps / --every frames of " +
              std::to_string(3 * mo.supercell * mo.supercell) +
              " atoms would make a dump of about " +
              std::to_string(static_cast<long long>(dump_bytes / 1e9)) +
              " GB, more than the 4 GiB cmf reads back: record fewer frames "
              "(--every)");
  return run;
}

// The LAMMPS input script of a run, as recorded.
struct MdInput {
  fs::path path;
  std::string hash;   // as LogInput gave it
  std::string sites;  // the vacancy sites, space-separated
};

// Writes the input script of S and MD beside OUT, records it as an input,
// and sets the properties of the structure.
MdInput WriteMdInput(Context& ctx, const Structure& s, const MdOptions& md,
                     const fs::path& out) {
  MdInput input;
  // The input script lives beside the trajectory: it is what reproduces it.
  input.path = Stem(out);
  input.path += ".lammps";
  h5::WriteTextFile(input.path, LammpsInput(s, md, "frames.lammpstrj"));
  input.hash = ctx.LogInput(input.path.string(), "file");
  ctx.SetProperty("kim_model", std::string(kMos2KimModel));
  ctx.SetProperty("atoms", static_cast<std::int64_t>(s.species.size()));
  ctx.SetProperty("lammps_seed",
                  static_cast<std::int64_t>(LammpsSeed(md.seed)));
  for (int v : s.vacancy_sites)
    input.sites += (input.sites.empty() ? "" : " ") + std::to_string(v);
  ctx.SetProperty("vacancy_sites", input.sites);
  return input;
}

// The LAMMPS job of a run: LAMMPS in WORKDIR on INPUT, under --mpirun when
// RANKS > 1, cancelled with CTX.
LammpsJob MdJob(Context& ctx, const std::string& lammps, int ranks,
                const fs::path& workdir, const fs::path& input) {
  LammpsJob job;
  job.lammps = lammps;
  job.mpi_ranks = ranks;
  job.mpirun = Words(ctx.Param("mpirun"));
  job.workdir = fs::absolute(workdir);
  job.input = fs::absolute(input);
  job.log = job.workdir / "log.lammps";
  job.cancelled = [&ctx] { return ctx.Cancelled(); };
  return job;
}

// Runs JOB and records its time (lammps_seconds); false when it failed
// because the run was cancelled.
bool RunTimedLammps(Context& ctx, const LammpsJob& job, const MdOptions& md,
                    const Structure& s) {
  ctx.Progress(0, 0,
               "LAMMPS: " + std::to_string(md.equilibrate + md.steps) +
                   " steps of " + std::to_string(s.species.size()) + " atoms");
  auto t0 = std::chrono::steady_clock::now();
  try {
    RunLammps(job);
  } catch (const std::runtime_error& e) {
    if (ctx.Cancelled()) return false;
    throw;
  }
  ctx.SetProperty("lammps_seconds", std::chrono::duration<double>(
                                        std::chrono::steady_clock::now() - t0)
                                        .count());
  return true;
}

// Reads the frames LAMMPS wrote (DUMP, with its LOG) and writes them to OUT
// with the run's attributes, recorded as a dataset derived from INPUT.
void WriteMdTrajectory(Context& ctx, const MdRun& run,
                       const fs::path& dump_path, const fs::path& log_path,
                       const MdInput& input, const fs::path& out) {
  const Mos2Options& mo = run.mo;
  const MdOptions& md = run.md;
  Source dump = ReadSource(dump_path.string(), kMaxSourceBytes);
  Source log = ReadSource(log_path.string(), kMaxSourceBytes);
  Trajectory t = ReadLammps(dump, &log, ReadOptions{});
  Require(t.frames() == md.steps / md.every + 1,
          "LAMMPS wrote " + std::to_string(t.frames()) + " frames, not " +
              std::to_string(md.steps / md.every + 1));
  t.text["potential"] = kMos2KimModel;
  t.text["input_sha256"] = input.hash;
  t.text["vacancy_sites"] = input.sites;
  t.real["temperature_K"] = md.temperature;
  t.real["timestep_fs"] = md.timestep_fs;
  t.integer["supercell"] = mo.supercell;
  t.integer["vacancies"] = mo.vacancies;
  t.integer["seed"] = static_cast<long long>(mo.seed);
  t.integer["equilibration_steps"] = md.equilibrate;
  if (t.text.count("engine_version"))
    ctx.SetProperty("lammps_version", t.text["engine_version"]);
  WriteTrajectory(out, t);
  const std::string out_hash = ctx.LogOutput(out.string(), "dataset");
  ctx.LogDerivedFrom(out_hash, input.hash);
  LogEnergies(ctx, t);
  ctx.SetProperty("frames", static_cast<std::int64_t>(t.frames()));
  ctx.Info(out.string() + ": " + std::to_string(t.frames()) + " frames of " +
           std::to_string(t.atoms()) + " atoms; input " + input.path.string());
}

int RunMd(Context& ctx) {
  const MdRun run = ReadMdParams(ctx);
  Structure s;
  try {
    s = BuildMos2(run.mo);
  } catch (const std::invalid_argument& e) {
    throw plugin::Error(e.what());
  }

  const fs::path out = ctx.Param("out");
  Require(out.extension() == ".h5" || out.extension() == ".hdf5",
          "--out must end in .h5");
  fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  Require(fs::is_directory(dir),
          "the folder of --out, '" + dir.string() + "', does not exist");
  const std::string lammps = FindProgram(ctx.Param("lammps"));
  Require(!lammps.empty(),
          "cannot run LAMMPS: '" + ctx.Param("lammps") +
              "' is not an executable in PATH (install Debian's lammps and "
              "openkim-models, or pass --lammps PATH)");

  const MdInput input = WriteMdInput(ctx, s, run.md, out);
  TempDir work(dir);
  const LammpsJob job = MdJob(ctx, lammps, run.ranks, work.path(), input.path);
  if (!RunTimedLammps(ctx, job, run.md, s))
    return 1;  // recorded as interrupted
  WriteMdTrajectory(ctx, run, work.path() / "frames.lammpstrj", job.log, input,
                    out);
  return 0;
}

int RunImport(Context& ctx) {
  const std::string format = ctx.Param("format");
  const std::vector<std::string> files = ctx.Params("files");
  const fs::path out = ctx.Param("out");
  Require(out.extension() == ".h5" || out.extension() == ".hdf5",
          "--out must end in .h5");
  ReadOptions o;
  o.species = ctx.Params("species");
  o.timestep_fs = ctx.RealParam("timestep");
  Require(o.timestep_fs >= 0, "--timestep must not be negative");
  for (const std::string& s : o.species)
    Require(AtomicNumber(s) != 0,
            "--species: '" + s + "' is not an element symbol");
  if (format == "extxyz")
    Require(files.size() == 1,
            "--format extxyz takes one file: --files traj.xyz");
  else if (format == "vasp")
    Require(files.size() == 1 || files.size() == 2,
            "--format vasp takes --files XDATCAR [OSZICAR]");
  else
    Require(files.size() == 1 || files.size() == 2,
            "--format lammps takes --files DUMP [LOG]");
  for (const std::string& f : files)
    Require(fs::is_regular_file(f), "'" + f + "' is not a file");

  std::vector<Source> sources;
  std::vector<std::string> hashes;
  for (const std::string& f : files) {
    sources.push_back(ReadSource(f, kMaxSourceBytes));
    hashes.push_back(ctx.LogInput(f, "file"));
  }
  const Source* second = sources.size() > 1 ? &sources[1] : nullptr;
  Trajectory t = format == "vasp"     ? ReadVasp(sources[0], second, o)
                 : format == "lammps" ? ReadLammps(sources[0], second, o)
                                      : ReadExtxyz(sources[0], o);
  std::string joined;
  for (const std::string& h : hashes) joined += (joined.empty() ? "" : " ") + h;
  t.text["source_sha256"] = joined;
  t.text["source_format"] = format;
  if (o.timestep_fs > 0) t.real["timestep_fs"] = o.timestep_fs;
  WriteTrajectory(out, t);
  const std::string out_hash = ctx.LogOutput(out.string(), "dataset");
  for (const std::string& h : hashes) ctx.LogDerivedFrom(out_hash, h);
  LogEnergies(ctx, t);
  ctx.SetProperty("frames", static_cast<std::int64_t>(t.frames()));
  ctx.SetProperty("atoms", static_cast<std::int64_t>(t.atoms()));
  ctx.Info(out.string() + ": " + std::to_string(t.frames()) + " frames of " +
           std::to_string(t.atoms()) + " atoms" +
           (t.energy.empty() ? ", no energies" : ""));
  return 0;
}

const cmf_param kMdParams[] = {
    {"supercell", CMF_PARAM_INT, "6",
     "the monolayer is N x N primitive cells (3 N^2 sites)", nullptr, 0},
    {"vacancies", CMF_PARAM_INT, "0", "S sites left empty, drawn with the seed",
     nullptr, 0},
    {"temperature", CMF_PARAM_REAL, "300", "NVT temperature (K)", nullptr, 0},
    {"steps", CMF_PARAM_INT, "2500", "recorded MD steps, after equilibration",
     nullptr, 0},
    {"every", CMF_PARAM_INT, "10", "a frame every this many steps", nullptr, 0},
    {"equilibrate", CMF_PARAM_INT, "1000",
     "steps run before the first frame, not recorded", nullptr, 0},
    {"timestep", CMF_PARAM_REAL, "1", "MD time step (fs)", nullptr, 0},
    {"displacement", CMF_PARAM_REAL, "0.05",
     "random start displacement of each atom (Å, per axis)", nullptr, 0},
    {"seed", CMF_PARAM_INT, "0", "vacancy sites, displacements and velocities",
     nullptr, 0},
    {"mpi-ranks", CMF_PARAM_INT, "1",
     "run LAMMPS under MPI with this many ranks", nullptr, 0},
    {"lammps", CMF_PARAM_STRING, "lmp", "the LAMMPS executable", nullptr, 0},
    {"mpirun", CMF_PARAM_STRING, "mpirun",
     "the MPI launcher and its options (with --mpi-ranks > 1)", nullptr, 0},
    {"out", CMF_PARAM_PATH, "traj.h5", "the trajectory file to write", nullptr,
     0, "o"},
};

const char* const kFormats[] = {"vasp", "lammps", "extxyz", nullptr};

const cmf_param kImportParams[] = {
    {"format", CMF_PARAM_STRING, nullptr, "what wrote the files", kFormats,
     CMF_PARAM_REQUIRED},
    {"files", CMF_PARAM_PATH, nullptr,
     "vasp: XDATCAR [OSZICAR]; lammps: DUMP [LOG]; extxyz: FILE", nullptr,
     CMF_PARAM_MULTIPLE | CMF_PARAM_REQUIRED},
    {"species", CMF_PARAM_STRING, nullptr,
     "element of each LAMMPS atom type (type 1 first), or VASP 4's species",
     nullptr, CMF_PARAM_MULTIPLE},
    {"timestep", CMF_PARAM_REAL, "0",
     "time step (fs) where the files do not give it; 0: unknown", nullptr, 0},
    {"out", CMF_PARAM_PATH, "traj.h5", "the trajectory file to write", nullptr,
     0, "o"},
};

const cmf_stage kStages[] = {
    {"md-mos2",
     "Molecular dynamics of a MoS2 monolayer with S vacancies (LAMMPS, OpenKIM "
     "SW)",
     kMdParams, std::size(kMdParams), &plugin::Invoke<&RunMd>},
    {"trajectory-import",
     "Read a VASP, LAMMPS or extended-XYZ trajectory into a trajectory file",
     kImportParams, std::size(kImportParams), &plugin::Invoke<&RunImport>},
};

const cmf_plugin kPlugin = {CMF_PLUGIN_ABI_VERSION,
                            "md",
                            kVersion,
                            "Molecular dynamics and trajectory readers",
                            kStages,
                            std::size(kStages)};

}  // namespace
}  // namespace cmf::md

extern "C" const cmf_plugin* cmf_plugin_entry(uint32_t) {
  return &cmf::md::kPlugin;
}
