// Internal: Graphviz's layout, built as the module cmf-graphviz.so and loaded
// on first use (cmf/data/module_loader.h), so that only a command that draws a
// graph (`cmf lineage --format svg`) loads libgvc and the libraries it links.
// Both sides come from one build; the ABI number and the build id keep a
// module from another build out.
#pragma once

#include <string>

#include "cmf/data/module_loader.h"

namespace cmf {

constexpr int kGraphvizModuleAbi = 1;

struct GraphvizModule {
  data::ModuleHeader header;  // first: what the loader checks
  // DOT laid out with Graphviz's `dot` and written as FORMAT ("svg"): the
  // drawing, or InvalidArgument with Graphviz's own messages.
  Result<std::string> (*render)(const std::string& dot, const char* format);
};

}  // namespace cmf

// The module's one exported symbol.
extern "C" const cmf::GraphvizModule* cmf_graphviz_module();
