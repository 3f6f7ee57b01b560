#include "h5io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <stdexcept>

#include "text_file.h"

namespace cmf::h5 {
namespace {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

// fsync of an existing file or directory; false when it cannot be opened.
bool SyncPath(const std::filesystem::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

// VALUE as well-formed UTF-8: any byte that does not belong to a valid
// sequence (a file name from another system) written as \xNN, so that every
// reader of the attribute can decode it.
std::string Utf8(const std::string& value) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(value.data());
  const std::size_t n = value.size();
  for (std::size_t i = 0; i < n;) {
    unsigned char c = p[i];
    std::size_t len = c < 0x80         ? 1
                      : (c >> 5) == 6  ? 2
                      : (c >> 4) == 14 ? 3
                      : (c >> 3) == 30 ? 4
                                       : 0;
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len == 2) ok = c >= 0xC2;  // overlong
    if (ok && len == 3)
      ok = !(c == 0xE0 && p[i + 1] < 0xA0) &&  // overlong
           !(c == 0xED && p[i + 1] >= 0xA0);   // surrogates
    if (ok && len == 4)
      ok = c <= 0xF4 && !(c == 0xF0 && p[i + 1] < 0x90) &&
           !(c == 0xF4 && p[i + 1] >= 0x90);
    if (ok && c != 0) {
      out.append(value, i, len);
      i += len;
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
      ++i;
    }
  }
  return out;
}

// True when attribute A holds exactly one value (a list would overrun the
// room for one).
bool Scalar(hid_t a) {
  H5 space(H5Aget_space(a), H5Sclose);
  return space.ok() && H5Sget_simple_extent_npoints(space.get()) == 1;
}

}  // namespace

NewFile::NewFile(std::filesystem::path path)
    : path_(std::move(path)), tmp_(path_.string() + ".tmp") {
  QuietHdf5();
  id_ = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id_ < 0) Fail("cannot create '" + tmp_.string() + "'");
}

NewFile::~NewFile() {
  if (id_ >= 0) {
    H5Fclose(id_);
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

void NewFile::Commit() {
  bool flushed = H5Fflush(id_, H5F_SCOPE_GLOBAL) >= 0;
  bool closed = H5Fclose(id_) >= 0;
  id_ = -1;
  std::error_code ec;
  if (!flushed || !closed || !SyncPath(tmp_, O_RDONLY)) {
    std::filesystem::remove(tmp_, ec);
    Fail("cannot write '" + tmp_.string() + "'");
  }
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) {
    std::filesystem::remove(tmp_, ec);
    Fail("cannot rename '" + tmp_.string() + "' to '" + path_.string() + "'");
  }
  std::filesystem::path dir = path_.parent_path();
  SyncPath(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
}

void Write(hid_t file, const char* name, hid_t mem_type, hid_t file_type,
           const std::vector<hsize_t>& dims, const void* data,
           const std::string& path) {
  H5 space(
      H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      H5Sclose);
  H5 d(H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                  H5P_DEFAULT),
       H5Dclose);
  if (!d.ok() ||
      H5Dwrite(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    Fail("cannot write " + std::string(name) + " to '" + path + "'");
}

void Attribute(hid_t obj, const std::string& name, const std::string& value) {
  H5 type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  H5 space(H5Screate(H5S_SCALAR), H5Sclose);
  H5 a(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT,
                  H5P_DEFAULT),
       H5Aclose);
  const std::string valid = Utf8(value);
  const char* text = valid.c_str();
  if (!a.ok() || H5Awrite(a.get(), type.get(), &text) < 0)
    Fail("cannot write the attribute " + name);
}

void IntAttribute(hid_t obj, const std::string& name, long long value) {
  H5 space(H5Screate(H5S_SCALAR), H5Sclose);
  H5 a(H5Acreate2(obj, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT,
                  H5P_DEFAULT),
       H5Aclose);
  if (!a.ok() || H5Awrite(a.get(), H5T_NATIVE_LLONG, &value) < 0)
    Fail("cannot write the attribute " + name);
}

void RealAttribute(hid_t obj, const std::string& name, double value) {
  H5 space(H5Screate(H5S_SCALAR), H5Sclose);
  H5 a(H5Acreate2(obj, name.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT,
                  H5P_DEFAULT),
       H5Aclose);
  if (!a.ok() || H5Awrite(a.get(), H5T_NATIVE_DOUBLE, &value) < 0)
    Fail("cannot write the attribute " + name);
}

template <typename T>
std::vector<T> ReadAll(hid_t file, const char* name, hid_t mem_type,
                       std::vector<hsize_t>* dims, const std::string& path) {
  H5 d(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!d.ok()) Fail("'" + path + "' has no " + name);
  H5 space(H5Dget_space(d.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8)
    Fail("'" + path + "': " + name + " has no usable shape");
  dims->assign(rank, 0);
  H5Sget_simple_extent_dims(space.get(), dims->data(), nullptr);
  // A bound well above the trajectories and maps cmf reads (4 GiB a dataset),
  // so that a hostile header (a huge dataset never written) cannot ask for an
  // allocation that ends the process.
  const hsize_t max_elements = (hsize_t{4} << 30) / sizeof(T);
  hsize_t n = 1;
  for (hsize_t v : *dims) {
    if (v != 0 && n > max_elements / v)
      Fail("'" + path + "': " + name + " is larger than 4 GiB");
    n *= v;
  }
  std::vector<T> out(n);
  if (n > 0 &&
      H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0)
    Fail("cannot read " + std::string(name) + " of '" + path + "'");
  return out;
}

template std::vector<float> ReadAll<float>(hid_t, const char*, hid_t,
                                           std::vector<hsize_t>*,
                                           const std::string&);
template std::vector<double> ReadAll<double>(hid_t, const char*, hid_t,
                                             std::vector<hsize_t>*,
                                             const std::string&);
template std::vector<int> ReadAll<int>(hid_t, const char*, hid_t,
                                       std::vector<hsize_t>*,
                                       const std::string&);
template std::vector<long long> ReadAll<long long>(hid_t, const char*, hid_t,
                                                   std::vector<hsize_t>*,
                                                   const std::string&);

std::optional<std::string> TextAttribute(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return std::nullopt;
  H5 a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5 type(H5Aget_type(a.get()), H5Tclose);
  if (!a.ok() || H5Tget_class(type.get()) != H5T_STRING || !Scalar(a.get()))
    return std::nullopt;
  if (H5Tis_variable_str(type.get()) > 0) {
    H5 mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    if (H5Aread(a.get(), mem.get(), &text) < 0 || text == nullptr)
      return std::nullopt;
    std::string out(text);
    H5free_memory(text);
    return out;
  }
  std::size_t size = H5Tget_size(type.get());
  if (size == 0 || size > (1u << 20)) return std::nullopt;
  std::string out(size, '\0');
  H5 mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), size);
  H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
  if (H5Aread(a.get(), mem.get(), out.data()) < 0) return std::nullopt;
  out.resize(out.find('\0') == std::string::npos ? size : out.find('\0'));
  return out;
}

std::optional<double> RealAttributeOf(hid_t obj, const char* name) {
  if (H5Aexists(obj, name) <= 0) return std::nullopt;
  H5 a(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  H5 type(H5Aget_type(a.get()), H5Tclose);
  if (!a.ok() || !Scalar(a.get())) return std::nullopt;
  H5T_class_t c = H5Tget_class(type.get());
  if (c != H5T_FLOAT && c != H5T_INTEGER) return std::nullopt;
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) return std::nullopt;
  return v;
}

void WriteTextFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) {
      std::filesystem::remove(tmp, ec);
      Fail("cannot write '" + tmp.string() + "'");
    }
  }
  if (!SyncPath(tmp, O_RDONLY)) {
    std::filesystem::remove(tmp, ec);
    Fail("cannot write '" + tmp.string() + "'");
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    Fail("cannot rename '" + tmp.string() + "' to '" + path.string() + "'");
  }
  std::filesystem::path dir = path.parent_path();
  SyncPath(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
}

}  // namespace cmf::h5
