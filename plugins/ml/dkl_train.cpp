// Training the DKL model: the extractor and the GP's hyperparameters together,
// with Adam on the exact GP's loss, by hand (the default) or through
// LibTorch's autograd (the reference the tests compare against).
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <type_traits>

#include "dkl_impl.h"

namespace cmf::ml {

using torch::Tensor;

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
                 int batch = 0, std::uint64_t batch_seed = 0) {
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

}  // namespace cmf::ml
