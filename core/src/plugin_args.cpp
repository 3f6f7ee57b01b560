// A stage's parameters (cmf/plugin_host.h): the command line checked against
// the schema the plugin declares, and the help that the schema makes.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "cmf/plugin_host.h"

namespace cmf {

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
    return Status::InvalidArgument(
        fmt::format("parameter '--{}' wants {}, not '{}'", p.name, wants, v));
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
      return Status::InvalidArgument(fmt::format("stage '{}' needs '--{}' ({})",
                                                 stage.name, p.name, p.help));
    }
  }
  return out;
}

std::string StageHelp(const PluginStage& stage) {
  std::string out = fmt::format("{}\n\nUsage: cmf run [--pipeline P] [-q] {}",
                                stage.summary, stage.name);
  for (const PluginParam& p : stage.params)
    if (p.required)
      out += fmt::format(" --{} {}", p.name, ParamTypeName(p.type));
  out += " [--PARAM VALUE]...\n\nParameters:\n";
  std::size_t width = 0;
  std::vector<std::string> heads;
  for (const PluginParam& p : stage.params) {
    std::string head = fmt::format(
        "  {}--{} {}{}", p.short_name ? fmt::format("-{}, ", p.short_name) : "",
        p.name,
        p.type == CMF_PARAM_BOOL ? "[BOOL]"
                                 : std::string(ParamTypeName(p.type)),
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
