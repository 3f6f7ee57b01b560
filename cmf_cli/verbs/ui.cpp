// cmf ui: serves the repository's pages (ui_pages.h) over HTTP until stopped.
#include <fmt/format.h>
#include <spawn.h>

#include <cstdio>

#include "../ui_pages.h"
#include "../verb.h"
#include "cmf/byte_strings.h"
#include "cmf/clock.h"
#include "cmf/http_server.h"

extern char** environ;

namespace cmf::cli {
namespace {

bool Loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// The value of cookie NAME in a Cookie header, or empty.
std::string Cookie(const std::string& header, const std::string& name) {
  std::size_t at = 0;
  while (at < header.size()) {
    std::size_t end = header.find(';', at);
    if (end == std::string::npos) end = header.size();
    std::string pair = header.substr(at, end - at);
    const std::size_t start = pair.find_first_not_of(' ');
    if (start != std::string::npos) pair.erase(0, start);
    if (pair.rfind(name + "=", 0) == 0) return pair.substr(name.size() + 1);
    at = end + 1;
  }
  return {};
}

// Equal, in a time that does not depend on where they differ.
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= a[i] ^ b[i];
  return diff == 0;
}

class UiVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("--port", port_, "The port to listen on (0: a free one)")
        ->check(CLI::Range(0, 65535));
    app.add_option("--host", host_,
                   "The address to listen on (127.0.0.1; another address "
                   "requires the token cmf prints)");
    app.add_flag("--open", open_, "Open the first page in a browser");
    app.add_option("--export", export_,
                   "Write the pages as static files into this folder instead "
                   "of serving them");
    app.add_option("executions", executions_,
                   "With --export: the executions to write (default: all)");
  }

  int Run(Context& ctx) override {
    if (!export_.empty()) return Export(*ctx.repo);
    if (!executions_.empty()) {
      return Fail(Status::InvalidArgument(
          "executions are named only with --export; cmf ui serves them all"));
    }
    // Off this machine, every request must carry the token (in the address
    // cmf prints, then in a cookie).
    std::string token;
    if (!Loopback(host_)) {
      Result<std::string> made = RandomHex(16);
      if (!made.ok()) return Fail(made.status());
      token = *made;
    }
    Repo& repo = *ctx.repo;
    int bound = 0;
    auto handle = [&](const HttpRequest& req) {
      HttpResponse refused;
      refused.content_type = "text/plain; charset=utf-8";
      if (token.empty()) {
        // Bound to this machine: a page asked for under another host name
        // is a web page elsewhere reaching in (DNS rebinding).
        const std::string host = req.Header("Host");
        const std::string port = ":" + std::to_string(bound);
        bool ours = false;
        for (const char* name : {"127.0.0.1", "localhost", "[::1]"}) {
          ours = ours || host == name + port || host == host_ + port;
        }
        if (!ours) {
          refused.status = 403;
          refused.body =
              "cmf ui: this server answers only to " + host_ + port + "\n";
          return refused;
        }
      }
      const std::string given = req.Param("token");
      const bool by_cookie =
          SameSecret(Cookie(req.Header("Cookie"), "cmf_token"), token);
      if (!token.empty() && !SameSecret(given, token) && !by_cookie) {
        refused.status = 403;
        refused.body = "cmf ui: open the address with the token cmf printed\n";
        return refused;
      }
      HttpResponse r = UiRespond(repo, req);
      r.headers.emplace_back(
          "Content-Security-Policy",
          "default-src 'none'; script-src 'self'; style-src 'self' "
          "'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
          "form-action 'self'; frame-ancestors 'none'");
      r.headers.emplace_back("X-Content-Type-Options", "nosniff");
      r.headers.emplace_back("Referrer-Policy", "no-referrer");
      if (!token.empty() && !by_cookie) {
        r.headers.emplace_back(
            "Set-Cookie",
            "cmf_token=" + token + "; Path=/; HttpOnly; SameSite=Strict");
      }
      return r;
    };
    auto listening = [&](int port) {
      bound = port;
      const std::string host =
          host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
      const std::string url =
          fmt::format("http://{}:{}/{}", host, port,
                      token.empty() ? "" : "?token=" + token);
      fmt::print("cmf ui: serving {} at {} (Ctrl-C stops)\n",
                 repo.workspace().string(), url);
      std::fflush(stdout);
      if (open_) {
        // xdg-open with the address as its one argument: no shell between.
        pid_t pid = 0;
        std::string arg = url;
        char* argv[] = {const_cast<char*>("xdg-open"), arg.data(), nullptr};
        if (::posix_spawnp(&pid, "xdg-open", nullptr, nullptr, argv, environ) !=
            0) {
          fmt::print(stderr,
                     "cmf: warning: could not open a browser (no xdg-open)\n");
        }
      }
    };
    Status st = ServeHttp(host_, port_, handle, listening);
    if (!st.ok()) return Fail(st);
    return kExitOk;
  }

 private:
  int Export(Repo& repo) {
    Result<UiExportSummary> done = UiExport(repo, export_, executions_);
    if (!done.ok()) return Fail(done.status());
    fmt::print(
        "cmf ui: wrote {} pages ({:.1f} KiB) of {} executions to {}; open "
        "{}\n",
        done->pages, static_cast<double>(done->bytes) / 1024.0,
        done->executions, EscapeForDisplay(export_),
        EscapeForDisplay(
            (std::filesystem::path(export_) / "index.html").string()));
    if (done->not_drawn > 0) {
      fmt::print(stderr,
                 "cmf: warning: {} lineage graphs were too large to draw; "
                 "their pages say so\n",
                 done->not_drawn);
    }
    return kExitOk;
  }

  std::string export_;
  std::vector<std::string> executions_;
  int port_ = 8780;
  std::string host_ = "127.0.0.1";
  bool open_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeUiVerb() { return std::make_unique<UiVerb>(); }

}  // namespace cmf::cli
