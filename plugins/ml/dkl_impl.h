// The private side of DklModel, shared by the files that implement it: the
// model's state (DklModel::Impl) and the exact GP they all fit. dkl_model.cpp
// holds the configuration, the model's life cycle and prediction; dkl_gp.cpp
// the exact GP; dkl_train.cpp training; dkl_checkpoint.cpp saving and loading.
// Includes <torch/torch.h>: for those files only, never for a plugin's own
// code (each such translation unit takes about 20 s to compile).
#pragma once

#include <torch/torch.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "dkl.h"

namespace cmf::ml {

inline constexpr double kLog2Pi = 1.8378770664093453;
inline const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);
inline const auto kF32 = torch::TensorOptions().dtype(torch::kFloat32);

// Z [n, d] or [C, n, d] scaled by lengthscales [C, d] -> squared distances
// [C, n, m] between A [n, d] and B [m, d].
torch::Tensor SquaredDistances(const torch::Tensor& a, const torch::Tensor& b,
                               const torch::Tensor& lengthscale);

// The kernel without its outputscale, from squared scaled distances.
torch::Tensor KernelOf(const torch::Tensor& d2, Kernel kernel);

struct GpTensors {
  torch::Tensor mean;             // [C]
  torch::Tensor raw_outputscale;  // [C]
  torch::Tensor raw_lengthscale;  // [C, d]
  torch::Tensor raw_noise;        // [C]
};

// The pieces of an exact GP fit: loss and what prediction needs.
struct GpFit {
  torch::Tensor loss;   // scalar
  torch::Tensor chol;   // [C, n, n]
  torch::Tensor alpha;  // [C, n, 1]
};

GpFit FitGp(const torch::Tensor& z, const torch::Tensor& y /* [n, C] */,
            const GpTensors& p, Kernel kernel, double noise_floor);

// The hyperparameters a fresh model starts from.
GpTensors InitialGp(int outputs, int d, double noise_floor);

torch::Tensor FromVector(const std::vector<double>& v,
                         std::vector<int64_t> shape);
std::vector<double> ToVector(const torch::Tensor& t);

struct DklModel::Impl {
  DklConfig config;
  at::Generator generator;
  std::vector<torch::Tensor> weights;  // layer i: weight [out, in], bias [out]
  GpTensors gp;
  // Reset returns here when set (a meta-model seed), else draws afresh.
  bool has_initial = false;
  bool fresh = false;  // GP hyperparameters at their defaults: the mean starts
                       // at the data's
  std::vector<torch::Tensor> initial_weights;
  GpTensors initial_gp;
  // What Predict conditions on.
  torch::Tensor train_x;  // [n, features] float
  torch::Tensor train_y;  // [n, C] double
  torch::Tensor train_z;  // [n, d] double
  torch::Tensor chol;     // [C, n, n]
  torch::Tensor alpha;    // [C, n, 1]
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

  torch::Tensor Extract(const torch::Tensor& x) const {
    torch::Tensor h = x;
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
  torch::Tensor Scale(const torch::Tensor& e) const {
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

  std::vector<torch::Tensor> Parameters() {
    std::vector<torch::Tensor> all = weights;
    all.push_back(gp.mean);
    all.push_back(gp.raw_outputscale);
    all.push_back(gp.raw_lengthscale);
    all.push_back(gp.raw_noise);
    return all;
  }
};

}  // namespace cmf::ml
