// The exact GP of the DKL model: its kernels, its fit (the loss and what
// prediction needs) through a Cholesky factorisation in double precision, and
// its initial hyperparameters.
#include <algorithm>
#include <cmath>

#include "dkl_impl.h"

namespace cmf::ml {

using torch::Tensor;

namespace {

constexpr double kInitialNoise = 0.01;

// The inverse of softplus, for initial values.
double InverseSoftplus(double v) {
  return v > 20 ? v : std::log(std::expm1(v));
}

}  // namespace

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

}  // namespace cmf::ml
