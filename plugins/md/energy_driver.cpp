#include "energy_driver.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "line_process.h"

namespace cmf::md {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

// The first 77 characters of a reply, as it came.
std::string Shorten(const std::string& s) {
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

nlohmann::json ParseObject(const std::string& line) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    Fail("the energy driver answered something that is not a JSON object: '" +
         Shorten(line) + "'");
  return j;
}

}  // namespace

void CheckDriverGreeting(const std::string& line) {
  if (!ParseObject(line).contains("ready"))
    Fail(
        "the energy driver did not answer the greeting with {\"ready\": ...}: "
        "'" +
        Shorten(line) + "'");
}

double ParseEnergyReply(const std::string& line, int trajectory, int frame) {
  const nlohmann::json answer = ParseObject(line);
  const std::string where = "frame " + std::to_string(frame) +
                            " of trajectory " + std::to_string(trajectory);
  if (auto e = answer.find("error"); e != answer.end())
    Fail("the energy driver reported an error for " + where + ": " +
         (e->is_string() ? e->get<std::string>() : Shorten(line)));
  auto e = answer.find("energy");
  if (e == answer.end() || !e->is_number())
    Fail("the energy driver answered without a number \"energy\" for " + where +
         ": '" + Shorten(line) + "'");
  const double v = e->get<double>();
  if (!std::isfinite(v) || std::fabs(v) >= 1e9)
    Fail(
        "the energy driver answered an energy that is not a finite number "
        "below 1e9 eV for " +
        where);
  return v;
}

std::string EnergyRequest(const Trajectory& t, int trajectory, int f) {
  nlohmann::json positions = nlohmann::json::array();
  const float* p =
      t.positions.data() + static_cast<std::size_t>(f) * t.atoms() * 3;
  for (int i = 0; i < t.atoms(); ++i)
    positions.push_back({p[3 * i], p[3 * i + 1], p[3 * i + 2]});
  const double* c = t.cell_of(f);
  nlohmann::json cell = {
      {c[0], c[1], c[2]}, {c[3], c[4], c[5]}, {c[6], c[7], c[8]}};
  nlohmann::json request = {{"energy",
                             {{"trajectory", trajectory},
                              {"frame", f},
                              {"species", t.species},
                              {"positions", positions},
                              {"cell", cell}}}};
  return request.dump();
}

EnergyDriver::EnergyDriver(const std::string& command, double timeout_seconds,
                           std::function<bool()> cancelled) {
  if (command.empty()) Fail("--energy proc: needs a command after 'proc:'");
  process_ = std::make_unique<proc::LineProcess>(
      command, "the energy driver", "--energy-timeout", timeout_seconds);
  process_->set_bye("{\"bye\": {}}");
  process_->set_cancelled(std::move(cancelled));
  nlohmann::json hello = {
      {"hello",
       {{"protocol", 1},
        {"units", {{"length", "angstrom"}, {"energy", "eV"}}}}}};
  CheckDriverGreeting(process_->Exchange(hello.dump()));
}

EnergyDriver::~EnergyDriver() = default;

double EnergyDriver::Energy(const Trajectory& t, int trajectory, int f) {
  return ParseEnergyReply(process_->Exchange(EnergyRequest(t, trajectory, f)),
                          trajectory, f);
}

}  // namespace cmf::md
