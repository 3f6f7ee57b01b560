// The HTTP module (http_module.h): cpp-httplib's server with one handler for
// every GET, called under a lock.
#include "http_module.h"

#include <httplib.h>

#include <mutex>

#include "cmf_build_id.h"
#include "cmf_config.h"

namespace cmf {
namespace {

Status Serve(const std::string& host, int port, const HttpHandler& handler,
             const std::function<void(int port)>& listening) {
  httplib::Server server;
  // SO_REUSEADDR (a restart binds again at once), not cpp-httplib's default
  // SO_REUSEPORT, with which a second `cmf ui` on the same port would share
  // the connections of the first instead of being refused.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  std::mutex one_at_a_time;
  auto get = [&](const httplib::Request& req, httplib::Response& res) {
    HttpRequest request;
    request.path = req.path;
    for (const auto& [name, value] : req.params) {
      request.params.emplace(name, value);
    }
    for (const auto& [name, value] : req.headers) {
      request.headers.emplace(name, value);
    }
    HttpResponse response;
    {
      std::lock_guard<std::mutex> hold(one_at_a_time);
      response = handler(request);
    }
    res.status = response.status;
    for (const auto& [name, value] : response.headers) {
      res.set_header(name.c_str(), value);
    }
    res.set_content(response.body, response.content_type.c_str());
  };
  server.Get(".*", get);
  auto refuse = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_content("only GET\n", "text/plain; charset=utf-8");
  };
  server.Post(".*", refuse);
  server.Put(".*", refuse);
  server.Delete(".*", refuse);
  server.Patch(".*", refuse);
  const int bound = port == 0 ? server.bind_to_any_port(host)
                    : server.bind_to_port(host, port) ? port
                                                      : -1;
  if (bound < 0) {
    return Status::IOError("cannot listen on " + host + ":" +
                           std::to_string(port) +
                           " (the port is taken, or the address is not this "
                           "machine's)");
  }
  listening(bound);
  if (!server.listen_after_bind()) {
    return Status::IOError("the server on " + host + " stopped");
  }
  return Status::Ok();
}

const HttpModule kModule = {
    {kHttpModuleAbi, CMF_VERSION, CMF_BUILD_ID},
    Serve,
};

}  // namespace
}  // namespace cmf

extern "C" __attribute__((visibility("default"))) const cmf::HttpModule*
cmf_http_module() {
  return &cmf::kModule;
}
