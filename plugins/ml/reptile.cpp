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

namespace {

// What the iterations of one MetaTrain call share.
struct MetaRun {
  const std::vector<Task>& tasks;
  const ReptileOptions& options;
  int per_iteration;                              // tasks sampled per iteration
  int threads;                                    // inner loops run at once
  std::vector<std::unique_ptr<DklModel>> models;  // one per thread
};

// What the inner loops of one iteration leave, slot by slot.
struct InnerResults {
  std::vector<MetaParameters> phis;
  std::vector<double> first_loss;  // each inner loop's first step's loss
  std::vector<double> last_loss;   // and its last
};

// Throws unless there are tasks and each has CONFIG's features and outputs.
void CheckTasks(const DklConfig& config, const std::vector<Task>& tasks) {
  if (tasks.empty())
    throw std::runtime_error("Reptile needs at least one task");
  for (const Task& t : tasks) {
    if (t.features != config.features || t.outputs != config.outputs)
      throw std::runtime_error("task '" + t.name + "' does not fit the model");
  }
}

// One model per thread, reused across iterations, with the inner loop's
// learning rates.
std::vector<std::unique_ptr<DklModel>> InnerModels(
    const DklConfig& config, const ReptileOptions& options, int threads) {
  DklConfig inner = config;
  inner.learning_rate = options.inner_lr;
  inner.extractor_learning_rate = options.inner_extractor_lr;
  std::vector<std::unique_ptr<DklModel>> models;
  for (int t = 0; t < threads; ++t)
    models.push_back(std::make_unique<DklModel>(inner, options.seed));
  return models;
}

// The tasks of ITERATION, PER_ITERATION of COUNT: without replacement while
// there are enough, seeded by (seed, iteration).
std::vector<int> PickTasks(std::uint64_t seed, int iteration, std::size_t count,
                           int per_iteration) {
  std::uint64_t pick_state = SeedOf(seed, iteration, -1);
  std::vector<int> order(count);
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::vector<int> picked;
  for (int slot = 0; slot < per_iteration; ++slot) {
    int remaining =
        static_cast<int>(order.size()) - slot % static_cast<int>(order.size());
    int base = slot % static_cast<int>(order.size());
    if (base == 0 && slot > 0) {
      for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = static_cast<int>(i);
    }
    int k = base + UniformIndex(&pick_state, remaining);
    std::swap(order[base], order[k]);
    picked.push_back(order[base]);
  }
  return picked;
}

// Calls WORK(t) for t in 0 .. THREADS - 1, each on a thread of its own
// (inline when THREADS is 1); rethrows the first exception, in thread order.
void RunOnThreads(int threads, const std::function<void(int)>& work) {
  if (threads == 1) {
    work(0);
    return;
  }
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

// The inner loop of each task in PICKED from THETA, slot s on thread
// s % threads.
InnerResults RunInnerLoops(MetaRun& run, const MetaParameters& theta,
                           int iteration, const std::vector<int>& picked) {
  const ReptileOptions& options = run.options;
  InnerResults out;
  out.phis.resize(run.per_iteration);
  out.first_loss.resize(run.per_iteration);
  out.last_loss.resize(run.per_iteration);
  RunOnThreads(run.threads, [&](int thread) {
    // OpenMP's thread count is per thread: a new thread would use every
    // core and sum in another order. One thread each keeps the result
    // independent of --threads.
    SetTorchThreads(1);
    DklModel& model = *run.models[thread];
    for (int slot = thread; slot < run.per_iteration; slot += run.threads) {
      const Task& task = run.tasks[picked[slot]];
      SetParameters(model, theta);
      std::vector<double> losses = model.TrainMinibatches(
          task.x, task.points, task.y, options.inner_steps, options.batch,
          SeedOf(options.seed, iteration, slot));
      out.first_loss[slot] = losses.empty() ? 0 : losses.front();
      out.last_loss[slot] = losses.empty() ? 0 : losses.back();
      out.phis[slot] = ParametersOf(model);
    }
  });
  return out;
}

// A Reptile iteration: the inner loops, then theta moved toward their mean by
// report->epsilon; the losses averaged into REPORT.
void ReptileStep(MetaRun& run, int iteration, MetaParameters& theta,
                 IterationReport* report) {
  InnerResults inner = RunInnerLoops(run, theta, iteration, report->tasks);
  ReptileUpdate(theta, inner.phis, report->epsilon, run.options.meta_gp);
  for (int slot = 0; slot < run.per_iteration; ++slot) {
    report->meta_loss += inner.first_loss[slot] / run.per_iteration;
    report->adapted_loss += inner.last_loss[slot] / run.per_iteration;
  }
}

// A pretrain iteration: the sampled tasks pooled into one, theta trained on it
// directly and kept (epsilon 1).
void PretrainStep(MetaRun& run, int iteration, MetaParameters& theta,
                  IterationReport* report) {
  const ReptileOptions& options = run.options;
  std::vector<float> x;
  std::vector<double> y;
  int points = 0;
  for (int slot = 0; slot < run.per_iteration; ++slot) {
    const Task& task = run.tasks[report->tasks[slot]];
    x.insert(x.end(), task.x.begin(), task.x.end());
    y.insert(y.end(), task.y.begin(), task.y.end());
    points += task.points;
  }
  SetTorchThreads(1);
  DklModel& model = *run.models[0];
  SetParameters(model, theta);
  std::vector<double> losses = model.TrainMinibatches(
      x, points, y, options.inner_steps * run.per_iteration, options.batch,
      SeedOf(options.seed, iteration, 0));
  MetaParameters trained = ParametersOf(model);
  theta.extractor = std::move(trained.extractor);
  if (options.meta_gp) theta.gp = std::move(trained.gp);
  report->epsilon = 1;
  report->meta_loss = losses.empty() ? 0 : losses.front();
  report->adapted_loss = losses.empty() ? 0 : losses.back();
}

// Seconds of the steady clock since START.
double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

void MetaTrain(const DklConfig& config, const std::vector<Task>& tasks,
               const ReptileOptions& options, int first, MetaParameters& theta,
               const std::function<bool(const IterationReport&)>& after) {
  CheckTasks(config, tasks);
  const int per_iteration = std::max(1, options.tasks_per_iteration);
  const int threads = std::max(1, std::min(options.threads, per_iteration));
  SingleThreadedBlas blas;
  MetaRun run{tasks, options, per_iteration, threads,
              InnerModels(config, options, threads)};
  for (int it = first; it < options.iterations; ++it) {
    auto start = std::chrono::steady_clock::now();
    IterationReport report;
    report.iteration = it;
    report.epsilon = EpsilonAt(it, options.iterations, options.epsilon,
                               options.epsilon_final);
    report.tasks = PickTasks(options.seed, it, tasks.size(), per_iteration);
    if (options.method == MetaMethod::kPretrain)
      PretrainStep(run, it, theta, &report);
    else
      ReptileStep(run, it, theta, &report);
    report.seconds = SecondsSince(start);
    if (!after(report)) return;
  }
}

}  // namespace cmf::ml
