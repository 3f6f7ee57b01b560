// The Graphviz module (graphviz_module.h): lays a DOT graph out with `dot`
// through libgvc and renders it. Graphviz reports problems through a
// process-wide error hook; a render holds a lock so that the messages it
// gathers are its own.
#include "graphviz_module.h"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include <memory>
#include <mutex>

#include "cmf_build_id.h"
#include "cmf_config.h"

namespace cmf {
namespace {

std::mutex render_lock;
std::string* messages = nullptr;  // where the hook writes, under the lock

// One Graphviz context for the life of the process, used under the lock.
// Graphviz's text-layout plugin (pango) remembers the name of the last font
// it measured as a pointer into the context's font table; a context freed
// after each drawing left that pointer dangling, read by the next drawing
// (a use after free AddressSanitizer found in a server's second page).
GVC_t* Context() {
  static GVC_t* const gvc = gvContext();
  return gvc;
}

int GatherMessage(char* text) {
  if (messages != nullptr && text != nullptr && messages->size() < 4096) {
    *messages += text;
  }
  return 0;
}

Result<std::string> Render(const std::string& dot, const char* format) {
  std::lock_guard<std::mutex> hold(render_lock);
  std::string said;
  messages = &said;
  agseterr(AGWARN);
  agseterrf(GatherMessage);
  auto fail = [&](const std::string& what) {
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) {
      said.pop_back();
    }
    messages = nullptr;
    return Status::InvalidArgument(what + (said.empty() ? "" : ": " + said));
  };
  GVC_t* const gvc = Context();
  if (gvc == nullptr) return fail("Graphviz did not start");
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> graph(agmemread(dot.c_str()),
                                                      agclose);
  if (!graph) return fail("Graphviz cannot read the graph");
  if (gvLayout(gvc, graph.get(), "dot") != 0) {
    return fail("Graphviz cannot lay the graph out");
  }
  char* data = nullptr;
  unsigned int size = 0;
  const int rendered = gvRenderData(gvc, graph.get(), format, &data, &size);
  std::string out;
  if (rendered == 0 && data != nullptr) out.assign(data, size);
  if (data != nullptr) gvFreeRenderData(data);
  gvFreeLayout(gvc, graph.get());
  if (rendered != 0) {
    return fail(std::string("Graphviz cannot write ") + format);
  }
  messages = nullptr;
  return out;
}

const GraphvizModule kModule = {
    {kGraphvizModuleAbi, CMF_VERSION, CMF_BUILD_ID},
    Render,
};

}  // namespace
}  // namespace cmf

extern "C" __attribute__((visibility("default"))) const cmf::GraphvizModule*
cmf_graphviz_module() {
  return &cmf::kModule;
}
