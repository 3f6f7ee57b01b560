// ServeHttp (cmf/http_server.h): loads the module cmf-http.so on first use.
// (A file of its own, not http_server.cpp: the module's header includes
// cmf/http_server.h.)
#include "cmf/data/module_loader.h"
#include "cmf/http_server.h"
#include "http_module.h"

namespace cmf {

Status ServeHttp(const std::string& host, int port, const HttpHandler& handler,
                 const std::function<void(int port)>& listening) {
  CMF_ASSIGN_OR_RETURN(const HttpModule* http,
                       data::LoadModuleOnce<HttpModule>(
                           {"HTTP", "CMF_HTTP_MODULE", "core", "cmf-http.so",
                            "cmf_http_module", kHttpModuleAbi}));
  return http->serve(host, port, handler, listening);
}

}  // namespace cmf
