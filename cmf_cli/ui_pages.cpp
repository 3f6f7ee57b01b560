#include "ui_pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>

#include "cmf/artifact_data.h"
#include "cmf/byte_strings.h"
#include "cmf/clock.h"
#include "cmf/config.h"
#include "cmf/lineage.h"
#include "cmf/store.h"
#include "cmf/sync.h"
#include "html_text.h"
#include "ui_pictures.h"

namespace cmf::cli {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kCss = R"css(
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
a { color: #0b5cad; text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
tr:nth-child(even) { background: #f4f6f8; } th { border-bottom: 1px solid #aaa; }
code, .id { font-family: ui-monospace, monospace; }
.ok { color: #1a7f37; } .failed, .interrupted { color: #c62828; } .running { color: #b26a00; }
.chart { display: inline-block; margin: 0 1.5em 1em 0; } .chart svg { background: #fafbfc; }
nav a { margin-right: 1em; } #filter { margin: .5em 0; width: 24em; }
.picture { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
.picture svg { background: #000; }
.picture text { fill: #fff; stroke: #000; stroke-width: .35; paint-order: stroke; font-weight: bold; }
.columns { display: flex; flex-wrap: wrap; gap: 0 3em; }
.legend svg { vertical-align: middle; } .missing { color: #666; font-style: italic; }
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

// TEXT is all hex digits and dashes: an id or hash fit to name a file.
bool FileSafeId(const std::string& text) {
  return !text.empty() && text.size() <= 128 &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) || c == '-';
         });
}

// Where a page's links lead: the server's routes, or the files of an export.
struct Site {
  // Prepended to every link: "/" when served; "./" or "../" in files, which
  // open from disk wherever the folder is.
  std::string root = "/";
  bool files = false;
  // In files: the executions and artifacts that have pages; a link to any
  // other is left out.
  const std::set<std::string>* pages = nullptr;

  bool Has(const std::string& id) const {
    return !files || (pages != nullptr && pages->count(id) != 0);
  }
  std::string Home() const { return files ? root + "index.html" : root; }
  std::string Static(std::string_view name) const {
    return root + "static/" + std::string(name);
  }
  // "" when ID has no page.
  std::string Execution(const std::string& id) const {
    if (!Has(id)) return "";
    return root + "execution/" + UrlPart(id) + (files ? ".html" : "");
  }
  std::string LineageOf(const std::string& id, bool down) const {
    if (!Has(id)) return "";
    if (files)
      return root + "lineage/" + UrlPart(id) + (down ? "-down" : "") + ".html";
    return root + "lineage/" + UrlPart(id) + (down ? "?down=1" : "");
  }
};

// <a href="HREF">INNER</a>, or INNER alone when HREF is empty.
std::string Link(const std::string& href, const std::string& inner,
                 std::string_view attributes = "") {
  if (href.empty()) return inner;
  return fmt::format("<a{}{} href=\"{}\">{}</a>", attributes.empty() ? "" : " ",
                     attributes, href, inner);
}

std::string Page(const Site& site, std::string_view title,
                 std::string_view body) {
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<title>{} - cmf</title><link rel=\"stylesheet\" href=\"{}\">"
      "<script src=\"{}\"></script></head><body>\n"
      "<nav><a href=\"{}\">executions</a><a href=\"{}\">artifacts</a>"
      "<a href=\"{}\">sites</a></nav>\n{}\n</body></html>\n",
      HtmlText(title), site.Static("ui.css"), site.Static("ui.js"), site.Home(),
      site.root + (site.files ? "artifacts.html" : "artifacts"),
      site.root + (site.files ? "sites.html" : "sites"), body);
}

HttpResponse Html(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse NotFound(std::string_view what) {
  return Html(404, Page(Site(), "not found",
                        "<h1>Not found</h1><p>" + HtmlText(what) + "</p>"));
}

HttpResponse Error(const Status& st) {
  const int code = st.code() == Code::kNotFound          ? 404
                   : st.code() == Code::kInvalidArgument ? 400
                                                         : 500;
  return Html(code,
              Page(Site(), "error",
                   "<h1>Error</h1><p>" + HtmlText(st.message()) + "</p>"));
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

std::string ExecutionLink(const Site& site, const std::string& id) {
  return Link(site.Execution(id), HtmlText(ShortId(id)), "class=\"id\"");
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

// The executions table of FILTER's executions (ROWS).
std::string ExecutionsBody(const Site& site, const ExecutionFilter& filter,
                           const std::vector<ExecutionRecord>& rows) {
  std::string body = fmt::format(
      "<h1>Executions</h1>\n<p>{} shown, newest first{}{}. "
      "<input id=\"filter\" type=\"search\" placeholder=\"filter rows\"></p>\n"
      "<table id=\"executions\"><thead><tr><th>id</th><th>pipeline / "
      "stage</th><th>status</th><th>started (UTC)</th><th>duration</th>"
      "<th>parameters</th><th>site</th></tr></thead><tbody>\n",
      rows.size(),
      filter.pipeline ? ", pipeline " + HtmlText(*filter.pipeline) : "",
      filter.stage ? ", stage " + HtmlText(*filter.stage) : "");
  for (const ExecutionRecord& r : rows) {
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
    // Served, the stage is a link to its executions; in files the filter
    // box does that.
    const std::string stage = HtmlText(r.pipeline) + "/" + HtmlText(r.stage);
    body += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td></tr>\n",
        ExecutionLink(site, r.id),
        site.files ? stage
                   : Link(fmt::format("{}?pipeline={}&amp;stage={}", site.root,
                                      UrlPart(r.pipeline), UrlPart(r.stage)),
                          stage),
        StatusCell(r.status), FormatHumanUtc(r.started_ms), Duration(r), params,
        HtmlText(r.site));
  }
  body += "</tbody></table>";
  return body;
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
  const Site site;
  return Html(200,
              Page(site, "executions", ExecutionsBody(site, filter, *rows)));
}

// Colours of the lines of one chart, in order.
constexpr const char* kLineColours[] = {"#0b5cad", "#d1495b", "#2e933c",
                                        "#edae49", "#6a4c93", "#00798c"};

using NamedSeries = std::pair<std::string, const std::vector<MetricPoint>*>;

// A line chart of SERIES (one line each, sharing the axes), as inline SVG:
// steps across, values up; a NaN or infinite value breaks a line.
std::string Chart(const std::string& title,
                  const std::vector<NamedSeries>& series) {
  constexpr double kW = 420, kH = 150, kPad = 8;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool any = false;
  std::int64_t first = 0, last = 0;
  std::size_t points_total = 0;
  for (const auto& [name, s] : series) {
    for (const MetricPoint& p : *s) {
      first = any ? std::min(first, p.step) : p.step;
      last = any ? std::max(last, p.step) : p.step;
      any = true;
      ++points_total;
      if (!std::isfinite(p.value)) continue;
      lo = std::min(lo, p.value);
      hi = std::max(hi, p.value);
    }
  }
  std::string lines, legend, names;
  const double span = hi > lo ? hi - lo : 1.0;
  const double steps = last > first ? static_cast<double>(last - first) : 1.0;
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& [name, s] = series[k];
    const char* colour = kLineColours[k % std::size(kLineColours)];
    names += (names.empty() ? "" : " ") + HtmlText(name);
    if (series.size() > 1) {
      legend += fmt::format("<span style=\"color:{}\">━ {}</span> ", colour,
                            HtmlText(name));
    }
    if (lo > hi) continue;
    std::string points;
    auto flush = [&] {
      if (!points.empty()) {
        lines += fmt::format(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" "
            "points=\"{}\"/>",
            colour, points);
      }
      points.clear();
    };
    for (const MetricPoint& p : *s) {
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
      "{} {}, {} to {}, steps {} to {}{}</figcaption><svg width=\"{}\" "
      "height=\"{}\" viewBox=\"0 0 {} {}\" role=\"img\"><title>{}</title>{}"
      "</svg></figure>\n",
      names, HtmlText(title),
      series.size() == 1 ? (*series[0].second).size() : points_total,
      series.size() == 1 ? "steps" : "points",
      lo <= hi ? fmt::format("{:.4g}", lo) : "-",
      lo <= hi ? fmt::format("{:.4g}", hi) : "-", first, last,
      legend.empty() ? "" : "<br>" + legend, kW, kH, kW, kH, HtmlText(title),
      lines);
}

// The charts of an execution's metrics: the series that belong together on
// one chart (a stage's pairs, and NAME/LABEL series by NAME: reptile-eval's
// rmse/cold, rmse/meta50, ...), then one chart for each other series.
std::string Charts(const std::string& stage, const MetricSeries& metrics) {
  std::vector<std::pair<std::string, std::vector<std::string>>> groups;
  if (stage == "reptile") {
    groups.push_back(
        {"meta_loss and adapted_loss", {"meta_loss", "adapted_loss"}});
  } else if (stage == "dkl-al" || stage == "aimd-al") {
    groups.push_back({"uncertainty: at the chosen point and the largest",
                      {"uncertainty", "max_uncertainty"}});
  }
  std::map<std::string, std::vector<std::string>> by_prefix;
  for (const auto& [name, s] : metrics) {
    const std::size_t slash = name.find('/');
    if (slash != std::string::npos && slash > 0) {
      by_prefix[name.substr(0, slash)].push_back(name);
    }
  }
  for (auto& [prefix, names] : by_prefix) {
    if (names.size() > 1) {
      groups.push_back({prefix, names});
    }
  }
  std::set<std::string> drawn;
  std::string out;
  for (const auto& [title, names] : groups) {
    std::vector<NamedSeries> series;
    for (const std::string& name : names) {
      if (auto it = metrics.find(name); it != metrics.end()) {
        series.push_back({name, &it->second});
      }
    }
    if (series.size() < 2) continue;  // a lone series gets its own chart
    for (const NamedSeries& s : series) drawn.insert(s.first);
    out += Chart(title, series);
  }
  for (const auto& [name, s] : metrics) {
    if (!drawn.count(name)) out += Chart(name, {{name, &s}});
  }
  return out;
}

// The executions that made artifact HASH (one step up its lineage).
std::vector<std::string> MadeBy(Repo& repo, const std::string& hash) {
  LineageOptions options;
  options.depth = 1;
  Result<LineageGraph> g =
      Lineage(repo.store(), {LineageNode::Type::kArtifact, hash}, options);
  std::vector<std::string> out;
  if (!g.ok()) return out;
  for (const LineageNode& n : g->nodes) {
    if (n.type == LineageNode::Type::kExecution) out.push_back(n.id);
  }
  return out;
}

// A table of artifacts; with MADE_BY, a column of the executions that made
// each (a reptile run's tasks lead to the runs that measured them).
std::string Artifacts(Repo& repo, const Site& site,
                      const std::vector<ArtifactRef>& list, bool made_by) {
  if (list.empty()) return "<p>none</p>";
  std::string out =
      fmt::format("<table><tr><th>path</th><th>kind</th><th>hash</th>{}</tr>",
                  made_by ? "<th>made by</th>" : "");
  for (const ArtifactRef& a : list) {
    std::string makers;
    if (made_by) {
      for (const std::string& id : MadeBy(repo, a.hash)) {
        Result<ExecutionRecord> e = repo.store().GetExecution(id);
        makers += (makers.empty() ? "" : ", ") + ExecutionLink(site, id) +
                  (e.ok() ? " " + HtmlText(e->stage) : "");
      }
      makers = "<td>" + makers + "</td>";
    }
    out +=
        fmt::format("<tr><td>{}</td><td>{}</td><td class=\"id\">{}</td>{}</tr>",
                    Link(site.LineageOf(a.hash, false), HtmlText(a.path)),
                    ToString(a.kind), HtmlText(a.hash.substr(0, 12)), makers);
  }
  return out + "</table>";
}

// reptile-eval's summary (its properties mean_rmse_LABEL, rmse_ci95_LABEL):
// each start against the cold one.
std::string EvalTable(const std::map<std::string, Value>& properties) {
  std::map<std::string, std::pair<double, double>> rows;
  for (const auto& [name, value] : properties) {
    for (const std::string prefix : {"mean_rmse_", "rmse_ci95_"}) {
      if (name.rfind(prefix, 0) != 0) continue;
      const double v = std::strtod(ToText(value).c_str(), nullptr);
      auto& row = rows[name.substr(prefix.size())];
      (prefix == "mean_rmse_" ? row.first : row.second) = v;
    }
  }
  if (rows.empty()) return "";
  const auto cold = rows.find("cold");
  std::string out =
      "<h2>Held-out RMSE by start</h2><table id=\"eval\"><tr><th>start</th>"
      "<th>mean RMSE</th><th>95 % CI</th><th>against cold</th></tr>";
  for (const auto& [label, row] : rows) {
    std::string change;
    if (cold != rows.end() && label != "cold" && cold->second.first > 0) {
      change =
          fmt::format("{:+.1f} %", 100 * (row.first / cold->second.first - 1));
    }
    out += fmt::format(
        "<tr><td>{}</td><td>{:.4f}</td><td>± {:.4f}</td><td>{}</td></tr>",
        HtmlText(label), row.first, row.second, change);
  }
  return out + "</table>\n";
}

// The page of execution ID (a full id).
Result<std::string> ExecutionPage(Repo& repo, const Site& site,
                                  const std::string& id) {
  Result<ExecutionRecord> r = repo.store().GetExecution(id);
  if (!r.ok()) return r.status();
  Result<MetricSeries> metrics = repo.store().GetMetrics(id);
  if (!metrics.ok()) return metrics.status();
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
      "<p>{} · {}</p>\n",
      HtmlText(r->pipeline), HtmlText(r->stage), HtmlText(ShortId(r->id)),
      HtmlText(r->id), StatusCell(r->status),
      r->message.empty() ? "" : " — " + HtmlText(r->message),
      FormatHumanUtc(r->started_ms), Duration(*r), command,
      r->code ? HtmlText(r->code->commit.substr(0, 12)) +
                    (r->code->dirty ? " (dirty)" : "")
              : "-",
      HtmlText(r->user), HtmlText(r->host), HtmlText(r->site),
      Link(site.LineageOf(r->id, false), "lineage up"),
      Link(site.LineageOf(r->id, true), "lineage down"));
  // What a run is about first: its pictures and curves; then its settings
  // and data.
  if (r->stage == "dkl-al") body += DklFigures(repo, *r, *metrics);
  if (r->stage == "aimd-al") body += AimdFigures(repo, *r);
  body += "<h2>Step metrics</h2>\n";
  if (metrics->empty()) body += "<p>none</p>";
  body += Charts(r->stage, *metrics);
  Result<std::map<std::string, Value>> properties =
      repo.store().GetProperties(RecordType::kExecution, id);
  if (!properties.ok()) return properties.status();
  if (r->stage == "reptile-eval") body += EvalTable(*properties);
  auto table = [](const char* table_id, const std::map<std::string, Value>& m) {
    if (m.empty()) return std::string("<p>none</p>");
    std::string t = fmt::format("<table id=\"{}\">", table_id);
    for (const auto& [name, value] : m) {
      t += "<tr><th>" + HtmlText(name) + "</th><td>" + HtmlText(ToText(value)) +
           "</td></tr>";
    }
    return t + "</table>";
  };
  body += "<div class=\"columns\"><section><h2>Parameters</h2>" +
          table("params", r->params) +
          "</section><section><h2>Properties</h2>" +
          table("properties", *properties) + "</section></div>\n";
  body += "<h2>Inputs</h2>" + Artifacts(repo, site, r->inputs, true);
  body += "<h2>Outputs</h2>" + Artifacts(repo, site, r->outputs, false);
  return Page(site, r->stage + " " + ShortId(r->id), body);
}

HttpResponse Execution(Repo& repo, const std::string& typed) {
  Result<std::string> id = repo.store().ResolveExecution(typed);
  if (!id.ok()) return Error(id.status());
  Result<std::string> page = ExecutionPage(repo, Site(), *id);
  if (!page.ok()) return Error(page.status());
  return Html(200, std::move(*page));
}

// Runs of at least this many executions of one stage, each using what the
// one before made, are drawn as one node (CollapseRuns).
constexpr std::size_t kCollapseRun = 4;

// The lineage page of TARGET, up or down (OPTIONS) from it; runs collapsed
// but those whose first execution is in EXPANDED.
Result<std::string> LineageBody(Repo& repo, const Site& site,
                                const LineageTarget& target,
                                const LineageOptions& options,
                                const std::set<std::string>& expanded = {}) {
  Result<LineageGraph> walked = Lineage(repo.store(), target, options);
  if (!walked.ok()) return walked.status();
  const std::size_t drawn_before = walked->nodes.size();
  const LineageGraph graph = CollapseRuns(*walked, kCollapseRun, expanded);
  const std::string here = site.root + "lineage/" + UrlPart(target.id);
  // A collapsed run links to the page with it expanded (served), or to its
  // first execution (files).
  auto expand_link = [&](const LineageNode& n) {
    if (site.files) return site.Execution(n.id);
    std::string ids;
    for (const std::string& id : expanded) ids += UrlPart(id) + ",";
    return fmt::format("{}?down={}&depth={}&expand={}{}", here,
                       options.down ? 1 : 0, *options.depth, ids,
                       UrlPart(n.id));
  };
  Result<std::string> svg = LineageSvg(graph, [&](const LineageNode& n) {
    if (n.collapsed.size() > 1) return expand_link(n);
    return n.type == LineageNode::Type::kExecution
               ? site.Execution(n.id)
               : site.LineageOf(n.id, options.down);
  });
  if (!svg.ok()) return svg.status();
  // The drawing inline: what follows the XML prolog and doctype.
  std::size_t at = svg->find("<svg");
  // Served, any depth may be asked for; in files, up and down at the
  // default depth.
  std::string other;
  if (site.files) {
    other = Link(site.LineageOf(target.id, !options.down),
                 options.down ? "up" : "down");
  } else {
    other = fmt::format(
        "<a href=\"{}?down={}&amp;depth={}\">{}</a> · "
        "<a href=\"{}?down={}&amp;depth={}\">deeper</a>",
        here, options.down ? 0 : 1, *options.depth,
        options.down ? "up" : "down", here, options.down ? 1 : 0,
        *options.depth + 3);
  }
  std::size_t runs = 0;
  for (const LineageNode& n : graph.nodes) runs += n.collapsed.size() > 1;
  std::string collapsed;
  if (runs > 0) {
    collapsed = fmt::format(
        " ({} of {} nodes drawn: {} runs of one stage shown as one node each; "
        "click one to expand it)",
        graph.nodes.size(), drawn_before, runs);
  }
  std::string body = fmt::format(
      "<h1>Lineage of <span class=\"id\">{}</span></h1>\n<p>{} nodes, {} "
      "edges, {} to depth {}{} · {}</p>\n<div id=\"lineage\">{}</div>",
      HtmlText(target.type == LineageNode::Type::kExecution
                   ? ShortId(target.id)
                   : target.id.substr(0, 12)),
      drawn_before, walked->edges.size(), options.down ? "down" : "up",
      *options.depth, collapsed, other,
      at == std::string::npos ? "" : svg->substr(at));
  return Page(site, "lineage", body);
}

HttpResponse LineagePage(Repo& repo, const HttpRequest& req,
                         const std::string& typed) {
  Result<LineageTarget> target = ResolveLineageTarget(repo.store(), "", typed);
  if (!target.ok()) return Error(target.status());
  LineageOptions options;
  options.down = req.Param("down") == "1";
  options.up = !options.down;
  options.depth = static_cast<int>(Number(req.Param("depth"), 3, 1000));
  // ?expand=ID,ID: the runs, by their first execution, drawn in full.
  std::set<std::string> expanded;
  const std::string expand = req.Param("expand");
  for (std::size_t at = 0; at <= expand.size();) {
    std::size_t end = expand.find(',', at);
    if (end == std::string::npos) end = expand.size();
    const std::string id = expand.substr(at, end - at);
    if (FileSafeId(id) && expanded.size() < 1000) expanded.insert(id);
    at = end + 1;
  }
  Result<std::string> page =
      LineageBody(repo, Site(), *target, options, expanded);
  if (!page.ok()) return Error(page.status());
  return Html(200, std::move(*page));
}

// Who holds bytes: this site, a remote's object store, or another site (by
// the hosts its executions ran on).
class Holders {
 public:
  // The repository is open read-only (no config of its own): its config is
  // read here.
  explicit Holders(const Repo& repo) {
    Result<Config> config = Config::Open(repo.cmf_dir() / "config");
    if (!config.ok()) return;
    site_ = config->GetOr("core.site", "");
    Result<std::vector<RemoteSpec>> remotes = ListRemotes(*config);
    if (!remotes.ok()) return;
    for (const RemoteSpec& r : *remotes) {
      const std::string id =
          config->GetOr("remote." + r.name + ".store-id", "");
      if (!id.empty()) stores_[id] = r.name;
      remotes_.push_back(r);
    }
  }
  const std::string& site() const { return site_; }
  const std::vector<RemoteSpec>& remotes() const { return remotes_; }
  std::string Name(const std::string& id) const {
    if (id == site_) return "this site";
    if (auto it = stores_.find(id); it != stores_.end()) {
      return "remote " + HtmlText(it->second);
    }
    return "site " + HtmlText(id);
  }
  std::string StoreOf(const std::string& name) const {
    for (const auto& [id, remote] : stores_) {
      if (remote == name) return id;
    }
    return "";
  }

 private:
  std::string site_;
  std::map<std::string, std::string> stores_;  // store id -> remote
  std::vector<RemoteSpec> remotes_;
};

std::string Bytes(std::uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  if (n < (1u << 20)) return fmt::format("{:.1f} KiB", n / 1024.0);
  if (n < (1u << 30)) return fmt::format("{:.1f} MiB", n / 1048576.0);
  return fmt::format("{:.2f} GiB", n / 1073741824.0);
}

// Artifacts by kind (?kind=), each with its paths and every place that holds
// its bytes.
Result<std::string> ArtifactsBody(Repo& repo, const Site& site,
                                  const std::string& kind_text,
                                  std::int64_t limit) {
  std::optional<ArtifactKind> kind;
  if (!kind_text.empty()) {
    kind = ParseArtifactKind(kind_text);
    if (!kind) return Status::InvalidArgument("no artifact kind " + kind_text);
  }
  Result<std::vector<Store::ArtifactRow>> rows =
      repo.store().QueryArtifacts(kind, limit);
  if (!rows.ok()) return rows.status();
  std::map<ArtifactKind, std::vector<const Store::ArtifactRow*>> by_kind;
  for (const Store::ArtifactRow& row : *rows) {
    by_kind[row.ref.kind].push_back(&row);
  }
  const Holders holders(repo);
  std::string body =
      fmt::format("<h1>Artifacts</h1>\n<p>{} shown{}, by kind ·", rows->size(),
                  kind ? ", kind " + std::string(ToString(*kind)) : "");
  for (const char* k :
       {"dataset", "dataslice", "model", "metrics", "file", "directory"}) {
    body += site.files ? fmt::format(" {}", k)
                       : fmt::format(" <a href=\"{}artifacts?kind={}\">{}</a>",
                                     site.root, k, k);
  }
  body += "</p>\n";
  for (const auto& [k, list] : by_kind) {
    body += fmt::format(
        "<h2>{} ({})</h2><table class=\"artifacts\" data-kind=\"{}\"><tr>"
        "<th>path</th><th>size</th><th>hash</th><th>bytes held by</th></tr>",
        ToString(k), list.size(), ToString(k));
    for (const Store::ArtifactRow* row : list) {
      std::string paths;
      for (const std::string& p : row->paths) {
        paths += (paths.empty() ? "" : "<br>") + HtmlText(p);
      }
      if (paths.empty()) paths = HtmlText(row->ref.hash.substr(0, 12));
      std::string where;
      Result<std::vector<std::string>> at =
          repo.store().Locations(row->ref.hash);
      std::vector<std::string> ids = at.ok() ? *at : std::vector<std::string>();
      if (HeldHere(repo, row->ref.hash) &&
          std::find(ids.begin(), ids.end(), holders.site()) == ids.end()) {
        ids.insert(ids.begin(), holders.site());
      }
      for (const std::string& id : ids) {
        where += (where.empty() ? "" : ", ") + holders.Name(id);
      }
      body += fmt::format(
          "<tr><td>{}</td><td>{}</td><td class=\"id\">{}</td><td>{}</td></tr>",
          Link(site.LineageOf(row->ref.hash, false), paths),
          Bytes(row->ref.size), HtmlText(row->ref.hash.substr(0, 12)),
          where.empty() ? "nowhere known" : where);
    }
    body += "</table>\n";
  }
  return Page(site, "artifacts", body);
}

// The sites: this one, the remotes, and every site that recorded executions;
// what each holds. What sits in a remote's store is what moved there.
Result<std::string> SitesBody(Repo& repo, const Site& site) {
  const Holders holders(repo);
  struct Seen {
    std::int64_t executions = 0;
    std::set<std::string> hosts;
  };
  std::map<std::string, Seen> sites;
  ExecutionFilter all;
  all.events = false;
  all.command = false;
  Status st =
      repo.store().ScanExecutions(all, [&](std::vector<ExecutionRecord>& page) {
        for (const ExecutionRecord& r : page) {
          Seen& s = sites[r.site];
          ++s.executions;
          if (s.hosts.size() < 4) s.hosts.insert(r.host);
        }
        return Status::Ok();
      });
  if (!st.ok()) return st;
  struct Held {
    std::int64_t artifacts = 0;
    std::uint64_t bytes = 0;
  };
  std::map<std::string, Held> held;
  Result<std::vector<Store::ArtifactRow>> rows =
      repo.store().QueryArtifacts(std::nullopt, std::nullopt);
  if (!rows.ok()) return rows.status();
  for (const Store::ArtifactRow& row : *rows) {
    Result<std::vector<std::string>> at = repo.store().Locations(row.ref.hash);
    if (!at.ok()) return at.status();
    // This site holds what its cache holds, sealed as a location or not yet.
    if (HeldHere(repo, row.ref.hash) &&
        std::find(at->begin(), at->end(), holders.site()) == at->end()) {
      at->push_back(holders.site());
    }
    for (const std::string& id : *at) {
      ++held[id].artifacts;
      held[id].bytes += row.ref.size;
    }
  }
  std::string body =
      "<h1>Sites</h1>\n<p>Every place this repository knows of: this site, "
      "the remotes, and each site whose executions it holds. A remote's store "
      "holds what was pushed to it: the bytes that moved.</p>\n"
      "<h2>Remotes</h2>";
  if (holders.remotes().empty())
    body += "<p>none</p>";
  else {
    body +=
        "<table id=\"remotes\"><tr><th>name</th><th>address</th><th>store "
        "id</th><th>artifacts held</th><th>their bytes</th></tr>";
    for (const RemoteSpec& r : holders.remotes()) {
      const std::string id = holders.StoreOf(r.name);
      const Held h = id.empty() ? Held{} : held[id];
      body += fmt::format(
          "<tr><td>{}</td><td><code>{}</code></td><td class=\"id\">{}</td>"
          "<td>{}</td><td>{}</td></tr>",
          HtmlText(r.name),
          HtmlText(r.url.empty() ? r.metadata + " " + r.data : r.url),
          id.empty() ? "(not pushed or pulled yet)" : HtmlText(id), h.artifacts,
          Bytes(h.bytes));
    }
    body += "</table>";
  }
  body +=
      "<h2>Sites</h2><table id=\"sites\"><tr><th>site</th><th>hosts</th>"
      "<th>executions</th><th>artifacts held</th><th>their bytes</th></tr>";
  std::set<std::string> ids;
  for (const auto& [id, seen] : sites) ids.insert(id);
  if (!holders.site().empty()) ids.insert(holders.site());
  for (const std::string& id : ids) {
    const Seen& seen = sites[id];
    std::string hosts;
    for (const std::string& h : seen.hosts) {
      hosts += (hosts.empty() ? "" : ", ") + HtmlText(h);
    }
    const Held h = held[id];
    body += fmt::format(
        "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        HtmlText(id.empty() ? "(none recorded)" : id),
        id == holders.site() ? " (this site)" : "", hosts, seen.executions,
        h.artifacts, Bytes(h.bytes));
  }
  body += "</table>";
  return Page(site, "sites", body);
}

// Writes CONTENT to PATH through a temporary beside it, so that a page is
// whole or absent.
Status WritePage(const fs::path& path, std::string_view content) {
  const fs::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.close();
    if (!out) {
      std::error_code ec;
      fs::remove(temp, ec);
      return Status::IOError("cannot write '" + temp.string() + "'");
    }
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    return Status::IOError("cannot write '" + path.string() +
                           "': " + ec.message());
  }
  return Status::Ok();
}

}  // namespace

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
  if (path == "/artifacts" || path == "/sites") {
    Result<std::string> page =
        path == "/sites" ? SitesBody(repo, Site())
                         : ArtifactsBody(repo, Site(), req.Param("kind"),
                                         Number(req.Param("n"), 2000, 1000000));
    if (!page.ok()) return Error(page.status());
    return Html(200, std::move(*page));
  }
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

namespace cmf::cli {

Result<UiExportSummary> UiExport(Repo& repo, const fs::path& dir,
                                 const std::vector<std::string>& wanted) {
  // The executions: those named, else every one, newest first.
  std::vector<ExecutionRecord> executions;
  if (wanted.empty()) {
    ExecutionFilter all;
    Result<std::vector<ExecutionRecord>> rows =
        repo.store().ListExecutions(all);
    if (!rows.ok()) return rows.status();
    executions = std::move(*rows);
  } else {
    std::set<std::string> seen;
    for (const std::string& typed : wanted) {
      Result<std::string> id = repo.store().ResolveExecution(typed);
      if (!id.ok()) return id.status();
      if (!seen.insert(*id).second) continue;
      Result<ExecutionRecord> r = repo.store().GetExecution(*id);
      if (!r.ok()) return r.status();
      executions.push_back(std::move(*r));
    }
    std::sort(executions.begin(), executions.end(),
              [](const ExecutionRecord& a, const ExecutionRecord& b) {
                return a.started_ms > b.started_ms;
              });
  }
  // Every page written: the executions and the artifacts they used or made.
  // An id that is not hex (another site's bytes) names no file.
  std::set<std::string> pages;
  std::vector<LineageTarget> targets;
  for (const ExecutionRecord& r : executions) {
    if (FileSafeId(r.id) && pages.insert(r.id).second) {
      targets.push_back({LineageNode::Type::kExecution, r.id});
    }
    for (const auto* list : {&r.inputs, &r.outputs}) {
      for (const ArtifactRef& a : *list) {
        if (FileSafeId(a.hash) && pages.insert(a.hash).second) {
          targets.push_back({LineageNode::Type::kArtifact, a.hash});
        }
      }
    }
  }
  std::error_code ec;
  for (const char* sub : {"", "execution", "lineage", "static"}) {
    fs::create_directories(dir / sub, ec);
    if (ec) {
      return Status::IOError("cannot create '" + (dir / sub).string() +
                             "': " + ec.message());
    }
  }
  UiExportSummary summary;
  auto write = [&](const fs::path& path, std::string_view content) {
    Status st = WritePage(path, content);
    if (st.ok()) {
      ++summary.pages;
      summary.bytes += content.size();
    }
    return st;
  };
  Site top;
  top.root = "./";
  top.files = true;
  top.pages = &pages;
  Site below = top;
  below.root = "../";
  if (Status st = write(dir / "static" / "ui.css", kCss); !st.ok()) return st;
  if (Status st = write(dir / "static" / "ui.js", kJs); !st.ok()) return st;
  ExecutionFilter shown;
  if (Status st = write(
          dir / "index.html",
          Page(top, "executions", ExecutionsBody(top, shown, executions)));
      !st.ok()) {
    return st;
  }
  for (const auto& [name, made] :
       {std::pair<const char*, Result<std::string>>{
            "artifacts.html", ArtifactsBody(repo, top, "", 100000)},
        {"sites.html", SitesBody(repo, top)}}) {
    if (!made.ok()) return made.status();
    if (Status st = write(dir / name, *made); !st.ok()) return st;
  }
  for (const ExecutionRecord& r : executions) {
    if (!FileSafeId(r.id)) continue;
    Result<std::string> page = ExecutionPage(repo, below, r.id);
    if (!page.ok()) return page.status();
    Status st = write(dir / "execution" / (r.id + ".html"), *page);
    if (!st.ok()) return st;
  }
  // A graph that cannot be drawn (too large) is a page that says so; the
  // others are written all the same.
  for (const LineageTarget& target : targets) {
    for (bool down : {false, true}) {
      LineageOptions options;
      options.up = !down;
      options.down = down;
      options.depth = 3;
      Result<std::string> page = LineageBody(repo, below, target, options);
      if (!page.ok()) {
        if (page.status().code() != Code::kInvalidArgument) {
          return page.status();
        }
        ++summary.not_drawn;
        page = Page(
            below, "lineage",
            "<h1>Lineage</h1><p>" + HtmlText(page.status().message()) + "</p>");
      }
      Status st =
          write(dir / "lineage" / (target.id + (down ? "-down" : "") + ".html"),
                *page);
      if (!st.ok()) return st;
    }
  }
  summary.executions = executions.size();
  return summary;
}

}  // namespace cmf::cli
