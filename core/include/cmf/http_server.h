// A small HTTP server for `cmf ui`: the connection handling is cpp-httplib's,
// in the module cmf-http.so that only `cmf ui` loads (every other command
// starts without it and the libraries it links). The pages are the caller's:
// a handler turns each GET into a response.
#pragma once

#include <strings.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cmf/status.h"

namespace cmf {

struct HttpRequest {
  std::string path;                                // decoded, without the query
  std::multimap<std::string, std::string> params;  // the query's, decoded
  std::multimap<std::string, std::string> headers;  // names as sent
  // The first value of query parameter NAME, or empty.
  std::string Param(const std::string& name) const {
    auto it = params.find(name);
    return it == params.end() ? std::string() : it->second;
  }
  // The first value of header NAME (any case), or empty.
  std::string Header(const std::string& name) const {
    for (const auto& [key, value] : headers) {
      if (::strcasecmp(key.c_str(), name.c_str()) == 0) return value;
    }
    return {};
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/html; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Binds HOST:PORT (PORT 0: a free one), calls LISTENING with the port once it
// accepts connections, and answers every GET through HANDLER (one at a time:
// HANDLER need not be thread-safe) until the process is stopped. Other
// methods are refused (405, or 400 when cpp-httplib finds them malformed).
// IOError when the address cannot be bound or the module is not installed.
Status ServeHttp(const std::string& host, int port, const HttpHandler& handler,
                 const std::function<void(int port)>& listening);

}  // namespace cmf
