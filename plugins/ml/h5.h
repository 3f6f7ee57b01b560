// The HDF5 helpers of plugins/common/h5io.h, under the names plugins/ml uses.
#pragma once

#include "h5io.h"

namespace cmf::ml {
using h5::H5;
using h5::QuietHdf5;
}  // namespace cmf::ml
