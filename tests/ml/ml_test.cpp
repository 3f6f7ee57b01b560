// Tests of the model code the plugins share (plugins/ml): data preparation,
// the exact GP against an independent computation, DKL training on real
// STEM-EELS arrays, checkpoints.
#include <doctest/doctest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdlib>
#include <random>

#include "acquisition.h"
#include "data.h"
#include "dkl.h"
#include "reptile.h"
#include "results.h"
#include "support.h"
#include "tasks.h"

using cmf::ml::DklConfig;
using cmf::ml::DklModel;
using cmf::ml::GpParams;
using cmf::ml::Kernel;
namespace fs = std::filesystem;

namespace {

double Softplus(double x) { return std::log1p(std::exp(x)); }
double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// The negative exact marginal log likelihood divided by n, and its gradient,
// written out by hand in Eigen for one output and an RBF kernel:
//   L = (r' K^-1 r + log|K| + n log 2 pi) / (2n),  r = y - c,
//   K = s R + (noise + floor) I,  R_ij = exp(-1/2 sum_d (z_id - z_jd)^2 /
//   l_d^2), dL/dc = -sum(alpha) / n,  dL/dtheta = tr((K^-1 - alpha alpha')
//   dK/dtheta) / (2n).
double HandLoss(const Eigen::MatrixXd& z, const Eigen::VectorXd& y,
                const GpParams& p, double floor, GpParams* grad) {
  const int n = static_cast<int>(z.rows());
  const int d = static_cast<int>(z.cols());
  const double s = Softplus(p.raw_outputscale[0]);
  const double noise = Softplus(p.raw_noise[0]) + floor;
  std::vector<double> l(d);
  for (int k = 0; k < d; ++k) l[k] = Softplus(p.raw_lengthscale[k]);
  Eigen::MatrixXd r_mat(n, n);
  std::vector<Eigen::MatrixXd> sq(d, Eigen::MatrixXd(n, n));
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      double e = 0;
      for (int k = 0; k < d; ++k) {
        double diff = z(i, k) - z(j, k);
        sq[k](i, j) = diff * diff;
        e += diff * diff / (l[k] * l[k]);
      }
      r_mat(i, j) = std::exp(-0.5 * e);
    }
  }
  Eigen::MatrixXd k_mat = s * r_mat + noise * Eigen::MatrixXd::Identity(n, n);
  Eigen::LLT<Eigen::MatrixXd> llt(k_mat);
  Eigen::VectorXd r = y.array() - p.mean[0];
  Eigen::VectorXd alpha = llt.solve(r);
  double logdet = 0;
  for (int i = 0; i < n; ++i) logdet += 2 * std::log(llt.matrixL()(i, i));
  double loss = 0.5 * (r.dot(alpha) + logdet + n * std::log(2 * M_PI)) / n;
  Eigen::MatrixXd w =
      llt.solve(Eigen::MatrixXd::Identity(n, n)) - alpha * alpha.transpose();
  auto trace_with = [&](const Eigen::MatrixXd& dk) {
    return 0.5 * (w.cwiseProduct(dk)).sum() / n;
  };
  grad->mean = {-alpha.sum() / n};
  grad->raw_outputscale = {trace_with(Sigmoid(p.raw_outputscale[0]) * r_mat)};
  grad->raw_noise = {
      trace_with(Sigmoid(p.raw_noise[0]) * Eigen::MatrixXd::Identity(n, n))};
  grad->raw_lengthscale.resize(d);
  for (int k = 0; k < d; ++k) {
    Eigen::MatrixXd dk = s * r_mat.cwiseProduct(sq[k]) / std::pow(l[k], 3) *
                         Sigmoid(p.raw_lengthscale[k]);
    grad->raw_lengthscale[k] = trace_with(dk);
  }
  return loss;
}

fs::path SharedData() { return cmf::test::SharedDataDir(); }

}  // namespace

TEST_CASE("gp: the exact GP's loss and gradient match a computation by hand") {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(-1, 1);
  const int n = 9, d = 2;
  Eigen::MatrixXd z(n, d);
  Eigen::VectorXd y(n);
  std::vector<double> zv, yv;
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < d; ++k) {
      z(i, k) = u(rng);
      zv.push_back(z(i, k));
    }
    y(i) = std::sin(3 * z(i, 0)) + 0.3 * z(i, 1);
    yv.push_back(y(i));
  }
  GpParams p{{0.2}, {0.4}, {-0.3, 0.5}, {-2.0}};
  GpParams hand_grad, torch_grad;
  double hand = HandLoss(z, y, p, 1e-4, &hand_grad);
  double torch_loss =
      cmf::ml::ExactGpLoss(zv, n, d, yv, p, Kernel::kRbf, 1e-4, &torch_grad);
  CHECK(torch_loss == doctest::Approx(hand).epsilon(1e-10));
  CHECK(torch_grad.mean[0] == doctest::Approx(hand_grad.mean[0]).epsilon(1e-8));
  CHECK(torch_grad.raw_outputscale[0] ==
        doctest::Approx(hand_grad.raw_outputscale[0]).epsilon(1e-8));
  CHECK(torch_grad.raw_noise[0] ==
        doctest::Approx(hand_grad.raw_noise[0]).epsilon(1e-8));
  for (int k = 0; k < d; ++k)
    CHECK(torch_grad.raw_lengthscale[k] ==
          doctest::Approx(hand_grad.raw_lengthscale[k]).epsilon(1e-8));
}

TEST_CASE("gp: the Matérn 5/2 loss's gradient matches finite differences") {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  const int n = 6, d = 2;
  std::vector<double> z, y;
  for (int i = 0; i < n * d; ++i) z.push_back(u(rng));
  for (int i = 0; i < n; ++i) y.push_back(u(rng));
  GpParams p{{0.1}, {0.3}, {0.2, -0.4}, {-1.5}};
  GpParams grad;
  cmf::ml::ExactGpLoss(z, n, d, y, p, Kernel::kMatern52, 1e-4, &grad);
  auto loss_at = [&](const GpParams& q) {
    return cmf::ml::ExactGpLoss(z, n, d, y, q, Kernel::kMatern52, 1e-4,
                                nullptr);
  };
  const double h = 1e-6;
  auto fd = [&](std::vector<double> GpParams::*field, int i) {
    GpParams up = p, down = p;
    (up.*field)[i] += h;
    (down.*field)[i] -= h;
    return (loss_at(up) - loss_at(down)) / (2 * h);
  };
  CHECK(grad.mean[0] == doctest::Approx(fd(&GpParams::mean, 0)).epsilon(1e-5));
  CHECK(grad.raw_outputscale[0] ==
        doctest::Approx(fd(&GpParams::raw_outputscale, 0)).epsilon(1e-5));
  CHECK(grad.raw_noise[0] ==
        doctest::Approx(fd(&GpParams::raw_noise, 0)).epsilon(1e-5));
  for (int k = 0; k < d; ++k)
    CHECK(grad.raw_lengthscale[k] ==
          doctest::Approx(fd(&GpParams::raw_lengthscale, k)).epsilon(1e-5));
}

TEST_CASE(
    "data: a 62x75 image with a window of 16 gives 2,820 patches of 256 "
    "values; 1,496 channels pooled by 32 give 46") {
  std::vector<float> image(62 * 75);
  for (int i = 0; i < 62 * 75; ++i)
    image[i] = static_cast<float>(i % 75 + 3 * (i / 75));
  cmf::ml::Patches p = cmf::ml::MakePatches(image, 62, 75, 16);
  CHECK(p.rows == 47);
  CHECK(p.cols == 60);
  CHECK(p.count == 2820);
  CHECK(p.features == 256);
  CHECK(p.values.size() == 2820u * 256u);
  // Min-max normalised over the whole set.
  CHECK(*std::min_element(p.values.begin(), p.values.end()) == 0.0f);
  CHECK(*std::max_element(p.values.begin(), p.values.end()) == 1.0f);
  // Candidate 61 is top-left (1, 1), centre (9, 9); its first value is
  // image(1, 1) = 1 + 3, normalised by the set's range 0..(74 + 3 * 61).
  CHECK(p.CentreX(61) == 9);
  CHECK(p.CentreY(61) == 9);
  CHECK(p.IndexOf(9, 9) == 61);
  CHECK(p.values[61 * 256] == doctest::Approx(4.0 / (74 + 183)));
  std::vector<float> spectrum(1496);
  for (int i = 0; i < 1496; ++i) spectrum[i] = static_cast<float>(i);
  std::vector<double> pooled = cmf::ml::PoolSpectrum(spectrum.data(), 1496, 32);
  CHECK(pooled.size() == 46);
  CHECK(pooled[0] == doctest::Approx(15.5));  // mean of 0..31
  CHECK(pooled[45] == doctest::Approx(45 * 32 + 15.5));
  CHECK_THROWS_WITH_AS(cmf::ml::MakePatches(image, 62, 75, 80),
                       doctest::Contains("does not fit"), std::runtime_error);
}

TEST_CASE(
    "data: scalarizers reduce a band of the pooled spectrum; bad ones "
    "are refused") {
  using cmf::ml::Scalarizer;
  std::vector<double> energy = {0.5, 0.8, 0.9, 1.0, 1.5};
  std::vector<double> pooled = {0.1, 0.4, 0.9, 0.2, 0.3};
  Scalarizer peak = Scalarizer::Parse("band-peak:0.75:1.0");
  std::vector<int> band = peak.Band(energy);
  CHECK(band == std::vector<int>{1, 2, 3});
  double out = 0;
  peak.Apply(pooled.data(), band, 5, &out);
  CHECK(out == doctest::Approx(0.9));
  Scalarizer mean = Scalarizer::Parse("band-mean:0.75:1.0");
  mean.Apply(pooled.data(), band, 5, &out);
  CHECK(out == doctest::Approx(0.5));
  CHECK(Scalarizer::Parse("vector").Outputs(46) == 46);
  CHECK_THROWS_WITH_AS(Scalarizer::Parse("band-max:1:2"),
                       doctest::Contains("is not band-mean"),
                       std::runtime_error);
  CHECK_THROWS_WITH_AS(Scalarizer::Parse("band-mean:2:1"),
                       doctest::Contains("LO is above HI"), std::runtime_error);
  CHECK_THROWS_WITH_AS(Scalarizer::Parse("band-mean:5:6").Band(energy),
                       doctest::Contains("holds no pooled channel"),
                       std::runtime_error);
}

TEST_CASE("acquisition: each function picks the candidate it should") {
  using cmf::ml::Acquisition;
  std::vector<double> mean = {0.1, 0.9, 0.5, 0.2};
  std::vector<double> var = {0.5, 0.01, 0.2, 0.9};
  std::vector<char> measured = {0, 0, 0, 1};
  std::uint64_t rng = 1;
  auto pick = [&](Acquisition a) {
    return cmf::ml::Choose(a, cmf::ml::AcquisitionValues(a, mean, var, 0.6, {}),
                           measured, &rng);
  };
  CHECK(pick(Acquisition::kMaxUncertainty) == 0);  // 3 is measured already
  CHECK(pick(Acquisition::kExpectedImprovement) == 1);
  CHECK(pick(Acquisition::kUcb) == 0);  // 0.1 + 2 * 0.707 beats 0.9 + 0.2
  for (int i = 0; i < 20; ++i) CHECK(pick(Acquisition::kRandom) != 3);
  // EI by hand at candidate 2: gain = 0.5 - 0.6 - 0.01, sd = sqrt(0.2).
  double sd = std::sqrt(0.2), gain = -0.11, zz = gain / sd;
  double ei = gain * 0.5 * std::erfc(-zz / std::sqrt(2.0)) +
              sd * std::exp(-0.5 * zz * zz) / std::sqrt(2 * M_PI);
  CHECK(cmf::ml::AcquisitionValues(Acquisition::kExpectedImprovement, mean, var,
                                   0.6, {})[2] == doctest::Approx(ei));
}

TEST_CASE(
    "dkl: training on the real AE-DKL arrays lowers the loss and "
    "predicts the training spectra back within noise") {
  if (!cmf::test::HaveSharedData(SharedData() / "ae-dkl")) return;
  std::vector<std::int64_t> ps, ss;
  std::vector<double> patches =
      cmf::ml::ReadNpy(SharedData() / "ae-dkl" / "active_patch_5.npy", &ps);
  std::vector<double> spectra =
      cmf::ml::ReadNpy(SharedData() / "ae-dkl" / "active_spectra_5.npy", &ss);
  REQUIRE(ps == std::vector<std::int64_t>{7, 256});
  REQUIRE(ss == std::vector<std::int64_t>{46, 7});  // channels x points
  const int n = 7, channels = 46;
  std::vector<float> x(patches.begin(), patches.end());
  std::vector<double> y(n * channels);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < channels; ++c) y[i * channels + c] = spectra[c * n + i];
  DklConfig config;
  config.features = 256;
  config.outputs = channels;  // every pooled channel: a batch of 46 GPs
  DklModel model(config, 0);
  std::vector<double> losses = model.Train(x, n, y, 200);
  CHECK(losses.back() < losses.front() - 0.5);
  cmf::ml::Prediction p = model.Predict(x.data(), n);
  GpParams h = model.Hyperparameters();
  double worst = 0, noise_sd = 0;
  for (int c = 0; c < channels; ++c)
    noise_sd = std::max(noise_sd, std::sqrt(Softplus(h.raw_noise[c]) + 1e-4));
  for (int i = 0; i < n * channels; ++i)
    worst = std::max(worst, std::abs(p.mean[i] - y[i]));
  INFO("worst error " << worst << ", noise sd " << noise_sd << ", loss "
                      << losses.front() << " -> " << losses.back());
  CHECK(worst < 3 * noise_sd);
  CHECK(worst < 0.05);  // the targets span 0..1
}

TEST_CASE(
    "dkl: a checkpoint loads back into a model that predicts the same, "
    "and refuses a model of another shape") {
  cmf::test::TempDir dir;
  DklConfig config;
  config.features = 16;
  config.hidden = {8, 8};
  DklModel model(config, 1);
  std::vector<float> x(5 * 16);
  std::vector<double> y(5);
  for (std::size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>((i * 37) % 11) / 11.0f;
  for (int i = 0; i < 5; ++i) y[i] = 0.2 * i;
  model.Train(x, 5, y, 10);
  model.Save(dir / "m.pt", {{"note", "test"}});
  DklModel other(config, 99);
  other.Load(dir / "m.pt");
  cmf::ml::Prediction a = model.Predict(x.data(), 5);
  cmf::ml::Prediction b = other.Predict(x.data(), 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(a.mean[i] == doctest::Approx(b.mean[i]).epsilon(1e-9));
    CHECK(a.variance[i] == doctest::Approx(b.variance[i]).epsilon(1e-9));
  }
  CHECK(DklModel::ReadMetadata(dir / "m.pt").at("format") ==
        "cmf-dkl-checkpoint");
  DklConfig wider = config;
  wider.features = 64;
  DklModel mismatched(wider, 0);
  CHECK_THROWS_WITH_AS(mismatched.Load(dir / "m.pt"),
                       doctest::Contains("takes 16 features"),
                       std::runtime_error);
  cmf::test::WriteFile(dir / "junk.pt", "not a checkpoint");
  CHECK_THROWS_WITH_AS(other.Load(dir / "junk.pt"),
                       doctest::Contains("is not a cmf DKL checkpoint"),
                       std::runtime_error);
}

TEST_CASE("results: measured points round-trip through their data slice") {
  cmf::test::TempDir dir;
  cmf::ml::MeasuredPoints p;
  p.window = 2;
  p.channels = 3;
  p.energy = {1, 2, 3};
  p.x = {4, 5};
  p.y = {6, 7};
  p.step = {0, 1};
  p.patches = {1, 2, 3, 4, 5, 6, 7, 8};
  p.spectra = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  cmf::ml::WriteMeasured(dir / "m.h5", p, {{"parent_sha256", "ab"}});
  cmf::ml::MeasuredPoints q = cmf::ml::ReadMeasured(dir / "m.h5");
  CHECK(q.window == 2);
  CHECK(q.x == p.x);
  CHECK(q.y == p.y);
  CHECK(q.step == p.step);
  CHECK(q.patches == p.patches);
  CHECK(q.spectra == p.spectra);
  CHECK(q.energy == p.energy);
  CHECK_FALSE(fs::exists(dir / "m.h5.tmp"));
}

TEST_CASE(
    "dkl: the hand-written training step equals LibTorch's autograd and "
    "Adam") {
  for (Kernel kernel : {Kernel::kRbf, Kernel::kMatern52}) {
    for (int outputs : {1, 3}) {
      CAPTURE(outputs);
      DklConfig config;
      config.features = 16;
      config.hidden = {12, 8};
      config.kernel = kernel;
      config.outputs = outputs;
      config.extractor_learning_rate = 0.01;
      std::vector<float> x(9 * 16);
      std::vector<double> y(9 * outputs);
      for (std::size_t i = 0; i < x.size(); ++i)
        x[i] = static_cast<float>((i * 53) % 17) / 17.0f;
      for (std::size_t i = 0; i < y.size(); ++i) y[i] = std::sin(0.7 * i);
      DklModel by_hand(config, 5);
      config.use_autograd = true;
      DklModel autograd(config, 5);
      std::vector<double> a = by_hand.Train(x, 9, y, 15);
      std::vector<double> b = autograd.Train(x, 9, y, 15);
      REQUIRE(a.size() == b.size());
      for (std::size_t i = 0; i < a.size(); ++i)
        CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-4));
      GpParams ha = by_hand.Hyperparameters(), hb = autograd.Hyperparameters();
      for (std::size_t i = 0; i < ha.raw_lengthscale.size(); ++i)
        CHECK(ha.raw_lengthscale[i] ==
              doctest::Approx(hb.raw_lengthscale[i]).epsilon(1e-4));
      cmf::ml::Prediction pa = by_hand.Predict(x.data(), 9);
      cmf::ml::Prediction pb = autograd.Predict(x.data(), 9);
      for (std::size_t i = 0; i < pa.mean.size(); ++i)
        CHECK(pa.mean[i] == doctest::Approx(pb.mean[i]).epsilon(1e-4));
    }
  }
}

namespace {

// Small synthetic tasks: targets a smooth function of the patch, shifted per
// task (a family of related tasks).
std::vector<cmf::ml::Task> ToyTasks(int count, int points, int features) {
  std::vector<cmf::ml::Task> tasks;
  for (int t = 0; t < count; ++t) {
    cmf::ml::Task task;
    task.name = "toy" + std::to_string(t);
    task.points = points;
    task.features = features;
    task.outputs = 1;
    for (int i = 0; i < points; ++i) {
      double sum = 0;
      for (int f = 0; f < features; ++f) {
        float v = static_cast<float>(((i * 31 + f * 17 + t * 7) % 23) / 23.0);
        task.x.push_back(v);
        sum += v * (f % 3 == 0 ? 1 : -0.5);
      }
      task.y.push_back(0.5 + 0.3 * std::sin(sum + 0.2 * t));
    }
    tasks.push_back(std::move(task));
  }
  return tasks;
}

cmf::ml::DklConfig ToyConfig() {
  DklConfig config;
  config.features = 16;
  config.hidden = {12, 8};
  return config;
}

}  // namespace

TEST_CASE(
    "reptile: one update moves theta by epsilon toward the mean of the "
    "inner results, as by hand") {
  cmf::ml::MetaParameters theta{{1.0f, 2.0f},
                                {{0.5}, {0.0}, {1.0, -1.0}, {0.2}}};
  cmf::ml::MetaParameters phi1{{3.0f, 2.0f}, {{1.5}, {1.0}, {1.0, 1.0}, {0.2}}};
  cmf::ml::MetaParameters phi2{{1.0f, 6.0f},
                               {{0.5}, {-1.0}, {3.0, -1.0}, {0.6}}};
  // Means: extractor (2, 4); gp mean 1.0, outputscale 0, lengthscale (2, 0),
  // noise 0.4. theta + 0.5 (mean - theta):
  cmf::ml::MetaParameters a = theta;
  cmf::ml::ReptileUpdate(a, {phi1, phi2}, 0.5, true);
  CHECK(a.extractor == std::vector<float>{1.5f, 3.0f});
  CHECK(a.gp.mean[0] == doctest::Approx(0.75));
  CHECK(a.gp.raw_outputscale[0] == doctest::Approx(0.0));
  CHECK(a.gp.raw_lengthscale == std::vector<double>{1.5, -0.5});
  CHECK(a.gp.raw_noise[0] == doctest::Approx(0.3));
  // --no-meta-gp: only the extractor moves.
  cmf::ml::MetaParameters b = theta;
  cmf::ml::ReptileUpdate(b, {phi1, phi2}, 0.5, false);
  CHECK(b.extractor == std::vector<float>{1.5f, 3.0f});
  CHECK(b.gp.mean[0] == 0.5);
  CHECK(b.gp.raw_lengthscale == theta.gp.raw_lengthscale);
  // Epsilon anneals linearly, by the fraction of iterations done.
  CHECK(cmf::ml::EpsilonAt(0, 5, 0.1, 0.0) == doctest::Approx(0.1));
  CHECK(cmf::ml::EpsilonAt(2, 5, 0.1, 0.0) == doctest::Approx(0.06));
  CHECK(cmf::ml::EpsilonAt(4, 5, 0.1, 0.0) == doctest::Approx(0.02));
}

TEST_CASE("reptile: the result does not depend on the number of threads") {
  std::vector<cmf::ml::Task> tasks = ToyTasks(5, 40, 16);
  cmf::ml::ReptileOptions o;
  o.iterations = 3;
  o.tasks_per_iteration = 4;
  o.inner_steps = 3;
  o.batch = 16;
  o.seed = 11;
  std::vector<cmf::ml::MetaParameters> results;
  for (int threads : {1, 2, 3}) {
    o.threads = threads;
    DklModel model(ToyConfig(), o.seed);
    cmf::ml::MetaParameters theta = cmf::ml::ParametersOf(model);
    cmf::ml::MetaTrain(ToyConfig(), tasks, o, 0, theta,
                       [](const cmf::ml::IterationReport&) { return true; });
    results.push_back(theta);
  }
  for (std::size_t i = 1; i < results.size(); ++i) {
    CHECK(results[i].extractor == results[0].extractor);
    CHECK(results[i].gp.raw_lengthscale == results[0].gp.raw_lengthscale);
    CHECK(results[i].gp.mean == results[0].gp.mean);
  }
}

TEST_CASE(
    "reptile: the pretrain baseline fits the tasks pooled, with no meta "
    "step, and lowers their pooled loss") {
  std::vector<cmf::ml::Task> tasks = ToyTasks(4, 30, 16);
  cmf::ml::ReptileOptions o;
  o.iterations = 6;
  o.tasks_per_iteration = 4;
  o.inner_steps = 5;
  o.batch = 16;
  o.seed = 5;
  auto run = [&](cmf::ml::MetaMethod method, int threads,
                 std::vector<cmf::ml::IterationReport>* reports) {
    cmf::ml::ReptileOptions m = o;
    m.method = method;
    m.threads = threads;
    DklModel model(ToyConfig(), m.seed);
    cmf::ml::MetaParameters theta = cmf::ml::ParametersOf(model);
    cmf::ml::MetaTrain(ToyConfig(), tasks, m, 0, theta,
                       [&](const cmf::ml::IterationReport& r) {
                         if (reports != nullptr) reports->push_back(r);
                         return true;
                       });
    return theta;
  };
  std::vector<cmf::ml::IterationReport> reports;
  cmf::ml::MetaParameters pre =
      run(cmf::ml::MetaMethod::kPretrain, 1, &reports);
  cmf::ml::MetaParameters reptile =
      run(cmf::ml::MetaMethod::kReptile, 1, nullptr);
  DklModel initial(ToyConfig(), o.seed);
  CHECK(pre.extractor != cmf::ml::ParametersOf(initial).extractor);
  CHECK(pre.extractor != reptile.extractor);
  // Every iteration keeps what it trained (epsilon 1), and threads change
  // nothing.
  REQUIRE(reports.size() == 6);
  for (const cmf::ml::IterationReport& r : reports) CHECK(r.epsilon == 1.0);
  CHECK(run(cmf::ml::MetaMethod::kPretrain, 2, nullptr).extractor ==
        pre.extractor);
  // The loss over all the tasks' points together is lower than at the start.
  std::vector<float> x;
  std::vector<double> y;
  int n = 0;
  for (const cmf::ml::Task& t : tasks) {
    x.insert(x.end(), t.x.begin(), t.x.end());
    y.insert(y.end(), t.y.begin(), t.y.end());
    n += t.points;
  }
  DklModel fitted(ToyConfig(), 99);
  cmf::ml::SetParameters(fitted, pre);
  CHECK(fitted.Loss(x, n, y) < initial.Loss(x, n, y));
}

TEST_CASE("reptile: resuming from a checkpoint equals an uninterrupted run") {
  cmf::test::TempDir dir;
  std::vector<cmf::ml::Task> tasks = ToyTasks(4, 30, 16);
  cmf::ml::ReptileOptions o;
  o.iterations = 4;
  o.tasks_per_iteration = 2;
  o.inner_steps = 3;
  o.batch = 10;
  o.seed = 3;
  auto all = [](const cmf::ml::IterationReport&) { return true; };
  DklModel whole(ToyConfig(), o.seed);
  cmf::ml::MetaParameters straight = cmf::ml::ParametersOf(whole);
  cmf::ml::MetaTrain(ToyConfig(), tasks, o, 0, straight, all);

  DklModel part(ToyConfig(), o.seed);
  cmf::ml::MetaParameters first_half = cmf::ml::ParametersOf(part);
  cmf::ml::MetaTrain(ToyConfig(), tasks, o, 0, first_half,
                     [](const cmf::ml::IterationReport& r) {
                       return r.iteration + 1 < 2;  // stop after 2
                     });
  cmf::ml::SetParameters(part, first_half);
  part.Save(dir / "ckpt.pt", {});
  DklModel resumed(ToyConfig(), 99);
  resumed.Load(dir / "ckpt.pt");
  cmf::ml::MetaParameters second_half = cmf::ml::ParametersOf(resumed);
  cmf::ml::MetaTrain(ToyConfig(), tasks, o, 2, second_half, all);
  CHECK(second_half.extractor == straight.extractor);
  CHECK(second_half.gp.raw_lengthscale == straight.gp.raw_lengthscale);
  CHECK(second_half.gp.raw_noise == straight.gp.raw_noise);
}

TEST_CASE(
    "reptile: on a generated family, meta-training lowers the held-out "
    "tasks' error after few-shot adaptation, against a cold start") {
  const char* gen = std::getenv("CMF_GEN_EELS");
  REQUIRE(gen != nullptr);
  cmf::test::TempDir dir;
  cmf::test::Outcome made = cmf::test::RunProcess(
      {gen, "--family", "silver", "--family-size", "7", "--out-dir",
       dir.path().string(), "--height", "40", "--width", "40", "--channels",
       "256", "--emin", "0.5", "--emax", "3.5"},
      dir.path());
  REQUIRE(made.exit_code == 0);
  cmf::ml::TaskPreparation prep;
  prep.window = 8;
  prep.pool = 8;
  // The band of silver's gap mode (1.15 eV in the generator's reference
  // surroundings; each member's substrate shifts it by up to about 10 %).
  prep.scalarizer = cmf::ml::Scalarizer::Parse("band-peak:1.1:1.2");
  std::vector<cmf::ml::Task> train, held_out;
  for (int i = 0; i < 7; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "silver-%02d.h5", i);
    (i < 5 ? train : held_out).push_back(cmf::ml::LoadTask(dir / name, prep));
  }
  DklConfig config;
  config.features = 64;
  config.hidden = {64, 64};
  cmf::ml::ReptileOptions o;
  o.iterations = 200;
  o.tasks_per_iteration = 5;
  o.inner_steps = 16;
  o.batch = 64;
  o.epsilon = 1.0;
  o.epsilon_final = 0.5;
  o.inner_extractor_lr = 0.01;  // the small extractor learns faster safely
  o.seed = 1;
  o.threads = 2;
  DklModel meta(config, o.seed);
  cmf::ml::MetaParameters theta = cmf::ml::ParametersOf(meta);
  cmf::ml::MetaTrain(config, train, o, 0, theta,
                     [](const cmf::ml::IterationReport&) { return true; });
  // Few-shot: 10 points of each held-out task, 20 epochs, error on the rest.
  double seeded_sum = 0, cold_sum = 0;
  for (const cmf::ml::Task& task : held_out) {
    for (std::uint64_t seed : {0u, 1u, 2u, 3u, 4u}) {
      std::vector<int> order(task.points);
      for (int i = 0; i < task.points; ++i) order[i] = i;
      std::uint64_t state = seed + 5;
      for (int i = 0; i < 10; ++i)
        std::swap(order[i],
                  order[i + cmf::ml::UniformIndex(&state, task.points - i)]);
      std::vector<float> x;
      std::vector<double> y;
      for (int i = 0; i < 10; ++i) {
        x.insert(x.end(), task.x.begin() + order[i] * 64,
                 task.x.begin() + (order[i] + 1) * 64);
        y.push_back(task.y[order[i]]);
      }
      auto rmse_of = [&](DklModel& model) {
        model.Train(x, 10, y, 20);
        cmf::ml::Prediction p = model.Predict(task.x.data(), task.points);
        double sum = 0;
        for (int i = 10; i < task.points; ++i)
          sum += std::pow(p.mean[order[i]] - task.y[order[i]], 2);
        return std::sqrt(sum / (task.points - 10));
      };
      DklModel seeded(config, seed);
      cmf::ml::SetParameters(seeded, theta);
      seeded.SetInitialToCurrent();
      seeded.Reset();
      DklModel cold(config, seed);
      seeded_sum += rmse_of(seeded);
      cold_sum += rmse_of(cold);
    }
  }
  MESSAGE("mean RMSE after 10 shots: seeded " << seeded_sum / 10 << ", cold "
                                              << cold_sum / 10);
  CHECK(seeded_sum < 0.95 * cold_sum);
}
