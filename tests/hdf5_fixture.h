// Test helper: small HDF5 files written with the HDF5 C API.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace cmf::test {

// Writes DATASET of float32 values 0, 1, 2, ... with SHAPE into FILE (created
// or truncated); chunked with CHUNKS and gzip-compressed when CHUNKS is given.
void WriteFloatDataset(const std::filesystem::path& file,
                       const std::string& dataset,
                       const std::vector<unsigned long long>& shape,
                       const std::vector<unsigned long long>& chunks = {});

// Reads a whole float32 DATASET of FILE.
std::vector<float> ReadFloatDataset(
    const std::filesystem::path& file, const std::string& dataset,
    std::vector<unsigned long long>* shape = nullptr);

// Reads a string attribute of DATASET.
std::string ReadStringAttribute(const std::filesystem::path& file,
                                const std::string& dataset,
                                const std::string& name);

// Reads a numeric attribute of DATASET as a double; NaN when it is missing.
double ReadNumberAttribute(const std::filesystem::path& file,
                           const std::string& dataset, const std::string& name);

}  // namespace cmf::test
