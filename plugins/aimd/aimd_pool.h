// The candidates of aimd-al: one feature row per frame of a set of
// trajectories, and each frame's target. Torch-free (md features only), shared
// by the stage and bench/.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "aimd_loop.h"
#include "trajectory.h"

namespace cmf::aimd {

// The image features: the published 208 x 208 crops at the real frame's
// 0.12 Å per pixel, pooled to 16 x 16, the width of a microscope patch and so
// of a meta-model trained on experiments.
inline constexpr int kImagePool = 16;

// Feature rows of every frame of TRAJECTORIES, in order ("bonds" or "image"),
// standardised over all frames: bonds column by column (mean 0, sd 1; a
// constant column 0), images by one global minimum and maximum to [0, 1], as
// microscope patches are. PROGRESS (may be empty) is called now and then with
// the frames done; returning false stops with an exception. Throws when the
// trajectories' elements do not line up for bonds.
Pool MakePool(const std::vector<const md::Trajectory*>& trajectories,
              const std::string& kind,
              const std::function<bool(int done, int total)>& progress);

// Each frame's target: its energy per atom, centred per trajectory (minus the
// mean over that trajectory's frames) unless ABSOLUTE. Every trajectory must
// have /energy.
std::vector<double> Targets(
    const std::vector<const md::Trajectory*>& trajectories, bool absolute);

}  // namespace cmf::aimd
