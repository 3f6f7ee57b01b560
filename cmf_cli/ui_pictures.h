// Pictures for the pages of `cmf ui`: rasters as PNG data (no image library:
// deflate's stored blocks), colour maps, and the pictures of a `dkl-al` run
// drawn from its step metrics and its HDF5 inputs and outputs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/artifact_data.h"
#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/store.h"

namespace cmf::cli {

// An 8-bit RGB raster of WIDTH x HEIGHT (RGB: 3 bytes a pixel, row by row) as
// a PNG file's bytes.
std::string EncodePng(int width, int height,
                      const std::vector<std::uint8_t>& rgb);

// BYTES as base64 (RFC 4648, with padding).
std::string Base64(std::string_view bytes);

// T in [0, 1] (clamped; NaN is grey) through a perceptually uniform map from
// dark blue to yellow, as 3 bytes.
void Viridis(double t, std::uint8_t out[3]);
// The same as "#rrggbb".
std::string ViridisHex(double t);

// The figures of a dkl-al execution R with metrics M: the survey image (the
// input's /image) with the measured locations numbered in order and coloured
// by the uncertainty at the chosen point when it was chosen, and the predicted
// and uncertainty maps (maps.h5) with the same points. HTML; a picture whose
// bytes are not at this site says so in its place.
std::string DklFigures(Repo& repo, const ExecutionRecord& r,
                       const MetricSeries& m);

// The figures of an aimd-al execution R (its predictions.h5, and its
// trajectories when their bytes are here): for each trajectory, the energy
// per atom against time as the MD recorded it, the last model's prediction
// with a band of two standard deviations, the frames evaluated numbered in
// order, and the most stable one found.
std::string AimdFigures(Repo& repo, const ExecutionRecord& r);

}  // namespace cmf::cli
