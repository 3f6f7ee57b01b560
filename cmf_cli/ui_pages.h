// The pages of `cmf ui`: HTML made from the store, read-only. Every string
// that comes from the store (names, parameters, paths: other sites wrote
// them) is escaped; the only script is cmf's own, served at /static/ui.js,
// and the Content-Security-Policy header allows no other.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/http_server.h"
#include "cmf/repo.h"
#include "html_text.h"

namespace cmf::cli {

// The response to REQUEST: a page, a static file of cmf's own, or 404.
//   /                      executions, newest first (?stage=, ?pipeline=, ?n=)
//   /execution/ID          one execution: parameters, properties, inputs
//                          (with the runs that made them), outputs, a chart
//                          of its metrics, and for a dkl-al run its pictures
//   /artifacts             artifacts by kind, with whoever holds their bytes
//                          (?kind=, ?n=)
//   /sites                 the remotes and sites, and what each holds
//   /lineage/ID            the lineage graph of an execution or artifact
//                          (?down=1, ?depth=N; default 3)
//   /static/ui.css, /static/ui.js
HttpResponse UiRespond(Repo& repo, const HttpRequest& request);

struct UiExportSummary {
  std::size_t executions = 0;
  std::size_t pages = 0;      // files written, the style and script included
  std::size_t bytes = 0;      // their size
  std::size_t not_drawn = 0;  // lineage graphs too large to lay out
};

// The pages of WANTED (execution ids in any form ResolveExecution takes;
// empty: every execution) as static files under DIR, which open from disk
// with no server: DIR/index.html (the executions), execution/ID.html,
// lineage/ID.html and lineage/ID-down.html for each execution and each
// artifact it used or made (depth 3), static/ui.css and static/ui.js. Links
// are relative; a node of a drawing whose page was not written is not a link.
// Files are replaced whole (written beside and renamed); others in DIR are
// left alone.
Result<UiExportSummary> UiExport(Repo& repo, const std::filesystem::path& dir,
                                 const std::vector<std::string>& wanted);

}  // namespace cmf::cli
