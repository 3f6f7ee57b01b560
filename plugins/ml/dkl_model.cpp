// The DKL model in LibTorch (dkl.h): its configuration, its life cycle
// (fresh weights, or the state a meta-model seeds), prediction, and its
// parameters as plain vectors. The exact GP is dkl_gp.cpp, training
// dkl_train.cpp, checkpoints dkl_checkpoint.cpp; dkl_impl.h is what they
// share.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <stdexcept>

#include "dkl.h"
#include "dkl_impl.h"

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

using torch::Tensor;

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

}  // namespace cmf::ml
