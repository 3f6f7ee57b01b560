// The pages of `cmf ui`: HTML made from the store, read-only. Every string
// that comes from the store (names, parameters, paths: other sites wrote
// them) is escaped; the only script is cmf's own, served at /static/ui.js,
// and the Content-Security-Policy header allows no other.
#pragma once

#include <string>
#include <string_view>

#include "cmf/http_server.h"
#include "cmf/repo.h"

namespace cmf::cli {

// TEXT as HTML text or an attribute's value: valid UTF-8 (bytes that are not
// are shown \xNN, as cmf shows them everywhere) with & < > " ' escaped.
std::string HtmlText(std::string_view text);

// The response to REQUEST: a page, a static file of cmf's own, or 404.
//   /                      executions, newest first (?stage=, ?pipeline=, ?n=)
//   /execution/ID          one execution, its inputs, outputs and metrics
//   /lineage/ID            the lineage graph of an execution or artifact
//                          (?down=1, ?depth=N; default 3)
//   /static/ui.css, /static/ui.js
HttpResponse UiRespond(Repo& repo, const HttpRequest& request);

}  // namespace cmf::cli
