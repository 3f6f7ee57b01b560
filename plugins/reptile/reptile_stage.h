// What the two stages of the reptile plugin share: reading Reptile's settings
// and the tasks, and the model's configuration. reptile_stage.cpp is the
// reptile stage (and the plugin's table), reptile_eval.cpp the reptile-eval
// stage. Errors throw plugin::Error.
#pragma once

#include <string>
#include <vector>

#include "cmf/plugin_cpp.h"
#include "dkl.h"
#include "reptile.h"
#include "tasks.h"

namespace cmf::reptile {

// Throws plugin::Error with MESSAGE unless OK.
void Require(bool ok, const std::string& message);

// Reptile's settings, shared by reptile and reptile-eval.
ml::ReptileOptions ReadOptions(plugin::Context& ctx, bool with_iterations);

ml::TaskPreparation ReadPreparation(plugin::Context& ctx);

// The tasks: paths or artifact ids, and every measured-points slice of a
// stage. All are read and checked before any training; then each is logged
// as an input.
std::vector<ml::Task> LoadTasks(plugin::Context& ctx,
                                const ml::TaskPreparation& prep);

ml::DklConfig ModelConfig(plugin::Context& ctx, const ml::TaskPreparation& prep,
                          int outputs);

// The reptile-eval stage (reptile_eval.cpp).
int RunReptileEval(plugin::Context& ctx);

}  // namespace cmf::reptile
