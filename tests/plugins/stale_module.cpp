// A cmf-hdf5.so left from another build of cmf: its entry point returns a
// table whose header has the current ABI number (2) but another build id. The
// loader must refuse it before it calls anything in it (the two functions are
// null). If the ABI number moves on, the loader refuses it for that instead;
// the test checks the refusal either way.
namespace {

struct Header {
  int abi;
  const char* version;
  const char* build_id;
};

struct Table {
  Header header;
  void* list_datasets;
  void* write_slice;
};

const Table kTable = {{2, "0.0.0", "from-another-build"}, nullptr, nullptr};

}  // namespace

extern "C" __attribute__((visibility("default"))) const Table*
cmf_hdf5_module() {
  return &kTable;
}
