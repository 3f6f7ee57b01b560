// The DKL model in LibTorch. The one translation unit of dkl that includes
// <torch/torch.h> (it takes about 20 s to compile).
#include "dkl.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <type_traits>

#include "text_file.h"

namespace cmf::ml {

std::vector<int> DklConfig::Architecture(const std::string& name) {
  if (name == "large" || name == "default") return {1000, 500, 50};
  if (name == "small") return {64, 64};
  throw std::runtime_error("unknown architecture '" + name +
                           "' (small or large)");
}

std::string DklConfig::ArchitectureName(const std::vector<int>& hidden) {
  for (const char* name : {"small", "large"})
    if (hidden == Architecture(name)) return name;
  std::string widths;
  for (int w : hidden)
    widths += (widths.empty() ? "" : "-") + std::to_string(w);
  return "of its own (hidden layers " + (widths.empty() ? "none" : widths) +
         ")";
}

void SetTorchThreads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

namespace {

using torch::Tensor;

constexpr double kLog2Pi = 1.8378770664093453;
constexpr double kInitialNoise = 0.01;
const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
const auto kF32 = torch::TensorOptions().dtype(torch::kFloat32);

// Z [n, d] or [C, n, d] scaled by lengthscales [C, d] -> squared distances
// [C, n, m] between A [n, d] and B [m, d].
Tensor SquaredDistances(const Tensor& a, const Tensor& b,
                        const Tensor& lengthscale) {
  Tensor as = a.unsqueeze(0) / lengthscale.unsqueeze(1);  // [C, n, d]
  Tensor bs = b.unsqueeze(0) / lengthscale.unsqueeze(1);  // [C, m, d]
  Tensor an = as.pow(2).sum(-1, true);                    // [C, n, 1]
  Tensor bn = bs.pow(2).sum(-1, true).transpose(1, 2);    // [C, 1, m]
  return (an + bn - 2 * torch::bmm(as, bs.transpose(1, 2))).clamp_min(0);
}

// The kernel without its outputscale, from squared scaled distances.
Tensor KernelOf(const Tensor& d2, Kernel kernel) {
  if (kernel == Kernel::kRbf) return torch::exp(-0.5 * d2);
  // Matérn 5/2: (1 + √5 r + 5/3 r²) exp(-√5 r). The clamp keeps the
  // gradient of the square root finite where r = 0.
  Tensor r = d2.clamp_min(1e-30).sqrt();
  const double s5 = std::sqrt(5.0);
  return (1 + s5 * r + (5.0 / 3.0) * d2) * torch::exp(-s5 * r);
}

struct GpTensors {
  Tensor mean;             // [C]
  Tensor raw_outputscale;  // [C]
  Tensor raw_lengthscale;  // [C, d]
  Tensor raw_noise;        // [C]
};

// The pieces of an exact GP fit: loss and what prediction needs.
struct GpFit {
  Tensor loss;   // scalar
  Tensor chol;   // [C, n, n]
  Tensor alpha;  // [C, n, 1]
};

GpFit FitGp(const Tensor& z, const Tensor& y /* [n, C] */, const GpTensors& p,
            Kernel kernel, double noise_floor) {
  const int64_t n = z.size(0);
  Tensor lengthscale = torch::softplus(p.raw_lengthscale);
  Tensor outputscale = torch::softplus(p.raw_outputscale);
  Tensor noise = torch::softplus(p.raw_noise) + noise_floor;
  Tensor k = outputscale.view({-1, 1, 1}) *
             KernelOf(SquaredDistances(z, z, lengthscale), kernel);
  Tensor eye = torch::eye(n, kF64);
  k = k + noise.view({-1, 1, 1}) * eye;
  GpFit fit;
  fit.chol = torch::linalg::cholesky(k);
  Tensor r = (y.t() - p.mean.unsqueeze(1)).unsqueeze(-1);  // [C, n, 1]
  fit.alpha = torch::cholesky_solve(r, fit.chol);
  Tensor quad = (r * fit.alpha).sum({1, 2});                       // [C]
  Tensor logdet = 2 * fit.chol.diagonal(0, -2, -1).log().sum(-1);  // [C]
  fit.loss = (0.5 * (quad + logdet + n * kLog2Pi) / n).mean();
  return fit;
}

// The inverse of softplus, for initial values.
double InverseSoftplus(double v) {
  return v > 20 ? v : std::log(std::expm1(v));
}

GpTensors InitialGp(int outputs, int d, double noise_floor) {
  GpTensors p;
  p.mean = torch::zeros({outputs}, kF64);
  p.raw_outputscale = torch::zeros({outputs}, kF64);
  p.raw_lengthscale = torch::zeros({outputs, d}, kF64);
  // Targets are normalised to [0, 1]: start from a noise of 0.01 (in variance)
  // rather than softplus(0) = 0.69, which would explain away every target.
  p.raw_noise = torch::full(
      {outputs}, InverseSoftplus(std::max(kInitialNoise - noise_floor, 1e-6)),
      kF64);
  return p;
}

Tensor FromVector(const std::vector<double>& v, std::vector<int64_t> shape) {
  return torch::from_blob(const_cast<double*>(v.data()), shape, kF64).clone();
}

std::vector<double> ToVector(const Tensor& t) {
  Tensor c = t.detach().to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(),
                             c.data_ptr<double>() + c.numel());
}

}  // namespace

double ExactGpLoss(const std::vector<double>& z, int n, int d,
                   const std::vector<double>& y, const GpParams& params,
                   Kernel kernel, double noise_floor, GpParams* grad) {
  torch::AutoGradMode enable(grad != nullptr);
  const int64_t outputs = static_cast<int64_t>(params.mean.size());
  GpTensors p;
  p.mean = FromVector(params.mean, {outputs}).requires_grad_(grad != nullptr);
  p.raw_outputscale = FromVector(params.raw_outputscale, {outputs})
                          .requires_grad_(grad != nullptr);
  p.raw_lengthscale = FromVector(params.raw_lengthscale, {outputs, d})
                          .requires_grad_(grad != nullptr);
  p.raw_noise =
      FromVector(params.raw_noise, {outputs}).requires_grad_(grad != nullptr);
  Tensor zt = FromVector(z, {n, d});
  Tensor yt = FromVector(y, {n, outputs});
  GpFit fit = FitGp(zt, yt, p, kernel, noise_floor);
  if (grad != nullptr) {
    fit.loss.backward();
    grad->mean = ToVector(p.mean.grad());
    grad->raw_outputscale = ToVector(p.raw_outputscale.grad());
    grad->raw_lengthscale = ToVector(p.raw_lengthscale.grad());
    grad->raw_noise = ToVector(p.raw_noise.grad());
  }
  return fit.loss.item<double>();
}

// ---------------------------------------------------------------------------
// Training without autograd: the forward pass keeps its activations, the GP's
// loss comes with its gradient in closed form, the gradient flows back through
// tanh and the MLP by hand, and Adam updates each tensor in one pass. Same
// arithmetic as the autograd path (Train with use_autograd, kept as the
// reference the tests compare against), without its graph, its small-tensor
// dispatches and Adam's six passes over every weight.

// The GP's loss over outputs (mean) and its gradient with respect to the
// embedding Z [n, d] and to each hyperparameter (raw, before softplus).
struct GpGrad {
  double loss = 0;
  Tensor z;  // [n, d]
  GpTensors params;
  Tensor chol;
  Tensor alpha;
};

GpGrad GpLossAndGrad(const Tensor& z, const Tensor& y, const GpTensors& p,
                     Kernel kernel, double noise_floor) {
  const int64_t n = z.size(0);
  const int64_t outputs = y.size(1);
  Tensor lengthscale = torch::softplus(p.raw_lengthscale);    // [C, d]
  Tensor outputscale = torch::softplus(p.raw_outputscale);    // [C]
  Tensor noise = torch::softplus(p.raw_noise) + noise_floor;  // [C]
  Tensor inv_l2 = lengthscale.pow(-2).unsqueeze(1);           // [C, 1, d]
  Tensor diff = z.unsqueeze(0) - z.unsqueeze(1);  // [n, n, d]: z_j - z_i
  Tensor diff2 = diff.pow(2);                     // [n, n, d]
  Tensor d2 =
      torch::einsum("ijk,ck->cij", {diff2, inv_l2.squeeze(1)});  // [C, n, n]
  Tensor base;  // the kernel without outputscale
  Tensor q;     // -d base / d(d2) * 2: what multiplies (z_i - z_j)/l^2
  if (kernel == Kernel::kRbf) {
    base = torch::exp(-0.5 * d2);
    q = base;
  } else {
    const double s5 = std::sqrt(5.0);
    Tensor r = d2.clamp_min(1e-30).sqrt();
    Tensor ex = torch::exp(-s5 * r);
    base = (1 + s5 * r + (5.0 / 3.0) * d2) * ex;
    q = (5.0 / 3.0) * (1 + s5 * r) * ex;
  }
  Tensor eye = torch::eye(n, kF64);
  Tensor k = outputscale.view({-1, 1, 1}) * base + noise.view({-1, 1, 1}) * eye;
  GpGrad g;
  g.chol = torch::linalg::cholesky(k);
  Tensor r = (y.t() - p.mean.unsqueeze(1)).unsqueeze(-1);  // [C, n, 1]
  g.alpha = torch::cholesky_solve(r, g.chol);              // [C, n, 1]
  Tensor quad = (r * g.alpha).sum({1, 2});
  Tensor logdet = 2 * g.chol.diagonal(0, -2, -1).log().sum(-1);
  g.loss = (0.5 * (quad + logdet + n * kLog2Pi) / n).mean().item<double>();
  // dL/dK = (K^-1 - alpha alpha') / (2 n C).
  Tensor k_inv = torch::cholesky_inverse(g.chol);
  Tensor gk = (k_inv - g.alpha.bmm(g.alpha.transpose(1, 2))) /
              (2.0 * n * outputs);  // [C, n, n]
  g.params.mean = -g.alpha.squeeze(-1).sum(1) / (double(n) * outputs);
  g.params.raw_outputscale =
      (gk * base).sum({1, 2}) * torch::sigmoid(p.raw_outputscale);
  g.params.raw_noise =
      gk.diagonal(0, -2, -1).sum(-1) * torch::sigmoid(p.raw_noise);
  Tensor m = gk * q * outputscale.view({-1, 1, 1});  // [C, n, n]
  // dK_ij/dl_k = s q_ij (z_ik - z_jk)^2 / l_k^3
  Tensor dl =
      torch::einsum("cij,ijk->ck", {m, diff2}) * lengthscale.pow(-3);  // [C, d]
  g.params.raw_lengthscale = dl * torch::sigmoid(p.raw_lengthscale);
  // dL/dz_ik = sum_j 2 G_ij dK_ij/dz_ik, dK_ij/dz_ik = -s q_ij (z_ik -
  // z_jk)/l_k^2
  //          = 2 sum_c sum_j m_cij (z_jk - z_ik) / l_ck^2
  g.z = 2 * torch::einsum("cij,ijk,ck->ik", {m, diff, inv_l2.squeeze(1)});
  return g;
}

// One Adam step (torch's defaults: betas 0.9, 0.999, eps 1e-8) over COUNT
// values, in one pass. Vectorised: the library is built with -fno-math-errno,
// O3 turns on the vectoriser at any build type, and an AVX2 clone is chosen
// at run time where the processor has it.
template <typename T>
__attribute__((always_inline)) inline void AdamLoop(T* p, const T* g, T* m,
                                                    T* v, int64_t count,
                                                    T step_size,
                                                    T inv_sqrt_c2) {
  const T b1 = 0.9, b2 = 0.999, ob1 = 1 - b1, ob2 = 1 - b2, eps = 1e-8;
  for (int64_t i = 0; i < count; ++i) {
    T gi = g[i];
    T mi = b1 * m[i] + ob1 * gi;
    T vi = b2 * v[i] + ob2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_c2 + eps);
  }
}

__attribute__((target_clones("avx2", "default"), optimize("O3"))) void
AdamFloat(float* p, const float* g, float* m, float* v, int64_t count,
          float step_size, float inv_sqrt_c2) {
  AdamLoop(p, g, m, v, count, step_size, inv_sqrt_c2);
}

__attribute__((target_clones("avx2", "default"), optimize("O3"))) void
AdamDouble(double* p, const double* g, double* m, double* v, int64_t count,
           double step_size, double inv_sqrt_c2) {
  AdamLoop(p, g, m, v, count, step_size, inv_sqrt_c2);
}

template <typename T>
void AdamStep(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v,
              double lr, int step) {
  const double c1 = 1 - std::pow(0.9, step);
  const double c2 = 1 - std::pow(0.999, step);
  Tensor g = grad.contiguous();
  if constexpr (std::is_same_v<T, float>) {
    AdamFloat(param.data_ptr<float>(), g.data_ptr<float>(), m.data_ptr<float>(),
              v.data_ptr<float>(), param.numel(), static_cast<float>(lr / c1),
              static_cast<float>(1 / std::sqrt(c2)));
  } else {
    AdamDouble(param.data_ptr<double>(), g.data_ptr<double>(),
               m.data_ptr<double>(), v.data_ptr<double>(), param.numel(),
               lr / c1, 1 / std::sqrt(c2));
  }
}

struct DklModel::Impl {
  DklConfig config;
  at::Generator generator;
  std::vector<Tensor> weights;  // layer i: weight [out, in], bias [out]
  GpTensors gp;
  // Reset returns here when set (a meta-model seed), else draws afresh.
  bool has_initial = false;
  bool fresh = false;  // GP hyperparameters at their defaults: the mean starts
                       // at the data's
  std::vector<Tensor> initial_weights;
  GpTensors initial_gp;
  // What Predict conditions on.
  Tensor train_x;  // [n, features] float
  Tensor train_y;  // [n, C] double
  Tensor train_z;  // [n, d] double
  Tensor chol;     // [C, n, n]
  Tensor alpha;    // [C, n, 1]
  bool trained = false;

  std::vector<int> Sizes() const {
    std::vector<int> sizes = {config.features};
    sizes.insert(sizes.end(), config.hidden.begin(), config.hidden.end());
    sizes.push_back(config.embedding);
    return sizes;
  }

  void DrawWeights() {
    weights.clear();
    std::vector<int> sizes = Sizes();
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
      // As torch.nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      double bound = 1.0 / std::sqrt(static_cast<double>(sizes[i]));
      weights.push_back(torch::empty({sizes[i + 1], sizes[i]}, kF32)
                            .uniform_(-bound, bound, generator));
      weights.push_back(torch::empty({sizes[i + 1]}, kF32)
                            .uniform_(-bound, bound, generator));
    }
  }

  Tensor Extract(const Tensor& x) const {
    Tensor h = x;
    const std::size_t layers = weights.size() / 2;
    for (std::size_t i = 0; i < layers; ++i) {
      h = torch::addmm(weights[2 * i + 1], h, weights[2 * i].t());
      if (i + 1 < layers) h = torch::relu(h);
    }
    return h;
  }

  // The embedding squashed into (-1, 1) by tanh. Min-max scaling over the
  // training batch (gpytorch's ScaleToBounds) makes the loss blind to the
  // embedding's scale and offset; Adam then drifts along those flat
  // directions until the ReLUs die and every patch maps to one point (seen on
  // the AE-DKL arrays within 100 epochs). tanh has no such directions.
  Tensor Scale(const Tensor& e) const {
    return torch::tanh(e).to(torch::kFloat64);
  }

  // Copies (X, Y) in as the training data; throws when the sizes are wrong.
  void SetTrainingData(const std::vector<float>& x, int n,
                       const std::vector<double>& y) {
    if (n < 1) throw std::runtime_error("no training points");
    if (static_cast<int64_t>(x.size()) !=
            static_cast<int64_t>(n) * config.features ||
        static_cast<int64_t>(y.size()) !=
            static_cast<int64_t>(n) * config.outputs)
      throw std::runtime_error("training data of the wrong size");
    train_x = torch::from_blob(const_cast<float*>(x.data()),
                               {n, config.features}, kF32)
                  .clone();
    train_y = FromVector(y, {n, config.outputs});
  }

  std::vector<Tensor> Parameters() {
    std::vector<Tensor> all = weights;
    all.push_back(gp.mean);
    all.push_back(gp.raw_outputscale);
    all.push_back(gp.raw_lengthscale);
    all.push_back(gp.raw_noise);
    return all;
  }
};

DklModel::DklModel(const DklConfig& config, std::uint64_t seed)
    : impl_(std::make_unique<Impl>()) {
  impl_->config = config;
  impl_->generator = at::detail::createCPUGenerator(seed);
  Reset();
}

DklModel::~DklModel() = default;

const DklConfig& DklModel::config() const { return impl_->config; }

void DklModel::Reset() {
  Impl& m = *impl_;
  torch::NoGradGuard no_grad;
  if (m.has_initial) {
    m.weights.clear();
    for (const Tensor& w : m.initial_weights) m.weights.push_back(w.clone());
    m.gp = m.initial_gp;
    m.fresh = false;
    m.gp.mean = m.gp.mean.clone();
    m.gp.raw_outputscale = m.gp.raw_outputscale.clone();
    m.gp.raw_lengthscale = m.gp.raw_lengthscale.clone();
    m.gp.raw_noise = m.gp.raw_noise.clone();
  } else {
    m.DrawWeights();
    m.gp =
        InitialGp(m.config.outputs, m.config.embedding, m.config.noise_floor);
    m.fresh = true;
  }
  m.trained = false;
}

void DklModel::SetInitialToCurrent() {
  Impl& m = *impl_;
  m.initial_weights.clear();
  for (const Tensor& w : m.weights)
    m.initial_weights.push_back(w.detach().clone());
  m.initial_gp = {
      m.gp.mean.detach().clone(), m.gp.raw_outputscale.detach().clone(),
      m.gp.raw_lengthscale.detach().clone(), m.gp.raw_noise.detach().clone()};
  m.has_initial = true;
}

namespace {
void TrainWithAutograd(DklModel::Impl& m, int epochs,
                       std::vector<double>* losses);
void TrainByHand(DklModel::Impl& m, int epochs, std::vector<double>* losses,
                 int batch = 0, std::uint64_t batch_seed = 0);
}  // namespace

std::vector<double> DklModel::Train(const std::vector<float>& x, int n,
                                    const std::vector<double>& y, int epochs) {
  Impl& m = *impl_;
  const DklConfig& c = m.config;
  m.SetTrainingData(x, n, y);
  if (m.fresh) {
    // The constant mean starts at the targets' mean.
    torch::NoGradGuard no_grad;
    m.gp.mean.copy_(m.train_y.mean(0));
    m.fresh = false;
  }
  std::vector<double> losses;
  losses.reserve(epochs);
  if (!c.use_autograd) {
    TrainByHand(m, epochs, &losses);
  } else {
    TrainWithAutograd(m, epochs, &losses);
  }
  // Condition on the training data with the final weights.
  torch::NoGradGuard no_grad;
  m.train_z = m.Scale(m.Extract(m.train_x));
  GpFit fit = FitGp(m.train_z, m.train_y, m.gp, c.kernel, c.noise_floor);
  m.chol = fit.chol;
  m.alpha = fit.alpha;
  m.trained = true;
  return losses;
}

namespace {

void TrainWithAutograd(DklModel::Impl& m, int epochs,
                       std::vector<double>* losses) {
  const DklConfig& c = m.config;
  for (Tensor& w : m.weights) w.requires_grad_(true);
  for (Tensor* t : {&m.gp.mean, &m.gp.raw_outputscale, &m.gp.raw_lengthscale,
                    &m.gp.raw_noise})
    t->requires_grad_(true);
  std::vector<Tensor> gp_params = {m.gp.mean, m.gp.raw_outputscale,
                                   m.gp.raw_lengthscale, m.gp.raw_noise};
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(m.weights, std::make_unique<torch::optim::AdamOptions>(
                                     c.extractor_learning_rate));
  groups.emplace_back(
      gp_params, std::make_unique<torch::optim::AdamOptions>(c.learning_rate));
  torch::optim::Adam adam(std::move(groups),
                          torch::optim::AdamOptions(c.learning_rate));
  for (int epoch = 0; epoch < epochs; ++epoch) {
    adam.zero_grad();
    Tensor e = m.Extract(m.train_x);
    GpFit fit = FitGp(m.Scale(e), m.train_y, m.gp, c.kernel, c.noise_floor);
    fit.loss.backward();
    adam.step();
    losses->push_back(fit.loss.item<double>());
  }
  for (Tensor& w : m.weights) w.requires_grad_(false);
  for (Tensor* t : {&m.gp.mean, &m.gp.raw_outputscale, &m.gp.raw_lengthscale,
                    &m.gp.raw_noise})
    t->requires_grad_(false);
}

// BATCH > 0 and below the number of points: each step trains on BATCH points
// drawn without replacement by a generator seeded with BATCH_SEED.
void TrainByHand(DklModel::Impl& m, int epochs, std::vector<double>* losses,
                 int batch, std::uint64_t batch_seed) {
  const DklConfig& c = m.config;
  const int64_t n = m.train_x.size(0);
  const bool minibatch = batch > 0 && batch < n;
  at::Generator sampler = at::detail::createCPUGenerator(batch_seed);
  torch::NoGradGuard no_grad;
  const std::size_t layers = m.weights.size() / 2;
  std::vector<Tensor*> gp = {&m.gp.mean, &m.gp.raw_outputscale,
                             &m.gp.raw_lengthscale, &m.gp.raw_noise};
  std::vector<Tensor> wm, wv, gm, gv;
  for (const Tensor& w : m.weights) {
    wm.push_back(torch::zeros_like(w));
    wv.push_back(torch::zeros_like(w));
  }
  for (Tensor* t : gp) {
    gm.push_back(torch::zeros_like(*t));
    gv.push_back(torch::zeros_like(*t));
  }
  std::vector<Tensor> h(layers + 1);  // h[0] = x, h[i] = layer i's output
  for (int epoch = 0; epoch < epochs; ++epoch) {
    Tensor y = m.train_y;
    h[0] = m.train_x;
    if (minibatch) {
      Tensor pick =
          torch::randperm(n, sampler, torch::kLong).slice(0, 0, batch);
      h[0] = m.train_x.index_select(0, pick);
      y = m.train_y.index_select(0, pick);
    }
    for (std::size_t i = 0; i < layers; ++i) {
      h[i + 1] = torch::addmm(m.weights[2 * i + 1], h[i], m.weights[2 * i].t());
      if (i + 1 < layers) h[i + 1].clamp_min_(0);
    }
    Tensor z = torch::tanh(h[layers]).to(torch::kFloat64);
    GpGrad g = GpLossAndGrad(z, y, m.gp, c.kernel, c.noise_floor);
    losses->push_back(g.loss);
    // Back through tanh, then the layers.
    Tensor delta = (g.z * (1 - z * z)).to(torch::kFloat32);
    std::vector<Tensor> grads(m.weights.size());
    for (std::size_t i = layers; i-- > 0;) {
      grads[2 * i] = delta.t().mm(h[i]);
      grads[2 * i + 1] = delta.sum(0);
      if (i > 0) delta = delta.mm(m.weights[2 * i]).mul_(h[i].gt(0));
    }
    for (std::size_t i = 0; i < m.weights.size(); ++i)
      AdamStep<float>(m.weights[i], grads[i], wm[i], wv[i],
                      c.extractor_learning_rate, epoch + 1);
    std::vector<Tensor> gp_grads = {g.params.mean, g.params.raw_outputscale,
                                    g.params.raw_lengthscale,
                                    g.params.raw_noise};
    for (std::size_t i = 0; i < gp.size(); ++i)
      AdamStep<double>(*gp[i], gp_grads[i], gm[i], gv[i], c.learning_rate,
                       epoch + 1);
  }
}

}  // namespace

Prediction DklModel::Predict(const float* x, int count) const {
  const Impl& m = *impl_;
  const DklConfig& c = m.config;
  if (!m.trained) throw std::runtime_error("the model has not been trained");
  torch::NoGradGuard no_grad;
  Prediction out;
  out.mean.resize(static_cast<std::size_t>(count) * c.outputs);
  out.variance.resize(out.mean.size());
  Tensor lengthscale = torch::softplus(m.gp.raw_lengthscale);
  Tensor outputscale = torch::softplus(m.gp.raw_outputscale);
  const int batch = std::max(1, c.predict_batch);
  for (int start = 0; start < count; start += batch) {
    const int b = std::min(batch, count - start);
    Tensor xb = torch::from_blob(
        const_cast<float*>(x) + static_cast<std::size_t>(start) * c.features,
        {b, c.features}, kF32);
    Tensor z = m.Scale(m.Extract(xb));  // [b, d]
    Tensor kxs = outputscale.view({-1, 1, 1}) *
                 KernelOf(SquaredDistances(m.train_z, z, lengthscale),
                          c.kernel);  // [C, n, b]
    Tensor mean = m.gp.mean.unsqueeze(1) +
                  (kxs.transpose(1, 2).bmm(m.alpha)).squeeze(-1);  // [C, b]
    Tensor v = torch::linalg::solve_triangular(m.chol, kxs, /*upper=*/false,
                                               /*left=*/true,
                                               /*unitriangular=*/false);
    Tensor var = (outputscale.unsqueeze(1) - v.pow(2).sum(1))
                     .clamp_min(1e-12);  // [C, b]
    Tensor mt = mean.t().contiguous();
    Tensor vt = var.t().contiguous();
    std::copy(mt.data_ptr<double>(), mt.data_ptr<double>() + mt.numel(),
              out.mean.begin() + static_cast<std::size_t>(start) * c.outputs);
    std::copy(
        vt.data_ptr<double>(), vt.data_ptr<double>() + vt.numel(),
        out.variance.begin() + static_cast<std::size_t>(start) * c.outputs);
  }
  return out;
}

std::vector<double> DklModel::TrainMinibatches(const std::vector<float>& x,
                                               int n,
                                               const std::vector<double>& y,
                                               int steps, int batch,
                                               std::uint64_t seed) {
  Impl& m = *impl_;
  m.SetTrainingData(x, n, y);
  m.fresh = false;
  std::vector<double> losses;
  TrainByHand(m, steps, &losses, batch, seed);
  m.trained = false;  // not conditioned on anything: Predict needs Train
  return losses;
}

double DklModel::Loss(const std::vector<float>& x, int n,
                      const std::vector<double>& y) const {
  const Impl& m = *impl_;
  const DklConfig& c = m.config;
  torch::NoGradGuard no_grad;
  Tensor xt =
      torch::from_blob(const_cast<float*>(x.data()), {n, c.features}, kF32);
  Tensor z = m.Scale(m.Extract(xt));
  return FitGp(z, FromVector(y, {n, c.outputs}), m.gp, c.kernel, c.noise_floor)
      .loss.item<double>();
}

std::vector<float> DklModel::ExtractorParameters() const {
  std::vector<float> out;
  for (const Tensor& w : impl_->weights) {
    Tensor c = w.contiguous();
    out.insert(out.end(), c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  }
  return out;
}

void DklModel::SetExtractorParameters(const std::vector<float>& values) {
  std::size_t at = 0;
  for (Tensor& w : impl_->weights) at += static_cast<std::size_t>(w.numel());
  if (at != values.size())
    throw std::runtime_error("extractor parameters of the wrong size");
  at = 0;
  torch::NoGradGuard no_grad;
  for (Tensor& w : impl_->weights) {
    std::copy(values.begin() + at, values.begin() + at + w.numel(),
              w.data_ptr<float>());
    at += static_cast<std::size_t>(w.numel());
  }
  impl_->trained = false;
}

void DklModel::SetHyperparameters(const GpParams& p) {
  Impl& m = *impl_;
  const int64_t outputs = m.config.outputs, d = m.config.embedding;
  if (static_cast<int64_t>(p.mean.size()) != outputs ||
      static_cast<int64_t>(p.raw_outputscale.size()) != outputs ||
      static_cast<int64_t>(p.raw_lengthscale.size()) != outputs * d ||
      static_cast<int64_t>(p.raw_noise.size()) != outputs)
    throw std::runtime_error("GP hyperparameters of the wrong size");
  torch::NoGradGuard no_grad;
  m.gp.mean.copy_(FromVector(p.mean, {outputs}));
  m.gp.raw_outputscale.copy_(FromVector(p.raw_outputscale, {outputs}));
  m.gp.raw_lengthscale.copy_(FromVector(p.raw_lengthscale, {outputs, d}));
  m.gp.raw_noise.copy_(FromVector(p.raw_noise, {outputs}));
  m.fresh = false;
  m.trained = false;
}

GpParams DklModel::Hyperparameters() const {
  const Impl& m = *impl_;
  return {ToVector(m.gp.mean), ToVector(m.gp.raw_outputscale),
          ToVector(m.gp.raw_lengthscale), ToVector(m.gp.raw_noise)};
}

// ---------------------------------------------------------------------------
// Checkpoints: a dict of tensors plus a JSON string, pickled in PyTorch's zip
// format (torch.load reads it).

namespace {

constexpr const char* kFormat = "cmf-dkl-checkpoint";
// 2: the embedding is squashed by tanh (1 scaled it by its min and max).
constexpr int kFormatVersion = 2;

std::vector<char> ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open '" + path.string() + "'");
  return std::vector<char>(std::istreambuf_iterator<char>(in), {});
}

c10::Dict<c10::IValue, c10::IValue> LoadDict(
    const std::filesystem::path& path) {
  c10::IValue v;
  try {
    v = torch::pickle_load(ReadBytes(path));
  } catch (const c10::Error&) {
    throw std::runtime_error("'" + path.string() +
                             "' is not a cmf DKL checkpoint (not a PyTorch "
                             "file)");
  }
  if (!v.isGenericDict())
    throw std::runtime_error("'" + path.string() +
                             "' is not a cmf DKL checkpoint (no dict)");
  return v.toGenericDict();
}

nlohmann::json MetaOf(const c10::Dict<c10::IValue, c10::IValue>& dict,
                      const std::filesystem::path& path) {
  const c10::IValue key_meta(std::string("meta"));
  if (!dict.contains(key_meta) || !dict.at(key_meta).isString())
    throw std::runtime_error("'" + path.string() +
                             "' is not a cmf DKL checkpoint (no meta)");
  nlohmann::json meta =
      nlohmann::json::parse(dict.at(key_meta).toStringRef(), nullptr, false);
  if (!meta.is_object() || meta.value("format", "") != kFormat)
    throw std::runtime_error("'" + path.string() +
                             "' is not a cmf DKL checkpoint");
  if (meta.value("format_version", 0) > kFormatVersion)
    throw std::runtime_error("'" + path.string() +
                             "' is a checkpoint from a newer cmf");
  if (meta.value("format_version", 0) < kFormatVersion ||
      meta.value("squash", "") != "tanh")
    throw std::runtime_error("'" + path.string() +
                             "' is a checkpoint of an older cmf (its embedding "
                             "is scaled differently)");
  return meta;
}

}  // namespace

void DklModel::Save(const std::filesystem::path& path,
                    const std::map<std::string, std::string>& metadata) const {
  const Impl& m = *impl_;
  c10::Dict<std::string, Tensor> state;
  for (std::size_t i = 0; i < m.weights.size() / 2; ++i) {
    // The names of torch.nn.Sequential(Linear, ReLU, Linear, ...).
    state.insert("extractor." + std::to_string(2 * i) + ".weight",
                 m.weights[2 * i].detach().clone());
    state.insert("extractor." + std::to_string(2 * i) + ".bias",
                 m.weights[2 * i + 1].detach().clone());
  }
  state.insert("gp.mean", m.gp.mean.detach().clone());
  state.insert("gp.raw_outputscale", m.gp.raw_outputscale.detach().clone());
  state.insert("gp.raw_lengthscale", m.gp.raw_lengthscale.detach().clone());
  state.insert("gp.raw_noise", m.gp.raw_noise.detach().clone());
  if (m.trained) {
    state.insert("train.x", m.train_x.clone());
    state.insert("train.y", m.train_y.clone());
  }
  nlohmann::json meta = {
      {"format", kFormat},
      {"format_version", kFormatVersion},
      {"features", m.config.features},
      {"hidden", m.config.hidden},
      {"embedding", m.config.embedding},
      {"squash", "tanh"},
      {"kernel", m.config.kernel == Kernel::kRbf ? "rbf" : "matern52"},
      {"outputs", m.config.outputs},
      {"noise_floor", m.config.noise_floor},
  };
  for (const auto& [k, v] : metadata) meta["info"][k] = v;
  c10::impl::GenericDict top(c10::StringType::get(), c10::AnyType::get());
  top.insert(c10::IValue(std::string("meta")), c10::IValue(meta.dump()));
  top.insert(c10::IValue(std::string("state")), c10::IValue(state));
  std::vector<char> bytes = torch::pickle_save(top);
  h5::WriteTextFile(path, std::string(bytes.begin(), bytes.end()));
}

std::map<std::string, std::string> DklModel::ReadMetadata(
    const std::filesystem::path& path) {
  nlohmann::json meta = MetaOf(LoadDict(path), path);
  std::map<std::string, std::string> out;
  for (auto it = meta.begin(); it != meta.end(); ++it)
    out[it.key()] = it->is_string() ? it->get<std::string>() : it->dump();
  return out;
}

void DklModel::Load(const std::filesystem::path& path) {
  Impl& m = *impl_;
  auto dict = LoadDict(path);
  nlohmann::json meta = MetaOf(dict, path);
  const DklConfig& c = m.config;
  auto mismatch = [&](const std::string& what) {
    throw std::runtime_error("checkpoint '" + path.string() +
                             "' does not fit this model: " + what);
  };
  if (meta.value("features", -1) != c.features)
    mismatch("it takes " + std::to_string(meta.value("features", -1)) +
             " features (a window of that many pixels), this run has " +
             std::to_string(c.features));
  if (meta.value("hidden", std::vector<int>{}) != c.hidden ||
      meta.value("embedding", -1) != c.embedding)
    mismatch(
        "it was trained with --architecture " +
        DklConfig::ArchitectureName(meta.value("hidden", std::vector<int>{})) +
        ", this run has " + DklConfig::ArchitectureName(c.hidden) +
        (meta.value("embedding", -1) != c.embedding
             ? " (and another embedding size)"
             : ""));
  if (meta.value("kernel", "") !=
      (c.kernel == Kernel::kRbf ? "rbf" : "matern52"))
    mismatch("another kernel (" + meta.value("kernel", std::string("?")) + ")");
  if (meta.value("outputs", -1) != c.outputs)
    mismatch("it has " + std::to_string(meta.value("outputs", -1)) +
             " outputs, this run " + std::to_string(c.outputs));
  const c10::IValue key_state(std::string("state"));
  if (!dict.contains(key_state) || !dict.at(key_state).isGenericDict())
    mismatch("it has no state");
  auto state = dict.at(key_state).toGenericDict();
  auto has = [&](const std::string& name) {
    return state.contains(c10::IValue(name));
  };
  auto get = [&](const std::string& name) -> Tensor {
    if (!has(name)) mismatch("it lacks " + name);
    c10::IValue v = state.at(c10::IValue(name));
    if (!v.isTensor()) mismatch(name + " is not a tensor");
    return v.toTensor();
  };
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < m.weights.size() / 2; ++i) {
    Tensor w = get("extractor." + std::to_string(2 * i) + ".weight");
    Tensor b = get("extractor." + std::to_string(2 * i) + ".bias");
    if (w.sizes() != m.weights[2 * i].sizes()) mismatch("layer shapes differ");
    m.weights[2 * i].copy_(w);
    m.weights[2 * i + 1].copy_(b);
  }
  m.gp.mean.copy_(get("gp.mean"));
  m.gp.raw_outputscale.copy_(get("gp.raw_outputscale"));
  m.gp.raw_lengthscale.copy_(get("gp.raw_lengthscale"));
  m.gp.raw_noise.copy_(get("gp.raw_noise"));
  if (has("train.x")) {
    m.train_x = get("train.x").clone();
    m.train_y = get("train.y").clone();
    m.train_z = m.Scale(m.Extract(m.train_x));
    GpFit fit = FitGp(m.train_z, m.train_y, m.gp, c.kernel, c.noise_floor);
    m.chol = fit.chol;
    m.alpha = fit.alpha;
    m.trained = true;
  }
}

}  // namespace cmf::ml
