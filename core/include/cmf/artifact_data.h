// The numbers in a recorded HDF5 artifact, read from this site's copy of its
// bytes: what the pages of runs (cmf ui) draw their pictures from.
#pragma once

#include <cstdint>
#include <string>

#include "cmf/data/hdf5_slice.h"
#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf {

using data::NumericArray;

// DATASET of ARTIFACT as data::ReadNumeric reads it (MAX_EXTENT per
// dimension), from the object cache, else from the workspace file at the
// artifact's recorded path when that file's content has the artifact's hash.
// NotFound when this site holds the bytes in neither place.
Result<NumericArray> ReadArtifactArray(Repo& repo, const ArtifactRef& artifact,
                                       const std::string& dataset,
                                       std::uint64_t max_extent);

// Whether this site's object cache holds the bytes of HASH (recorded as a
// location or not: a location fact is sealed by the next commit).
bool HeldHere(const Repo& repo, const std::string& hash);

}  // namespace cmf
