#include "instrument_reply.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace cmf::dkl {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

std::string Shorten(const std::string& s) {
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

nlohmann::json ParseObject(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    Fail("the instrument controller answered something that is not a JSON "
         "object: '" + Shorten(line) + "'");
  return j;
}

}  // namespace

void CheckGreetingReply(const std::string& line) {
  nlohmann::json answer = ParseObject(line);
  if (!answer.contains("ready"))
    Fail("the instrument controller did not answer the greeting with "
         "{\"ready\": ...}: '" + Shorten(answer.dump()) + "'");
}

std::vector<float> ParseSpectrumReply(const std::string& line, int channels,
                                      int x, int y) {
  nlohmann::json answer = ParseObject(line);
  if (answer.contains("error"))
    Fail("the instrument controller reported an error at (" +
         std::to_string(x) + ", " + std::to_string(y) + "): " +
         (answer["error"].is_string() ? answer["error"].get<std::string>()
                                      : answer["error"].dump()));
  if (!answer.contains("spectrum") || !answer["spectrum"].is_array())
    Fail("the instrument controller answered without a spectrum: '" +
         Shorten(answer.dump()) + "'");
  const nlohmann::json& s = answer["spectrum"];
  if (static_cast<int>(s.size()) != channels)
    Fail("the instrument controller answered a spectrum of " +
         std::to_string(s.size()) + " values; the energy axis has " +
         std::to_string(channels));
  std::vector<float> out;
  out.reserve(s.size());
  for (const nlohmann::json& v : s) {
    if (!v.is_number() || !std::isfinite(v.get<double>()))
      Fail("the instrument controller answered a spectrum with a value "
           "that is not a finite number");
    out.push_back(v.get<float>());
  }
  return out;
}

}  // namespace cmf::dkl
