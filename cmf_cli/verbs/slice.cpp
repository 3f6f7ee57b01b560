#include <fmt/format.h>

#include "../format.h"
#include "../json_output.h"
#include "../verb.h"
#include "cmf/dataslice.h"

namespace cmf::cli {
namespace {

std::string Dims(const std::vector<std::uint64_t>& dims) {
  std::string out = "(";
  for (std::size_t i = 0; i < dims.size(); ++i)
    out += (i ? ", " : "") + std::to_string(dims[i]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

class SliceVerb : public Verb {
 public:
  void Setup(CLI::App& app) override {
    app.add_option("file", file_, "An HDF5 file")->required();
    app.add_option("dataset", dataset_,
                   "The dataset to cut from, e.g. /spectra");
    app.add_option(
        "selection", selection_,
        "NumPy-style hyperslab, one entry per dimension: '10:20,0:50,:' "
        "(one that starts with '-' goes last, after --)");
    app.add_option("-o,--output", out_, "The HDF5 file to write the slice to")
        ->type_name("OUT");
    app.add_flag("--list", list_,
                 "List the file's datasets with their shapes and types");
    app.add_flag("--json", json_, "With --list: print JSON");
    app.add_flag("-q,--quiet", quiet_, "Print nothing on success");
  }

  int Run(Context& ctx) override {
    if (list_) return List();
    if (dataset_.empty() || selection_.empty() || out_.empty()) {
      return UsageError(
          "slice needs FILE DATASET SELECTION -o OUT (or --list FILE)");
    }
    if (json_) return UsageError("--json goes with --list");
    SliceRequest request;
    request.file = file_;
    request.dataset = dataset_;
    request.selection = selection_;
    request.out = out_;
    request.command = {"cmf", "slice", file_, dataset_, selection_, "-o", out_};
    Result<SliceOutcome> r = MakeSlice(*ctx.repo, request);
    if (!r.ok()) return Fail(r.status());
    if (!quiet_) {
      fmt::print("{} {} {} of {}: {} elements, {} -> {} ({})\n", r->slice.path,
                 r->result.dtype, Dims(r->result.shape), dataset_,
                 r->result.elements, HumanSize(r->slice.size),
                 r->slice.hash.substr(0, 12), "execution " + r->execution_id);
    }
    return kExitOk;
  }

 private:
  int List() {
    if (!dataset_.empty() || !out_.empty())
      return UsageError("--list takes only FILE");
    Result<std::vector<data::DatasetInfo>> sets = data::ListDatasets(file_);
    if (!sets.ok()) return Fail(sets.status());
    if (json_) {
      fmt::print("{}\n", DatasetsJson(*sets));
      return kExitOk;
    }
    for (const auto& d : *sets) {
      fmt::print("{}  {}  {}{}{}\n", d.path, d.dtype, Dims(d.shape),
                 d.chunks.empty() ? "" : "  chunks " + Dims(d.chunks),
                 d.compression.empty() ? "" : "  " + d.compression);
    }
    return kExitOk;
  }

  std::string file_, dataset_, selection_, out_;
  bool list_ = false, json_ = false, quiet_ = false;
};

}  // namespace

std::unique_ptr<Verb> MakeSliceVerb() { return std::make_unique<SliceVerb>(); }

}  // namespace cmf::cli
