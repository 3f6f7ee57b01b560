#include "frame_features.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace cmf::md {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Distinct species in order of first appearance, and each atom's index in it.
std::vector<std::string> Kinds(const Trajectory& t, std::vector<int>* kind_of) {
  std::vector<std::string> kinds;
  kind_of->clear();
  for (const std::string& s : t.species) {
    auto it = std::find(kinds.begin(), kinds.end(), s);
    if (it == kinds.end()) {
      kinds.push_back(s);
      it = kinds.end() - 1;
    }
    kind_of->push_back(static_cast<int>(it - kinds.begin()));
  }
  return kinds;
}

// Adds a Gaussian of width SIGMA at X, of total weight W, to the bins of
// HIST over [LO, HI).
void Smear(float* hist, int bins, double lo, double hi, double x, double sigma,
           double w) {
  const double width = (hi - lo) / bins;
  int first =
      std::max(0, static_cast<int>(std::floor((x - 4 * sigma - lo) / width)));
  int last = std::min(
      bins - 1, static_cast<int>(std::floor((x + 4 * sigma - lo) / width)));
  for (int b = first; b <= last; ++b) {
    double a = (lo + b * width - x) / (sigma * std::sqrt(2.0));
    double c = (lo + (b + 1) * width - x) / (sigma * std::sqrt(2.0));
    hist[b] += static_cast<float>(w * 0.5 * (std::erf(c) - std::erf(a)));
  }
}

// The periodic images to visit along each cell vector so that every pair
// closer than R is seen: ceil(R / the cell's width across that vector).
void ImageRange(const double* m, double r, int range[3]) {
  // Widths of the cell: volume / |area of the other two vectors' face|.
  auto cross = [](const double* a, const double* b, double* c) {
    c[0] = a[1] * b[2] - a[2] * b[1];
    c[1] = a[2] * b[0] - a[0] * b[2];
    c[2] = a[0] * b[1] - a[1] * b[0];
  };
  double c12[3], c20[3], c01[3];
  cross(m + 3, m + 6, c12);
  cross(m + 6, m + 0, c20);
  cross(m + 0, m + 3, c01);
  double volume = std::fabs(m[0] * c12[0] + m[1] * c12[1] + m[2] * c12[2]);
  const double* faces[3] = {c12, c20, c01};
  for (int k = 0; k < 3; ++k) {
    double area =
        std::sqrt(faces[k][0] * faces[k][0] + faces[k][1] * faces[k][1] +
                  faces[k][2] * faces[k][2]);
    double width = volume / area;
    // In double first: a sliver of a cell would overflow an int.
    range[k] =
        static_cast<int>(std::min(8.0, std::ceil(r / std::max(width, 1e-9))));
  }
}

struct Neighbour {
  int j;
  double d[3];  // from atom i to this image of atom j
  double r;
};

// Every neighbour of every atom within R (periodic images included).
std::vector<std::vector<Neighbour>> Neighbours(const Trajectory& t, int frame,
                                               double r) {
  const int n = t.atoms();
  const double* m = t.cell_of(frame);
  const float* p = t.positions.data() + static_cast<std::size_t>(frame) * n * 3;
  int range[3];
  ImageRange(m, r, range);
  std::vector<std::vector<Neighbour>> out(n);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      for (int a = -range[0]; a <= range[0]; ++a)
        for (int b = -range[1]; b <= range[1]; ++b)
          for (int c = -range[2]; c <= range[2]; ++c) {
            if (i == j && a == 0 && b == 0 && c == 0) continue;
            Neighbour nb{j, {}, 0};
            double s = 0;
            for (int k = 0; k < 3; ++k) {
              nb.d[k] = p[3 * j + k] - p[3 * i + k] + a * m[k] + b * m[3 + k] +
                        c * m[6 + k];
              s += nb.d[k] * nb.d[k];
            }
            nb.r = std::sqrt(s);
            if (nb.r < r) out[i].push_back(nb);
          }
    }
  }
  return out;
}

}  // namespace

int BondFeatureCount(int s, const BondOptions& o) {
  return s * (s + 1) / 2 * o.r_bins + s * o.angle_bins;
}

std::vector<float> BondFeatures(const Trajectory& t, int frame,
                                const BondOptions& o) {
  std::vector<int> kind;
  const std::vector<std::string> kinds = Kinds(t, &kind);
  const int s = static_cast<int>(kinds.size());
  const int pairs = s * (s + 1) / 2;
  std::vector<float> f(static_cast<std::size_t>(BondFeatureCount(s, o)), 0.f);
  const double per_atom = 1.0 / t.atoms();
  auto pair_index = [s](int a, int b) {
    if (a > b) std::swap(a, b);
    return a * s - a * (a - 1) / 2 + (b - a);  // row-major upper triangle
  };
  auto nb = Neighbours(t, frame, std::max(o.r_max + 4 * o.r_sigma, o.cutoff));
  for (int i = 0; i < t.atoms(); ++i) {
    for (const Neighbour& a : nb[i]) {
      // Each unordered pair once: half a count from each end.
      Smear(f.data() + pair_index(kind[i], kind[a.j]) * o.r_bins, o.r_bins,
            o.r_min, o.r_max, a.r, o.r_sigma, 0.5 * per_atom);
    }
    float* angles = f.data() + pairs * o.r_bins + kind[i] * o.angle_bins;
    for (std::size_t x = 0; x < nb[i].size(); ++x) {
      const Neighbour& a = nb[i][x];
      if (a.r >= o.cutoff || kind[a.j] == kind[i]) continue;
      for (std::size_t y = x + 1; y < nb[i].size(); ++y) {
        const Neighbour& b = nb[i][y];
        if (b.r >= o.cutoff || kind[b.j] == kind[i]) continue;
        double dot =
            (a.d[0] * b.d[0] + a.d[1] * b.d[1] + a.d[2] * b.d[2]) / (a.r * b.r);
        double theta = std::acos(std::clamp(dot, -1.0, 1.0)) * 180.0 / kPi;
        Smear(angles, o.angle_bins, 40.0, 180.0, theta, o.angle_sigma,
              per_atom);
      }
    }
  }
  return f;
}

std::vector<float> RenderAdf(const Trajectory& t, int frame,
                             const RenderOptions& o) {
  if (o.size < 1 || o.size > 4096 || !(o.pixel > 0))
    throw std::invalid_argument("bad render size");
  const int n = t.atoms();
  const double* m = t.cell_of(frame);
  const float* p = t.positions.data() + static_cast<std::size_t>(frame) * n * 3;
  const double sigma = o.probe_fwhm / (2 * std::sqrt(2 * std::log(2.0)));
  const double reach = 4 * sigma;
  // The window, centred on the cell's centre in the xy plane.
  const double cx = 0.5 * (m[0] + m[3] + m[6]), cy = 0.5 * (m[1] + m[4] + m[7]);
  const double half = 0.5 * o.size * o.pixel;
  const double x0 = cx - half, y0 = cy - half;
  // Images along a1 and a2 until the window is covered.
  const double span = half * 2 + reach;
  // Clamped in double: a vector along the view has no length in the plane.
  const int ra = static_cast<int>(std::min(
      64.0, std::ceil(span / std::max(1e-9, std::hypot(m[0], m[1]))) + 1));
  const int rb = static_cast<int>(std::min(
      64.0, std::ceil(span / std::max(1e-9, std::hypot(m[3], m[4]))) + 1));
  std::vector<float> image(static_cast<std::size_t>(o.size) * o.size, 0.f);
  std::vector<double> gx, gy;
  for (int i = 0; i < n; ++i) {
    const double weight = std::pow(AtomicNumber(t.species[i]), o.z_exponent);
    for (int a = -ra; a <= ra; ++a) {
      for (int b = -rb; b <= rb; ++b) {
        const double x = p[3 * i] + a * m[0] + b * m[3];
        const double y = p[3 * i + 1] + a * m[1] + b * m[4];
        if (x < x0 - reach || x > x0 + 2 * half + reach || y < y0 - reach ||
            y > y0 + 2 * half + reach)
          continue;
        // Separable Gaussian over the pixels within reach.
        int c0 = std::max(
            0, static_cast<int>(std::floor((x - reach - x0) / o.pixel)));
        int c1 =
            std::min(o.size - 1,
                     static_cast<int>(std::ceil((x + reach - x0) / o.pixel)));
        int r0 = std::max(
            0, static_cast<int>(std::floor((y - reach - y0) / o.pixel)));
        int r1 =
            std::min(o.size - 1,
                     static_cast<int>(std::ceil((y + reach - y0) / o.pixel)));
        if (c0 > c1 || r0 > r1) continue;
        gx.assign(c1 - c0 + 1, 0);
        gy.assign(r1 - r0 + 1, 0);
        for (int c = c0; c <= c1; ++c) {
          double d = x0 + (c + 0.5) * o.pixel - x;
          gx[c - c0] = std::exp(-d * d / (2 * sigma * sigma));
        }
        for (int r = r0; r <= r1; ++r) {
          double d = y0 + (r + 0.5) * o.pixel - y;
          gy[r - r0] = std::exp(-d * d / (2 * sigma * sigma));
        }
        for (int r = r0; r <= r1; ++r)
          for (int c = c0; c <= c1; ++c)
            image[static_cast<std::size_t>(r) * o.size + c] +=
                static_cast<float>(weight * gy[r - r0] * gx[c - c0]);
      }
    }
  }
  return image;
}

std::vector<float> Pool(const std::vector<float>& image, int size, int out) {
  if (out < 1 || size % out != 0)
    throw std::invalid_argument("pool: size not a multiple");
  const int k = size / out;
  std::vector<float> pooled(static_cast<std::size_t>(out) * out, 0.f);
  for (int r = 0; r < size; ++r)
    for (int c = 0; c < size; ++c)
      pooled[static_cast<std::size_t>(r / k) * out + c / k] +=
          image[static_cast<std::size_t>(r) * size + c];
  for (float& v : pooled) v /= static_cast<float>(k * k);
  return pooled;
}

}  // namespace cmf::md
