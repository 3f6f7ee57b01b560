#include "ui_pictures.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "html_text.h"

namespace cmf::cli {
namespace {

// The largest side, in pixels, of a raster put in a page: a larger image is
// read every k-th pixel.
constexpr std::uint64_t kMaxRasterSide = 320;
// The width a figure is shown at, in CSS pixels.
constexpr int kFigureWidth = 340;

std::uint32_t Crc32(std::string_view bytes, std::uint32_t crc = 0) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (unsigned char b : bytes) crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void PutU32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out += static_cast<char>((v >> shift) & 0xFF);
  }
}

void Chunk(std::string& png, std::string_view type, std::string_view data) {
  PutU32(png, static_cast<std::uint32_t>(data.size()));
  std::string body(type);
  body.append(data);
  png += body;
  PutU32(png, Crc32(body));
}

// Finite values of A: their least and greatest (lo > hi when none).
std::pair<double, double> Range(const std::vector<double>& values) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  return {lo, hi};
}

// A 2-D picture of A's first two dimensions (a third, if any, at index 0).
struct Raster {
  int rows = 0, cols = 0;
  std::uint64_t stride_rows = 1, stride_cols = 1;
  std::vector<double> values;  // rows x cols
};

Result<Raster> ToRaster(const NumericArray& a, std::string_view what) {
  if (a.shape.size() < 2 || a.shape.size() > 3 || a.shape[0] == 0 ||
      a.shape[1] == 0 || (a.shape.size() == 3 && a.shape[2] == 0)) {
    return Status::InvalidArgument(std::string(what) + " is not an image");
  }
  Raster r;
  r.rows = static_cast<int>(a.shape[0]);
  r.cols = static_cast<int>(a.shape[1]);
  r.stride_rows = a.stride[0];
  r.stride_cols = a.stride[1];
  const std::size_t depth = a.shape.size() == 3 ? a.shape[2] : 1;
  r.values.resize(static_cast<std::size_t>(r.rows) * r.cols);
  for (std::size_t i = 0; i < r.values.size(); ++i) {
    r.values[i] = a.values[i * depth];
  }
  return r;
}

// RASTER as a PNG data URI, grey or through Viridis, from its finite range.
std::string RasterUri(const Raster& r, bool grey) {
  auto [lo, hi] = Range(r.values);
  const double span = hi > lo ? hi - lo : 1.0;
  std::vector<std::uint8_t> rgb(static_cast<std::size_t>(r.rows) * r.cols * 3);
  for (std::size_t i = 0; i < r.values.size(); ++i) {
    const double v = r.values[i];
    const double t = std::isfinite(v) ? (v - lo) / span : std::nan("");
    if (grey) {
      const auto g = static_cast<std::uint8_t>(
          std::isfinite(t) ? std::lround(255 * std::clamp(t, 0.0, 1.0)) : 128);
      rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = g;
    } else {
      Viridis(t, &rgb[3 * i]);
    }
  }
  return "data:image/png;base64," + Base64(EncodePng(r.cols, r.rows, rgb));
}

struct Point {
  double x = 0, y = 0;  // pixel of the survey image (column, row)
  std::int64_t step = 0;
  double sd = std::nan("");
};

// One figure: RASTER (which covers WIDTH x HEIGHT pixels of its own frame)
// with POINTS, shifted by -OFFSET into that frame, numbered and coloured by
// their sd between SD_LO and SD_HI; SEEDS as plain squares.
std::string Figure(std::string_view id, std::string_view caption,
                   const Raster& raster, bool grey, double offset,
                   const std::vector<Point>& points,
                   const std::vector<Point>& seeds, double sd_lo,
                   double sd_hi) {
  const double width = static_cast<double>(raster.cols * raster.stride_cols);
  const double height = static_cast<double>(raster.rows * raster.stride_rows);
  const double radius = std::max(width, height) / 55.0;
  const int shown_height =
      static_cast<int>(std::lround(kFigureWidth * height / width));
  std::string marks;
  for (const Point& s : seeds) {
    marks += fmt::format(
        "<rect class=\"seed\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" "
        "height=\"{:.1f}\" fill=\"none\" stroke=\"#fff\" "
        "stroke-width=\"{:.2f}\"/>",
        s.x - offset + 0.5 - radius, s.y - offset + 0.5 - radius, 2 * radius,
        2 * radius, radius / 3);
  }
  const double span = sd_hi > sd_lo ? sd_hi - sd_lo : 1.0;
  for (const Point& p : points) {
    const double cx = p.x - offset + 0.5, cy = p.y - offset + 0.5;
    marks += fmt::format(
        "<g class=\"point\" data-step=\"{}\"><title>step {}: ({}, {}), "
        "uncertainty {:.4g}</title><circle cx=\"{:.1f}\" cy=\"{:.1f}\" "
        "r=\"{:.2f}\" fill=\"{}\" stroke=\"#fff\" stroke-width=\"{:.2f}\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{:.1f}\">{}</text></g>",
        p.step, p.step, p.x, p.y, p.sd, cx, cy, radius,
        ViridisHex((p.sd - sd_lo) / span), radius / 4, cx + radius * 1.1,
        cy - radius * 0.6, radius * 1.6, p.step);
  }
  return fmt::format(
      "<figure class=\"picture\" id=\"{}\"><figcaption>{}</figcaption>"
      "<svg width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\">"
      "<image href=\"{}\" x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" "
      "preserveAspectRatio=\"none\" style=\"image-rendering: pixelated\"/>"
      "{}</svg></figure>\n",
      id, caption, kFigureWidth, shown_height, width, height,
      RasterUri(raster, grey), width, height, marks);
}

// The colour bar of the points: uncertainty from LO to HI.
std::string Legend(double lo, double hi) {
  std::string stops;
  for (int i = 0; i < 20; ++i) {
    stops += fmt::format(
        "<rect x=\"{}\" y=\"0\" width=\"8\" height=\"12\" fill=\"{}\"/>", i * 8,
        ViridisHex(i / 19.0));
  }
  return fmt::format(
      "<p class=\"legend\">points: the order measured, coloured by the "
      "uncertainty (posterior sd) at the point when it was chosen: {:.3g} "
      "<svg width=\"160\" height=\"12\">{}</svg> {:.3g}; squares: the seed "
      "points</p>\n",
      lo, stops, hi);
}

const ArtifactRef* FindByName(const std::vector<ArtifactRef>& list,
                              std::string_view file_name) {
  for (const ArtifactRef& a : list) {
    if (std::filesystem::path(a.path).filename() == file_name) return &a;
  }
  return nullptr;
}

std::string Missing(std::string_view what, const Status& why) {
  return fmt::format("<p class=\"missing\">{}: {}</p>\n", what,
                     HtmlText(why.message()));
}

// One trajectory's chart of an aimd-al run: the recorded energy (when the
// trajectory's bytes are here), the prediction with its band of two standard
// deviations, the evaluated frames numbered in the order evaluated, and the
// most stable one found ringed.
struct AimdTrajectory {
  std::string name;
  std::vector<double> time;      // x of each frame: time_fs, else the frame
  std::vector<double> recorded;  // centred energy per atom, or empty
  std::vector<double> predicted, sd, target;
  std::vector<int> evaluated_at;  // per frame: 1 + its place in the order, or 0
  bool has_time = false;
};

std::string AimdChart(const AimdTrajectory& t, int best_frame) {
  constexpr double kW = 640, kH = 220, kLeft = 60, kPad = 12, kBottom = 28;
  const std::size_t n = t.predicted.size();
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  auto widen = [&](double v) {
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    widen(t.predicted[i] - 2 * t.sd[i]);
    widen(t.predicted[i] + 2 * t.sd[i]);
    widen(t.target[i]);
    if (!t.recorded.empty()) widen(t.recorded[i]);
  }
  if (lo > hi || n == 0) return "";
  auto [x0, x1] = Range(t.time);
  const double xspan = x1 > x0 ? x1 - x0 : 1.0, yspan = hi > lo ? hi - lo : 1.0;
  auto X = [&](std::size_t i) {
    return kLeft + (kW - kLeft - kPad) * (t.time[i] - x0) / xspan;
  };
  auto Y = [&](double v) {
    return kPad + (kH - kPad - kBottom) * (hi - v) / yspan;
  };
  std::string band, upper, lower, predicted, recorded, marks;
  for (std::size_t i = 0; i < n; ++i) {
    upper +=
        fmt::format("{:.1f},{:.1f} ", X(i), Y(t.predicted[i] + 2 * t.sd[i]));
    predicted += fmt::format("{:.1f},{:.1f} ", X(i), Y(t.predicted[i]));
    if (!t.recorded.empty() && std::isfinite(t.recorded[i])) {
      recorded += fmt::format("{:.1f},{:.1f} ", X(i), Y(t.recorded[i]));
    }
  }
  for (std::size_t i = n; i-- > 0;) {
    lower +=
        fmt::format("{:.1f},{:.1f} ", X(i), Y(t.predicted[i] - 2 * t.sd[i]));
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (t.evaluated_at[i] == 0 || !std::isfinite(t.target[i])) continue;
    const bool best = static_cast<int>(i) == best_frame;
    marks += fmt::format(
        "<g class=\"evaluation\" data-order=\"{}\"><title>evaluation {}: "
        "frame {}, {:.4g} eV/atom</title>{}<circle cx=\"{:.1f}\" "
        "cy=\"{:.1f}\" r=\"4\" fill=\"#d1495b\" stroke=\"#fff\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"9\">{}</text></g>",
        t.evaluated_at[i], t.evaluated_at[i], i, t.target[i],
        best ? fmt::format("<circle class=\"best\" cx=\"{:.1f}\" "
                           "cy=\"{:.1f}\" r=\"9\" fill=\"none\" "
                           "stroke=\"#2e933c\" stroke-width=\"2.5\"/>",
                           X(i), Y(t.target[i]))
             : "",
        X(i), Y(t.target[i]), X(i) + 5, Y(t.target[i]) - 5, t.evaluated_at[i]);
  }
  return fmt::format(
      "<figure class=\"aimd\"><figcaption><b>{}</b></figcaption><svg "
      "width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\">"
      "<polygon class=\"band\" points=\"{}{}\" fill=\"#0b5cad\" "
      "fill-opacity=\"0.18\"/>"
      "<polyline class=\"recorded\" points=\"{}\" fill=\"none\" "
      "stroke=\"#888\" stroke-width=\"1\"/>"
      "<polyline class=\"predicted\" points=\"{}\" fill=\"none\" "
      "stroke=\"#0b5cad\" stroke-width=\"1.5\"/>{}"
      "<text x=\"4\" y=\"{:.0f}\" font-size=\"10\">{:.3g}</text>"
      "<text x=\"4\" y=\"{:.0f}\" font-size=\"10\">{:.3g}</text>"
      "<text x=\"{:.0f}\" y=\"{:.0f}\" font-size=\"10\">{:.4g}</text>"
      "<text x=\"{:.0f}\" y=\"{:.0f}\" font-size=\"10\" "
      "text-anchor=\"end\">{:.4g} {}</text></svg></figure>\n",
      HtmlText(t.name), kW, kH, kW, kH, upper, lower, recorded, predicted,
      marks, kPad + 8, hi, kH - kBottom, lo, kLeft, kH - 8, x0, kW - kPad,
      kH - 8, x1, t.has_time ? "fs" : "(frame)");
}

}  // namespace

std::string EncodePng(int width, int height,
                      const std::vector<std::uint8_t>& rgb) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string header;
  PutU32(header, static_cast<std::uint32_t>(width));
  PutU32(header, static_cast<std::uint32_t>(height));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB
  Chunk(png, "IHDR", header);
  // Each row: filter 0, then its pixels; the whole as zlib's stored blocks.
  std::string raw;
  const std::size_t row = static_cast<std::size_t>(width) * 3;
  raw.reserve((row + 1) * height);
  for (int y = 0; y < height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(rgb.data()) + y * row, row);
  }
  std::string z = "\x78\x01";
  std::uint32_t a = 1, b = 0;
  for (unsigned char c : raw) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  std::size_t at = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - at);
    const bool last = at + n == raw.size();
    z += static_cast<char>(last ? 1 : 0);
    z += static_cast<char>(n & 0xFF);
    z += static_cast<char>(n >> 8);
    z += static_cast<char>(~n & 0xFF);
    z += static_cast<char>((~n >> 8) & 0xFF);
    z.append(raw, at, n);
    at += n;
  } while (at < raw.size());
  PutU32(z, (b << 16) | a);
  Chunk(png, "IDAT", z);
  Chunk(png, "IEND", "");
  return png;
}

std::string Base64(std::string_view bytes) {
  static constexpr char kDigits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                            (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                            static_cast<unsigned char>(bytes[i + 2]);
    out += kDigits[v >> 18];
    out += kDigits[(v >> 12) & 63];
    out += kDigits[(v >> 6) & 63];
    out += kDigits[v & 63];
  }
  if (i < bytes.size()) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size())
      v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kDigits[v >> 18];
    out += kDigits[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kDigits[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

void Viridis(double t, std::uint8_t out[3]) {
  // Five stops of matplotlib's viridis, linearly between.
  static constexpr std::uint8_t kStops[5][3] = {{68, 1, 84},
                                                {59, 82, 139},
                                                {33, 145, 140},
                                                {94, 201, 98},
                                                {253, 231, 37}};
  if (!std::isfinite(t)) {
    out[0] = out[1] = out[2] = 128;
    return;
  }
  const double at = std::clamp(t, 0.0, 1.0) * 4;
  const int k = std::min(static_cast<int>(at), 3);
  const double f = at - k;
  for (int c = 0; c < 3; ++c) {
    out[c] = static_cast<std::uint8_t>(
        std::lround(kStops[k][c] + f * (kStops[k + 1][c] - kStops[k][c])));
  }
}

std::string ViridisHex(double t) {
  std::uint8_t c[3];
  Viridis(t, c);
  return fmt::format("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
}

std::string DklFigures(Repo& repo, const ExecutionRecord& r,
                       const MetricSeries& m) {
  // The points, from the step metrics x and y; coloured by the uncertainty
  // at the chosen point (older runs logged only the largest one).
  std::vector<Point> points;
  auto xs = m.find("x"), ys = m.find("y");
  auto sds = m.find("uncertainty");
  if (sds == m.end()) sds = m.find("max_uncertainty");
  if (xs != m.end() && ys != m.end()) {
    for (std::size_t i = 0; i < xs->second.size() && i < ys->second.size();
         ++i) {
      Point p;
      p.x = xs->second[i].value;
      p.y = ys->second[i].value;
      p.step = xs->second[i].step;
      if (!std::isfinite(p.x) || !std::isfinite(p.y)) continue;
      if (sds != m.end()) {
        for (const MetricPoint& s : sds->second) {
          if (s.step == p.step) p.sd = s.value;
        }
      }
      points.push_back(p);
    }
  }
  std::vector<double> sd_values;
  for (const Point& p : points) sd_values.push_back(p.sd);
  auto [sd_lo, sd_hi] = Range(sd_values);
  if (sd_lo > sd_hi) sd_lo = sd_hi = 0;
  int window = 16;
  if (auto w = r.params.find("window"); w != r.params.end()) {
    window = std::max(1, std::atoi(ToText(w->second).c_str()));
  }
  const double offset = window / 2;

  std::string out = "<h2>Where it measured</h2>\n";
  out += Legend(sd_lo, sd_hi);
  // The seed points: measured (maps.h5 /measured) but not at a step.
  std::vector<Point> seeds;
  const ArtifactRef* maps = FindByName(r.outputs, "maps.h5");
  Result<NumericArray> mask =
      maps ? ReadArtifactArray(repo, *maps, "/measured", kMaxRasterSide)
           : Result<NumericArray>(Status::NotFound("no maps.h5"));
  if (mask.ok() && mask->shape.size() == 2 && mask->stride[0] == 1 &&
      mask->stride[1] == 1) {
    const std::size_t cols = mask->shape[1];
    for (std::size_t i = 0; i < mask->values.size(); ++i) {
      if (mask->values[i] == 0) continue;
      Point s;
      s.x = static_cast<double>(i % cols) + offset;
      s.y = static_cast<double>(i / cols) + offset;
      const bool stepped =
          std::any_of(points.begin(), points.end(),
                      [&](const Point& p) { return p.x == s.x && p.y == s.y; });
      if (!stepped) seeds.push_back(s);
    }
  }

  // The survey image: the input given as --data.
  std::string data_path;
  if (auto d = r.params.find("data"); d != r.params.end()) {
    data_path = ToText(d->second);
  }
  const ArtifactRef* data = nullptr;
  for (const ArtifactRef& a : r.inputs) {
    if (a.path == data_path) data = &a;
  }
  if (data == nullptr) {
    out += Missing("survey image", Status::NotFound("no --data input"));
  } else {
    Result<NumericArray> image =
        ReadArtifactArray(repo, *data, "/image", kMaxRasterSide);
    Result<Raster> raster = image.ok() ? ToRaster(*image, "/image")
                                       : Result<Raster>(image.status());
    if (raster.ok()) {
      out += Figure("survey",
                    "survey image (/image of " + HtmlText(data->path) + ")",
                    *raster, true, 0, points, seeds, sd_lo, sd_hi);
    } else {
      out += Missing("survey image", raster.status());
    }
  }
  if (maps == nullptr) {
    out += Missing("maps", Status::NotFound("the run wrote no maps.h5"));
    return out;
  }
  for (const auto& [dataset, caption] :
       {std::pair<std::string, std::string>{"/mean", "predicted map (/mean)"},
        {"/uncertainty", "uncertainty map (/uncertainty)"}}) {
    Result<NumericArray> a =
        ReadArtifactArray(repo, *maps, dataset, kMaxRasterSide);
    Result<Raster> raster =
        a.ok() ? ToRaster(*a, dataset) : Result<Raster>(a.status());
    if (!raster.ok()) {
      out += Missing(caption, raster.status());
      continue;
    }
    auto [lo, hi] = Range(raster->values);
    out += Figure(dataset.substr(1),
                  fmt::format("{}: {:.3g} to {:.3g}", caption, lo, hi), *raster,
                  false, offset, points, seeds, sd_lo, sd_hi);
  }
  return out;
}

}  // namespace cmf::cli

namespace cmf::cli {

std::string AimdFigures(Repo& repo, const ExecutionRecord& r) {
  const ArtifactRef* predictions = FindByName(r.outputs, "predictions.h5");
  std::string out =
      "<h2>Energy of each trajectory, and what it evaluated</h2>\n";
  if (predictions == nullptr) {
    return out + Missing("predictions",
                         Status::NotFound("the run wrote no predictions.h5"));
  }
  // Every frame of every trajectory: no striding (at most 2^20 frames).
  constexpr std::uint64_t kAll = 1u << 20;
  std::map<std::string, NumericArray> a;
  for (const char* name : {"/predicted", "/uncertainty", "/target",
                           "/trajectory", "/frame", "/order"}) {
    Result<NumericArray> read =
        ReadArtifactArray(repo, *predictions, name, kAll);
    if (!read.ok()) return out + Missing("predictions", read.status());
    a[name] = std::move(*read);
  }
  const std::size_t n = a["/predicted"].values.size();
  for (const char* name :
       {"/uncertainty", "/target", "/trajectory", "/frame"}) {
    if (a[name].values.size() != n) {
      return out +
             Missing("predictions",
                     Status::Corruption("predictions.h5 is inconsistent"));
    }
  }
  // The trajectories, in the order given: the inputs that are not the
  // meta-model.
  std::vector<const ArtifactRef*> sources;
  for (const ArtifactRef& in : r.inputs) {
    if (in.kind != ArtifactKind::kModel) sources.push_back(&in);
  }
  std::map<int, AimdTrajectory> trajectories;
  // A file from another site may hold anything: a frame whose trajectory
  // or frame number is not a small whole number is left out.
  std::map<int, std::vector<std::size_t>> frames_of;  // global index by frame
  std::vector<char> valid(n, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const double k = a["/trajectory"].values[i];
    const double f = a["/frame"].values[i];
    if (!(k >= 0 && k < 1e6 && f >= 0 && f < 1e9)) continue;
    valid[i] = 1;
    frames_of[static_cast<int>(k)].push_back(i);
  }
  std::vector<int> order_of(n, 0);
  const std::vector<double>& order = a["/order"].values;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const double i = order[k];
    if (i >= 0 && i < static_cast<double>(n)) {
      order_of[static_cast<std::size_t>(i)] = static_cast<int>(k) + 1;
    }
  }
  // The most stable evaluated frame overall.
  std::size_t best = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (valid[i] && order_of[i] > 0 && std::isfinite(a["/target"].values[i]) &&
        (best == n || a["/target"].values[i] < a["/target"].values[best])) {
      best = i;
    }
  }
  for (auto& [k, global] : frames_of) {
    std::sort(global.begin(), global.end(), [&](std::size_t x, std::size_t y) {
      return a["/frame"].values[x] < a["/frame"].values[y];
    });
    AimdTrajectory t;
    const ArtifactRef* source =
        k < static_cast<int>(sources.size()) ? sources[k] : nullptr;
    t.name = source ? source->path : "trajectory " + std::to_string(k);
    // The recorded energies and times, when this site holds the trajectory.
    std::vector<double> energy, time;
    std::uint64_t atoms = 0;
    if (source) {
      Result<NumericArray> e =
          ReadArtifactArray(repo, *source, "/energy", kAll);
      Result<NumericArray> tf =
          ReadArtifactArray(repo, *source, "/time_fs", kAll);
      // Its atoms: the second dimension of /positions [T, N, 3] (one
      // element read).
      Result<NumericArray> positions =
          ReadArtifactArray(repo, *source, "/positions", 1);
      if (e.ok() && positions.ok() && positions->dataset_shape.size() == 3 &&
          positions->dataset_shape[1] > 0) {
        energy = e->values;
        atoms = positions->dataset_shape[1];
      }
      if (tf.ok()) time = tf->values;
    }
    double mean = 0;
    for (double v : energy) mean += v / static_cast<double>(atoms);
    if (!energy.empty()) mean /= static_cast<double>(energy.size());
    int best_here = -1;
    for (std::size_t i : global) {
      const auto frame = static_cast<std::size_t>(a["/frame"].values[i]);
      if (i == best) best_here = static_cast<int>(t.predicted.size());
      t.has_time = frame < time.size();
      t.time.push_back(t.has_time ? time[frame] : static_cast<double>(frame));
      if (frame < energy.size()) {
        t.recorded.push_back(energy[frame] / static_cast<double>(atoms) - mean);
      }
      t.predicted.push_back(a["/predicted"].values[i]);
      t.sd.push_back(a["/uncertainty"].values[i]);
      t.target.push_back(a["/target"].values[i]);
      t.evaluated_at.push_back(order_of[i]);
    }
    if (t.recorded.size() != t.predicted.size()) t.recorded.clear();
    out += AimdChart(t, best_here);
  }
  if (best < n) {
    out += fmt::format(
        "<p>The most stable frame evaluated (ringed): frame {} of {}, {:.5g} "
        "eV/atom, found at evaluation {} of {}. Blue: the last model's "
        "prediction with two standard deviations either side; grey: the "
        "energy the MD recorded (centred per trajectory, when its bytes are "
        "here); red: the frames evaluated, numbered in order.</p>\n",
        static_cast<long long>(a["/frame"].values[best]),
        HtmlText(sources.size() >
                         static_cast<std::size_t>(a["/trajectory"].values[best])
                     ? sources[static_cast<std::size_t>(
                                   a["/trajectory"].values[best])]
                           ->path
                     : "its trajectory"),
        a["/target"].values[best], order_of[best], order.size());
  }
  return out;
}

}  // namespace cmf::cli
