#include "ui_pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

#include "cmf/byte_strings.h"
#include "cmf/clock.h"
#include "cmf/lineage.h"
#include "cmf/store.h"

namespace cmf::cli {
namespace {

constexpr std::string_view kCss = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
a { color: #0b5cad; text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
tr:nth-child(even) { background: #f4f6f8; } th { border-bottom: 1px solid #aaa; }
code, .id { font-family: ui-monospace, monospace; }
.ok { color: #1a7f37; } .failed, .interrupted { color: #c62828; } .running { color: #b26a00; }
.chart { display: inline-block; margin: 0 1.5em 1em 0; } .chart svg { background: #fafbfc; }
nav a { margin-right: 1em; } #filter { margin: .5em 0; width: 24em; }
)css";

// Hides the rows of the executions table whose text lacks what is typed.
constexpr std::string_view kJs = R"js(
document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('filter');
  if (!box) return;
  box.addEventListener('input', function () {
    var want = box.value.toLowerCase();
    document.querySelectorAll('#executions tbody tr').forEach(function (row) {
      row.hidden = want !== '' && row.textContent.toLowerCase().indexOf(want) < 0;
    });
  });
});
)js";

// A path segment or query value: every byte but [A-Za-z0-9-._~] as %XX.
std::string UrlPart(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string Page(std::string_view title, std::string_view body) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>{} - cmf</title><link rel=\"stylesheet\" href=\"/static/ui.css\">"
      "<script src=\"/static/ui.js\"></script></head><body>\n"
      "<nav><a href=\"/\">executions</a></nav>\n{}\n</body></html>\n",
      HtmlText(title), body);
}

HttpResponse Html(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse NotFound(std::string_view what) {
  return Html(404, Page("not found",
                        "<h1>Not found</h1><p>" + HtmlText(what) + "</p>"));
}

HttpResponse Error(const Status& st) {
  const int code = st.code() == Code::kNotFound          ? 404
                   : st.code() == Code::kInvalidArgument ? 400
                                                         : 500;
  return Html(code, Page("error", "<h1>Error</h1><p>" + HtmlText(st.message()) +
                                      "</p>"));
}

std::string StatusCell(ExecStatus s) {
  const std::string name(ToString(s));
  return fmt::format("<span class=\"{}\">{}</span>", name, name);
}

std::string Duration(const ExecutionRecord& r) {
  if (!r.ended_ms) return "";
  const double s = static_cast<double>(*r.ended_ms - r.started_ms) / 1000.0;
  return s < 120 ? fmt::format("{:.1f} s", s)
                 : fmt::format("{:.1f} min", s / 60);
}

std::string ExecutionLink(const std::string& id) {
  return fmt::format("<a class=\"id\" href=\"/execution/{}\">{}</a>",
                     UrlPart(id), HtmlText(ShortId(id)));
}

// A small integer from query parameter TEXT, or FALLBACK.
std::int64_t Number(const std::string& text, std::int64_t fallback,
                    std::int64_t most) {
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      n < 0) {
    return fallback;
  }
  return std::min(n, most);
}

HttpResponse Executions(Repo& repo, const HttpRequest& req) {
  ExecutionFilter filter;
  if (std::string p = req.Param("pipeline"); !p.empty()) filter.pipeline = p;
  if (std::string s = req.Param("stage"); !s.empty()) filter.stage = s;
  filter.limit = Number(req.Param("n"), 500, 100000);
  filter.events = false;
  filter.command = false;
  Result<std::vector<ExecutionRecord>> rows =
      repo.store().ListExecutions(filter);
  if (!rows.ok()) return Error(rows.status());
  std::string body = fmt::format(
      "<h1>Executions</h1>\n<p>{} shown, newest first{}{}. "
      "<input id=\"filter\" type=\"search\" placeholder=\"filter rows\"></p>\n"
      "<table id=\"executions\"><thead><tr><th>id</th><th>pipeline / "
      "stage</th><th>status</th><th>started (UTC)</th><th>duration</th>"
      "<th>parameters</th><th>site</th></tr></thead><tbody>\n",
      rows->size(),
      filter.pipeline ? ", pipeline " + HtmlText(*filter.pipeline) : "",
      filter.stage ? ", stage " + HtmlText(*filter.stage) : "");
  for (const ExecutionRecord& r : *rows) {
    std::string params;
    int shown = 0;
    for (const auto& [name, value] : r.params) {
      if (shown++ == 4) {
        params += " …";
        break;
      }
      params += (params.empty() ? "" : ", ") + HtmlText(name) + "=" +
                HtmlText(ToText(value));
    }
    body += fmt::format(
        "<tr><td>{}</td><td><a href=\"/?pipeline={}&amp;stage={}\">{}/{}</a>"
        "</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        ExecutionLink(r.id), UrlPart(r.pipeline), UrlPart(r.stage),
        HtmlText(r.pipeline), HtmlText(r.stage), StatusCell(r.status),
        FormatHumanUtc(r.started_ms), Duration(r), params, HtmlText(r.site));
  }
  body += "</tbody></table>";
  return Html(200, Page("executions", body));
}

// A line chart of one metric series, as inline SVG: steps across, values up;
// a NaN or infinite value breaks the line.
std::string Chart(const std::string& name, const std::vector<MetricPoint>& s) {
  constexpr double kW = 420, kH = 150, kPad = 8;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  std::int64_t first = s.empty() ? 0 : s.front().step, last = first;
  for (const MetricPoint& p : s) {
    first = std::min(first, p.step);
    last = std::max(last, p.step);
    if (!std::isfinite(p.value)) continue;
    lo = std::min(lo, p.value);
    hi = std::max(hi, p.value);
  }
  std::string lines;
  if (lo <= hi) {
    const double span = hi > lo ? hi - lo : 1.0;
    const double steps = last > first ? static_cast<double>(last - first) : 1.0;
    std::string points;
    auto flush = [&] {
      if (!points.empty()) {
        lines +=
            "<polyline fill=\"none\" stroke=\"#0b5cad\" stroke-width=\"1.5\" "
            "points=\"" +
            points + "\"/>";
      }
      points.clear();
    };
    for (const MetricPoint& p : s) {
      if (!std::isfinite(p.value)) {
        flush();
        continue;
      }
      const double x =
          kPad + (kW - 2 * kPad) * static_cast<double>(p.step - first) / steps;
      const double y = kH - kPad - (kH - 2 * kPad) * (p.value - lo) / span;
      points += fmt::format("{:.1f},{:.1f} ", x, y);
    }
    flush();
  }
  return fmt::format(
      "<figure class=\"chart\" data-series=\"{}\"><figcaption><b>{}</b> — "
      "{} steps, {} to {}</figcaption><svg width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" role=\"img\"><title>{}</title>{}</svg></figure>\n",
      HtmlText(name), HtmlText(name), s.size(),
      lo <= hi ? fmt::format("{:.4g}", lo) : "-",
      lo <= hi ? fmt::format("{:.4g}", hi) : "-", kW, kH, kW, kH,
      HtmlText(name), lines);
}

std::string Artifacts(const std::vector<ArtifactRef>& list) {
  if (list.empty()) return "<p>none</p>";
  std::string out = "<table><tr><th>path</th><th>kind</th><th>hash</th></tr>";
  for (const ArtifactRef& a : list) {
    out += fmt::format(
        "<tr><td><a href=\"/lineage/{}\">{}</a></td><td>{}</td><td "
        "class=\"id\">{}</td></tr>",
        UrlPart(a.hash), HtmlText(a.path), ToString(a.kind),
        HtmlText(a.hash.substr(0, 12)));
  }
  return out + "</table>";
}

HttpResponse Execution(Repo& repo, const std::string& typed) {
  Result<std::string> id = repo.store().ResolveExecution(typed);
  if (!id.ok()) return Error(id.status());
  Result<ExecutionRecord> r = repo.store().GetExecution(*id);
  if (!r.ok()) return Error(r.status());
  Result<MetricSeries> metrics = repo.store().GetMetrics(*id);
  if (!metrics.ok()) return Error(metrics.status());
  std::string command;
  for (const std::string& arg : r->command) {
    command += (command.empty() ? "" : " ") + HtmlText(arg);
  }
  std::string body = fmt::format(
      "<h1>{}/{} <span class=\"id\">{}</span></h1>\n<table>"
      "<tr><th>id</th><td class=\"id\">{}</td></tr>"
      "<tr><th>status</th><td>{}{}</td></tr>"
      "<tr><th>started</th><td>{} UTC</td></tr>"
      "<tr><th>duration</th><td>{}</td></tr>"
      "<tr><th>command</th><td><code>{}</code></td></tr>"
      "<tr><th>code</th><td class=\"id\">{}</td></tr>"
      "<tr><th>where</th><td>{}@{}, site {}</td></tr></table>\n"
      "<p><a href=\"/lineage/{}\">lineage up</a> · <a "
      "href=\"/lineage/{}?down=1\">lineage down</a></p>\n",
      HtmlText(r->pipeline), HtmlText(r->stage), HtmlText(ShortId(r->id)),
      HtmlText(r->id), StatusCell(r->status),
      r->message.empty() ? "" : " — " + HtmlText(r->message),
      FormatHumanUtc(r->started_ms), Duration(*r), command,
      r->code ? HtmlText(r->code->commit.substr(0, 12)) +
                    (r->code->dirty ? " (dirty)" : "")
              : "-",
      HtmlText(r->user), HtmlText(r->host), HtmlText(r->site), UrlPart(r->id),
      UrlPart(r->id));
  body += "<h2>Parameters</h2>";
  if (r->params.empty())
    body += "<p>none</p>";
  else {
    body += "<table id=\"params\">";
    for (const auto& [name, value] : r->params) {
      body += "<tr><th>" + HtmlText(name) + "</th><td>" +
              HtmlText(ToText(value)) + "</td></tr>";
    }
    body += "</table>";
  }
  body += "<h2>Inputs</h2>" + Artifacts(r->inputs);
  body += "<h2>Outputs</h2>" + Artifacts(r->outputs);
  body += "<h2>Step metrics</h2>\n";
  if (metrics->empty()) body += "<p>none</p>";
  for (const auto& [name, series] : *metrics) body += Chart(name, series);
  return Html(200, Page(r->stage + " " + ShortId(r->id), body));
}

HttpResponse LineagePage(Repo& repo, const HttpRequest& req,
                         const std::string& typed) {
  Result<LineageTarget> target = ResolveLineageTarget(repo.store(), "", typed);
  if (!target.ok()) return Error(target.status());
  LineageOptions options;
  options.down = req.Param("down") == "1";
  options.up = !options.down;
  options.depth = static_cast<int>(Number(req.Param("depth"), 3, 1000));
  Result<LineageGraph> graph = Lineage(repo.store(), *target, options);
  if (!graph.ok()) return Error(graph.status());
  Result<std::string> svg = LineageSvg(*graph, [](const LineageNode& n) {
    return (n.type == LineageNode::Type::kExecution ? "/execution/"
                                                    : "/lineage/") +
           UrlPart(n.id);
  });
  if (!svg.ok()) return Error(svg.status());
  // The drawing inline: what follows the XML prolog and doctype.
  std::size_t at = svg->find("<svg");
  const std::string here = "/lineage/" + UrlPart(target->id);
  std::string body = fmt::format(
      "<h1>Lineage of <span class=\"id\">{}</span></h1>\n<p>{} nodes, {} "
      "edges, {} to depth {} · <a href=\"{}?down={}&amp;depth={}\">{}</a> · "
      "<a href=\"{}?down={}&amp;depth={}\">deeper</a></p>\n<div "
      "id=\"lineage\">{}</div>",
      HtmlText(target->type == LineageNode::Type::kExecution
                   ? ShortId(target->id)
                   : target->id.substr(0, 12)),
      graph->nodes.size(), graph->edges.size(), options.down ? "down" : "up",
      *options.depth, here, options.down ? 0 : 1, *options.depth,
      options.down ? "up" : "down", here, options.down ? 1 : 0,
      *options.depth + 3, at == std::string::npos ? "" : svg->substr(at));
  return Html(200, Page("lineage", body));
}

}  // namespace

std::string HtmlText(std::string_view text) {
  // EscapeForDisplay quotes a name it escapes; the page shows it as is.
  std::string shown = EscapeForDisplay(text);
  std::string out;
  out.reserve(shown.size());
  for (char c : shown) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

HttpResponse UiRespond(Repo& repo, const HttpRequest& req) {
  const std::string& path = req.path;
  if (path == "/static/ui.css" || path == "/static/ui.js") {
    HttpResponse r;
    const bool css = path == "/static/ui.css";
    r.content_type =
        css ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
    r.body = std::string(css ? kCss : kJs);
    return r;
  }
  if (path == "/") return Executions(repo, req);
  for (std::string_view prefix : {"/execution/", "/lineage/"}) {
    if (path.size() > prefix.size() &&
        path.compare(0, prefix.size(), prefix) == 0) {
      const std::string rest = path.substr(prefix.size());
      if (rest.find('/') != std::string::npos) break;
      return prefix == "/execution/" ? Execution(repo, rest)
                                     : LineagePage(repo, req, rest);
    }
  }
  return NotFound("no page " + path);
}

}  // namespace cmf::cli
