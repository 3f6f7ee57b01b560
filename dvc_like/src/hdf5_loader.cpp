// ListDatasets, WriteSlice and ReadNumeric for cmf itself: they load the HDF5
// module on first use. The module is looked for beside the running binary's
// build tree
// (<exe>/../dvc_like/cmf-hdf5.so), then where `meson install` puts it
// (<libdir>/cmf/cmf-hdf5.so); CMF_HDF5_MODULE names another file.
#include "cmf/data/hdf5_slice.h"
#include "cmf/data/module_loader.h"
#include "hdf5_module.h"

namespace fs = std::filesystem;

namespace cmf::data {
namespace {

Result<const Hdf5Module*> Load() {
  return LoadModuleOnce<Hdf5Module>({"HDF5", "CMF_HDF5_MODULE", "dvc_like",
                                     "cmf-hdf5.so", "cmf_hdf5_module",
                                     kHdf5ModuleAbi});
}

}  // namespace

Result<std::vector<DatasetInfo>> ListDatasets(const fs::path& file) {
  CMF_ASSIGN_OR_RETURN(const Hdf5Module* module, Load());
  return module->list_datasets(file);
}

Result<SliceResult> WriteSlice(const fs::path& source,
                               const std::string& dataset,
                               std::string_view selection, const fs::path& out,
                               const SliceProvenance& provenance) {
  CMF_ASSIGN_OR_RETURN(const Hdf5Module* module, Load());
  return module->write_slice(source, dataset, selection, out, provenance);
}

Result<NumericArray> ReadNumeric(const fs::path& file,
                                 const std::string& dataset,
                                 std::uint64_t max_extent) {
  CMF_ASSIGN_OR_RETURN(const Hdf5Module* module, Load());
  return module->read_numeric(file, dataset, max_extent);
}

}  // namespace cmf::data
