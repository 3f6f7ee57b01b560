// Fuzz target: the URLs of remotes, as typed or found in a config: the ssh
// URL parser (data::ParseSshUrl), scheme, redaction and file paths
// (cmf/data/transport.h), and `cmf remote add` (AddRemote, whose checks
// include the remote name) on a real config file, read back by FindRemote
// and removed again. The input is NAME, URL, METADATA and DATA apart by NUL
// bytes. Seeds: tests/fuzz/corpus/url.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cmf/config.h"
#include "cmf/data/ssh.h"
#include "cmf/data/transport.h"
#include "cmf/sync.h"
#include "fuzz_util.h"

using namespace cmf;
using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::vector<std::string> parts(4);
  {
    std::string_view text = fuzz::Bytes(data, size);
    for (std::size_t i = 0; i < parts.size() && !text.empty(); ++i) {
      std::size_t nul = i + 1 < parts.size() ? text.find('\0') : text.npos;
      parts[i] = std::string(text.substr(0, nul));
      text = nul == text.npos ? std::string_view() : text.substr(nul + 1);
    }
  }
  const RemoteSpec spec{parts[0], parts[1], parts[2], parts[3]};

  for (const std::string& url : {spec.url, spec.metadata, spec.data}) {
    Result<data::SshUrl> ssh = data::ParseSshUrl(url);
    if (ssh.ok()) {
      Require(!ssh->host.empty() && !ssh->path.empty(),
              "an ssh URL has a host and a path");
      Require(ssh->port > 0 && ssh->port <= 65535, "an ssh port is a port");
      Require(ssh->user.find(':') == std::string::npos,
              "an ssh URL carries no password");
      static_cast<void>(data::SshUser(*ssh));
    }
    Require(!data::UrlScheme(url).empty(), "every URL has a scheme");
    Require(!data::UrlHasPassword(data::RedactUrl(url)),
            "a redacted URL carries no password");
    static_cast<void>(data::FileUrlPath(url));
    static_cast<void>(data::JoinUrl(url, "log.git"));
  }

  const auto path = fuzz::ScratchDir() / "remote-config";
  fuzz::WriteFile(path, "[core]\n\tsite = f0f0f0f0f0f0f0f0\n");
  Result<Config> config = Config::Open(path);
  Require(config.ok(), "the config opens");
  if (AddRemote(*config, spec).ok()) {
    Result<Config> reread = Config::Open(path);
    Require(reread.ok(), "the config AddRemote wrote opens");
    Require(FindRemote(*reread, spec.name).ok(), "an added remote is found");
    Require(RemoveRemote(*reread, spec.name).ok(), "an added remote goes");
    Require(!FindRemote(*reread, spec.name).ok(), "a removed remote is gone");
  }
  return 0;
}
