#include "hdf5_fixture.h"

#include <hdf5.h>

#include <limits>
#include <stdexcept>

namespace cmf::test {

void WriteFloatDataset(const std::filesystem::path& file,
                       const std::string& dataset,
                       const std::vector<unsigned long long>& shape,
                       const std::vector<unsigned long long>& chunks) {
  hid_t f =
      std::filesystem::exists(file)
          ? H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
          : H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw std::runtime_error("cannot create " + file.string());
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  hid_t space =
      H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (!chunks.empty()) {
    std::vector<hsize_t> c(chunks.begin(), chunks.end());
    H5Pset_chunk(dcpl, static_cast<int>(c.size()), c.data());
    H5Pset_deflate(dcpl, 4);
  }
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5Pset_create_intermediate_group(lcpl, 1);
  hid_t d = H5Dcreate2(f, dataset.c_str(), H5T_IEEE_F32LE, space, lcpl, dcpl,
                       H5P_DEFAULT);
  std::size_t n = 1;
  for (auto s : shape) n *= s;
  std::vector<float> values(n);
  for (std::size_t i = 0; i < n; ++i) values[i] = static_cast<float>(i);
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  H5Dclose(d);
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(space);
  H5Fclose(f);
}

std::vector<float> ReadFloatDataset(const std::filesystem::path& file,
                                    const std::string& dataset,
                                    std::vector<unsigned long long>* shape) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  hid_t space = H5Dget_space(d);
  int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  std::size_t n = 1;
  for (auto s : dims) n *= s;
  std::vector<float> values(n);
  H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
  if (shape) shape->assign(dims.begin(), dims.end());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(f);
  return values;
}

std::string ReadStringAttribute(const std::filesystem::path& file,
                                const std::string& dataset,
                                const std::string& name) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t a = H5Aopen_by_name(f, dataset.c_str(), name.c_str(), H5P_DEFAULT,
                            H5P_DEFAULT);
  hid_t type = H5Aget_type(a);
  char* text = nullptr;
  H5Aread(a, type, &text);
  std::string out = text ? text : "";
  H5free_memory(text);
  H5Tclose(type);
  H5Aclose(a);
  H5Fclose(f);
  return out;
}

double ReadNumberAttribute(const std::filesystem::path& file,
                           const std::string& dataset,
                           const std::string& name) {
  double value = std::numeric_limits<double>::quiet_NaN();
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (f < 0) return value;
  hid_t a = H5Aopen_by_name(f, dataset.c_str(), name.c_str(), H5P_DEFAULT,
                            H5P_DEFAULT);
  if (a >= 0) {
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &value) < 0) {
      value = std::numeric_limits<double>::quiet_NaN();
    }
    H5Aclose(a);
  }
  H5Fclose(f);
  return value;
}

}  // namespace cmf::test
