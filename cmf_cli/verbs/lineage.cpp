#include "cmf/lineage.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "../json_output.h"
#include "../verb.h"

namespace cmf::cli {
namespace {

class LineageVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("target", target_,
                   "A recorded path, an execution id or an artifact hash (or a "
                   "unique prefix of either)")
        ->required();
    app.add_flag("--up", up_, "Ancestors: what it came from (the default)");
    app.add_flag("--down", down_, "Descendants: what was made from it");
    app.add_option("--depth", depth_, "At most this many edges from the target")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--format", format_,
                   "text (default), json, dot, or svg (laid out by Graphviz)")
        ->check(CLI::IsMember({"text", "json", "dot", "svg"}));
    app.add_flag("--json", json_, "The same as --format json");
  }

  int Run(Context& ctx) override {
    LineageOptions options;
    options.up = up_ || !down_;
    options.down = down_;
    if (depth_ >= 0) options.depth = depth_;
    // A path is taken relative to here, then to the workspace.
    std::string relative;
    std::error_code ec;
    std::filesystem::path abs =
        std::filesystem::absolute(target_, ec).lexically_normal();
    std::filesystem::path rel = abs.lexically_relative(ctx.repo->workspace());
    if (!rel.empty() && *rel.begin() != "..") relative = rel.string();
    Result<LineageTarget> target =
        ResolveLineageTarget(ctx.repo->store(), relative, target_);
    if (!target.ok()) return Fail(target.status());
    Result<LineageGraph> graph = Lineage(ctx.repo->store(), *target, options);
    if (!graph.ok()) return Fail(graph.status());
    if (json_ || format_ == "json") {
      if (!WriteLineageJson(*graph, stdout))
        return Fail(Status::IOError("cannot write the lineage to stdout"));
    } else if (format_ == "dot") {
      fmt::print("{}", LineageDot(*graph));
    } else if (format_ == "svg") {
      Result<std::string> svg = LineageSvg(*graph);
      if (!svg.ok()) return Fail(svg.status());
      fmt::print("{}", *svg);
    } else {
      fmt::print("{}", LineageText(*graph, options));
    }
    return kExitOk;
  }

 private:
  std::string target_;
  bool up_ = false;
  bool down_ = false;
  int depth_ = -1;
  std::string format_ = "text";
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeLineageVerb() {
  return std::make_unique<LineageVerb>();
}

}  // namespace cmf::cli
