#include "cmf/data/hash.h"

#include "file_reader.h"

namespace cmf::data {

Result<std::string> HashFile(const std::filesystem::path& path) {
  return HashFileContent(path, nullptr);
}

}  // namespace cmf::data
