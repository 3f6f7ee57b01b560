// A plugin for the host's tests, built three ways (see meson.build): the good
// module cmf-testplug.so, one that claims another ABI version, and one without
// the entry point. Its stages exercise every host function.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "cmf/plugin.h"
#include "cmf/plugin_cpp.h"

namespace {

using cmf::plugin::Context;

// Writes its parameters to --out, logs the --inputs as inputs, --out as an
// output derived from the first input, and --count steps of metric "value".
int Echo(Context& ctx) {
  std::int64_t count = ctx.IntParam("count");
  double rate = ctx.RealParam("rate");
  std::string out = ctx.Param("out");
  std::string first_input;
  for (const std::string& in : ctx.Params("inputs")) {
    std::string hash = ctx.LogInput(in, "dataset");
    if (first_input.empty()) first_input = hash;
  }
  {
    std::ofstream f(out);
    f << "count=" << count << " rate=" << rate
      << " flag=" << (ctx.BoolParam("flag") ? "true" : "false")
      << " mode=" << ctx.Param("mode") << " id=" << ctx.ExecutionId() << "\n";
  }
  for (std::int64_t i = 0; i < count; ++i) {
    ctx.LogMetric("value", i, rate * static_cast<double>(i));
    ctx.Progress(static_cast<double>(i + 1), static_cast<double>(count),
                 "step " + std::to_string(i + 1));
  }
  std::string hash = ctx.LogOutput(out, "model");
  if (!first_input.empty()) ctx.LogDerivedFrom(hash, first_input);
  ctx.SetProperty("answer", std::int64_t{42});
  ctx.SetProperty("ratio", 0.25);
  ctx.SetProperty("note", std::string("hello"));
  // What a module's environment file (cmf-testplug.env) set, when it did.
  if (const char* v = std::getenv("CMF_TESTPLUG_ENV"))
    ctx.SetProperty("env", std::string(v));
  ctx.Info("done");
  return 0;
}

int Fail(Context& ctx) {
  ctx.LogMetric("before_failure", 0, 1.0);
  ctx.Fail("deliberate failure");
  return 1;
}

int Throw(Context&) { throw std::runtime_error("thrown from the stage"); }

// Logs one step every 10 ms until cancelled (at most 30 s); writes the file
// --started after the first step so that a test knows when to interrupt.
int WaitCancel(Context& ctx) {
  std::string started = ctx.Param("started");
  for (std::int64_t i = 0; i < 3000 && !ctx.Cancelled(); ++i) {
    ctx.LogMetric("tick", i, static_cast<double>(i));
    if (i == 0) std::ofstream(started) << "started\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

// Logs an output that does not exist: the host's error reaches the stage.
int BadOutput(Context& ctx) {
  ctx.LogOutput("does-not-exist.bin");
  return 0;
}

const char* const kModes[] = {"a", "b", "proc:", nullptr};

const cmf_param kEchoParams[] = {
    {"count", CMF_PARAM_INT, "3", "steps of metric value", nullptr, 0},
    {"rate", CMF_PARAM_REAL, "0.5", "metric value per step", nullptr, 0},
    {"flag", CMF_PARAM_BOOL, "false", "a flag", nullptr, 0},
    {"mode", CMF_PARAM_STRING, "a", "a choice", kModes, 0},
    {"inputs", CMF_PARAM_PATH, nullptr, "files to log as inputs", nullptr,
     CMF_PARAM_MULTIPLE},
    {"out", CMF_PARAM_PATH, "echo.txt", "the output file", nullptr, 0, "o"},
};
const cmf_param kWaitParams[] = {
    {"started", CMF_PARAM_PATH, nullptr, "file written once running", nullptr,
     CMF_PARAM_REQUIRED},
};

const cmf_stage kStages[] = {
    {"echo", "Records its parameters", kEchoParams, std::size(kEchoParams),
     &cmf::plugin::Invoke<&Echo>},
    {"fail", "Fails on purpose", nullptr, 0, &cmf::plugin::Invoke<&Fail>},
    {"throw", "Throws on purpose", nullptr, 0, &cmf::plugin::Invoke<&Throw>},
    {"wait-cancel", "Runs until cancelled", kWaitParams, std::size(kWaitParams),
     &cmf::plugin::Invoke<&WaitCancel>},
    {"bad-output", "Logs a missing output", nullptr, 0,
     &cmf::plugin::Invoke<&BadOutput>},
};

#ifndef TEST_PLUGIN_ABI
#define TEST_PLUGIN_ABI CMF_PLUGIN_ABI_VERSION
#endif

const cmf_plugin kPlugin = {
    TEST_PLUGIN_ABI, TEST_PLUGIN_NAME,
    "1.2.3",         "Stages for the plugin host's tests",
    kStages,         std::size(kStages)};

}  // namespace

#ifndef TEST_PLUGIN_NO_ENTRY
extern "C" const cmf_plugin* cmf_plugin_entry(uint32_t) { return &kPlugin; }
#else
extern "C" CMF_PLUGIN_EXPORT const cmf_plugin* cmf_plugin_entry_misspelled(
    uint32_t) {
  return &kPlugin;
}
#endif
