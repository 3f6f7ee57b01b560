// Internal: the table the HDF5 module (cmf-hdf5.so, built from hdf5_slice.cpp)
// gives cmf. Both sides come from one build, so it passes C++ types; the ABI
// number and the version string keep a module from another build out.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/data/hdf5_slice.h"
#include "cmf/data/module_loader.h"

namespace cmf::data {

constexpr int kHdf5ModuleAbi =
    3;  // 2: the header holds a build id; 3: read_numeric

struct Hdf5Module {
  ModuleHeader header;  // first: what the loader checks
  Result<std::vector<DatasetInfo>> (*list_datasets)(
      const std::filesystem::path& file);
  Result<SliceResult> (*write_slice)(const std::filesystem::path& source,
                                     const std::string& dataset,
                                     std::string_view selection,
                                     const std::filesystem::path& out,
                                     const SliceProvenance& provenance);
  Result<NumericArray> (*read_numeric)(const std::filesystem::path& file,
                                       const std::string& dataset,
                                       std::uint64_t max_extent);
};

}  // namespace cmf::data

// The module's one exported symbol.
extern "C" const cmf::data::Hdf5Module* cmf_hdf5_module();
