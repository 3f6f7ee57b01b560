// Deep kernel learning: an MLP feature extractor whose output, squashed into
// (-1, 1) by tanh, feeds an exact Gaussian process; both are trained together
// with Adam on the negative exact marginal log likelihood divided by n, through
// a Cholesky factorisation in double precision. LibTorch stays inside the
// dkl_*.cpp files (dkl_model.cpp and the others dkl_impl.h names): this
// header is plain C++.
//
// With several outputs (a "vector" scalarizer) the GP is a batch of
// independent GPs over one shared extractor, one set of hyperparameters per
// output. A DklModel is used by one thread at a time; distinct models may be
// trained on distinct threads. Errors throw std::runtime_error.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cmf::ml {

enum class Kernel { kRbf, kMatern52 };

struct DklConfig {
  int features = 256;                         // input size (window * window)
  std::vector<int> hidden = {1000, 500, 50};  // "large"; {64, 64}: "small"
  int embedding = 2;                          // the GP's input dimension
  Kernel kernel = Kernel::kRbf;
  int outputs = 1;  // independent GPs
  double noise_floor = 1e-4;
  double learning_rate = 0.01;  // Adam's, for the GP's hyperparameters
  // Adam's, for the extractor's weights: 0.01 kills the ReLUs of the default
  // extractor within a few dozen epochs on the AE-DKL arrays; 0.001 does not.
  double extractor_learning_rate = 0.001;
  int predict_batch = 4096;  // candidates per batch in Predict
  // Train through LibTorch's autograd and optimiser instead of the
  // hand-written gradient and Adam (same arithmetic; the tests compare them).
  bool use_autograd = false;

  // "small" (256 -> 64 -> 64 -> 2, the plugins' default) or "large" (-> 1000
  // -> 500 -> 50 -> 2; "default" is its old name, still taken).
  static std::vector<int> Architecture(const std::string& name);
  // The name of HIDDEN ("small", "large"), or "of its own (hidden layers
  // 32-16)" for widths that neither name has.
  static std::string ArchitectureName(const std::vector<int>& hidden);
};

// The names DklConfig::Architecture and the kernel parameter take, as plugin
// parameters' allowed values.
inline constexpr const char* kArchitectureChoices[] = {"small", "large",
                                                       "default", nullptr};
inline constexpr const char* kKernelChoices[] = {"rbf", "matern52", nullptr};

// The GP's hyperparameters before their transforms: outputscale =
// softplus(raw_outputscale), lengthscale = softplus(raw_lengthscale), noise =
// softplus(raw_noise) + noise floor. Per output; lengthscale per output and
// embedding dimension.
struct GpParams {
  std::vector<double> mean;
  std::vector<double> raw_outputscale;
  std::vector<double> raw_lengthscale;  // outputs * embedding
  std::vector<double> raw_noise;
};

// The exact GP's loss on fixed inputs Z (n x d, row-major) and targets Y
// (n x outputs): the negative marginal log likelihood divided by n, averaged
// over outputs. With GRAD, also its gradient with respect to every entry of
// PARAMS (same layout). For tests and for checking the model against an
// independent computation.
double ExactGpLoss(const std::vector<double>& z, int n, int d,
                   const std::vector<double>& y, const GpParams& params,
                   Kernel kernel, double noise_floor, GpParams* grad);

struct Prediction {
  std::vector<double> mean;      // count * outputs, candidate-major
  std::vector<double> variance;  // latent (no noise), count * outputs
};

class DklModel {
 public:
  // A model with fresh random weights drawn from a generator seeded by SEED.
  DklModel(const DklConfig& config, std::uint64_t seed);
  ~DklModel();
  DklModel(const DklModel&) = delete;
  DklModel& operator=(const DklModel&) = delete;

  const DklConfig& config() const;

  // Starts from fresh random weights (the next draw of the model's generator)
  // or, once SetInitial was called, from that state; GP hyperparameters back
  // to their initial values.
  void Reset();
  // Makes the current state the one Reset returns to (a meta-model seed).
  void SetInitialToCurrent();

  // Trains on X (n x features, row-major) and Y (n x outputs) for EPOCHS
  // full-batch Adam steps from the current state, then conditions the GP on
  // (X, Y) for Predict. Returns the loss of each epoch.
  std::vector<double> Train(const std::vector<float>& x, int n,
                            const std::vector<double>& y, int epochs);

  // Posterior mean and latent variance at COUNT candidates X (count x
  // features), in batches of config().predict_batch. Needs Train first.
  Prediction Predict(const float* x, int count) const;

  // Writes the model (extractor, GP hyperparameters, the
  // training data the GP is conditioned on, and a JSON description) to PATH
  // in PyTorch's zip format; doc/dkl-checkpoint.md says how to load it.
  void Save(const std::filesystem::path& path,
            const std::map<std::string, std::string>& metadata) const;
  // Reads a checkpoint written by Save into this model (whose architecture
  // must match): extractor and hyperparameters; the conditioning
  // data too when the checkpoint has it.
  void Load(const std::filesystem::path& path);
  // The metadata stored in a checkpoint, without loading its tensors.
  static std::map<std::string, std::string> ReadMetadata(
      const std::filesystem::path& path);

  // Adam for STEPS steps from the current state, each on BATCH points of
  // (X, Y) drawn without replacement (all of them when BATCH is 0 or at least
  // N) by a generator seeded with SEED: Reptile's inner loop. Uses the
  // config's learning rates; leaves the model unconditioned (Train before
  // Predict). Returns each step's loss.
  std::vector<double> TrainMinibatches(const std::vector<float>& x, int n,
                                       const std::vector<double>& y, int steps,
                                       int batch, std::uint64_t seed);

  // The loss (negative exact MLL / n, mean over outputs) of the current state
  // on (X, Y), without training.
  double Loss(const std::vector<float>& x, int n,
              const std::vector<double>& y) const;

  // Every weight and bias of the extractor, layer by layer (weight row-major,
  // then bias): what Reptile averages. Set needs the same size.
  std::vector<float> ExtractorParameters() const;
  void SetExtractorParameters(const std::vector<float>& values);

  // The current GP hyperparameters, and setting them (sizes must match).
  GpParams Hyperparameters() const;
  void SetHyperparameters(const GpParams& params);

 public:
  struct Impl;  // defined in dkl_impl.h

 private:
  std::unique_ptr<Impl> impl_;
};

// Chooses the number of threads LibTorch uses for its own operations (BLAS
// keeps its own pool); 0 keeps the default.
void SetTorchThreads(int threads);

}  // namespace cmf::ml
