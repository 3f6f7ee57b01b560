// Checkpoints of the DKL model: DklModel::Save, Load and ReadMetadata.
// doc/dkl-checkpoint.md describes the format.
#include <torch/csrc/jit/serialization/pickle.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "dkl_impl.h"
#include "text_file.h"

namespace cmf::ml {

using torch::Tensor;

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
