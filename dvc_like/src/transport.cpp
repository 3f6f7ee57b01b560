#include "cmf/data/transport.h"

#include <algorithm>

namespace cmf::data {

std::string UrlScheme(const std::string& url) {
  auto colon = url.find("://");
  if (colon != std::string::npos) {
    std::string scheme = url.substr(0, colon);
    bool word = !scheme.empty() &&
                std::all_of(scheme.begin(), scheme.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) ||
                         c == '+' || c == '-' || c == '.';
                });
    if (word) return scheme;
  }
  // scp-like user@host:path (a colon before any slash)
  auto first_colon = url.find(':');
  auto first_slash = url.find('/');
  if (first_colon != std::string::npos && first_colon > 0 &&
      (first_slash == std::string::npos || first_colon < first_slash)) {
    return "ssh";
  }
  return "file";
}

bool UrlHasPassword(const std::string& url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return false;
  auto host_start = scheme_end + 3;
  auto path_start = url.find('/', host_start);
  auto at =
      url.rfind('@', path_start == std::string::npos ? url.size() : path_start);
  if (at == std::string::npos || at < host_start) return false;
  return url.find(':', host_start) < at;
}

std::string RedactUrl(const std::string& url) {
  const std::string scheme = UrlScheme(url);
  if (scheme == "http" || scheme == "https") {
    // The user part of a web URL is often a token: none of it is shown.
    auto host_start = url.find("://") + 3;
    auto path_start = url.find('/', host_start);
    auto at = url.rfind(
        '@', path_start == std::string::npos ? url.size() : path_start);
    if (at != std::string::npos && at >= host_start) {
      return url.substr(0, host_start) + url.substr(at + 1);
    }
    return url;
  }
  if (!UrlHasPassword(url)) return url;
  auto host_start = url.find("://") + 3;
  auto path_start = url.find('/', host_start);
  auto at =
      url.rfind('@', path_start == std::string::npos ? url.size() : path_start);
  auto colon = url.find(':', host_start);
  return url.substr(0, colon) + url.substr(at);
}

std::string FileUrlPath(const std::string& url) {
  if (url.rfind("file://", 0) == 0) return url.substr(7);
  return url;
}

std::string JoinUrl(const std::string& url, const std::string& relative) {
  if (url.empty()) return relative;
  if (url.back() == '/') return url + relative;
  return url + "/" + relative;
}

}  // namespace cmf::data
