// The HDF5 half of data slices, built as the module cmf-hdf5.so: cmf loads it
// (hdf5_module.cpp) only when a command reads or writes HDF5, so that the
// HDF5 library and everything it links (curl, TLS, Kerberos, LDAP) are not
// loaded by every cmf command. That costs about 4.5 ms per start here.
#include "cmf/data/hdf5_slice.h"

#include <hdf5.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <system_error>

#include "cmf/data/file_ops.h"
#include "cmf_build_id.h"
#include "cmf_config.h"
#include "hdf5_module.h"

namespace fs = std::filesystem;

namespace cmf::data {
namespace {

// Memory for one block of a slice copy.
constexpr std::uint64_t kBlockBytes = 64ull << 20;

// HDF5 prints its own error stack unless told not to; cmf reports errors
// itself.
void QuietHdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

// An HDF5 identifier closed by the matching H5?close at the end of the scope.
class Hid {
 public:
  Hid(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Hid() {
    if (id_ >= 0) close_(id_);
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

std::string DtypeName(hid_t type) {
  std::size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") +
             std::to_string(bits);
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_STRING:
      return H5Tis_variable_str(type) > 0 ? "string"
                                          : "S" + std::to_string(bits / 8);
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_REFERENCE:
      return "reference";
    case H5T_VLEN:
      return "vlen";
    default:
      return "unknown";
  }
}

std::vector<std::uint64_t> ShapeOf(hid_t space) {
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

std::vector<std::uint64_t> ChunksOf(hid_t dcpl) {
  if (H5Pget_layout(dcpl) != H5D_CHUNKED) return {};
  hsize_t chunks[H5S_MAX_RANK];
  int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunks);
  return {chunks, chunks + std::max(rank, 0)};
}

std::string CompressionOf(hid_t dcpl) {
  std::string out;
  int n = H5Pget_nfilters(dcpl);
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, config = 0;
    std::size_t nvalues = 8;
    unsigned values[8];
    char name[64] = {0};
    H5Z_filter_t id =
        H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &nvalues, values,
                       sizeof name, name, &config);
    std::string filter;
    switch (id) {
      case H5Z_FILTER_DEFLATE:
        filter = "gzip";
        break;
      case H5Z_FILTER_SHUFFLE:
        filter = "shuffle";
        break;
      case H5Z_FILTER_FLETCHER32:
        filter = "fletcher32";
        break;
      case H5Z_FILTER_SZIP:
        filter = "szip";
        break;
      case H5Z_FILTER_NBIT:
        filter = "nbit";
        break;
      case H5Z_FILTER_SCALEOFFSET:
        filter = "scaleoffset";
        break;
      default:
        filter = name[0] ? name : "filter" + std::to_string(id);
    }
    out += (out.empty() ? "" : "+") + filter;
  }
  return out;
}

Status CheckHdf5File(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec))
    return Status::NotFound("no such file '" + file.string() + "'");
  QuietHdf5();
  if (H5Fis_hdf5(file.c_str()) <= 0) {
    return Status::InvalidArgument("'" + file.string() +
                                   "' is not an HDF5 file");
  }
  return Status::Ok();
}

herr_t CollectDataset(hid_t root, const char* name, const H5O_info_t* info,
                      void* data) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  auto* out = static_cast<std::vector<DatasetInfo>*>(data);
  Hid dset(H5Dopen2(root, name, H5P_DEFAULT), H5Dclose);
  if (!dset.ok()) return 0;
  Hid type(H5Dget_type(dset.get()), H5Tclose);
  Hid space(H5Dget_space(dset.get()), H5Sclose);
  Hid dcpl(H5Dget_create_plist(dset.get()), H5Pclose);
  out->push_back({std::string("/") + name, ShapeOf(space.get()),
                  DtypeName(type.get()), ChunksOf(dcpl.get()),
                  CompressionOf(dcpl.get())});
  return 0;
}

Status WriteStringAttribute(hid_t object, const char* name,
                            const std::string& value) {
  Hid type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Hid space(H5Screate(H5S_SCALAR), H5Sclose);
  Hid attr(H5Acreate2(object, name, type.get(), space.get(), H5P_DEFAULT,
                      H5P_DEFAULT),
           H5Aclose);
  const char* text = value.c_str();
  if (!attr.ok() || H5Awrite(attr.get(), type.get(), &text) < 0) {
    return Status::IOError(std::string("cannot write attribute ") + name);
  }
  return Status::Ok();
}

Result<std::vector<DatasetInfo>> ModuleListDatasets(const fs::path& file) {
  CMF_RETURN_IF_ERROR(CheckHdf5File(file));
  Hid f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok())
    return Status::IOError("cannot open HDF5 file '" + file.string() + "'");
  std::vector<DatasetInfo> out;
  if (H5Ovisit(f.get(), H5_INDEX_NAME, H5_ITER_INC, CollectDataset, &out) < 0) {
    return Status::Corruption("cannot list the datasets of '" + file.string() +
                              "'");
  }
  std::sort(out.begin(), out.end(),
            [](const DatasetInfo& a, const DatasetInfo& b) {
              return a.path < b.path;
            });
  return out;
}

// A selection of a source dataset, and what of it a slice keeps.
struct SliceShape {
  std::vector<SliceDim> dims;     // the selection, per source dimension
  std::vector<std::size_t> kept;  // source dimensions that the output keeps
  std::vector<hsize_t> out_dims;  // the slice's dimensions: their counts
};

// Fills in the dimensions of SHAPE's selection that the slice keeps.
void KeepDimensions(SliceShape& shape) {
  const std::size_t rank = shape.dims.size();
  for (std::size_t d = 0; d < rank; ++d) {
    if (!shape.dims[d].index) {
      shape.out_dims.push_back(shape.dims[d].count);
      shape.kept.push_back(d);
    }
  }
}

// The creation properties of a slice of SHAPE cut from a dataset created with
// SRC_DCPL: the source's, with its chunks cut to the slice's size, when it is
// chunked and the slice is not a scalar; else the defaults. The caller closes
// it.
hid_t SliceCreatePlist(hid_t src_dcpl, const SliceShape& shape) {
  std::vector<std::uint64_t> src_chunks = ChunksOf(src_dcpl);
  const std::vector<hsize_t>& out_dims = shape.out_dims;
  hid_t dcpl = src_chunks.empty() || out_dims.empty()
                   ? H5Pcreate(H5P_DATASET_CREATE)
                   : H5Pcopy(src_dcpl);
  if (!src_chunks.empty() && !out_dims.empty()) {
    std::vector<hsize_t> chunks;
    for (std::size_t k = 0; k < shape.kept.size(); ++k) {
      chunks.push_back(std::max<hsize_t>(
          1, std::min<hsize_t>(src_chunks[shape.kept[k]], out_dims[k])));
    }
    H5Pset_chunk(dcpl, static_cast<int>(chunks.size()), chunks.data());
  }
  return dcpl;
}

// The open datasets of a slice copy and their dataspaces, owned by the
// caller.
struct CopyEnds {
  hid_t src;        // the source dataset
  hid_t type;       // its element type, and the slice's
  hid_t space;      // its dataspace, where each block is selected
  hid_t dst;        // the slice's dataset
  hid_t out_space;  // its dataspace
};

// Copies SHAPE's selection of the source to the slice. IOError naming DATASET
// of SOURCE when it cannot be read, OUT when the slice cannot be written.
Status CopyBlocks(const CopyEnds& ends, const SliceShape& shape,
                  const std::string& dataset, const fs::path& source,
                  const fs::path& out) {
  const std::vector<SliceDim>& dims = shape.dims;
  const std::vector<std::size_t>& kept = shape.kept;
  const std::vector<hsize_t>& out_dims = shape.out_dims;
  const std::size_t rank = dims.size();
  // Copy a block of the outermost kept dimension at a time.
  const std::size_t elem = H5Tget_size(ends.type);
  std::uint64_t row = 1;  // elements per step of the outermost kept dimension
  for (std::size_t k = 1; k < kept.size(); ++k) row *= dims[kept[k]].count;
  const std::uint64_t total = kept.empty() ? 1 : dims[kept[0]].count;
  const std::uint64_t per_block = std::max<std::uint64_t>(
      1, kBlockBytes / std::max<std::uint64_t>(1, row * elem));
  std::vector<char> buffer(
      static_cast<std::size_t>(std::min(per_block, total) * row * elem));
  for (std::uint64_t b = 0; b < total; b += per_block) {
    const std::uint64_t n = std::min(per_block, total - b);
    std::vector<hsize_t> start(rank), stride(rank), count(rank);
    for (std::size_t d = 0; d < rank; ++d) {
      start[d] = dims[d].start;
      stride[d] = dims[d].step;
      count[d] = dims[d].count;
    }
    if (!kept.empty()) {
      start[kept[0]] += b * dims[kept[0]].step;
      count[kept[0]] = n;
    }
    if (rank > 0) {
      H5Sselect_hyperslab(ends.space, H5S_SELECT_SET, start.data(),
                          stride.data(), count.data(), nullptr);
    }
    Hid mem_in(rank > 0 ? H5Screate_simple(static_cast<int>(rank), count.data(),
                                           nullptr)
                        : H5Screate(H5S_SCALAR),
               H5Sclose);
    if (H5Dread(ends.src, ends.type, mem_in.get(), ends.space, H5P_DEFAULT,
                buffer.data()) < 0) {
      return Status::IOError("cannot read dataset '" + dataset + "' of '" +
                             source.string() + "'");
    }
    std::vector<hsize_t> out_start(out_dims.size(), 0), out_count = out_dims;
    if (!out_dims.empty()) {
      out_start[0] = b;
      out_count[0] = n;
      H5Sselect_hyperslab(ends.out_space, H5S_SELECT_SET, out_start.data(),
                          nullptr, out_count.data(), nullptr);
    }
    Hid mem_out(out_dims.empty()
                    ? H5Screate(H5S_SCALAR)
                    : H5Screate_simple(static_cast<int>(out_count.size()),
                                       out_count.data(), nullptr),
                H5Sclose);
    if (H5Dwrite(ends.dst, ends.type, mem_out.get(), ends.out_space,
                 H5P_DEFAULT, buffer.data()) < 0) {
      return Status::IOError("cannot write the slice to '" + out.string() +
                             "'");
    }
  }
  return Status::Ok();
}

// Records on the slice's dataset DST where it was cut from.
Status WriteProvenance(hid_t dst, const SliceProvenance& provenance,
                       const std::string& dataset, std::string_view selection) {
  CMF_RETURN_IF_ERROR(
      WriteStringAttribute(dst, "cmf_parent_sha256", provenance.parent_hash));
  CMF_RETURN_IF_ERROR(WriteStringAttribute(dst, "cmf_parent_dataset", dataset));
  return WriteStringAttribute(dst, "cmf_selection", std::string(selection));
}

Result<SliceResult> ModuleWriteSlice(const fs::path& source,
                                     const std::string& dataset,
                                     std::string_view selection,
                                     const fs::path& out,
                                     const SliceProvenance& provenance) {
  CMF_RETURN_IF_ERROR(CheckHdf5File(source));
  std::error_code same_ec;
  if (fs::exists(out, same_ec) && fs::equivalent(out, source, same_ec)) {
    return Status::InvalidArgument(
        "the slice would overwrite its own source '" + source.string() + "'");
  }
  Hid in(H5Fopen(source.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!in.ok())
    return Status::IOError("cannot open HDF5 file '" + source.string() + "'");
  Hid src(H5Dopen2(in.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!src.ok()) {
    return Status::NotFound("no dataset '" + dataset + "' in '" +
                            source.string() + "'");
  }
  Hid type(H5Dget_type(src.get()), H5Tclose);
  if (H5Tdetect_class(type.get(), H5T_VLEN) > 0 ||
      H5Tis_variable_str(type.get()) > 0) {
    return Status::InvalidArgument(
        "dataset '" + dataset +
        "' holds variable-length data, which cannot be sliced");
  }
  Hid space(H5Dget_space(src.get()), H5Sclose);
  std::vector<std::uint64_t> shape = ShapeOf(space.get());
  SliceShape slice;
  CMF_ASSIGN_OR_RETURN(slice.dims, ParseSelection(selection, shape));
  KeepDimensions(slice);
  const std::vector<hsize_t>& out_dims = slice.out_dims;
  SliceResult result;
  result.shape.assign(out_dims.begin(), out_dims.end());
  result.dtype = DtypeName(type.get());
  result.elements = 1;
  for (const SliceDim& d : slice.dims) result.elements *= d.count;

  // Written under a temporary name and renamed: OUT is whole or absent.
  CMF_ASSIGN_OR_RETURN(AtomicFile output, AtomicFile::Create(out));
  const std::string& temp = output.temp_path();
  {
    Hid file(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
             H5Fclose);
    if (!file.ok())
      return Status::IOError("cannot create '" + out.string() + "'");
    Hid lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    Hid src_dcpl(H5Dget_create_plist(src.get()), H5Pclose);
    Hid dcpl(SliceCreatePlist(src_dcpl.get(), slice), H5Pclose);
    Hid out_space(out_dims.empty()
                      ? H5Screate(H5S_SCALAR)
                      : H5Screate_simple(static_cast<int>(out_dims.size()),
                                         out_dims.data(), nullptr),
                  H5Sclose);
    Hid dst(H5Dcreate2(file.get(), dataset.c_str(), type.get(), out_space.get(),
                       lcpl.get(), dcpl.get(), H5P_DEFAULT),
            H5Dclose);
    if (!dst.ok())
      return Status::IOError("cannot create dataset '" + dataset +
                             "' in the slice");
    const CopyEnds ends = {.src = src.get(),
                           .type = type.get(),
                           .space = space.get(),
                           .dst = dst.get(),
                           .out_space = out_space.get()};
    CMF_RETURN_IF_ERROR(CopyBlocks(ends, slice, dataset, source, out));
    CMF_RETURN_IF_ERROR(
        WriteProvenance(dst.get(), provenance, dataset, selection));
    if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) {
      return Status::IOError("cannot write '" + out.string() + "'");
    }
  }
  // HDF5 has closed the file; the flush, the rename and the folder's flush
  // remain.
  CMF_RETURN_IF_ERROR(output.Commit());
  return result;
}

Result<NumericArray> ModuleReadNumeric(const fs::path& file,
                                       const std::string& dataset,
                                       std::uint64_t max_extent) {
  CMF_RETURN_IF_ERROR(CheckHdf5File(file));
  if (max_extent == 0) return Status::InvalidArgument("max_extent is 0");
  Hid f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok())
    return Status::IOError("cannot open HDF5 file '" + file.string() + "'");
  if (H5Lexists(f.get(), dataset.c_str(), H5P_DEFAULT) <= 0) {
    return Status::NotFound("no dataset '" + dataset + "' in '" +
                            file.string() + "'");
  }
  Hid d(H5Dopen2(f.get(), dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) {
    return Status::InvalidArgument("'" + dataset + "' in '" + file.string() +
                                   "' is not a dataset");
  }
  Hid type(H5Dget_type(d.get()), H5Tclose);
  const H5T_class_t kind = H5Tget_class(type.get());
  if (kind != H5T_INTEGER && kind != H5T_FLOAT) {
    return Status::InvalidArgument("'" + dataset + "' in '" + file.string() +
                                   "' holds " + DtypeName(type.get()) +
                                   ", not numbers");
  }
  Hid space(H5Dget_space(d.get()), H5Sclose);
  const std::vector<std::uint64_t> shape = ShapeOf(space.get());
  NumericArray out;
  out.dataset_shape = shape;
  std::vector<hsize_t> start(shape.size(), 0), stride(shape.size(), 1),
      count(shape.size(), 1);
  std::uint64_t elements = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const std::uint64_t step = (shape[i] + max_extent - 1) / max_extent;
    stride[i] = std::max<std::uint64_t>(step, 1);
    count[i] = shape[i] == 0 ? 0 : (shape[i] - 1) / stride[i] + 1;
    out.shape.push_back(count[i]);
    out.stride.push_back(stride[i]);
    elements *= count[i];
    if (elements > kMaxNumericElements) {
      return Status::InvalidArgument("'" + dataset + "' in '" + file.string() +
                                     "' is too large to read");
    }
  }
  out.values.resize(elements);
  if (elements == 0) return out;
  if (!shape.empty() &&
      H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(),
                          stride.data(), count.data(), nullptr) < 0) {
    return Status::Corruption("cannot select '" + dataset + "' in '" +
                              file.string() + "'");
  }
  Hid mem(shape.empty() ? H5Screate(H5S_SCALAR)
                        : H5Screate_simple(static_cast<int>(count.size()),
                                           count.data(), nullptr),
          H5Sclose);
  if (H5Dread(d.get(), H5T_NATIVE_DOUBLE, mem.get(), space.get(), H5P_DEFAULT,
              out.values.data()) < 0) {
    return Status::Corruption("cannot read '" + dataset + "' of '" +
                              file.string() + "'");
  }
  return out;
}

const Hdf5Module kModule = {
    .header = {kHdf5ModuleAbi, CMF_VERSION, CMF_BUILD_ID},
    .list_datasets = &ModuleListDatasets,
    .write_slice = &ModuleWriteSlice,
    .read_numeric = &ModuleReadNumeric,
};

}  // namespace
}  // namespace cmf::data

extern "C" __attribute__((visibility("default"))) const cmf::data::Hdf5Module*
cmf_hdf5_module() {
  return &cmf::data::kModule;
}
