#include "reptile.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "acquisition.h"

namespace cmf::ml {
namespace {

template <typename T>
void MoveToward(std::vector<T>& theta,
                const std::vector<const std::vector<T>*>& phis,
                double epsilon) {
  const double inv = 1.0 / static_cast<double>(phis.size());
  for (std::size_t i = 0; i < theta.size(); ++i) {
    double mean = 0;
    for (const std::vector<T>* phi : phis)
      mean += static_cast<double>((*phi)[i]);
    mean *= inv;
    double t = static_cast<double>(theta[i]);
    theta[i] = static_cast<T>(t + epsilon * (mean - t));
  }
}

// A seed for (seed, iteration, slot): splitmix of the three.
std::uint64_t SeedOf(std::uint64_t seed, int iteration, int slot) {
  std::uint64_t s = seed ^ (0x9e3779b97f4a7c15ULL * (iteration + 1));
  s = NextRandom(&s) ^ static_cast<std::uint64_t>(slot + 1);
  return NextRandom(&s);
}

// OpenBLAS on one thread while it lives, when the process's BLAS is OpenBLAS
// (LibTorch links it on Debian). Reptile parallelises over tasks instead:
// OpenBLAS's own workers, which busy-wait between calls, would compete with
// the task threads for the cores, and its results differ in the last bits
// with its thread count, which --threads must not change.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    for (const char* name : {"libopenblas.so.0", "libblas.so.3"}) {
      void* handle = ::dlopen(name, RTLD_LAZY | RTLD_NOLOAD);
      if (handle == nullptr) continue;
      set_ = reinterpret_cast<void (*)(int)>(
          ::dlsym(handle, "openblas_set_num_threads"));
      auto get = reinterpret_cast<int (*)()>(
          ::dlsym(handle, "openblas_get_num_threads"));
      ::dlclose(handle);  // only drops the reference dlopen took
      if (set_ != nullptr && get != nullptr) {
        previous_ = get();
        set_(1);
        return;
      }
      set_ = nullptr;
    }
  }
  ~SingleThreadedBlas() {
    if (set_ != nullptr && previous_ > 0) set_(previous_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  void (*set_)(int) = nullptr;
  int previous_ = 0;
};

}  // namespace

void ReptileUpdate(MetaParameters& theta,
                   const std::vector<MetaParameters>& phis, double epsilon,
                   bool meta_gp) {
  if (phis.empty()) return;
  std::vector<const std::vector<float>*> ex;
  for (const MetaParameters& p : phis) {
    if (p.extractor.size() != theta.extractor.size())
      throw std::runtime_error("Reptile: parameters of different sizes");
    ex.push_back(&p.extractor);
  }
  MoveToward(theta.extractor, ex, epsilon);
  if (!meta_gp) return;
  auto gp = [&](std::vector<double> GpParams::*field) {
    std::vector<const std::vector<double>*> v;
    for (const MetaParameters& p : phis) v.push_back(&(p.gp.*field));
    MoveToward(theta.gp.*field, v, epsilon);
  };
  gp(&GpParams::mean);
  gp(&GpParams::raw_outputscale);
  gp(&GpParams::raw_lengthscale);
  gp(&GpParams::raw_noise);
}

double EpsilonAt(int iteration, int iterations, double first, double last) {
  if (iterations <= 0) return first;
  // As Nichol et al.'s code: the fraction done before this iteration, so the
  // last iteration still moves theta when LAST is 0.
  double t = static_cast<double>(iteration) / static_cast<double>(iterations);
  return first + (last - first) * t;
}

MetaParameters ParametersOf(const DklModel& model) {
  return {model.ExtractorParameters(), model.Hyperparameters()};
}

void SetParameters(DklModel& model, const MetaParameters& theta) {
  model.SetExtractorParameters(theta.extractor);
  model.SetHyperparameters(theta.gp);
}

void MetaTrain(const DklConfig& config, const std::vector<Task>& tasks,
               const ReptileOptions& options, int first, MetaParameters& theta,
               const std::function<bool(const IterationReport&)>& after) {
  if (tasks.empty())
    throw std::runtime_error("Reptile needs at least one task");
  for (const Task& t : tasks) {
    if (t.features != config.features || t.outputs != config.outputs)
      throw std::runtime_error("task '" + t.name + "' does not fit the model");
  }
  const int per_iteration = std::max(1, options.tasks_per_iteration);
  const int threads = std::max(1, std::min(options.threads, per_iteration));
  SingleThreadedBlas blas;
  DklConfig inner = config;
  inner.learning_rate = options.inner_lr;
  inner.extractor_learning_rate = options.inner_extractor_lr;
  // One model per thread, reused across iterations.
  std::vector<std::unique_ptr<DklModel>> models;
  for (int t = 0; t < threads; ++t)
    models.push_back(std::make_unique<DklModel>(inner, options.seed));

  for (int it = first; it < options.iterations; ++it) {
    auto start = std::chrono::steady_clock::now();
    IterationReport report;
    report.iteration = it;
    report.epsilon = EpsilonAt(it, options.iterations, options.epsilon,
                               options.epsilon_final);
    // The tasks of this iteration: without replacement while there are
    // enough, seeded by (seed, iteration).
    std::uint64_t pick_state = SeedOf(options.seed, it, -1);
    std::vector<int> order(tasks.size());
    for (std::size_t i = 0; i < order.size(); ++i)
      order[i] = static_cast<int>(i);
    for (int slot = 0; slot < per_iteration; ++slot) {
      int remaining = static_cast<int>(order.size()) -
                      slot % static_cast<int>(order.size());
      int base = slot % static_cast<int>(order.size());
      if (base == 0 && slot > 0) {
        for (std::size_t i = 0; i < order.size(); ++i)
          order[i] = static_cast<int>(i);
      }
      int k = base + UniformIndex(&pick_state, remaining);
      std::swap(order[base], order[k]);
      report.tasks.push_back(order[base]);
    }
    if (options.method == MetaMethod::kPretrain) {
      // The iteration's tasks pooled into one; theta trained on it directly.
      std::vector<float> x;
      std::vector<double> y;
      int points = 0;
      for (int slot = 0; slot < per_iteration; ++slot) {
        const Task& task = tasks[report.tasks[slot]];
        x.insert(x.end(), task.x.begin(), task.x.end());
        y.insert(y.end(), task.y.begin(), task.y.end());
        points += task.points;
      }
      SetTorchThreads(1);
      DklModel& model = *models[0];
      SetParameters(model, theta);
      std::vector<double> losses = model.TrainMinibatches(
          x, points, y, options.inner_steps * per_iteration, options.batch,
          SeedOf(options.seed, it, 0));
      MetaParameters trained = ParametersOf(model);
      theta.extractor = std::move(trained.extractor);
      if (options.meta_gp) theta.gp = std::move(trained.gp);
      report.epsilon = 1;
      report.meta_loss = losses.empty() ? 0 : losses.front();
      report.adapted_loss = losses.empty() ? 0 : losses.back();
      report.seconds = std::chrono::duration<double>(
                           std::chrono::steady_clock::now() - start)
                           .count();
      if (!after(report)) return;
      continue;
    }
    std::vector<MetaParameters> phis(per_iteration);
    std::vector<double> first_loss(per_iteration), last_loss(per_iteration);
    auto work = [&](int thread) {
      // OpenMP's thread count is per thread: a new thread would use every
      // core and sum in another order. One thread each keeps the result
      // independent of --threads.
      SetTorchThreads(1);
      DklModel& model = *models[thread];
      for (int slot = thread; slot < per_iteration; slot += threads) {
        const Task& task = tasks[report.tasks[slot]];
        SetParameters(model, theta);
        std::vector<double> losses = model.TrainMinibatches(
            task.x, task.points, task.y, options.inner_steps, options.batch,
            SeedOf(options.seed, it, slot));
        first_loss[slot] = losses.empty() ? 0 : losses.front();
        last_loss[slot] = losses.empty() ? 0 : losses.back();
        phis[slot] = ParametersOf(model);
      }
    };
    if (threads == 1) {
      work(0);
    } else {
      std::vector<std::thread> pool;
      std::vector<std::exception_ptr> errors(threads);
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          try {
            work(t);
          } catch (...) {
            errors[t] = std::current_exception();
          }
        });
      }
      for (std::thread& th : pool) th.join();
      for (const std::exception_ptr& e : errors)
        if (e) std::rethrow_exception(e);
    }
    ReptileUpdate(theta, phis, report.epsilon, options.meta_gp);
    for (int slot = 0; slot < per_iteration; ++slot) {
      report.meta_loss += first_loss[slot] / per_iteration;
      report.adapted_loss += last_loss[slot] / per_iteration;
    }
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    if (!after(report)) return;
  }
}

}  // namespace cmf::ml
