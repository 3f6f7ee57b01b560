#include "cmf/artifact_data.h"

#include <filesystem>
#include <system_error>

#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"

namespace fs = std::filesystem;

namespace cmf {

Result<NumericArray> ReadArtifactArray(Repo& repo, const ArtifactRef& artifact,
                                       const std::string& dataset,
                                       std::uint64_t max_extent) {
  if (repo.objects().Has(artifact.hash)) {
    return data::ReadNumeric(repo.objects().PathOf(artifact.hash), dataset,
                             max_extent);
  }
  // Not cached (an input that was never added): the file it was read from,
  // if it still holds those bytes. A recorded path is another site's text:
  // only a relative one without '..' is looked at.
  const fs::path recorded(artifact.path);
  bool inside = !recorded.empty() && recorded.is_relative();
  for (const fs::path& part : recorded) inside = inside && part != "..";
  if (inside) {
    const fs::path file = repo.workspace() / recorded;
    std::error_code ec;
    if (fs::is_regular_file(file, ec) &&
        fs::file_size(file, ec) == artifact.size && !ec) {
      Result<std::string> hash = data::HashFile(file);
      if (hash.ok() && *hash == artifact.hash) {
        return data::ReadNumeric(file, dataset, max_extent);
      }
    }
  }
  return Status::NotFound("the bytes of '" + artifact.path +
                          "' are not at this site (cmf get fetches them)");
}

bool HeldHere(const Repo& repo, const std::string& hash) {
  return repo.objects().Has(hash);
}

}  // namespace cmf
