// `cmf slice`: cutting a data slice out of an HDF5 file and recording it.
//
// The slice is written by data::WriteSlice (cmf/data/hdf5_slice.h), then
// recorded as one execution of stage "slice" with the parent file as input (a
// dataset), the slice as output (a dataslice, stored in the cache) and a
// derived_from edge from the slice to its parent. A slice that cannot be
// written leaves no record. Borrows a Repo opened for writing.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cmf/data/hdf5_slice.h"
#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf {

struct SliceRequest {
  std::filesystem::path file;
  std::string dataset;    // "/spectra"
  std::string selection;  // "10:20,0:50,:"
  std::filesystem::path out;
  std::string pipeline;              // empty: the default pipeline
  std::vector<std::string> command;  // recorded on the execution
};

struct SliceOutcome {
  std::string execution_id;
  ArtifactRef parent;
  ArtifactRef slice;
  data::SliceResult result;
};

// Errors as data::WriteSlice, plus InvalidArgument for OUT inside .cmf/ or
// outside the workspace (after '..' and the links of its folder are resolved;
// nothing is written then), and the store's errors.
Result<SliceOutcome> MakeSlice(Repo& repo, const SliceRequest& request);

}  // namespace cmf
