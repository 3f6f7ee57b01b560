// Small helpers over the HDF5 C API for the plugins' own files (torch-free;
// shared by plugins/ml and plugins/md): a handle that closes itself, a new
// file written under a temporary name and renamed into place, and typed
// reads and writes of whole datasets and attributes. Errors throw
// std::runtime_error with a message for the user.
#pragma once

#include <hdf5.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cmf::h5 {

class H5 {
 public:
  H5(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5() {
    if (id_ >= 0) close_(id_);
  }
  H5(const H5&) = delete;
  H5& operator=(const H5&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

// HDF5 prints its error stack by default; cmf reports errors itself.
inline void QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// Creates PATH.tmp; Commit flushes it to disk and renames it over PATH. A
// NewFile destroyed before Commit removes PATH.tmp, so that a failure or an
// interruption leaves nothing half-written.
class NewFile {
 public:
  explicit NewFile(std::filesystem::path path);
  ~NewFile();
  NewFile(const NewFile&) = delete;
  NewFile& operator=(const NewFile&) = delete;
  hid_t get() const { return id_; }
  std::string path() const { return path_.string(); }
  void Commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  hid_t id_ = -1;
};

// Writes the dataset NAME of DIMS (row-major) from DATA, stored as FILE_TYPE.
void Write(hid_t file, const char* name, hid_t mem_type, hid_t file_type,
           const std::vector<hsize_t>& dims, const void* data,
           const std::string& path);

// Scalar attributes of OBJ (a file or a dataset). Text is stored as UTF-8; a
// byte of VALUE that is not part of well-formed UTF-8 (a file name from
// another system) is written as the four characters \xNN.
void Attribute(hid_t obj, const std::string& name, const std::string& value);
void IntAttribute(hid_t obj, const std::string& name, long long value);
void RealAttribute(hid_t obj, const std::string& name, double value);

// The whole dataset NAME converted to MEM_TYPE; its shape in DIMS. Fails when
// it is missing, unreadable, or larger than 4 GiB in memory.
template <typename T>
std::vector<T> ReadAll(hid_t file, const char* name, hid_t mem_type,
                       std::vector<hsize_t>* dims, const std::string& path);

// The attribute NAME of OBJ when it exists, holds one value and has that
// type, else nullopt.
std::optional<std::string> TextAttribute(hid_t obj, const char* name);
std::optional<double> RealAttributeOf(hid_t obj, const char* name);

}  // namespace cmf::h5
