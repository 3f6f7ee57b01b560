// Fuzz target: cmf's own git-config parser (.cmf/config, which other tools and
// hands also write): the input is the file. What it accepts must read back
// the same way: every listed key is found by Get with its last value, and a
// value written by Set (any bytes: quotes, backslashes, line breaks, blanks at
// the ends) is read back unchanged from the file Set wrote. Seeds:
// tests/fuzz/corpus/config (the config of a real cmf workspace).

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "cmf/config.h"
#include "cmf/sync.h"
#include "fuzz_util.h"

using namespace cmf;
using cmf::fuzz::Require;

namespace {

// KEY's value in the file at PATH, read afresh.
Result<std::string> Reread(const std::filesystem::path& path,
                           const std::string& key) {
  CMF_ASSIGN_OR_RETURN(Config config, Config::Open(path));
  return config.Get(key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const std::string_view text = fuzz::Bytes(data, size);
  const auto path = fuzz::ScratchDir() / "config";
  fuzz::WriteFile(path, text);
  Result<Config> config = Config::Open(path);
  if (!config.ok()) return 0;

  Result<std::vector<std::pair<std::string, std::string>>> listed =
      config->List();
  Require(listed.ok(), "List of a config that opened");
  std::map<std::string, std::string> last;
  for (const auto& [key, value] : *listed) {
    last[key] = value;
    static_cast<void>(Config::Validate(key, value));
  }
  for (const auto& [key, value] : last) {
    Result<std::string> got = config->Get(key);
    Require(got.ok() && *got == value, "Get finds every listed key");
  }
  static_cast<void>(ListRemotes(*config));

  // A value of any bytes (the input's last 64), set under a key the file has
  // and under one with an awkward subsection, reads back as it was set.
  const std::string value(text.substr(text.size() > 64 ? text.size() - 64 : 0));
  std::vector<std::string> keys = {"fuzz.sub \"q\" \\ .value"};
  if (!last.empty()) keys.push_back(last.begin()->first);
  for (const std::string& key : keys) {
    if (!config->Set(key, value).ok()) continue;
    Result<std::string> got = Reread(path, key);
    Require(got.ok() && *got == value, "a value Set reads back the same");
    static_cast<void>(config->Unset(key));
    Require(Config::Open(path).ok(), "the file Unset wrote opens");
  }
  return 0;
}
