// cmf ui, end to end: the real binary serving a real repository on a free
// port, read over a TCP connection as a browser would.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>
#include <thread>

#include "e2e/workspace.h"
#include "support.h"

extern char** environ;

using cmf::test::Ok;
using cmf::test::Workspace;
using nlohmann::json;

namespace {

struct Reply {
  int status = 0;
  std::string headers, body;
};

// `cmf ui ARGS` in W, until the test ends; the address it prints.
class UiServer {
 public:
  UiServer(const Workspace& w, std::vector<std::string> args) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    std::vector<std::string> argv = {cmf::test::CmfBinary(), "ui"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_argv;
    for (std::string& a : argv) c_argv.push_back(a.data());
    c_argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addchdir_np(&actions, (w / "").c_str());
    const int rc = ::posix_spawn(&pid_, c_argv[0], &actions, nullptr,
                                 c_argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    REQUIRE(rc == 0);
    // Its first line says where it listens (or it ends with an error).
    char c;
    while (line_.find('\n') == std::string::npos &&
           ::read(out[0], &c, 1) == 1) {
      line_ += c;
    }
    ::close(out[0]);
    std::smatch m;
    if (std::regex_search(
            line_, m,
            std::regex("http://[^:/]+:([0-9]+)/(\\?token=([0-9a-f]+))?"))) {
      port_ = std::stoi(m[1]);
      token_ = m[3];
    }
  }
  ~UiServer() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  const std::string& line() const { return line_; }
  int port() const { return port_; }
  const std::string& token() const { return token_; }

  // GET PATH with the Host header HOST (default: the address it printed) and
  // any more header lines EXTRA.
  Reply Get(const std::string& path, std::string host = "",
            const std::string& extra = "") const {
    if (host.empty()) host = "127.0.0.1:" + std::to_string(port_);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
            0);
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host +
                                "\r\n" + extra + "Connection: close\r\n\r\n";
    REQUIRE(::write(fd, request.data(), request.size()) ==
            static_cast<ssize_t>(request.size()));
    std::string all;
    char buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) all.append(buf, n);
    ::close(fd);
    Reply r;
    const std::size_t end = all.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    r.headers = all.substr(0, end);
    r.body = all.substr(end + 4);
    REQUIRE(r.headers.rfind("HTTP/1.1 ", 0) == 0);
    r.status = std::stoi(r.headers.substr(9, 3));
    return r;
  }

 private:
  pid_t pid_ = 0;
  std::string line_, token_;
  int port_ = 0;
};

std::size_t Count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++n;
  }
  return n;
}

// The href of the first link whose text is TEXT.
std::string LinkTo(const std::string& page, const std::string& text) {
  std::smatch m;
  const std::string pattern = "href=\"([^\"]+)\">" + text + "<";
  if (!std::regex_search(page, m, std::regex(pattern))) return "";
  return m[1];
}

}  // namespace

TEST_CASE(
    "ui: the executions, an execution with its metrics charts, and the "
    "lineage a link from an output leads to; stored markup stays text") {
  Workspace w;
  cmf::test::WriteFile(w / "raw.csv", "1,2\n");
  Ok(w({"exec", "-q", "--stage", "prepare", "--in", "raw.csv", "--out",
        "patches.csv", "--", "sh", "-c", "echo p > patches.csv"}));
  Ok(w({"exec", "-q", "--stage", "train", "-p", "lr=0.01", "-p",
        "note=<script>alert(1)</script>", "--in", "patches.csv", "--out",
        "model.pt", "--", "sh", "-c",
        "echo w > model.pt; for s in 0 1 2 3; do echo \"loss $s 0.$((9 - s))\" "
        ">&$CMF_METRICS_FD; done; echo 'rmse 0 0.5' >&$CMF_METRICS_FD"}));
  json log = w.Log();
  REQUIRE(log.size() == 2);
  const std::string train = log[0]["id"];
  const std::string short_train = train.substr(24);

  UiServer ui(w, {"--port", "0"});
  INFO(ui.line());
  REQUIRE(ui.port() > 0);
  CHECK(ui.token().empty());  // on this machine only: no token

  Reply home = ui.Get("/");
  CHECK(home.status == 200);
  CHECK(home.headers.find("Content-Security-Policy: default-src 'none'; "
                          "script-src 'self'") != std::string::npos);
  CHECK(Count(home.body, "<tr><td><a class=\"id\"") == 2);
  CHECK(home.body.find(">" + short_train + "</a>") != std::string::npos);
  CHECK(home.body.find("<script>alert") == std::string::npos);
  CHECK(home.body.find("note=&lt;script&gt;alert(1)&lt;/script&gt;") !=
        std::string::npos);
  CHECK(Count(ui.Get("/?stage=prepare").body, "<tr><td><a class=\"id\"") == 1);

  // One execution: parameters, inputs and outputs, a chart per series.
  const std::string page_path = LinkTo(home.body, short_train);
  CHECK(page_path == "/execution/" + train);
  Reply page = ui.Get(page_path);
  CHECK(page.status == 200);
  CHECK(page.body.find("<td>0.01</td>") != std::string::npos);
  CHECK(page.body.find("<script>alert") == std::string::npos);
  CHECK(Count(page.body, "<figure class=\"chart\"") == 2);
  CHECK(page.body.find("data-series=\"loss\"") != std::string::npos);
  CHECK(Count(page.body, "<polyline") == 2);
  // The same page by the short id, or its first 8 digits.
  CHECK(ui.Get("/execution/" + short_train.substr(0, 8)).body == page.body);

  // The output links to its lineage: a drawn graph whose nodes link on.
  const std::string to_model = LinkTo(page.body, "model.pt");
  REQUIRE(to_model.rfind("/lineage/", 0) == 0);
  Reply lineage = ui.Get(to_model);
  CHECK(lineage.status == 200);
  CHECK(lineage.body.find("<svg") != std::string::npos);
  // Up from model.pt, depth 3: model.pt, train, patches.csv, prepare.
  CHECK(Count(lineage.body, "class=\"node\"") == 4);
  CHECK(lineage.body.find("xlink:href=\"/execution/" + train + "\"") !=
        std::string::npos);

  // cmf's own script and style; nothing else from disk, whatever the path.
  CHECK(ui.Get("/static/ui.js").status == 200);
  CHECK(ui.Get("/static/ui.css").headers.find("text/css") != std::string::npos);
  for (const char* path :
       {"/../.cmf/metadata.db", "/static/../../.cmf/metadata.db", "/raw.csv",
        "/execution/a/b", "/static/"}) {
    INFO(path);
    CHECK(ui.Get(path).status == 404);
  }
  Reply bad = ui.Get("/execution/%3Cb%3E");
  CHECK(bad.status == 400);
  CHECK(bad.body.find("&lt;b&gt;") != std::string::npos);
  CHECK(bad.body.find("<b>") == std::string::npos);
  CHECK(ui.Get("/execution/ffffffffffff").status == 404);
  // A page asked for under another name: a web page elsewhere reaching in.
  CHECK(ui.Get("/", "evil.example:80").status == 403);
}

TEST_CASE(
    "ui: off this machine every request needs the token it prints; a taken "
    "port is a clear error") {
  Workspace w;
  Ok(w({"exec", "-q", "--stage", "s", "--", "true"}));
  UiServer ui(w, {"--port", "0", "--host", "0.0.0.0"});
  INFO(ui.line());
  REQUIRE(ui.port() > 0);
  REQUIRE(ui.token().size() == 32);
  CHECK(ui.Get("/").status == 403);
  CHECK(ui.Get("/?token=" + std::string(32, '0')).status == 403);
  Reply first = ui.Get("/?token=" + ui.token());
  CHECK(first.status == 200);
  CHECK(first.headers.find("Set-Cookie: cmf_token=" + ui.token() +
                           "; Path=/; HttpOnly; SameSite=Strict") !=
        std::string::npos);
  // Then the cookie carries it to every link.
  CHECK(ui.Get("/static/ui.css", "", "Cookie: cmf_token=" + ui.token() + "\r\n")
            .status == 200);

  cmf::test::Outcome taken =
      w({"ui", "--port", std::to_string(ui.port()), "--host", "0.0.0.0"});
  CHECK(taken.exit_code == 1);
  CHECK(cmf::test::IsError(taken, "cannot listen on 0.0.0.0:"));
}

namespace {

// Every link of every page under SITE (href and xlink:href, but addresses
// with a scheme and anchors) that leads to no file there.
std::vector<std::string> BrokenLinks(const std::filesystem::path& site) {
  std::vector<std::string> broken;
  const std::regex link("href=\"([^\"#]+)\"");
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(site)) {
    if (entry.path().extension() != ".html") continue;
    const std::string page = cmf::test::ReadFile(entry.path());
    for (std::sregex_iterator it(page.begin(), page.end(), link), end;
         it != end; ++it) {
      const std::string target = (*it)[1];
      if (target.find(':') != std::string::npos) continue;
      if (!std::filesystem::exists(entry.path().parent_path() / target)) {
        broken.push_back(entry.path().string() + " -> " + target);
      }
    }
  }
  return broken;
}

}  // namespace

TEST_CASE(
    "ui: a run of steps is one node that expands; artifacts by kind with who "
    "holds their bytes; the sites; --export writes pages that open from "
    "disk") {
  cmf::test::TempDir remotes;
  Ok(cmf::test::Cmf({"init", "--bare", (remotes / "hub").string()},
                    remotes.path()));
  Workspace w;
  cmf::test::WriteFile(w / "m0.txt", "0\n");
  for (int k = 0; k < 6; ++k) {
    const std::string in = "m" + std::to_string(k) + ".txt";
    const std::string out = "m" + std::to_string(k + 1) + ".txt";
    Ok(w({"exec", "-q", "--stage", "step", "--in", in, "--out", out, "--", "sh",
          "-c",
          "cat " + in + " > " + out + "; echo " + std::to_string(k) + " >> " +
              out}));
  }
  Ok(w({"remote", "add", "hub", (remotes / "hub").string()}));
  Ok(w({"commit", "-m", "six steps"}));
  Ok(w({"push", "hub"}));
  const std::string last = w.Json({"whereis", "m6.txt", "--json"})["hash"];

  UiServer ui(w, {"--port", "0"});
  REQUIRE(ui.port() > 0);
  // Up from m6.txt: the six steps are one node, linked to the page that
  // draws them all.
  Reply folded = ui.Get("/lineage/" + last + "?depth=30");
  CHECK(folded.status == 200);
  CHECK(folded.body.find("6 runs: ") != std::string::npos);
  CHECK(folded.body.find("click one to expand it") != std::string::npos);
  const std::size_t folded_nodes = Count(folded.body, "class=\"node\"");
  std::smatch m;
  REQUIRE(std::regex_search(
      folded.body, m, std::regex("xlink:href=\"([^\"]*expand=[^\"]+)\"")));
  const std::string expand =
      std::regex_replace(std::string(m[1]), std::regex("&amp;"), "&");
  Reply open = ui.Get(expand);
  CHECK(open.status == 200);
  CHECK(open.body.find("6 runs: ") == std::string::npos);
  // Six executions and the five files between them came back.
  CHECK(Count(open.body, "class=\"node\"") == folded_nodes + 10);

  // Artifacts by kind, with this site and the remote's store holding them.
  Reply artifacts = ui.Get("/artifacts");
  CHECK(artifacts.status == 200);
  CHECK(artifacts.body.find("data-kind=\"file\"") != std::string::npos);
  CHECK(artifacts.body.find("m6.txt") != std::string::npos);
  // (Holders are listed by id: in either order.)
  CHECK(std::regex_search(
      artifacts.body,
      std::regex("m6\\.txt</a></td>.*(this site, remote hub|remote hub, "
                 "this site)</td></tr>")));
  CHECK(ui.Get("/artifacts?kind=model").body.find("m6.txt") ==
        std::string::npos);
  CHECK(ui.Get("/artifacts?kind=nonsense").status == 400);
  // The sites: the remote, with what moved there, and this site.
  Reply sites = ui.Get("/sites");
  CHECK(sites.status == 200);
  CHECK(sites.body.find("<td>hub</td>") != std::string::npos);
  CHECK(sites.body.find("(this site)") != std::string::npos);
  CHECK(std::regex_search(sites.body,
                          std::regex("<td>hub</td>.*?<td>[1-9][0-9]*</td>")));

  // Static pages: every link leads to a file of the export.
  json log = w.Log();
  Ok(w({"ui", "--export", "site"}));
  for (const char* page : {"index.html", "artifacts.html", "sites.html",
                           "static/ui.css", "static/ui.js"}) {
    CHECK(std::filesystem::exists(w / "site" / page));
  }
  for (const json& e : log) {
    const std::string id = e["id"];
    CHECK(std::filesystem::exists(w / "site/execution" / (id + ".html")));
    CHECK(std::filesystem::exists(w / "site/lineage" / (id + "-down.html")));
  }
  CHECK(std::filesystem::exists(w / "site/lineage" / (last + ".html")));
  const std::string index = cmf::test::ReadFile(w / "site/index.html");
  CHECK(index.find("href=\"./execution/" + std::string(log[0]["id"]) +
                   ".html\"") != std::string::npos);
  CHECK(index.find("href=\"/") == std::string::npos);  // nothing absolute
  CHECK(BrokenLinks(w / "site").empty());
  // One execution: its pages, and no link to those not written.
  Ok(w({"ui", "--export", "one", std::string(log[0]["id"]).substr(24)}));
  std::size_t pages = 0;
  for (const auto& f :
       std::filesystem::directory_iterator(w / "one/execution")) {
    pages += f.path().extension() == ".html";
  }
  CHECK(pages == 1);
  std::string broken;
  for (const std::string& b : BrokenLinks(w / "one")) broken += b + "\n";
  CHECK_MESSAGE(broken.empty(), broken);

  cmf::test::Outcome unknown = w({"ui", "--export", "x", "ffffffffffff"});
  CHECK(unknown.exit_code != 0);
  CHECK(cmf::test::IsError(unknown, "ffffffffffff"));
  cmf::test::Outcome stray = w({"ui", "ffffffffffff"});
  CHECK(stray.exit_code != 0);
  CHECK(cmf::test::IsError(stray, "only with --export"));
}
