// HDF5 data slices: a hyperslab of one dataset of an HDF5 file, written as a
// small HDF5 file of its own.
//
// A selection is NumPy-style, one entry per dimension, separated by commas:
// "start:stop[:step]" (either bound may be left out; negative bounds count from
// the end), a single index (which drops that dimension, as NumPy does), or ":"
// for all. It must name every dimension, select at least one element and stay
// within the bounds; steps are positive.
//
// WriteSlice copies only the selected elements, a block at a time (memory
// stays bounded whatever the file's size), into a dataset of the same path and
// type, chunked and compressed like the source when the source is. Attributes
// on the new dataset name where it came from: cmf_parent_sha256,
// cmf_parent_dataset and cmf_selection.
//
// The HDF5 library is not thread-safe as Debian builds it: call these from one
// thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/status.h"

namespace cmf::data {

struct DatasetInfo {
  std::string path;                  // "/spectra"
  std::vector<std::uint64_t> shape;  // empty for a scalar
  std::string dtype;  // "float32", "int16", "uint8", "string", ...
  std::vector<std::uint64_t> chunks;  // empty when not chunked
  std::string compression;  // "gzip", "shuffle+gzip", ... or "" for none
};

// Every dataset in FILE, sorted by path. InvalidArgument when FILE is not an
// HDF5 file; NotFound when it does not exist.
Result<std::vector<DatasetInfo>> ListDatasets(
    const std::filesystem::path& file);

struct SliceDim {
  std::uint64_t start = 0;
  std::uint64_t count = 0;  // elements selected
  std::uint64_t step = 1;
  bool index = false;  // a single index: the dimension is dropped
};

// Parses SELECTION against a dataset of SHAPE. InvalidArgument for a wrong
// rank, a reversed or out-of-range bound, a step that is not positive, an
// empty selection or text that is not a selection.
Result<std::vector<SliceDim>> ParseSelection(
    std::string_view selection, const std::vector<std::uint64_t>& shape);

struct SliceProvenance {
  std::string parent_hash;  // SHA-256 of the source file
  std::string selection;    // as the user wrote it
};

struct SliceResult {
  std::vector<std::uint64_t> shape;  // of the new dataset
  std::string dtype;
  std::uint64_t elements = 0;
};

// Writes the selection of DATASET in SOURCE to a new HDF5 file OUT (replacing
// it). InvalidArgument for a non-HDF5 source, a bad selection or a dataset of
// variable-length data; NotFound for a missing source or dataset; IOError when
// OUT cannot be written (a partial OUT is removed).
Result<SliceResult> WriteSlice(const std::filesystem::path& source,
                               const std::string& dataset,
                               std::string_view selection,
                               const std::filesystem::path& out,
                               const SliceProvenance& provenance);

// The most elements ReadNumeric returns.
inline constexpr std::uint64_t kMaxNumericElements = 1ull << 24;

struct NumericArray {
  std::vector<std::uint64_t> shape;   // of what was read
  std::vector<std::uint64_t> stride;  // per dimension: every stride-th one
  std::vector<std::uint64_t> dataset_shape;  // of the whole dataset
  std::vector<double> values;                // in C order
};

// The values of DATASET in FILE as doubles (an integer or floating-point
// dataset of any rank): every element, or, along a dimension longer than
// MAX_EXTENT, every k-th from the first, k the least that leaves at most
// MAX_EXTENT (a picture of a large image). InvalidArgument for a file that is
// not HDF5, a dataset that is not numeric, or one that would still give more
// than kMaxNumericElements; NotFound for a missing file or dataset.
Result<NumericArray> ReadNumeric(const std::filesystem::path& file,
                                 const std::string& dataset,
                                 std::uint64_t max_extent);

}  // namespace cmf::data
