// Internal: cpp-httplib's server, built as the module cmf-http.so and loaded
// by ServeHttp (cmf/http_server.h) on first use. Both sides come from one
// build; the ABI number and the build id keep a module from another build out.
#pragma once

#include "cmf/data/module_loader.h"
#include "cmf/http_server.h"

namespace cmf {

constexpr int kHttpModuleAbi = 1;

struct HttpModule {
  data::ModuleHeader header;  // first: what the loader checks
  Status (*serve)(const std::string& host, int port, const HttpHandler& handler,
                  const std::function<void(int port)>& listening);
};

}  // namespace cmf

// The module's one exported symbol.
extern "C" const cmf::HttpModule* cmf_http_module();
