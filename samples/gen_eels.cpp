// cmf-gen-eels: writes synthetic STEM-EELS experiments for cmf's samples, tests
// and benchmarks. Each file holds a HAADF-like survey image of metal
// nanoparticles on a thin substrate, a spectrum image whose plasmon modes
// follow the local geometry (gaps, tips, edges, faces) and the energy axis,
// in cmf's experiment-file layout. A family is a material; each member is
// another sample of it (substrate, particle batch, thickness, instrument
// settings, drift). The data is simulated, not measured; see
// doc/sample-data.md for the model.

#include <fmt/core.h>
#include <hdf5.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <limits>
#include <new>
#include <numbers>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace fs = std::filesystem;

namespace {

constexpr char kProgram[] = "cmf-gen-eels";
// The version of the model: bumped whenever the same arguments would give
// different data.
constexpr int kModelVersion = 2;
constexpr char kInstrument[] = "synthetic STEM-EELS (cmf-gen-eels)";
constexpr double kPixelSizeNm = 2.0;
// Mode energies of a material are quoted for a particle of this size; bigger
// particles shift them down, smaller ones up.
constexpr double kReferenceSizePx = 13.0;
// ... and for particles in surroundings of this effective permittivity; a
// substrate of higher permittivity shifts them down, a hole up.
constexpr double kReferencePermittivity = 1.4;
constexpr double kMinSizePx = 6.0;
constexpr double kMaxSizePx = 20.0;
// The additive noise of a spectrum channel per unit of relative noise.
constexpr double kAdditiveNoise = 1.0;
// The largest /spectra chunk, and so the largest block held in memory.
constexpr std::uint64_t kMaxChunkBytes = 4u << 20;
constexpr unsigned kDeflateLevel = 1;
constexpr double kPi = std::numbers::pi;
constexpr double kInf = std::numeric_limits<double>::infinity();

constexpr char kUsage[] =
    R"(usage: cmf-gen-eels -o OUT.h5 [options]
       cmf-gen-eels --family-size N --out-dir DIR [options]

Writes a synthetic STEM-EELS experiment as HDF5: /image (HAADF-like survey
image), /spectra (spectrum image) and /energy (eV). The data is simulated
from a simple plasmon model; it is not a measurement.

options:
  -o OUT.h5         the file to write (as OUT.h5.tmp, renamed when complete)
  --height H        image rows (default 62)
  --width W         image columns (default 75)
  --channels E      energy channels (default 1496)
  --emin EV         energy of the first channel in eV (default 0.5)
  --emax EV         energy of the last channel in eV (default 3.5)
  --seed S          seed of the particle layout and the noise: another area
                    of the same sample (default 0)
  --family NAME     the material: gold, silver, aluminium, or any other name
                    for a gold-like material drawn from the name (default
                    "default"); each member is another sample of it
  --member K        the member of the family to write (default 0)
  --family-size N   write members 0 to N-1 as DIR/NAME-00.h5, ... (instead
                    of -o and --member)
  --out-dir DIR     the folder --family-size writes to (created if missing)
  --noise X         noise of the spectra (relative, plus an additive part)
                    and of the image, times each member's own noise scale
                    (default 0.02)
  --particles N     mean number of particles; a member has N-2 to N+2, at
                    least 1 (default 6; 0 gives an empty substrate)
  -h, --help        print this help and exit

With SOURCE_DATE_EPOCH set, the 'created' attribute is that time, and the
same arguments give byte-identical files.
)";

// ---------------------------------------------------------------- errors --

// A mistake on the command line: exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Anything else that stops the generator: exit code 1.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// --------------------------------------------------------------- options --

struct Options {
  std::string output;
  int height = 62;
  int width = 75;
  int channels = 1496;
  double emin = 0.5;
  double emax = 3.5;
  std::uint64_t seed = 0;
  std::string family = "default";
  int member = 0;
  bool member_given = false;
  int family_size = 0;  // 0: write the one file named by -o
  std::string out_dir;
  double noise = 0.02;
  int particles = 6;
  bool help = false;
};

template <typename T>
T ParseNumber(std::string_view flag, std::string_view text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    throw UsageError(fmt::format(
        "option '{}' needs {}, not '{}'", flag,
        std::is_integral_v<T> ? "a whole number" : "a number", text));
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) {
      throw UsageError(fmt::format("option '{}' needs a finite number", flag));
    }
  }
  return value;
}

int ParseInt(std::string_view flag, std::string_view text, int lo, int hi) {
  long long v = ParseNumber<long long>(flag, text);
  if (v < lo || v > hi) {
    throw UsageError(
        fmt::format("option '{}' must be from {} to {}", flag, lo, hi));
  }
  return static_cast<int>(v);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      o.help = true;
      return o;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      throw UsageError(fmt::format("unexpected argument '{}'", arg));
    }
    std::string_view flag = arg;
    std::string_view value;
    bool inline_value = false;
    if (std::size_t eq = arg.find('=');
        arg.starts_with("--") && eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    static constexpr std::array<std::string_view, 13> kFlags = {
        "-o",        "--height", "--width",    "--channels", "--emin",
        "--emax",    "--seed",   "--family",   "--member",   "--family-size",
        "--out-dir", "--noise",  "--particles"};
    if (std::find(kFlags.begin(), kFlags.end(), flag) == kFlags.end()) {
      throw UsageError(fmt::format("unknown option '{}' (see --help)", flag));
    }
    if (!inline_value) {
      if (i + 1 >= argc) {
        throw UsageError(fmt::format("option '{}' needs a value", flag));
      }
      value = argv[++i];
    }
    if (flag == "-o") {
      if (value.empty()) throw UsageError("option '-o' needs a file name");
      o.output = value;
    } else if (flag == "--height") {
      o.height = ParseInt(flag, value, 1, 1 << 16);
    } else if (flag == "--width") {
      o.width = ParseInt(flag, value, 1, 1 << 16);
    } else if (flag == "--channels") {
      o.channels = ParseInt(flag, value, 2, 1 << 20);
    } else if (flag == "--emin") {
      o.emin = ParseNumber<double>(flag, value);
    } else if (flag == "--emax") {
      o.emax = ParseNumber<double>(flag, value);
    } else if (flag == "--seed") {
      o.seed = ParseNumber<std::uint64_t>(flag, value);
    } else if (flag == "--family") {
      o.family = value;
    } else if (flag == "--member") {
      o.member = ParseInt(flag, value, 0, 1'000'000'000);
      o.member_given = true;
    } else if (flag == "--family-size") {
      o.family_size = ParseInt(flag, value, 1, 100'000);
    } else if (flag == "--out-dir") {
      if (value.empty()) throw UsageError("option '--out-dir' needs a folder");
      o.out_dir = value;
    } else if (flag == "--noise") {
      o.noise = ParseNumber<double>(flag, value);
    } else if (flag == "--particles") {
      o.particles = ParseInt(flag, value, 0, 100'000);
    }
  }

  if (o.family.empty() || o.family == "." || o.family == ".." ||
      o.family.find('/') != std::string::npos ||
      o.family.find('\0') != std::string::npos) {
    throw UsageError(fmt::format(
        "family name '{}' cannot be part of a file name", o.family));
  }
  if (o.emin <= 0) throw UsageError("--emin must be above 0 eV");
  if (o.emax <= o.emin) throw UsageError("--emax must be above --emin");
  if (o.noise < 0 || o.noise > 10) {
    throw UsageError("--noise must be from 0 to 10");
  }
  if (o.family_size > 0) {
    if (o.out_dir.empty()) throw UsageError("--family-size needs --out-dir");
    if (!o.output.empty()) {
      throw UsageError("-o and --family-size exclude each other");
    }
    if (o.member_given) {
      throw UsageError("--member and --family-size exclude each other");
    }
  } else {
    if (!o.out_dir.empty()) throw UsageError("--out-dir needs --family-size");
    if (o.output.empty()) throw UsageError("no output file (-o OUT.h5)");
  }
  return o;
}

// ----------------------------------------------------------- randomness --

// SplitMix64: a stateful 64-bit mixer, used to seed and to combine hashes.
std::uint64_t SplitMix64(std::uint64_t* state) {
  std::uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t Combine(std::uint64_t a, std::uint64_t b) {
  std::uint64_t state = a ^ SplitMix64(&b);
  return SplitMix64(&state);
}

// FNV-1a, 64 bits.
std::uint64_t HashName(std::string_view text) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// xoshiro256** with Box-Muller normals: the same stream on every platform,
// unlike the standard library's distributions.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (std::uint64_t& word : s_) word = SplitMix64(&seed);
  }

  std::uint64_t Next() {
    const std::uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // In [0, 1).
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

  // In [lo, hi].
  int Int(int lo, int hi) {
    const std::uint64_t span = static_cast<std::uint64_t>(hi - lo) + 1;
    return lo + static_cast<int>(((Next() >> 32) * span) >> 32);
  }

  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - Uniform();  // (0, 1]: the logarithm stays finite
    const double u2 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double theta = 2.0 * kPi * u2;
    spare_ = r * std::sin(theta);
    has_spare_ = true;
    return r * std::cos(theta);
  }

 private:
  static std::uint64_t Rotl(std::uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
  }

  std::array<std::uint64_t, 4> s_;
  double spare_ = 0;
  bool has_spare_ = false;
};

// -------------------------------------------------------------- material --

struct Vec {
  double x;
  double y;
};

// One plasmon mode: a Lorentzian of this energy and width (FWHM), scaled by
// amplitude and by the local weight of the mode. Energies and widths are
// quoted for a particle of kReferenceSizePx in an environment of
// kReferencePermittivity; the energy goes as
// (kReferenceSizePx / size)^size_exponent and as
// (kReferencePermittivity / permittivity)^env_exponent.
struct Mode {
  double energy_ev;
  double fwhm_ev;
  double amplitude;
  double size_exponent;
  double env_exponent;  // how strongly the surroundings shift the mode
};

// What the members of a family share: the material. A named family (gold,
// silver, aluminium) has fixed values; any other name draws them from a hash
// of the name.
struct Material {
  std::string name;  // "gold", ...; "generic" for a drawn one
  Mode gap;          // dimer mode in the gap between two close particles
  Mode tip;          // dipole-like mode at corners and tips
  Mode edge;         // mode along the edges, reaching a few pixels into vacuum
  Mode face;         // short-wavelength face mode over the particle's interior
  double edge_decay_px;  // decay length of the edge mode into the vacuum
  double tip_radius_px;  // reach of the tip mode around a corner
  double gap_reach_px;   // gaps much wider than this host no gap mode
  double gap_shift;      // relative redshift of the gap mode in narrow gaps
  // Interband damping: modes above interband_ev widen by interband_slope eV
  // per eV; modes near bump_ev widen by up to bump_fwhm_ev.
  double interband_ev;
  double interband_slope;
  double bump_ev;
  double bump_fwhm_ev;
  double contrast;         // HAADF brightness of a particle (atomic number)
  double median_size_px;   // longest extent of a particle: log-normal
  double size_log_spread;  // standard deviation of its logarithm
  std::array<double, 4> shape_weights;  // ellipse, rectangle, rod, triangle
  double dimer_fraction;  // share of particles placed across a gap from another
  double oxide_permittivity;  // up to this much from a native oxide shell
};

Material Gold() {
  Material m{};
  m.name = "gold";
  m.gap = {0.90, 0.08, 2.0, 0.0, 0.30};
  m.tip = {1.18, 0.16, 1.0, 0.14, 0.30};
  m.edge = {1.70, 0.20, 0.75, 0.12, 0.25};
  m.face = {2.40, 0.30, 0.55, 0.03, 0.12};
  m.edge_decay_px = 3.0;
  m.tip_radius_px = 2.2;
  m.gap_reach_px = 4.2;
  m.gap_shift = 0.03;
  m.interband_ev = 2.3;  // the d-band edge of gold damps what lies above
  m.interband_slope = 0.8;
  m.bump_ev = 0;
  m.bump_fwhm_ev = 0;
  m.contrast = 0.90;
  m.median_size_px = 13;
  m.size_log_spread = 0.20;
  m.shape_weights = {1.2, 0.8, 1.0, 1.0};
  m.dimer_fraction = 0.40;
  m.oxide_permittivity = 0;
  return m;
}

Material Silver() {
  Material m{};
  m.name = "silver";
  m.gap = {1.15, 0.05, 2.4, 0.0, 0.30};
  m.tip = {1.55, 0.10, 1.2, 0.14, 0.30};
  m.edge = {2.25, 0.13, 0.90, 0.12, 0.25};
  m.face = {3.05, 0.20, 0.60, 0.03, 0.12};
  m.edge_decay_px = 3.5;
  m.tip_radius_px = 2.2;
  m.gap_reach_px = 4.5;
  m.gap_shift = 0.035;
  m.interband_ev = 3.7;  // silver's interband edge: above the default window
  m.interband_slope = 1.0;
  m.bump_ev = 0;
  m.bump_fwhm_ev = 0;
  m.contrast = 0.70;
  m.median_size_px = 11;
  m.size_log_spread = 0.25;
  m.shape_weights = {0.8, 1.3, 0.6, 1.5};  // cubes and prisms
  m.dimer_fraction = 0.35;
  m.oxide_permittivity = 0;
  return m;
}

Material Aluminium() {
  Material m{};
  m.name = "aluminium";
  m.gap = {1.45, 0.16, 1.4, 0.0, 0.30};
  m.tip = {1.95, 0.26, 0.80, 0.12, 0.30};
  m.edge = {2.60, 0.32, 0.65, 0.10, 0.25};
  m.face = {3.30, 0.45, 0.50, 0.02, 0.12};
  m.edge_decay_px = 2.6;
  m.tip_radius_px = 2.4;
  m.gap_reach_px = 3.8;
  m.gap_shift = 0.025;
  m.interband_ev = 100;  // none
  m.interband_slope = 0;
  m.bump_ev = 1.5;  // aluminium's parallel-band transition
  m.bump_fwhm_ev = 0.25;
  m.contrast = 0.35;
  m.median_size_px = 15;
  m.size_log_spread = 0.22;
  m.shape_weights = {1.5, 1.0, 0.5, 1.0};
  m.dimer_fraction = 0.30;
  m.oxide_permittivity = 0.35;
  return m;
}

// A material for any other family name, drawn from a hash of the name within
// ranges around gold's (so that the default family keeps its gap mode near
// 0.9 eV).
Material Generic(std::string_view family) {
  Rng r(Combine(HashName(family), 0x6d6174657269616cull));
  Material m{};
  m.name = "generic";
  m.gap = {r.Uniform(0.87, 0.93), r.Uniform(0.05, 0.08), r.Uniform(1.6, 2.2),
           0.0, 0.30};
  m.tip = {r.Uniform(1.05, 1.30), r.Uniform(0.12, 0.20), r.Uniform(0.8, 1.1),
           r.Uniform(0.10, 0.18), 0.30};
  m.edge = {r.Uniform(1.50, 1.90), r.Uniform(0.15, 0.25), r.Uniform(0.6, 0.9),
            r.Uniform(0.08, 0.15), 0.25};
  m.face = {r.Uniform(2.30, 2.80), r.Uniform(0.30, 0.50), r.Uniform(0.4, 0.7),
            r.Uniform(0.02, 0.05), 0.12};
  m.edge_decay_px = r.Uniform(2.0, 4.0);
  m.tip_radius_px = r.Uniform(1.8, 2.6);
  m.gap_reach_px = r.Uniform(3.5, 5.0);
  m.gap_shift = r.Uniform(0.02, 0.04);
  m.interband_ev = r.Uniform(2.3, 3.5);
  m.interband_slope = r.Uniform(0.5, 1.0);
  m.bump_ev = 0;
  m.bump_fwhm_ev = 0;
  m.contrast = r.Uniform(0.7, 0.9);
  m.median_size_px = r.Uniform(10.0, 15.0);
  m.size_log_spread = r.Uniform(0.15, 0.30);
  for (double& w : m.shape_weights) w = r.Uniform(0.5, 1.5);
  m.dimer_fraction = r.Uniform(0.3, 0.5);
  m.oxide_permittivity = 0;
  return m;
}

Material MaterialOf(std::string_view family) {
  if (family == "gold") return Gold();
  if (family == "silver") return Silver();
  if (family == "aluminium" || family == "aluminum") return Aluminium();
  return Generic(family);
}

// What a substrate does: its permittivity (a particle's near field reaches
// into it) and how bright it is in the HAADF image.
struct Substrate {
  const char* name;
  double permittivity;
  double brightness;
};

constexpr std::array<Substrate, 4> kSubstrates = {{
    {"none", 1.0, 0.01},  // particles over a hole of a holey film
    {"carbon", 3.0, 0.04},
    {"silica", 2.1, 0.06},
    {"silicon nitride", 4.0, 0.09},
}};

// What makes one member of a family a different sample of the same material:
// its surroundings, its batch of particles, how thick they are, and how the
// microscope recorded it. Drawn from a hash of the family name and the member
// number (not the seed: a seed is another area of the same sample).
struct Sample {
  int substrate;          // index into kSubstrates
  double permittivity;    // effective permittivity of the surroundings
  double median_size_px;  // of this batch of particles
  double size_log_spread;
  std::array<double, 4> shape_weights;
  double dimer_fraction;
  double thickness;        // scale of the particles' thickness
  double inhomogeneity;    // relative spread of a particle's energies
  double resolution_ev;    // FWHM of the instrument's energy response
  double tail_amplitude;   // residual zero-loss tail A * E^-r at 1 eV
  double tail_exponent;    // r
  double background;       // flat background (substrate, dark level)
  double noise_scale;      // times --noise (dose, detector)
  Vec drift_px;            // spatial drift over the whole scan
  Vec drift_offset_px;     // offset of the spectrum image at its start
  double energy_drift_ev;  // energy drift over the whole scan
};

Sample SampleOf(const Material& m, std::string_view family, int member,
                int height, int width) {
  Rng r(Combine(Combine(HashName(family), static_cast<std::uint64_t>(member)),
                0x73616d706c65ull));
  Sample s{};
  s.substrate = r.Int(0, static_cast<int>(kSubstrates.size()) - 1);
  const double contact = r.Uniform(0.15, 0.30);
  s.permittivity = 1 + contact * (kSubstrates[s.substrate].permittivity - 1) +
                   m.oxide_permittivity * r.Uniform(0.3, 1.0);
  s.median_size_px =
      std::clamp(m.median_size_px * std::exp(0.18 * r.Normal()), 8.0, 17.0);
  s.size_log_spread = m.size_log_spread * r.Uniform(0.6, 1.6);
  for (std::size_t i = 0; i < s.shape_weights.size(); ++i) {
    s.shape_weights[i] = m.shape_weights[i] * std::exp(0.6 * r.Normal());
  }
  s.dimer_fraction =
      std::clamp(m.dimer_fraction + r.Uniform(-0.15, 0.15), 0.1, 0.7);
  s.thickness = std::clamp(std::exp(0.2 * r.Normal()), 0.65, 1.4);
  s.inhomogeneity = r.Uniform(0.005, 0.03);
  s.resolution_ev = r.Uniform(0.08, 0.30);
  s.tail_amplitude =
      0.01 * (s.resolution_ev / 0.15) * std::exp(0.5 * r.Normal());
  s.tail_exponent = r.Uniform(2.5, 3.5);
  s.background = r.Uniform(0.02, 0.06);
  s.noise_scale = std::clamp(std::exp(0.35 * r.Normal()), 0.5, 2.0);
  // Drift grows with the time a scan takes, so with its pixel count; it is
  // held to 5 % of the larger side.
  const double scan = static_cast<double>(height) * width;
  const double drift =
      std::min(r.Uniform(0, 0.6) * scan / 1000, 0.05 * std::max(height, width));
  const double direction = r.Uniform(0, 2 * kPi);
  s.drift_px = {drift * std::cos(direction), drift * std::sin(direction)};
  s.drift_offset_px = {r.Uniform(-1, 1), r.Uniform(-1, 1)};
  s.energy_drift_ev = r.Uniform(-0.03, 0.03);
  return s;
}

// The energy of a mode for a particle of this size in the sample's
// surroundings.
double ModeEnergy(const Mode& mode, const Sample& s, double size_px) {
  return mode.energy_ev *
         std::pow(kReferenceSizePx / size_px, mode.size_exponent) *
         std::pow(kReferencePermittivity / s.permittivity, mode.env_exponent);
}

// The intrinsic width of a mode at this energy for a particle of this size:
// the material's width, more for small particles (surface scattering) and for
// big ones (radiation), plus interband damping.
double ModeWidth(const Mode& mode, const Material& m, double energy_ev,
                 double size_px) {
  const double relative = size_px / kReferenceSizePx;
  double w = mode.fwhm_ev * (0.7 + 0.3 / relative) +
             0.02 * relative * relative * relative;
  w += m.interband_slope * std::max(0.0, energy_ev - m.interband_ev);
  if (m.bump_fwhm_ev > 0) {
    const double d = (energy_ev - m.bump_ev) / 0.3;
    w += m.bump_fwhm_ev * std::exp(-d * d);
  }
  return w;
}

// -------------------------------------------------------------- geometry --

enum class Shape { kEllipse, kRectangle, kRod, kTriangle };

// A point of high curvature and how sharp it is (1: a 60-degree corner).
struct Tip {
  Vec at;  // in the particle's own frame
  double sharpness;
};

struct Particle {
  Shape shape;
  Vec centre;
  double cos_a;
  double sin_a;
  double half_u;  // ellipse semi-axes in the particle's frame
  double half_v;
  std::vector<Vec> polygon;  // convex, counter-clockwise; own frame
  std::vector<Tip> tips;
  double radius;           // largest distance from the centre
  double equivalent_size;  // diameter of the disc of the same area
  double length;           // longest extent
  double thickness;        // relative, 0.7 to 1 times the sample's scale
  // Mode energies and intrinsic widths (FWHM) of this particle, after the
  // shifts of its size, its surroundings and its own small differences.
  double tip_ev;
  double edge_ev;
  double face_ev;
  double tip_fwhm_ev;
  double edge_fwhm_ev;
  double face_fwhm_ev;
};

Vec ToLocal(const Particle& p, Vec q) {
  const double dx = q.x - p.centre.x;
  const double dy = q.y - p.centre.y;
  return {dx * p.cos_a + dy * p.sin_a, -dx * p.sin_a + dy * p.cos_a};
}

// Signed distance to a convex counter-clockwise polygon: negative inside.
double PolygonDistance(const std::vector<Vec>& poly, Vec q) {
  double outside = kInf;
  double deepest = -kInf;
  for (std::size_t i = 0; i < poly.size(); ++i) {
    const Vec a = poly[i];
    const Vec b = poly[(i + 1) % poly.size()];
    const double ex = b.x - a.x;
    const double ey = b.y - a.y;
    const double len2 = ex * ex + ey * ey;
    const double qx = q.x - a.x;
    const double qy = q.y - a.y;
    const double t = std::clamp((qx * ex + qy * ey) / len2, 0.0, 1.0);
    outside = std::min(outside, std::hypot(qx - t * ex, qy - t * ey));
    // Distance to the edge's line along its outward normal (ey, -ex).
    deepest = std::max(deepest, (qx * ey - qy * ex) / std::sqrt(len2));
  }
  return deepest <= 0 ? deepest : outside;
}

// Signed distance from q to the particle's boundary: negative inside. Exact
// for polygons and discs, a close approximation for ellipses.
double SignedDistance(const Particle& p, Vec q) {
  const Vec l = ToLocal(p, q);
  if (p.shape != Shape::kEllipse) return PolygonDistance(p.polygon, l);
  const double r = std::hypot(l.x, l.y);
  const double k = std::hypot(l.x / p.half_u, l.y / p.half_v);
  if (k < 1e-12) return -std::min(p.half_u, p.half_v);
  return (k - 1.0) * r / k;
}

Shape DrawShape(const Sample& s, Rng& rng) {
  double total = 0;
  for (double w : s.shape_weights) total += w;
  double pick = rng.Uniform() * total;
  for (int i = 0; i < 3; ++i) {
    if (pick < s.shape_weights[i]) return static_cast<Shape>(i);
    pick -= s.shape_weights[i];
  }
  return Shape::kTriangle;
}

// A particle of the sample's batch, centred at the origin for now.
Particle DrawParticle(const Material& m, const Sample& s, Rng& rng) {
  Particle p{};
  p.shape = DrawShape(s, rng);
  const double size =
      std::clamp(s.median_size_px * std::exp(s.size_log_spread * rng.Normal()),
                 kMinSizePx, kMaxSizePx);
  const double angle = rng.Uniform(0, 2 * kPi);
  p.cos_a = std::cos(angle);
  p.sin_a = std::sin(angle);
  p.thickness = rng.Uniform(0.7, 1.0) * s.thickness;
  // Facets, ligands and the local substrate shift each particle a little.
  const double own = 1 + s.inhomogeneity * rng.Normal();
  p.length = size;
  double area = 0;
  switch (p.shape) {
    case Shape::kEllipse: {
      p.half_u = size / 2;
      // Half of them are discs, the rest moderately elongated.
      p.half_v =
          rng.Uniform() < 0.5 ? p.half_u : p.half_u * rng.Uniform(0.55, 0.9);
      const double aspect = p.half_u / p.half_v;
      if (aspect > 1.25) {
        const double sharp = 0.8 * std::min(1.0, (aspect - 1.0) / 1.5);
        p.tips = {{{p.half_u, 0}, sharp}, {{-p.half_u, 0}, sharp}};
      }
      p.radius = p.half_u;
      area = kPi * p.half_u * p.half_v;
      break;
    }
    case Shape::kRectangle:
    case Shape::kRod: {
      const bool rod = p.shape == Shape::kRod;
      const double a = size / 2;
      const double b = rod ? std::max(1.5, a * rng.Uniform(0.25, 0.4))
                           : a * rng.Uniform(0.6, 1.0);
      p.polygon = {{a, -b}, {a, b}, {-a, b}, {-a, -b}};
      for (const Vec& v : p.polygon) p.tips.push_back({v, rod ? 0.8 : 0.6});
      p.radius = std::hypot(a, b);
      area = 4 * a * b;
      break;
    }
    case Shape::kTriangle: {
      const double circumradius = size / std::sqrt(3.0);
      for (int k = 0; k < 3; ++k) {
        const double t = kPi / 2 + k * 2 * kPi / 3;
        p.polygon.push_back(
            {circumradius * std::cos(t), circumradius * std::sin(t)});
        p.tips.push_back({p.polygon.back(), 1.0});
      }
      p.radius = circumradius;
      area = std::sqrt(3.0) / 4 * size * size;
      break;
    }
  }
  p.equivalent_size = 2 * std::sqrt(area / kPi);
  // Thinner particles have lower in-plane mode energies.
  const double flat = std::pow(s.thickness, 0.15);
  p.tip_ev = own * flat * ModeEnergy(m.tip, s, p.length);
  p.edge_ev = own * flat * ModeEnergy(m.edge, s, p.equivalent_size);
  p.face_ev = own * ModeEnergy(m.face, s, p.equivalent_size);
  p.tip_fwhm_ev = ModeWidth(m.tip, m, p.tip_ev, p.length);
  p.edge_fwhm_ev = ModeWidth(m.edge, m, p.edge_ev, p.equivalent_size);
  p.face_fwhm_ev = ModeWidth(m.face, m, p.face_ev, p.equivalent_size);
  return p;
}

// Which particle covers each pixel (by its centre), for placing the next one.
class Field {
 public:
  Field(int height, int width)
      : height_(height),
        width_(width),
        owner_(static_cast<std::size_t>(height) * width, -1) {}

  // Whether the particle lies wholly in the field.
  bool Holds(const Particle& p) const {
    return p.centre.x - p.radius >= 0.5 &&
           p.centre.x + p.radius <= width_ - 1.5 &&
           p.centre.y - p.radius >= 0.5 &&
           p.centre.y + p.radius <= height_ - 1.5;
  }

  // The least signed distance from p to a pixel covered already; kInf when
  // none lies within reach of p.
  double Clearance(const Particle& p, double reach) const {
    double least = kInf;
    ForBox(p, reach, [&](int y, int x) {
      if (owner_[Index(y, x)] >= 0) {
        least = std::min(least, SignedDistance(p, {double(x), double(y)}));
      }
    });
    return least;
  }

  void Stamp(const Particle& p, int id) {
    ForBox(p, 1.0, [&](int y, int x) {
      if (SignedDistance(p, {double(x), double(y)}) <= 0) {
        owner_[Index(y, x)] = id;
      }
    });
  }

 private:
  std::size_t Index(int y, int x) const {
    return static_cast<std::size_t>(y) * width_ + x;
  }

  template <typename F>
  void ForBox(const Particle& p, double margin, F&& visit) const {
    const double r = p.radius + margin;
    const int x0 = std::max(0, static_cast<int>(std::floor(p.centre.x - r)));
    const int x1 =
        std::min(width_ - 1, static_cast<int>(std::ceil(p.centre.x + r)));
    const int y0 = std::max(0, static_cast<int>(std::floor(p.centre.y - r)));
    const int y1 =
        std::min(height_ - 1, static_cast<int>(std::ceil(p.centre.y + r)));
    for (int y = y0; y <= y1; ++y) {
      for (int x = x0; x <= x1; ++x) visit(y, x);
    }
  }

  int height_;
  int width_;
  std::vector<int> owner_;
};

// Places the particles one by one, never overlapping: some at random with
// room around them, some (the sample's dimer fraction) across a narrow gap
// from one placed before. A particle that finds no room is left out.
std::vector<Particle> PlaceParticles(const Material& m, const Sample& s,
                                     int mean_count, int height, int width,
                                     Rng& rng) {
  const int count =
      mean_count == 0 ? 0 : std::max(1, mean_count + rng.Int(-2, 2));
  Field field(height, width);
  std::vector<Particle> placed;
  constexpr double kLooseClearancePx = 4.0;
  for (int i = 0; i < count; ++i) {
    Particle p = DrawParticle(m, s, rng);
    const bool dimer = !placed.empty() && rng.Uniform() < s.dimer_fraction;
    bool ok = false;
    for (int attempt = 0; attempt < 200 && !ok; ++attempt) {
      if (dimer && attempt < 60) {
        const Particle& partner =
            placed[rng.Int(0, static_cast<int>(placed.size()) - 1)];
        const double dir = rng.Uniform(0, 2 * kPi);
        const double gap = rng.Uniform(1.0, 3.0);
        // Slide away from the partner's centre until the gap opens.
        const double far = partner.radius + p.radius + gap + 1;
        for (double t = 0; t <= far; t += 0.25) {
          p.centre = {partner.centre.x + t * std::cos(dir),
                      partner.centre.y + t * std::sin(dir)};
          const double clearance = field.Clearance(p, gap + 2);
          if (clearance >= gap) {
            ok = clearance <= gap + 1.0 && field.Holds(p);
            break;
          }
        }
      } else {
        const double lo = p.radius + 0.5;
        if (width - 1.5 - p.radius < lo || height - 1.5 - p.radius < lo) break;
        p.centre = {rng.Uniform(lo, width - 1.5 - p.radius),
                    rng.Uniform(lo, height - 1.5 - p.radius)};
        ok = field.Clearance(p, kLooseClearancePx) >= kLooseClearancePx;
      }
    }
    if (!ok) continue;
    field.Stamp(p, static_cast<int>(placed.size()));
    placed.push_back(std::move(p));
  }
  return placed;
}

// Where a pixel lies relative to the particles.
struct Local {
  double d1 = kInf;  // signed distance to the nearest particle
  double d2 = kInf;  // signed distance to the second nearest
  int nearest = -1;
  double radial = 1;  // distance to the nearest's centre / its radius
};

Local Describe(const std::vector<Particle>& particles, Vec q) {
  Local l;
  for (std::size_t k = 0; k < particles.size(); ++k) {
    const Particle& p = particles[k];
    const double to_centre = std::hypot(q.x - p.centre.x, q.y - p.centre.y);
    // No point of the particle is nearer than this.
    if (to_centre - p.radius >= l.d2) continue;
    const double d = SignedDistance(p, q);
    if (d < l.d1) {
      l.d2 = l.d1;
      l.d1 = d;
      l.nearest = static_cast<int>(k);
      l.radial = std::min(1.0, to_centre / p.radius);
    } else if (d < l.d2) {
      l.d2 = d;
    }
  }
  return l;
}

// Weight of p's tip mode at q: a Gaussian around each of its tips, scaled by
// the tip's sharpness.
double TipWeight(const Particle& p, const Material& m, Vec q) {
  const Vec local = ToLocal(p, q);
  double w = 0;
  for (const Tip& t : p.tips) {
    const double dx = local.x - t.at.x;
    const double dy = local.y - t.at.y;
    w += t.sharpness * std::exp(-(dx * dx + dy * dy) /
                                (2 * m.tip_radius_px * m.tip_radius_px));
  }
  return w;
}

// Weight of p's edge mode at signed distance d from its boundary: 1 on the
// boundary, fading over edge_decay_px outside and about a pixel inside.
double EdgeWeight(const Material& m, double d) {
  return d >= 0 ? std::exp(-d / m.edge_decay_px) : std::exp(d / 1.0);
}

// Projected thickness of metal at the pixel: thicker towards the middle of a
// particle, with a soft (anti-aliased) boundary.
double Thickness(const std::vector<Particle>& particles, const Local& l) {
  if (l.nearest < 0) return 0;
  const double cover = std::clamp(0.5 - l.d1, 0.0, 1.0);
  const double dome = 0.65 + 0.35 * (1 - l.radial * l.radial);
  return particles[static_cast<std::size_t>(l.nearest)].thickness * dome *
         cover;
}

// ----------------------------------------------------------------- image --

// The HAADF-like survey image: the substrate's brightness plus the
// material's contrast times the projected thickness, blurred a little, with
// shot noise. It is the reference frame; the spectrum image drifts from it.
std::vector<float> RenderImage(const std::vector<Particle>& particles,
                               const Material& m, const Sample& s, int height,
                               int width, double noise, Rng& rng) {
  const std::size_t n = static_cast<std::size_t>(height) * width;
  const double substrate = kSubstrates[s.substrate].brightness;
  std::vector<double> clean(n);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const Local l = Describe(particles, {double(x), double(y)});
      clean[static_cast<std::size_t>(y) * width + x] =
          substrate + m.contrast * Thickness(particles, l);
    }
  }
  // A slight probe blur: [1 2 1] / 4 along rows, then along columns.
  auto at = [&](const std::vector<double>& v, int y, int x) {
    y = std::clamp(y, 0, height - 1);
    x = std::clamp(x, 0, width - 1);
    return v[static_cast<std::size_t>(y) * width + x];
  };
  std::vector<double> rows(n);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      rows[static_cast<std::size_t>(y) * width + x] =
          (at(clean, y, x - 1) + 2 * at(clean, y, x) + at(clean, y, x + 1)) / 4;
    }
  }
  std::vector<float> image(n);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      const double v =
          (at(rows, y - 1, x) + 2 * at(rows, y, x) + at(rows, y + 1, x)) / 4;
      // Shot noise: the variance grows with the signal.
      image[static_cast<std::size_t>(y) * width + x] = static_cast<float>(
          v + noise * s.noise_scale * std::sqrt(v + 0.01) * rng.Normal());
    }
  }
  return image;
}

// --------------------------------------------------------------- spectra --

// The energy axis and the background of one row of the spectrum image, whose
// energies are shifted by the energy drift at the time of that row.
struct Axis {
  std::vector<double> energy;
  double shift = 0;          // energy drift of this row, eV
  std::vector<double> tail;  // (E - shift)^-r
};

Axis MakeAxis(const Options& o) {
  Axis a;
  a.energy.resize(static_cast<std::size_t>(o.channels));
  a.tail.resize(a.energy.size());
  for (int i = 0; i < o.channels; ++i) {
    a.energy[static_cast<std::size_t>(i)] =
        o.emin + (o.emax - o.emin) * i / (o.channels - 1);
  }
  return a;
}

// Sets the energy drift of the row scanned at time t (0 to 1).
void DriftAxis(Axis& a, const Sample& s, double t) {
  a.shift = s.energy_drift_ev * (t - 0.5);
  for (std::size_t i = 0; i < a.energy.size(); ++i) {
    // The tail's origin moves with the drift; the clamp keeps it finite for
    // a window that starts right at 0 eV.
    const double e = std::max(a.energy[i] - a.shift, 0.5 * a.energy[i]);
    a.tail[i] = std::pow(e, -s.tail_exponent);
  }
}

// A mode of this intrinsic (Lorentzian) FWHM and peak height, seen through
// an instrument of Gaussian FWHM `resolution`: a pseudo-Voigt profile
// (Thompson, Cox and Hastings 1987) of the same area.
void AddPeak(const Axis& axis, double centre, double fwhm, double height,
             double resolution, double* out) {
  const double l = fwhm;
  const double g = resolution;
  const double f =
      std::pow(g * g * g * g * g + 2.69269 * g * g * g * g * l +
                   2.42843 * g * g * g * l * l + 4.47163 * g * g * l * l * l +
                   0.07842 * g * l * l * l * l + l * l * l * l * l,
               0.2);
  const double r = l / f;
  const double eta = 1.36603 * r - 0.47719 * r * r + 0.11116 * r * r * r;
  const double area = height * kPi * l / 2;
  const double lorentz = area * eta * 2 / (kPi * f);
  const double gauss =
      area * (1 - eta) * 2 * std::sqrt(std::log(2.0) / kPi) / f;
  const double hw2 = f * f / 4;
  const double k = 4 * std::log(2.0) / (f * f);
  const double c = centre + axis.shift;
  for (std::size_t i = 0; i < axis.energy.size(); ++i) {
    const double d = axis.energy[i] - c;
    double v = lorentz * hw2 / (d * d + hw2);
    const double z = k * d * d;
    if (z < 40) v += gauss * std::exp(-z);
    out[i] += v;
  }
}

// The spectrum at pixel q of the survey image, noise included, into
// out[0 .. channels). The beam is at q shifted by the spatial drift at time t
// (0 to 1) of the scan.
void Spectrum(const std::vector<Particle>& particles, const Material& m,
              const Sample& s, const Axis& axis, double noise, Vec q, double t,
              Rng& rng, std::vector<double>& work, float* out) {
  q = {q.x + s.drift_offset_px.x + s.drift_px.x * t,
       q.y + s.drift_offset_px.y + s.drift_px.y * t};
  const Local l = Describe(particles, q);
  const double thick = Thickness(particles, l);
  const std::size_t n = axis.energy.size();
  // The residual zero-loss tail, stronger where the beam crosses metal, and a
  // flat background.
  const double tail = s.tail_amplitude * (1 + 0.5 * thick);
  const double flat = s.background * (1 + 0.5 * thick);
  for (std::size_t i = 0; i < n; ++i) work[i] = flat + tail * axis.tail[i];

  // Modes weaker than this are left out; far below the noise.
  constexpr double kNegligible = 1e-3;
  const double res = s.resolution_ev;
  // Edge and tip modes: every particle near enough adds its own, at its own
  // energies.
  const double edge_reach =
      m.edge_decay_px * std::log(m.edge.amplitude / kNegligible);
  const double tip_reach = 4 * m.tip_radius_px;
  for (std::size_t k = 0; k < particles.size(); ++k) {
    const Particle& p = particles[k];
    const double to_edge =
        std::hypot(q.x - p.centre.x, q.y - p.centre.y) - p.radius;
    if (to_edge >= std::max(edge_reach, tip_reach)) continue;
    const double d =
        static_cast<int>(k) == l.nearest ? l.d1 : SignedDistance(p, q);
    const double edge = EdgeWeight(m, d) * m.edge.amplitude;
    if (edge > kNegligible) {
      AddPeak(axis, p.edge_ev, p.edge_fwhm_ev, edge, res, work.data());
    }
    const double tip = TipWeight(p, m, q) * m.tip.amplitude;
    if (tip > kNegligible) {
      AddPeak(axis, p.tip_ev, p.tip_fwhm_ev, tip, res, work.data());
    }
  }
  if (l.nearest >= 0) {
    const Particle& p = particles[static_cast<std::size_t>(l.nearest)];
    // Face mode: over the interior, strongest in the thick middle.
    if (l.d1 < 0) {
      const double face = (1 - std::exp(l.d1 / 1.5)) *
                          (0.6 + 0.4 * (1 - l.radial * l.radial)) *
                          p.thickness * m.face.amplitude;
      if (face > kNegligible) {
        AddPeak(axis, p.face_ev, p.face_fwhm_ev, face, res, work.data());
      }
    }
  }
  // Gap mode: where two particles are both close, strongest in the vacuum
  // between them; narrower gaps shift it down.
  if (l.d2 < kInf) {
    const double out1 = std::max(l.d1, 0.0);
    const double out2 = std::max(l.d2, 0.0);
    const double reach = out1 + out2 + 2 * std::max(-l.d1, 0.0);
    const double gap =
        m.gap.amplitude *
        std::exp(-(reach * reach) / (m.gap_reach_px * m.gap_reach_px));
    if (gap > kNegligible) {
      const double gap_ev =
          ModeEnergy(m.gap, s, kReferenceSizePx) *
          (1 + m.gap_shift * std::tanh((out1 + out2 - 2.5) / 1.5));
      AddPeak(axis, gap_ev, ModeWidth(m.gap, m, gap_ev, kReferenceSizePx), gap,
              res, work.data());
    }
  }
  // Noise: relative (shot-like) plus additive (detector read-out), both
  // scaled by --noise and the sample's noise scale.
  const double relative = noise * s.noise_scale;
  const double additive = kAdditiveNoise * relative;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>(work[i] * (1 + relative * rng.Normal()) +
                                additive * rng.Normal());
  }
}

// ------------------------------------------------------------------ HDF5 --

// An HDF5 identifier, closed at the end of its scope.
class Hid {
 public:
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Hid() { Close(); }
  Hid(Hid&& other) noexcept : id_(other.id_), close_(other.close_) {
    other.id_ = -1;
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  Hid& operator=(Hid&&) = delete;

  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

  // Closes now; false when closing failed.
  bool Close() {
    if (id_ < 0) return true;
    const herr_t rc = close_(id_);
    id_ = -1;
    return rc >= 0;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void Require(bool ok, std::string_view what) {
  if (!ok) throw Failure(std::string(what));
}

void WriteAttribute(hid_t object, const char* name, hid_t type,
                    const void* value) {
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid attr(
      H5Acreate2(object, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose);
  Require(space.ok() && attr.ok() && H5Awrite(attr.get(), type, value) >= 0,
          fmt::format("cannot write attribute {}", name));
}

void WriteStringAttribute(hid_t object, const char* name,
                          const std::string& value) {
  Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
  Require(type.ok() && H5Tset_size(type.get(), H5T_VARIABLE) >= 0 &&
              H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0,
          "cannot make a string type");
  const char* text = value.c_str();
  WriteAttribute(object, name, type.get(), &text);
}

// A dataset creation property list that leaves out modification times, so
// that files differ only where their contents do.
Hid PlainDcpl() {
  Hid dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  Require(dcpl.ok() && H5Pset_obj_track_times(dcpl.get(), false) >= 0,
          "cannot make a dataset property list");
  return dcpl;
}

void WriteWholeDataset(hid_t file, const char* name,
                       const std::vector<hsize_t>& dims, const float* data) {
  Hid dcpl = PlainDcpl();
  Hid space(
      H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      H5Sclose);
  Hid dset(H5Dcreate2(file, name, H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                      dcpl.get(), H5P_DEFAULT),
           H5Dclose);
  Require(space.ok() && dset.ok() &&
              H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                       H5P_DEFAULT, data) >= 0,
          fmt::format("cannot write {}", name));
}

std::string CreatedTime() {
  std::time_t now = std::time(nullptr);
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH")) {
    long long v = 0;
    const char* end = epoch + std::char_traits<char>::length(epoch);
    auto [ptr, ec] = std::from_chars(epoch, end, v);
    if (ec != std::errc() || ptr != end || ptr == epoch || v < 0) {
      throw Failure("SOURCE_DATE_EPOCH is not a number of seconds");
    }
    now = static_cast<std::time_t>(v);
  }
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// Removes a temporary file unless told it is kept.
class TempFile {
 public:
  explicit TempFile(fs::path path) : path_(std::move(path)) {}
  ~TempFile() {
    if (!kept_) {
      std::error_code ec;
      fs::remove(path_, ec);
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  const fs::path& path() const { return path_; }
  void Keep() { kept_ = true; }

 private:
  fs::path path_;
  bool kept_ = false;
};

// Writes one member of a family to `out`.
void WriteExperiment(const Options& o, int member, const fs::path& out) {
  const Material m = MaterialOf(o.family);
  const Sample sample = SampleOf(m, o.family, member, o.height, o.width);
  const std::uint64_t layout_seed = Combine(
      Combine(HashName(o.family), static_cast<std::uint64_t>(member)), o.seed);
  Rng layout_rng(layout_seed);
  Rng image_rng(Combine(layout_seed, 1));
  Rng spectra_rng(Combine(layout_seed, 2));

  const std::vector<Particle> particles =
      PlaceParticles(m, sample, o.particles, o.height, o.width, layout_rng);
  const std::vector<float> image =
      RenderImage(particles, m, sample, o.height, o.width, o.noise, image_rng);
  Axis axis = MakeAxis(o);
  const std::vector<float> energy(axis.energy.begin(), axis.energy.end());

  const std::string created = CreatedTime();
  TempFile tmp(fs::path(out) += ".tmp");
  Hid file(
      H5Fcreate(tmp.path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
      H5Fclose);
  Require(file.ok(), fmt::format("cannot create {}", tmp.path().string()));

  const hsize_t h = static_cast<hsize_t>(o.height);
  const hsize_t w = static_cast<hsize_t>(o.width);
  const hsize_t e = static_cast<hsize_t>(o.channels);
  WriteWholeDataset(file.get(), "/image", {h, w}, image.data());
  WriteWholeDataset(file.get(), "/energy", {e}, energy.data());

  // /spectra: chunks of one row (or part of one, for wide images) of full
  // spectra, written chunk by chunk.
  const hsize_t block =
      std::clamp<hsize_t>(kMaxChunkBytes / (e * sizeof(float)), 1, w);
  {
    Hid dcpl = PlainDcpl();
    const hsize_t dims[3] = {h, w, e};
    const hsize_t chunk[3] = {1, block, e};
    Require(H5Pset_chunk(dcpl.get(), 3, chunk) >= 0 &&
                H5Pset_shuffle(dcpl.get()) >= 0 &&
                H5Pset_deflate(dcpl.get(), kDeflateLevel) >= 0,
            "cannot set up the compression of /spectra");
    Hid space(H5Screate_simple(3, dims, nullptr), H5Sclose);
    Hid dset(H5Dcreate2(file.get(), "/spectra", H5T_IEEE_F32LE, space.get(),
                        H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
             H5Dclose);
    Require(space.ok() && dset.ok(), "cannot create /spectra");

    std::vector<float> buffer(block * e);
    std::vector<double> work(e);
    const double pixels = static_cast<double>(h) * static_cast<double>(w);
    for (hsize_t y = 0; y < h; ++y) {
      // The scan runs row by row; the energy drift is set once per row.
      DriftAxis(axis, sample, (static_cast<double>(y) + 0.5) / h);
      for (hsize_t x0 = 0; x0 < w; x0 += block) {
        const hsize_t n = std::min(block, w - x0);
        for (hsize_t x = 0; x < n; ++x) {
          const double t =
              (static_cast<double>(y) * w + static_cast<double>(x0 + x)) /
              pixels;
          Spectrum(particles, m, sample, axis, o.noise,
                   {double(x0 + x), double(y)}, t, spectra_rng, work,
                   buffer.data() + x * e);
        }
        const hsize_t start[3] = {y, x0, 0};
        const hsize_t count[3] = {1, n, e};
        Hid mem(H5Screate_simple(3, count, nullptr), H5Sclose);
        Require(mem.ok() &&
                    H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start,
                                        nullptr, count, nullptr) >= 0 &&
                    H5Dwrite(dset.get(), H5T_NATIVE_FLOAT, mem.get(),
                             space.get(), H5P_DEFAULT, buffer.data()) >= 0,
                "cannot write /spectra");
      }
    }
    Require(dset.Close(), "cannot write /spectra");
  }

  const hid_t root = file.get();
  const double pixel_size = kPixelSizeNm;
  const std::uint64_t seed = o.seed;
  const std::int64_t member64 = member;
  const std::int64_t count = static_cast<std::int64_t>(particles.size());
  const double noise = o.noise;
  WriteStringAttribute(root, "sample",
                       fmt::format("{}-{:02d}", o.family, member));
  WriteStringAttribute(root, "instrument", kInstrument);
  WriteAttribute(root, "pixel_size_nm", H5T_IEEE_F64LE, &pixel_size);
  WriteStringAttribute(root, "created", created);
  WriteStringAttribute(root, "generator",
                       fmt::format("{} model {}", kProgram, kModelVersion));
  WriteAttribute(root, "seed", H5T_STD_U64LE, &seed);
  WriteStringAttribute(root, "family", o.family);
  WriteAttribute(root, "member", H5T_STD_I64LE, &member64);
  WriteAttribute(root, "particles", H5T_STD_I64LE, &count);
  WriteAttribute(root, "noise", H5T_IEEE_F64LE, &noise);
  // What makes this member a sample of its own (doc/sample-data.md).
  const double drift = std::hypot(sample.drift_px.x, sample.drift_px.y);
  WriteStringAttribute(root, "material", m.name);
  WriteStringAttribute(root, "substrate", kSubstrates[sample.substrate].name);
  WriteAttribute(root, "permittivity", H5T_IEEE_F64LE, &sample.permittivity);
  WriteAttribute(root, "median_size_px", H5T_IEEE_F64LE,
                 &sample.median_size_px);
  WriteAttribute(root, "thickness", H5T_IEEE_F64LE, &sample.thickness);
  WriteAttribute(root, "resolution_ev", H5T_IEEE_F64LE, &sample.resolution_ev);
  WriteAttribute(root, "noise_scale", H5T_IEEE_F64LE, &sample.noise_scale);
  WriteAttribute(root, "drift_px", H5T_IEEE_F64LE, &drift);
  WriteAttribute(root, "energy_drift_ev", H5T_IEEE_F64LE,
                 &sample.energy_drift_ev);

  Require(file.Close(), fmt::format("cannot write {}", tmp.path().string()));
  std::error_code ec;
  fs::rename(tmp.path(), out, ec);
  if (ec) {
    throw Failure(fmt::format("cannot rename {} to {}: {}", tmp.path().string(),
                              out.string(), ec.message()));
  }
  tmp.Keep();
}

void Run(const Options& o) {
  if (o.family_size == 0) {
    WriteExperiment(o, o.member, o.output);
    return;
  }
  const fs::path dir = o.out_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    throw Failure(
        fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  }
  for (int k = 0; k < o.family_size; ++k) {
    WriteExperiment(o, k, dir / fmt::format("{}-{:02d}.h5", o.family, k));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The generator reports its own errors; HDF5's error stack would repeat them.
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  Options options;
  try {
    options = ParseArgs(argc, argv);
  } catch (const UsageError& e) {
    fmt::print(stderr, "{}: error: {}\n", kProgram, e.what());
    return 2;
  }
  if (options.help) {
    fmt::print("{}", kUsage);
    return 0;
  }
  try {
    Run(options);
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "{}: error: out of memory\n", kProgram);
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: error: {}\n", kProgram, e.what());
    return 1;
  }
  return 0;
}
