#include "instrument.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "instrument_reply.h"
#include "line_process.h"

namespace cmf::dkl {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

class Replay : public Instrument {
 public:
  explicit Replay(const ml::Experiment& e) : experiment_(e) {}
  std::vector<float> Measure(int x, int y) override {
    return experiment_.Spectrum(x, y);
  }
  std::string Describe() const override { return "replay"; }

 private:
  const ml::Experiment& experiment_;
};

// A controller process: the protocol's messages over a LineProcess.
class Process : public Instrument {
 public:
  Process(const std::string& command, const ml::Experiment& e, double timeout)
      : channels_(e.channels),
        process_(command, "the instrument controller", "--instrument-timeout",
                 timeout) {
    process_.set_bye("{\"bye\": {}}");
  }

  // The greeting tells the controller what will be asked of it. Called once,
  // right after construction.
  void Greet(const ml::Experiment& e) {
    nlohmann::json hello = {{"hello",
                             {{"protocol", 1},
                              {"width", e.width},
                              {"height", e.height},
                              {"channels", e.channels}}}};
    CheckGreetingReply(process_.Exchange(hello.dump()));
  }

  std::vector<float> Measure(int x, int y) override {
    nlohmann::json request = {{"measure", {{"x", x}, {"y", y}}}};
    return ParseSpectrumReply(process_.Exchange(request.dump()), channels_, x,
                              y);
  }

  std::string Describe() const override { return "proc:" + process_.command(); }

 private:
  int channels_;
  proc::LineProcess process_;
};

}  // namespace

std::unique_ptr<Instrument> MakeReplay(const ml::Experiment& experiment) {
  if (!experiment.has_spectra)
    Fail("'" + experiment.path.string() + "' has no /spectra to replay");
  return std::make_unique<Replay>(experiment);
}

std::unique_ptr<Instrument> MakeProcess(const std::string& command,
                                        const ml::Experiment& experiment,
                                        double timeout_seconds) {
  if (command.empty()) Fail("--instrument proc: needs a command after 'proc:'");
  auto process =
      std::make_unique<Process>(command, experiment, timeout_seconds);
  process->Greet(experiment);
  return process;
}

}  // namespace cmf::dkl
