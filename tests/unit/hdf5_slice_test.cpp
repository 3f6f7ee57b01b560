#include "cmf/data/hdf5_slice.h"

#include <doctest/doctest.h>

#include "cmf/data/hash.h"
#include "hdf5_fixture.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;

TEST_CASE(
    "slice: a hyperslab keeps the selected elements, in order, with the same "
    "dtype") {
  TempDir dir;
  test::WriteFloatDataset(dir / "raw.h5", "/spectra", {6, 5, 4});
  Result<data::SliceResult> r =
      data::WriteSlice(dir / "raw.h5", "/spectra", "1:5:2, 2, :", dir / "s.h5",
                       {std::string(64, 'a'), "1:5:2, 2, :"});
  REQUIRE(r.ok());
  CHECK(r->shape ==
        std::vector<std::uint64_t>{2, 4});  // the index drops its dimension
  CHECK(r->dtype == "float32");
  std::vector<unsigned long long> shape;
  std::vector<float> v =
      test::ReadFloatDataset(dir / "s.h5", "/spectra", &shape);
  CHECK(shape == std::vector<unsigned long long>{2, 4});
  // element [i, j, k] of the source is i*20 + j*4 + k
  std::vector<float> want;
  for (int i : {1, 3}) {
    for (int k = 0; k < 4; ++k)
      want.push_back(static_cast<float>(i * 20 + 2 * 4 + k));
  }
  CHECK(v == want);
  CHECK(test::ReadStringAttribute(dir / "s.h5", "/spectra",
                                  "cmf_parent_sha256") == std::string(64, 'a'));
  CHECK(test::ReadStringAttribute(dir / "s.h5", "/spectra", "cmf_selection") ==
        "1:5:2, 2, :");
  CHECK(test::ReadStringAttribute(dir / "s.h5", "/spectra",
                                  "cmf_parent_dataset") == "/spectra");
}

TEST_CASE(
    "slice: a chunked, compressed source gives a chunked, compressed slice") {
  TempDir dir;
  test::WriteFloatDataset(dir / "raw.h5", "/g/image", {40, 30}, {8, 8});
  REQUIRE(data::WriteSlice(dir / "raw.h5", "/g/image", "-10:, 0:3",
                           dir / "s.h5", {"p", "x"})
              .ok());
  Result<std::vector<data::DatasetInfo>> sets =
      data::ListDatasets(dir / "s.h5");
  REQUIRE(sets.ok());
  REQUIRE(sets->size() == 1);
  CHECK(sets->front().path == "/g/image");
  CHECK(sets->front().shape == std::vector<std::uint64_t>{10, 3});
  CHECK(sets->front().chunks == std::vector<std::uint64_t>{8, 3});
  CHECK(sets->front().compression == "gzip");
  std::vector<float> v = test::ReadFloatDataset(dir / "s.h5", "/g/image");
  CHECK(v.front() == 30 * 30);  // row 30 (= -10), column 0
}

TEST_CASE("slice: --list names every dataset with its shape and dtype") {
  TempDir dir;
  test::WriteFloatDataset(dir / "e.h5", "/image", {62, 75});
  test::WriteFloatDataset(dir / "e.h5", "/spectra", {62, 75, 46}, {16, 16, 46});
  Result<std::vector<data::DatasetInfo>> sets =
      data::ListDatasets(dir / "e.h5");
  REQUIRE(sets.ok());
  REQUIRE(sets->size() == 2);
  CHECK(sets->at(0).path == "/image");
  CHECK(sets->at(0).chunks.empty());
  CHECK(sets->at(1).shape == std::vector<std::uint64_t>{62, 75, 46});
  CHECK(sets->at(1).dtype == "float32");
}

TEST_CASE("slice: bad selections are refused with the reason") {
  std::vector<std::uint64_t> shape = {10, 20};
  auto error = [&](const char* sel) {
    return data::ParseSelection(sel, shape).status();
  };
  CHECK(error("1:2").message().find("has 1 dimension, the dataset 2") !=
        std::string::npos);
  CHECK(error("1:2,3,4").code() == Code::kInvalidArgument);
  CHECK(error("5:2,:").message().find("reversed") != std::string::npos);
  CHECK(error("0:11,:").message().find("out of range") != std::string::npos);
  CHECK(error("10,:").message().find("out of range") != std::string::npos);
  CHECK(error("-11,:").message().find("out of range") != std::string::npos);
  CHECK(error("0:5:0,:").message().find("not positive") != std::string::npos);
  CHECK(error("3:3,:").message().find("selects nothing") != std::string::npos);
  CHECK(error("a:b,:").message().find("is not a selection") !=
        std::string::npos);
  CHECK(error("1:2:3:4,:").code() == Code::kInvalidArgument);
  Result<std::vector<data::SliceDim>> ok =
      data::ParseSelection(" : , -3 ", shape);
  REQUIRE(ok.ok());
  CHECK(ok->at(0).count == 10);
  CHECK(ok->at(1).index);
  CHECK(ok->at(1).start == 17);
  Result<std::vector<data::SliceDim>> stepped =
      data::ParseSelection("1::3,::7", shape);
  REQUIRE(stepped.ok());
  CHECK(stepped->at(0).count == 3);  // 1, 4, 7
  CHECK(stepped->at(1).count == 3);  // 0, 7, 14
}

TEST_CASE(
    "slice: a non-HDF5 file, a missing dataset and a missing file are "
    "refused") {
  TempDir dir;
  test::WriteFile(dir / "x.h5", "not hdf5 at all");
  CHECK(data::WriteSlice(dir / "x.h5", "/d", ":", dir / "s.h5", {})
            .status()
            .message()
            .find("is not an HDF5 file") != std::string::npos);
  CHECK(data::ListDatasets(dir / "x.h5").status().code() ==
        Code::kInvalidArgument);
  test::WriteFloatDataset(dir / "r.h5", "/d", {4});
  Result<data::SliceResult> missing =
      data::WriteSlice(dir / "r.h5", "/nope", ":", dir / "s.h5", {});
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(data::WriteSlice(dir / "none.h5", "/d", ":", dir / "s.h5", {})
            .status()
            .code() == Code::kNotFound);
  CHECK_FALSE(std::filesystem::exists(dir / "s.h5"));
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    CHECK_MESSAGE(e.path().filename().string().rfind("s.h5", 0) != 0,
                  "a temporary was left: ", e.path());
  }
}

TEST_CASE("slice: a slice bigger than one copy block comes out whole") {
  TempDir dir;
  // 70 MiB of float32 in 2 chunks of rows: more than one 64 MiB block
  test::WriteFloatDataset(dir / "big.h5", "/d", {1120, 16384}, {64, 16384});
  Result<data::SliceResult> r = data::WriteSlice(
      dir / "big.h5", "/d", "::1, 100:102", dir / "s.h5", {"p", "x"});
  REQUIRE(r.ok());
  std::vector<unsigned long long> shape;
  std::vector<float> v = test::ReadFloatDataset(dir / "s.h5", "/d", &shape);
  CHECK(shape == std::vector<unsigned long long>{1120, 2});
  CHECK(v[2 * 1119 + 1] == static_cast<float>(1119.0 * 16384 + 101));
}

TEST_CASE(
    "slice: a slice never overwrites its own source; huge steps select one "
    "element") {
  TempDir dir;
  test::WriteFloatDataset(dir / "raw.h5", "/d", {10});
  std::string before = test::ReadFile(dir / "raw.h5");
  Result<data::SliceResult> r =
      data::WriteSlice(dir / "raw.h5", "/d", "0:2", dir / "raw.h5", {});
  CHECK(r.status().message().find("overwrite its own source") !=
        std::string::npos);
  CHECK(test::ReadFile(dir / "raw.h5") == before);
  Result<std::vector<data::SliceDim>> one =
      data::ParseSelection("0:10:9223372036854775807", {10});
  REQUIRE(one.ok());
  CHECK(one->at(0).count == 1);
}

TEST_CASE(
    "hdf5: ReadNumeric gives a dataset's numbers, every k-th along a long "
    "dimension, and refuses what is not numbers") {
  TempDir dir;
  // element [i, j] is i*5 + j
  test::WriteFloatDataset(dir / "raw.h5", "/image", {7, 5});
  Result<data::NumericArray> all =
      data::ReadNumeric(dir / "raw.h5", "/image", 100);
  REQUIRE(all.ok());
  CHECK(all->shape == std::vector<std::uint64_t>{7, 5});
  CHECK(all->stride == std::vector<std::uint64_t>{1, 1});
  REQUIRE(all->values.size() == 35);
  CHECK(all->values[12] == 12.0);
  // At most 3 along each dimension: every 3rd row (0, 3, 6), every 2nd
  // column (0, 2, 4).
  Result<data::NumericArray> few =
      data::ReadNumeric(dir / "raw.h5", "/image", 3);
  REQUIRE(few.ok());
  CHECK(few->shape == std::vector<std::uint64_t>{3, 3});
  CHECK(few->stride == std::vector<std::uint64_t>{3, 2});
  CHECK(few->dataset_shape == std::vector<std::uint64_t>{7, 5});
  CHECK(few->values == std::vector<double>{0, 2, 4, 15, 17, 19, 30, 32, 34});

  CHECK(data::ReadNumeric(dir / "raw.h5", "/nothing", 10).status().code() ==
        Code::kNotFound);
  CHECK(data::ReadNumeric(dir / "none.h5", "/image", 10).status().code() ==
        Code::kNotFound);
  test::WriteFile(dir / "text.h5", "not HDF5");
  CHECK(data::ReadNumeric(dir / "text.h5", "/image", 10).status().code() ==
        Code::kInvalidArgument);
}
