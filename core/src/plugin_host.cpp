#include "cmf/plugin_host.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "cmf/byte_strings.h"
#include "cmf/data/executable.h"
#include "cmf/data/fault.h"
#include "cmf/data/hash.h"
#include "cmf/run.h"
#include "cmf/store.h"
#include "cmf/sync.h"
#include "cmf_config.h"

namespace fs = std::filesystem;

namespace cmf {

const PluginStage* PluginCatalog::FindStage(std::string_view name) const {
  for (const PluginStage& s : stages)
    if (s.name == name) return &s;
  return nullptr;
}

std::string_view ParamTypeName(cmf_param_type type) {
  switch (type) {
    case CMF_PARAM_INT:
      return "int";
    case CMF_PARAM_REAL:
      return "real";
    case CMF_PARAM_BOOL:
      return "bool";
    case CMF_PARAM_STRING:
      return "string";
    case CMF_PARAM_PATH:
      return "path";
  }
  return "unknown";
}

namespace {

bool IsName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

bool IsModuleFile(const fs::path& p) {
  std::string name = p.filename().string();
  return name.starts_with("cmf-") && p.extension() == ".so";
}

// Candidate modules in a folder: cmf-*.so in it and one level down, sorted so
// that the order does not depend on the file system.
std::vector<fs::path> ModulesIn(const fs::path& dir) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory(ec)) {
      std::error_code ec2;
      for (const fs::directory_entry& f : fs::directory_iterator(e.path(), ec2))
        if (f.is_regular_file(ec2) && IsModuleFile(f.path()))
          found.push_back(f.path());
    } else if (e.is_regular_file(ec) && IsModuleFile(e.path())) {
      found.push_back(e.path());
    }
  }
  std::sort(found.begin(), found.end());
  return found;
}

// Copies a module's description, checking what the host relies on. Returns
// the reason it is unusable, or "".
std::string Describe(const cmf_plugin& p, const fs::path& path,
                     PluginModule* module, std::vector<PluginStage>* stages) {
  if (p.name == nullptr || !IsName(p.name)) return "it has no valid name";
  if (p.stage_count > 0 && p.stages == nullptr) return "its stage list is null";
  module->name = p.name;
  module->version = p.version ? p.version : "";
  module->summary = p.summary ? p.summary : "";
  module->path = path;
  for (std::size_t i = 0; i < p.stage_count; ++i) {
    const cmf_stage& s = p.stages[i];
    if (s.name == nullptr || !IsName(s.name) || s.run == nullptr)
      return fmt::format("its stage #{} has no valid name or run function", i);
    if (s.param_count > 0 && s.params == nullptr)
      return fmt::format("stage '{}' has a null parameter list", s.name);
    PluginStage stage;
    stage.name = s.name;
    stage.summary = s.summary ? s.summary : "";
    stage.plugin = module->name;
    stage.plugin_version = module->version;
    stage.module = path;
    stage.run = s.run;
    std::set<std::string> seen;
    for (std::size_t j = 0; j < s.param_count; ++j) {
      const cmf_param& q = s.params[j];
      if (q.name == nullptr || !IsName(q.name) || !seen.insert(q.name).second)
        return fmt::format("stage '{}' has a parameter without a valid, unique "
                           "name",
                           s.name);
      if (q.type < CMF_PARAM_INT || q.type > CMF_PARAM_PATH)
        return fmt::format("parameter '{}' of stage '{}' has an unknown type",
                           q.name, s.name);
      PluginParam param;
      param.name = q.name;
      param.type = q.type;
      if (q.default_value != nullptr && *q.default_value != '\0')
        param.default_value = q.default_value;
      param.help = q.help ? q.help : "";
      for (const char* const* a = q.allowed; a != nullptr && *a != nullptr; ++a)
        param.allowed.emplace_back(*a);
      if (q.short_name != nullptr && q.short_name[0] != '\0') {
        char c = q.short_name[0];
        if (q.short_name[1] != '\0' || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
          return fmt::format("parameter '{}' of stage '{}' has a short name that is "
                             "not one letter", q.name, s.name);
        param.short_name = c;
      }
      param.multiple = (q.flags & CMF_PARAM_MULTIPLE) != 0;
      param.required = (q.flags & CMF_PARAM_REQUIRED) != 0;
      stage.params.push_back(std::move(param));
    }
    module->stages.push_back(stage.name);
    stages->push_back(std::move(stage));
  }
  return "";
}

}  // namespace

std::vector<fs::path> PluginSearchPath() {
  std::vector<fs::path> out;
  std::error_code ec;
  if (const char* env = std::getenv("CMF_PLUGIN_PATH"); env && *env) {
    std::string_view rest = env;
    while (!rest.empty()) {
      std::size_t colon = rest.find(':');
      std::string_view part = rest.substr(0, colon);
      if (!part.empty() && fs::exists(fs::path(part), ec))
        out.emplace_back(part);
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  if (fs::path exe = data::ExecutableDir(); !exe.empty()) {
    fs::path build = exe.parent_path() / "plugins";
    if (fs::is_directory(build, ec)) out.push_back(build);
  }
  fs::path installed = CMF_PLUGINDIR;
  if (fs::is_directory(installed, ec)) out.push_back(installed);
  return out;
}

PluginCatalog LoadPlugins(std::span<const fs::path> search_path) {
  PluginCatalog catalog;
  std::set<fs::path> loaded;
  for (const fs::path& entry : search_path) {
    std::error_code ec;
    std::vector<fs::path> modules =
        fs::is_directory(entry, ec) ? ModulesIn(entry)
                                    : std::vector<fs::path>{entry};
    for (const fs::path& path : modules) {
      fs::path real = fs::weakly_canonical(path, ec);
      if (!loaded.insert(ec ? path : real).second) continue;
      auto skip = [&](const std::string& why) {
        catalog.warnings.push_back(
            fmt::format("skipping plugin '{}': {}", path.string(), why));
      };
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (handle == nullptr) {
        const char* why = ::dlerror();
        skip(why ? why : "it cannot be loaded");
        continue;
      }
      auto entry_fn = reinterpret_cast<cmf_plugin_entry_fn>(
          ::dlsym(handle, CMF_PLUGIN_ENTRY_SYMBOL));
      if (entry_fn == nullptr) {
        skip("it has no entry point " CMF_PLUGIN_ENTRY_SYMBOL);
        continue;  // left loaded: unloading foreign code is not always safe
      }
      const cmf_plugin* plugin = entry_fn(CMF_PLUGIN_ABI_VERSION);
      if (plugin == nullptr) {
        skip(fmt::format("it declined to serve plugin ABI version {}",
                         CMF_PLUGIN_ABI_VERSION));
        continue;
      }
      if (plugin->abi_version != CMF_PLUGIN_ABI_VERSION) {
        skip(fmt::format("it was built for plugin ABI version {}, cmf has {}",
                         plugin->abi_version, CMF_PLUGIN_ABI_VERSION));
        continue;
      }
      PluginModule module;
      std::vector<PluginStage> stages;
      if (std::string why = Describe(*plugin, path, &module, &stages);
          !why.empty()) {
        skip(why);
        continue;
      }
      auto same = std::find_if(
          catalog.plugins.begin(), catalog.plugins.end(),
          [&](const PluginModule& m) { return m.name == module.name; });
      if (same != catalog.plugins.end()) {
        skip(fmt::format("plugin '{}' is already loaded from '{}'",
                         module.name, same->path.string()));
        continue;
      }
      module.stages.clear();
      for (PluginStage& s : stages) {
        if (const PluginStage* other = catalog.FindStage(s.name)) {
          catalog.warnings.push_back(fmt::format(
              "ignoring stage '{}' of plugin '{}': plugin '{}' has it already",
              s.name, module.name, other->plugin));
          continue;
        }
        module.stages.push_back(s.name);
        catalog.stages.push_back(std::move(s));
      }
      catalog.plugins.push_back(std::move(module));
    }
  }
  return catalog;
}

// ---------------------------------------------------------------------------
// Parameters

namespace {

std::optional<bool> ParseBool(std::string_view v) {
  if (v == "true" || v == "yes" || v == "1" || v == "on") return true;
  if (v == "false" || v == "no" || v == "0" || v == "off") return false;
  return std::nullopt;
}

// Checks one value against its parameter; returns the canonical text (a bool
// as "true"/"false") or the reason it is wrong.
Result<std::string> CheckValue(const PluginParam& p, const std::string& v) {
  auto wrong = [&](std::string_view wants) {
    return Status::InvalidArgument(fmt::format(
        "parameter '--{}' wants {}, not '{}'", p.name, wants, v));
  };
  switch (p.type) {
    case CMF_PARAM_INT: {
      char* end = nullptr;
      errno = 0;
      (void)std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno != 0) return wrong("an integer");
      break;
    }
    case CMF_PARAM_REAL: {
      char* end = nullptr;
      double x = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !std::isfinite(x))
        return wrong("a number");
      break;
    }
    case CMF_PARAM_BOOL: {
      std::optional<bool> b = ParseBool(v);
      if (!b) return wrong("true or false");
      return std::string(*b ? "true" : "false");
    }
    case CMF_PARAM_STRING:
    case CMF_PARAM_PATH:
      if (v.empty() && p.type == CMF_PARAM_PATH) return wrong("a path");
      break;
  }
  if (!p.allowed.empty()) {
    bool ok = std::any_of(p.allowed.begin(), p.allowed.end(),
                          [&](const std::string& a) {
                            return a.ends_with(':') ? v.starts_with(a) : v == a;
                          });
    if (!ok) {
      std::string list;
      for (const std::string& a : p.allowed)
        list += (list.empty() ? "" : ", ") + (a.ends_with(':') ? a + "..." : a);
      return Status::InvalidArgument(fmt::format(
          "parameter '--{}' must be one of {}, not '{}'", p.name, list, v));
    }
  }
  return v;
}

std::string Suggestion(const PluginStage& stage, std::string_view name) {
  for (const PluginParam& p : stage.params)
    if (p.name.starts_with(name) || name.starts_with(p.name))
      return fmt::format(" (did you mean '--{}'?)", p.name);
  return "";
}

}  // namespace

Result<StageArgs> ParseStageArgs(const PluginStage& stage,
                                 std::span<const std::string> args) {
  StageArgs out;
  auto find = [&](std::string_view name) -> const PluginParam* {
    for (const PluginParam& p : stage.params)
      if (p.name == name) return &p;
    return nullptr;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
      // -X: the parameter whose short name is X.
      for (const PluginParam& p : stage.params)
        if (p.short_name == arg[1]) arg = "--" + p.name;
    }
    if (!arg.starts_with("--") || arg.size() == 2) {
      return Status::InvalidArgument(fmt::format(
          "unexpected argument '{}': stage '{}' takes only --NAME VALUE "
          "parameters",
          arg, stage.name));
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (std::size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const PluginParam* p = find(name);
    bool negated = false;
    if (p == nullptr && name.starts_with("no-")) {
      const PluginParam* q = find(name.substr(3));
      if (q != nullptr && q->type == CMF_PARAM_BOOL && !inline_value) {
        p = q;
        negated = true;
      }
    }
    if (p == nullptr) {
      return Status::InvalidArgument(
          fmt::format("stage '{}' has no parameter '--{}'{}", stage.name, name,
                      Suggestion(stage, name)));
    }
    std::vector<std::string> values;
    if (p->type == CMF_PARAM_BOOL && !inline_value) {
      // A bare flag; an explicit next token that reads as a bool is its value.
      std::optional<bool> next;
      if (!negated && i + 1 < args.size()) next = ParseBool(args[i + 1]);
      if (next) ++i;
      values.push_back(negated ? "false" : (next ? args[i] : "true"));
    } else if (inline_value) {
      values.push_back(*inline_value);
    } else {
      auto is_option = [&](const std::string& a) {
        if (a.starts_with("--")) return true;
        if (a.size() != 2 || a[0] != '-') return false;
        for (const PluginParam& q : stage.params)
          if (q.short_name == a[1]) return true;
        return false;
      };
      while (i + 1 < args.size() && !is_option(args[i + 1])) {
        values.push_back(args[++i]);
        if (!p->multiple) break;
      }
      if (values.empty()) {
        return Status::InvalidArgument(
            fmt::format("parameter '--{}' needs a value ({})", p->name,
                        ParamTypeName(p->type)));
      }
    }
    std::vector<std::string>& slot = out[p->name];
    if (!p->multiple) slot.clear();  // the last one given wins, as in getopt
    for (const std::string& v : values) {
      CMF_ASSIGN_OR_RETURN(std::string canonical, CheckValue(*p, v));
      slot.push_back(std::move(canonical));
    }
  }
  for (const PluginParam& p : stage.params) {
    if (p.required && !out.contains(p.name)) {
      return Status::InvalidArgument(fmt::format(
          "stage '{}' needs '--{}' ({})", stage.name, p.name, p.help));
    }
  }
  return out;
}

std::string StageHelp(const PluginStage& stage) {
  std::string out = fmt::format("{}\n\nUsage: cmf run [--pipeline P] [-q] {}",
                                stage.summary, stage.name);
  for (const PluginParam& p : stage.params)
    if (p.required) out += fmt::format(" --{} {}", p.name, ParamTypeName(p.type));
  out += " [--PARAM VALUE]...\n\nParameters:\n";
  std::size_t width = 0;
  std::vector<std::string> heads;
  for (const PluginParam& p : stage.params) {
    std::string head = fmt::format(
        "  {}--{} {}{}", p.short_name ? fmt::format("-{}, ", p.short_name) : "", p.name,
        p.type == CMF_PARAM_BOOL ? "[BOOL]" : std::string(ParamTypeName(p.type)),
        p.multiple ? " ..." : "");
    width = std::max(width, head.size());
    heads.push_back(std::move(head));
  }
  for (std::size_t i = 0; i < stage.params.size(); ++i) {
    const PluginParam& p = stage.params[i];
    std::string line = fmt::format("{:<{}}  {}", heads[i], width, p.help);
    if (!p.allowed.empty()) {
      std::string list;
      for (const std::string& a : p.allowed)
        list += (list.empty() ? "" : "|") + (a.ends_with(':') ? a + "..." : a);
      line += fmt::format(" [{}]", list);
    }
    if (p.required)
      line += " (required)";
    else if (p.default_value)
      line += fmt::format(" (default: {})", *p.default_value);
    out += line + "\n";
  }
  out += fmt::format(
      "\nPlugin {} {} ({}). Every parameter is recorded on the execution.\n",
      stage.plugin, stage.plugin_version, stage.module.string());
  return out;
}

}  // namespace cmf

// ---------------------------------------------------------------------------
// Running a stage

struct cmf_context {
  cmf::Repo* repo = nullptr;
  cmf::Run* run = nullptr;
  const cmf::PluginStage* stage = nullptr;
  std::map<std::string, std::vector<std::string>> values;  // with defaults
  std::string id;
  std::string workspace;
  std::string error;         // the last host call's failure
  std::string fail_message;  // the stage's own reason
  bool quiet = false;
  bool progress_drawn = false;
  std::chrono::steady_clock::time_point last_draw{};
};

namespace cmf {
namespace {

std::atomic<int> g_cancel_signal{0};

void OnCancel(int sig) {
  if (g_cancel_signal.load() != 0 && sig == SIGINT) {
    // A second Ctrl-C: the stage did not stop; end the process now.
    ::signal(SIGINT, SIG_DFL);
    ::raise(SIGINT);
    return;
  }
  g_cancel_signal.store(sig);
}

// Catches SIGINT and SIGTERM while a stage runs; restores them afterwards.
class CancelScope {
 public:
  CancelScope() {
    g_cancel_signal.store(0);
    struct sigaction sa {};
    sa.sa_handler = OnCancel;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
  }
  ~CancelScope() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
  }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

int Report(cmf_context* ctx, const Status& status) {
  if (status.ok()) return CMF_OK;
  ctx->error = status.message();
  return CMF_ERROR;
}

void ClearProgress(cmf_context* ctx) {
  if (ctx->progress_drawn) {
    std::fputs("\r\033[K", stderr);
    ctx->progress_drawn = false;
  }
}

const char* HostParam(cmf_context* ctx, const char* name) {
  auto it = ctx->values.find(name ? name : "");
  return it == ctx->values.end() || it->second.empty()
             ? nullptr
             : it->second.front().c_str();
}

std::size_t HostParamCount(cmf_context* ctx, const char* name) {
  auto it = ctx->values.find(name ? name : "");
  return it == ctx->values.end() ? 0 : it->second.size();
}

const char* HostParamAt(cmf_context* ctx, const char* name, std::size_t i) {
  auto it = ctx->values.find(name ? name : "");
  return it == ctx->values.end() || i >= it->second.size()
             ? nullptr
             : it->second[i].c_str();
}

const char* HostExecutionId(cmf_context* ctx) { return ctx->id.c_str(); }
const char* HostWorkspace(cmf_context* ctx) { return ctx->workspace.c_str(); }

// KIND as an artifact kind into *OUT (left empty for NULL).
Status ParseKind(const char* kind, std::optional<ArtifactKind>* out) {
  if (kind == nullptr) return Status::Ok();
  *out = ParseArtifactKind(kind);
  if (!*out)
    return Status::InvalidArgument(fmt::format("unknown artifact kind '{}'", kind));
  return Status::Ok();
}

int HostLog(cmf_context* ctx, const char* path, const char* kind,
            char hash_out[65], bool output) {
  if (path == nullptr || *path == '\0')
    return Report(ctx, Status::InvalidArgument("empty path"));
  std::optional<ArtifactKind> k;
  if (Status parsed = ParseKind(kind, &k); !parsed.ok())
    return Report(ctx, parsed);
  Result<ArtifactRef> ref =
      output ? ctx->run->LogOutput(path, k) : ctx->run->LogInput(path, k);
  if (!ref.ok()) return Report(ctx, ref.status());
  if (hash_out != nullptr) {
    std::memcpy(hash_out, ref->hash.c_str(),
                std::min<std::size_t>(ref->hash.size(), 64));
    hash_out[std::min<std::size_t>(ref->hash.size(), 64)] = '\0';
  }
  return CMF_OK;
}

int HostLogInput(cmf_context* ctx, const char* path, const char* kind,
                 char hash_out[65]) {
  return HostLog(ctx, path, kind, hash_out, false);
}
int HostLogOutput(cmf_context* ctx, const char* path, const char* kind,
                  char hash_out[65]) {
  return HostLog(ctx, path, kind, hash_out, true);
}
int HostLogDerivedFrom(cmf_context* ctx, const char* child,
                       const char* parent) {
  if (child == nullptr || parent == nullptr)
    return Report(ctx, Status::InvalidArgument("null hash"));
  return Report(ctx, ctx->run->LogDerivedFrom(child, parent));
}
int HostLogMetric(cmf_context* ctx, const char* series, std::int64_t step,
                  double value) {
  if (series == nullptr || *series == '\0')
    return Report(ctx, Status::InvalidArgument("empty series name"));
  return Report(ctx, ctx->run->LogMetric(series, step, value));
}
int HostSetInt(cmf_context* ctx, const char* name, std::int64_t v) {
  if (name == nullptr || *name == '\0')
    return Report(ctx, Status::InvalidArgument("empty property name"));
  return Report(ctx, ctx->run->SetProperty(name, Value(v)));
}
int HostSetReal(cmf_context* ctx, const char* name, double v) {
  if (name == nullptr || *name == '\0')
    return Report(ctx, Status::InvalidArgument("empty property name"));
  return Report(ctx, ctx->run->SetProperty(name, Value(v)));
}
int HostSetText(cmf_context* ctx, const char* name, const char* v) {
  if (name == nullptr || *name == '\0' || v == nullptr)
    return Report(ctx, Status::InvalidArgument("empty property"));
  return Report(ctx, ctx->run->SetProperty(name, Value(std::string(v))));
}

void HostProgress(cmf_context* ctx, double done, double total,
                  const char* note) {
  if (ctx->quiet || !::isatty(STDERR_FILENO)) return;
  auto now = std::chrono::steady_clock::now();
  if (ctx->progress_drawn && now - ctx->last_draw < std::chrono::milliseconds(100))
    return;
  ctx->last_draw = now;
  std::string line = fmt::format("{}: ", ctx->stage->name);
  if (total > 0)
    line += fmt::format("{:3.0f}% ", 100.0 * std::clamp(done / total, 0.0, 1.0));
  if (note != nullptr) line += note;
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  ctx->progress_drawn = true;
}

void HostMessage(cmf_context* ctx, int level, const char* text) {
  if (text == nullptr) return;
  if (level == CMF_INFO && ctx->quiet) return;
  ClearProgress(ctx);
  std::fprintf(stderr, "cmf: %s%s: %s\n", level == CMF_WARNING ? "warning: " : "",
               ctx->stage->name.c_str(), text);
}

int HostCancelled(cmf_context*) { return g_cancel_signal.load() != 0; }

void HostFail(cmf_context* ctx, const char* message) {
  ctx->fail_message = message ? message : "";
}

const char* HostLastError(cmf_context* ctx) { return ctx->error.c_str(); }

int HostResolveArtifact(cmf_context* ctx, const char* ref, char* path_out,
                        std::size_t path_size, char hash_out[65]) {
  if (ref == nullptr || *ref == '\0' || path_out == nullptr)
    return Report(ctx, Status::InvalidArgument("empty artifact reference"));
  std::error_code ec;
  std::string path;
  std::string hash;
  if (fs::is_regular_file(ref, ec)) {
    Result<data::ObjectInfo> info = HashContent(*ctx->repo, ref, false);
    if (!info.ok()) return Report(ctx, info.status());
    path = ref;
    hash = info->hash;
  } else if (fs::exists(ref, ec)) {
    return Report(ctx, Status::InvalidArgument(
                           fmt::format("'{}' is not a regular file", ref)));
  } else {
    Result<std::string> resolved = ctx->repo->store().ResolveArtifact(ref);
    if (!resolved.ok()) {
      return Report(ctx, Status::NotFound(fmt::format(
                             "'{}' is neither a file nor an artifact of the "
                             "store ({})",
                             ref, resolved.status().message())));
    }
    hash = *resolved;
    if (!ctx->repo->objects().Has(hash)) {
      Result<GetReport> got = Get(*ctx->repo, hash, std::nullopt, false);
      if (!got.ok()) return Report(ctx, got.status());
    }
    path = ctx->repo->objects().PathOf(hash).string();
    if (!fs::is_regular_file(path, ec))
      return Report(ctx, Status::InvalidArgument(fmt::format(
                             "artifact {} is not a file", hash.substr(0, 12))));
  }
  if (path.size() + 1 > path_size)
    return Report(ctx, Status::InvalidArgument("path buffer too small"));
  std::memcpy(path_out, path.c_str(), path.size() + 1);
  if (hash_out != nullptr) {
    std::memcpy(hash_out, hash.c_str(), std::min<std::size_t>(hash.size(), 64));
    hash_out[std::min<std::size_t>(hash.size(), 64)] = '\0';
  }
  return CMF_OK;
}

int HostLogInputHash(cmf_context* ctx, const char* hash, const char* path) {
  if (hash == nullptr || *hash == '\0')
    return Report(ctx, Status::InvalidArgument("empty hash"));
  Result<ArtifactRef> ref = ctx->repo->store().GetArtifact(hash);
  if (!ref.ok()) return Report(ctx, ref.status());
  ref->path = path != nullptr && *path != '\0' ? std::string(path) : ref->hash;
  return Report(ctx, ctx->run->LogHashed(Direction::kInput, *ref));
}

int HostStageOutputs(cmf_context* ctx, const char* stage, const char* pipeline,
                     const char* kind,
                     void (*each)(void*, const char*, const char*, const char*),
                     void* user) {
  if (stage == nullptr || *stage == '\0' || each == nullptr)
    return Report(ctx, Status::InvalidArgument("no stage named"));
  std::optional<ArtifactKind> k;
  if (Status parsed = ParseKind(kind, &k); !parsed.ok())
    return Report(ctx, parsed);
  ExecutionFilter filter;
  filter.stage = stage;
  if (pipeline != nullptr && *pipeline != '\0') filter.pipeline = pipeline;
  std::vector<ExecutionRecord> found;
  Status scanned = ctx->repo->store().ScanExecutions(
      filter, [&](std::vector<ExecutionRecord>& page) {
        for (ExecutionRecord& e : page)
          if (e.status == ExecStatus::kOk) found.push_back(std::move(e));
        return Status::Ok();
      });
  if (!scanned.ok()) return Report(ctx, scanned);
  for (auto e = found.rbegin(); e != found.rend(); ++e) {
    for (const ArtifactRef& out : e->outputs) {
      if (k && out.kind != *k) continue;
      each(user, out.hash.c_str(), out.path.c_str(), e->id.c_str());
    }
  }
  return CMF_OK;
}

constexpr cmf_host kHost = {
    CMF_PLUGIN_ABI_VERSION, sizeof(cmf_host), HostParam,
    HostParamCount,         HostParamAt,      HostExecutionId,
    HostWorkspace,          HostLogInput,     HostLogOutput,
    HostLogDerivedFrom,     HostLogMetric,    HostSetInt,
    HostSetReal,            HostSetText,      HostProgress,
    HostMessage,            HostCancelled,    HostFail,
    HostLastError,          HostResolveArtifact, HostStageOutputs,
    HostLogInputHash,
};

// A parameter's values as recorded on the execution: typed as declared; a
// multiple parameter as a JSON array of its values' text (a value that is not
// UTF-8, such as a path, as {"hex": …}: cmf/byte_strings.h).
Value Recorded(const PluginParam& p, const std::vector<std::string>& values) {
  if (p.multiple) {
    nlohmann::json array(values);
    EncodeByteStrings(array);
    return array.dump();
  }
  const std::string& v = values.front();
  switch (p.type) {
    case CMF_PARAM_INT:
      return static_cast<std::int64_t>(std::strtoll(v.c_str(), nullptr, 10));
    case CMF_PARAM_REAL:
      return std::strtod(v.c_str(), nullptr);
    case CMF_PARAM_BOOL:
      return v == "true";
    default:
      return v;
  }
}

}  // namespace

Result<StageOutcome> RunStage(Repo& repo, const PluginStage& stage,
                              const StageArgs& args,
                              const StageRunOptions& options) {
  cmf_context ctx;
  ctx.repo = &repo;
  ctx.stage = &stage;
  ctx.quiet = options.quiet;
  ctx.workspace = repo.workspace().string();
  RunSpec spec;
  spec.pipeline = options.pipeline;
  spec.stage = stage.name;
  spec.command = options.command;
  for (const PluginParam& p : stage.params) {
    auto given = args.find(p.name);
    if (given != args.end()) {
      ctx.values[p.name] = given->second;
    } else if (p.default_value) {
      ctx.values[p.name] = {*p.default_value};
    } else {
      continue;  // optional without a default: absent, not recorded
    }
    spec.params[p.name] = Recorded(p, ctx.values[p.name]);
  }

  // The module's hash pins the code that ran, beside the workspace's git
  // commit that Run::Start records.
  Result<std::string> module_hash = data::HashFile(stage.module);

  CMF_ASSIGN_OR_RETURN(Run run, Run::Start(repo, std::move(spec)));
  ctx.run = &run;
  ctx.id = run.id();
  CMF_RETURN_IF_ERROR(run.SetProperty("plugin", Value(stage.plugin)));
  CMF_RETURN_IF_ERROR(
      run.SetProperty("plugin_version", Value(stage.plugin_version)));
  if (module_hash.ok())
    CMF_RETURN_IF_ERROR(run.SetProperty("plugin_sha256", Value(*module_hash)));
  data::CrashPoint("run:started");

  int rc = 1;
  {
    CancelScope cancel;
    try {
      rc = stage.run(&kHost, &ctx);
    } catch (const std::exception& e) {
      ctx.fail_message = e.what();
      rc = 1;
    } catch (...) {
      ctx.fail_message = "the stage threw an unknown exception";
      rc = 1;
    }
    ClearProgress(&ctx);
  }

  StageOutcome outcome;
  outcome.id = run.id();
  if (int sig = g_cancel_signal.load(); sig != 0) {
    outcome.status = ExecStatus::kInterrupted;
    outcome.exit_code = 128 + sig;
    outcome.message = fmt::format("interrupted by {}",
                                  sig == SIGINT ? "SIGINT (Ctrl-C)" : "SIGTERM");
  } else if (rc != 0) {
    outcome.status = ExecStatus::kFailed;
    outcome.exit_code = 1;
    outcome.message =
        ctx.fail_message.empty()
            ? fmt::format("stage '{}' failed (it returned {})", stage.name, rc)
            : ctx.fail_message;
  } else {
    outcome.status = ExecStatus::kOk;
    outcome.exit_code = 0;
  }
  CMF_RETURN_IF_ERROR(
      run.Finish(outcome.status, outcome.exit_code, outcome.message));
  return outcome;
}

}  // namespace cmf
