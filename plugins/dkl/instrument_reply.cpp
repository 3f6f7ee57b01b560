#include "instrument_reply.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace cmf::dkl {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

// What a message shows of a reply: its first 77 characters. The line as it
// came, never the parsed value written out again: writing out recurses into
// every level of a value nested thousands deep.
std::string Shorten(const std::string& s) {
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

nlohmann::json ParseObject(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    Fail(
        "the instrument controller answered something that is not a JSON "
        "object: '" +
        Shorten(line) + "'");
  return j;
}

}  // namespace

void CheckGreetingReply(const std::string& line) {
  nlohmann::json answer = ParseObject(line);
  if (!answer.contains("ready"))
    Fail(
        "the instrument controller did not answer the greeting with "
        "{\"ready\": ...}: '" +
        Shorten(line) + "'");
}

std::vector<float> ParseSpectrumReply(const std::string& line, int channels,
                                      int x, int y) {
  const nlohmann::json answer = ParseObject(line);
  if (auto e = answer.find("error"); e != answer.end()) {
    Fail("the instrument controller reported an error at (" +
         std::to_string(x) + ", " + std::to_string(y) + "): " +
         (e->is_string()       ? e->get<std::string>()
          : e->is_structured() ? Shorten(line)
                               : e->dump()));
  }
  auto s = answer.find("spectrum");
  if (s == answer.end() || !s->is_array())
    Fail("the instrument controller answered without a spectrum: '" +
         Shorten(line) + "'");
  if (s->size() != static_cast<std::size_t>(channels < 0 ? 0 : channels))
    Fail("the instrument controller answered a spectrum of " +
         std::to_string(s->size()) + " values; the energy axis has " +
         std::to_string(channels));
  std::vector<float> out;
  out.reserve(s->size());
  for (const nlohmann::json& v : *s) {
    // Finite as the float it becomes: 1e39 is a finite double but an
    // infinite float.
    if (!v.is_number() || !std::isfinite(v.get<double>()) ||
        std::fabs(v.get<double>()) > std::numeric_limits<float>::max())
      Fail(
          "the instrument controller answered a spectrum with a value "
          "that is not a finite number");
    out.push_back(static_cast<float>(v.get<double>()));
  }
  return out;
}

}  // namespace cmf::dkl
