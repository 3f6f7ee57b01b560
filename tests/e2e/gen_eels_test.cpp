// End-to-end tests of samples/cmf-gen-eels, the generator of synthetic
// STEM-EELS experiments (doc/sample-data.md): its layout, its determinism, and
// that the members of a family are different samples of one material while
// the families are different materials.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "hdf5_fixture.h"
#include "support.h"

namespace fs = std::filesystem;
using cmf::test::Outcome;
using cmf::test::TempDir;

namespace {

std::string GenEels() {
  const char* v = std::getenv("CMF_GEN_EELS");
  REQUIRE(v != nullptr);
  return v;
}

// Runs the generator with ARGS in DIR, with SOURCE_DATE_EPOCH set so that
// files can be compared byte for byte.
void Generate(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), GenEels());
  Outcome o =
      cmf::test::RunProcess(args, dir.path(), {{"SOURCE_DATE_EPOCH", "0"}});
  INFO(o.err);
  REQUIRE(o.exit_code == 0);
}

// Small, noiseless members: 48x48 pixels, 120 channels, about 6 particles.
const std::vector<std::string> kSmall = {
    "--height", "48",          "--width", "48",      "--channels",
    "120",      "--particles", "6",       "--noise", "0"};

// Writes members 0 to N-1 of FAMILY made with SEED to DIR/FAMILY-sSEED/.
void Family(const TempDir& dir, const std::string& family, int n, int seed) {
  std::vector<std::string> args = {
      "--family",      family,
      "--family-size", std::to_string(n),
      "--seed",        std::to_string(seed),
      "--out-dir",     family + "-s" + std::to_string(seed)};
  args.insert(args.end(), kSmall.begin(), kSmall.end());
  Generate(dir, args);
}

fs::path Member(const TempDir& dir, const std::string& family, int k,
                int seed) {
  char name[64];
  std::snprintf(name, sizeof name, "%s-s%d/%s-%02d.h5", family.c_str(), seed,
                family.c_str(), k);
  return dir / name;
}

// The centroid (eV) of a file's mean spectrum from 0.7 eV up, above its own
// minimum there: where the plasmons of the whole experiment lie on average.
double Centroid(const fs::path& file) {
  std::vector<unsigned long long> shape;
  std::vector<float> spectra =
      cmf::test::ReadFloatDataset(file, "spectra", &shape);
  std::vector<float> energy = cmf::test::ReadFloatDataset(file, "energy");
  REQUIRE(shape.size() == 3);
  const std::size_t channels = shape[2];
  const std::size_t pixels = shape[0] * shape[1];
  std::vector<double> mean(channels, 0.0);
  for (std::size_t p = 0; p < pixels; ++p)
    for (std::size_t c = 0; c < channels; ++c)
      mean[c] += spectra[p * channels + c] / static_cast<double>(pixels);
  double low = INFINITY;
  for (std::size_t c = 0; c < channels; ++c)
    if (energy[c] >= 0.7) low = std::min(low, mean[c]);
  double weight = 0, moment = 0;
  for (std::size_t c = 0; c < channels; ++c) {
    if (energy[c] < 0.7) continue;
    weight += mean[c] - low;
    moment += (mean[c] - low) * energy[c];
  }
  return moment / weight;
}

// The areas (pixels) of the particles seen in a file's image: connected
// pixels brighter than 40 % of the way from its darkest to its brightest.
std::vector<int> ParticleAreas(const fs::path& file) {
  std::vector<unsigned long long> shape;
  std::vector<float> image = cmf::test::ReadFloatDataset(file, "image", &shape);
  const int h = static_cast<int>(shape[0]), w = static_cast<int>(shape[1]);
  auto [lo, hi] = std::minmax_element(image.begin(), image.end());
  const float threshold = *lo + 0.4f * (*hi - *lo);
  std::vector<char> seen(image.size(), 0);
  std::vector<int> areas;
  for (int start = 0; start < h * w; ++start) {
    if (seen[start] || image[start] <= threshold) continue;
    std::vector<int> stack = {start};
    seen[start] = 1;
    int area = 0;
    while (!stack.empty()) {
      const int i = stack.back();
      stack.pop_back();
      ++area;
      const int y = i / w, x = i % w;
      for (auto [dy, dx] : {std::pair{1, 0}, {-1, 0}, {0, 1}, {0, -1}}) {
        const int yy = y + dy, xx = x + dx;
        if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
        const int j = yy * w + xx;
        if (!seen[j] && image[j] > threshold) {
          seen[j] = 1;
          stack.push_back(j);
        }
      }
    }
    areas.push_back(area);
  }
  return areas;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) /
         static_cast<double>(v.size());
}

double Deviation(const std::vector<double>& v) {
  const double m = Mean(v);
  double sum = 0;
  for (double x : v) sum += (x - m) * (x - m);
  return std::sqrt(sum / static_cast<double>(v.size()));
}

double Range(const std::vector<double>& v) {
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return *hi - *lo;
}

// Spearman's rank correlation (no ties expected).
double RankCorrelation(const std::vector<double>& a,
                       const std::vector<double>& b) {
  auto ranks = [](const std::vector<double>& v) {
    std::vector<std::size_t> order(v.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](std::size_t i, std::size_t j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (std::size_t k = 0; k < order.size(); ++k)
      r[order[k]] = static_cast<double>(k);
    return r;
  };
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double ma = Mean(ra), mb = Mean(rb);
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return sab / std::sqrt(saa * sbb);
}

constexpr int kMembers = 6;

}  // namespace

TEST_CASE(
    "cmf-gen-eels: the default experiment has the documented layout "
    "and attributes") {
  TempDir dir;
  Generate(dir, {"-o", "raw.h5"});
  std::vector<unsigned long long> shape;
  cmf::test::ReadFloatDataset(dir / "raw.h5", "image", &shape);
  CHECK(shape == std::vector<unsigned long long>{62, 75});
  cmf::test::ReadFloatDataset(dir / "raw.h5", "spectra", &shape);
  CHECK(shape == std::vector<unsigned long long>{62, 75, 1496});
  std::vector<float> energy =
      cmf::test::ReadFloatDataset(dir / "raw.h5", "energy", &shape);
  CHECK(shape == std::vector<unsigned long long>{1496});
  CHECK(energy.front() == doctest::Approx(0.5));
  CHECK(energy.back() == doctest::Approx(3.5));
  CHECK(cmf::test::ReadStringAttribute(dir / "raw.h5", "/", "sample") ==
        "default-00");
  CHECK(cmf::test::ReadStringAttribute(dir / "raw.h5", "/", "generator") ==
        "cmf-gen-eels model 2");
  CHECK(cmf::test::ReadStringAttribute(dir / "raw.h5", "/", "created") ==
        "1970-01-01T00:00:00Z");
  CHECK(cmf::test::ReadStringAttribute(dir / "raw.h5", "/", "material") ==
        "generic");
  const std::string substrate =
      cmf::test::ReadStringAttribute(dir / "raw.h5", "/", "substrate");
  CHECK((substrate == "none" || substrate == "carbon" ||
         substrate == "silica" || substrate == "silicon nitride"));
  for (const char* name : {"permittivity", "median_size_px", "thickness",
                           "resolution_ev", "noise_scale", "drift_px",
                           "energy_drift_ev", "pixel_size_nm", "noise"}) {
    INFO(name);
    CHECK(std::isfinite(
        cmf::test::ReadNumberAttribute(dir / "raw.h5", "/", name)));
  }
}

TEST_CASE(
    "cmf-gen-eels: a member is the same bytes for the same family, "
    "member and seed, whether written alone or with its family; another "
    "seed is another area of the same sample") {
  TempDir dir;
  std::vector<std::string> args = {"--family", "silver", "--member",
                                   "2",        "--seed", "7"};
  args.insert(args.end(), kSmall.begin(), kSmall.end());
  std::vector<std::string> a = args, b = args;
  a.insert(a.end(), {"-o", "a.h5"});
  b.insert(b.end(), {"-o", "b.h5"});
  Generate(dir, a);
  Generate(dir, b);
  Family(dir, "silver", 3, 7);
  const std::string bytes = cmf::test::ReadFile(dir / "a.h5");
  CHECK(bytes == cmf::test::ReadFile(dir / "b.h5"));
  CHECK(bytes == cmf::test::ReadFile(Member(dir, "silver", 2, 7)));
  CHECK(bytes != cmf::test::ReadFile(Member(dir, "silver", 1, 7)));

  Family(dir, "silver", 3, 8);
  const fs::path other_seed = Member(dir, "silver", 2, 8);
  for (const char* name : {"permittivity", "median_size_px", "thickness",
                           "resolution_ev", "drift_px"}) {
    INFO(name);
    CHECK(cmf::test::ReadNumberAttribute(other_seed, "/", name) ==
          cmf::test::ReadNumberAttribute(dir / "a.h5", "/", name));
  }
  CHECK(cmf::test::ReadFloatDataset(other_seed, "image") !=
        cmf::test::ReadFloatDataset(dir / "a.h5", "image"));
}

TEST_CASE(
    "cmf-gen-eels: members of a family are different samples: their "
    "surroundings shift the plasmons more than another area of one "
    "sample does, and their particle sizes differ") {
  TempDir dir;
  for (int seed : {0, 1, 2}) Family(dir, "gold", kMembers, seed);
  std::vector<double> permittivity, size, centroid, seeds_centroid, areas;
  for (int k = 0; k < kMembers; ++k) {
    permittivity.push_back(cmf::test::ReadNumberAttribute(
        Member(dir, "gold", k, 0), "/", "permittivity"));
    size.push_back(cmf::test::ReadNumberAttribute(Member(dir, "gold", k, 0),
                                                  "/", "median_size_px"));
    std::vector<double> c, a;
    for (int seed : {0, 1, 2}) {
      c.push_back(Centroid(Member(dir, "gold", k, seed)));
      for (int area : ParticleAreas(Member(dir, "gold", k, seed)))
        a.push_back(area);
    }
    centroid.push_back(Mean(c));
    if (k == 0) seeds_centroid = c;
    areas.push_back(Median(a));
  }
  MESSAGE("gold members: centroid range "
          << Range(centroid)
          << " eV, member 0 over "
             "3 seeds "
          << Range(seeds_centroid) << " eV; median particle area from "
          << *std::min_element(areas.begin(), areas.end()) << " to "
          << *std::max_element(areas.begin(), areas.end()) << " px");
  // The documented spread of the surroundings (permittivity 1 to about 1.9).
  CHECK(Range(permittivity) > 0.3);
  // Members' plasmons differ by more than 0.15 eV, at least twice what the
  // layout alone gives (another area of member 0), and a substrate of higher
  // permittivity shifts them down.
  CHECK(Range(centroid) > 0.15);
  CHECK(Range(centroid) > 2 * Range(seeds_centroid));
  CHECK(RankCorrelation(centroid, permittivity) < -0.5);
  // The particles seen in the images follow each member's size distribution.
  CHECK(*std::max_element(areas.begin(), areas.end()) >
        1.5 * *std::min_element(areas.begin(), areas.end()));
  CHECK(RankCorrelation(areas, size) > 0.5);
}

TEST_CASE(
    "cmf-gen-eels: gold, silver and aluminium differ more than the "
    "members of each") {
  TempDir dir;
  const std::vector<std::string> families = {"gold", "silver", "aluminium"};
  std::map<std::string, std::vector<double>> centroids;
  for (const std::string& f : families) {
    Family(dir, f, kMembers, 0);
    for (int k = 0; k < kMembers; ++k)
      centroids[f].push_back(Centroid(Member(dir, f, k, 0)));
    MESSAGE(f << ": mean centroid " << Mean(centroids[f]) << " eV, spread (sd) "
              << Deviation(centroids[f]) << " eV");
    CHECK(cmf::test::ReadStringAttribute(Member(dir, f, 0, 0), "/",
                                         "material") == f);
  }
  double widest = 0, closest = INFINITY;
  for (const std::string& f : families)
    widest = std::max(widest, Deviation(centroids[f]));
  for (std::size_t i = 0; i < families.size(); ++i)
    for (std::size_t j = i + 1; j < families.size(); ++j)
      closest = std::min(closest, std::abs(Mean(centroids[families[i]]) -
                                           Mean(centroids[families[j]])));
  CHECK(closest > 2.5 * widest);
  // Every member lies nearer its own family's mean than any other's.
  for (const std::string& f : families) {
    for (double c : centroids[f]) {
      INFO(f << " member at " << c << " eV");
      for (const std::string& g : families) {
        if (g != f)
          CHECK(std::abs(c - Mean(centroids[f])) <
                std::abs(c - Mean(centroids[g])));
      }
    }
  }
  // Gold is the brightest in the HAADF image, aluminium the faintest.
  auto brightest = [&](const std::string& f) {
    double top = 0;
    for (int k = 0; k < kMembers; ++k) {
      std::vector<float> image =
          cmf::test::ReadFloatDataset(Member(dir, f, k, 0), "image");
      top += *std::max_element(image.begin(), image.end()) / kMembers;
    }
    return top;
  };
  CHECK(brightest("gold") > brightest("silver"));
  CHECK(brightest("silver") > brightest("aluminium"));
}
