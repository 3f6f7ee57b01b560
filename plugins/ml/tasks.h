// Tasks for meta-learning: one experiment's labelled points as features and
// targets, prepared exactly as dkl-al prepares them (data.h). A task is an
// experiment file with recorded spectra (every candidate is a point) or the
// measured-points slice of a dkl-al run (its points). Plain C++; errors throw
// std::runtime_error naming the file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data.h"

namespace cmf::ml {

struct TaskPreparation {
  int window = 16;
  int pool = 32;
  Scalarizer scalarizer;
};

struct Task {
  std::string name;  // as given (a path or an artifact id)
  std::string hash;  // content hash, when known
  int points = 0;
  int features = 0;
  int outputs = 0;
  std::vector<float> x;   // points * features, min-max normalised over the task
  std::vector<double> y;  // points * outputs
  bool is_slice = false;  // a measured-points slice rather than an experiment
};

// Reads and prepares the task in PATH. Throws when the file is missing or
// unreadable, is neither an experiment with /spectra nor a measured-points
// slice, was measured with another window, or its spectra are too short to
// pool.
Task LoadTask(const std::filesystem::path& path, const TaskPreparation& prep);

}  // namespace cmf::ml
