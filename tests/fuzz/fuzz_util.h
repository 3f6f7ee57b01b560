// What the fuzz targets share: a scratch folder for the run, a store in it,
// and a clock that never moves (so that an input does the same on every run).
// Each target links libFuzzer (-fsanitize=fuzzer) and is built only with
// -Dfuzz=enabled (tests/fuzz/meson.build); tests/fuzz.sh runs them.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "cmf/clock.h"
#include "cmf/store.h"

namespace cmf::fuzz {

// The bytes of one input.
inline std::string_view Bytes(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Aborts (a crash that libFuzzer reports, with the input) when a property
// that must hold does not.
inline void Require(bool holds, const char* what) {
  if (!holds) {
    std::fprintf(stderr, "fuzz property broken: %s\n", what);
    std::abort();
  }
}

// A folder of this process's own under $TMPDIR, made on first use and removed
// when the process exits normally (a crash leaves it for a look).
inline const std::filesystem::path& ScratchDir() {
  struct Dir {
    std::filesystem::path path;
    Dir() {
      std::string pattern =
          (std::filesystem::temp_directory_path() / "cmf-fuzz-XXXXXX").string();
      if (::mkdtemp(pattern.data()) == nullptr) {
        std::perror("cmf fuzz: mkdtemp");
        std::abort();
      }
      path = pattern;
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Dir dir;
  return dir.path;
}

// Writes BYTES to FILE (replacing it).
inline void WriteFile(const std::filesystem::path& file,
                      std::string_view bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::perror("cmf fuzz: write");
    std::abort();
  }
}

class FixedClock : public Clock {
 public:
  std::int64_t NowMs() const override { return 1764000000000; }  // Nov 2025
};

// One real SQLite store (schema and all) in the scratch folder, opened once.
// A target runs each input inside BeginBatch/EndBatch(false), so that every
// input starts from the same, empty store.
inline Store& TheStore() {
  static std::unique_ptr<Store> store = [] {
    Result<std::unique_ptr<Store>> opened =
        Store::Open(ScratchDir() / "metadata.db",
                    {.create = true,
                     .synchronous_full = false,
                     .site = "f0f0f0f0f0f0f0f0",
                     .clock = std::make_shared<FixedClock>()});
    if (!opened.ok()) {
      std::fprintf(stderr, "cmf fuzz: cannot open the store: %s\n",
                   opened.status().message().c_str());
      std::abort();
    }
    return std::move(opened).value();
  }();
  return *store;
}

// Runs BODY on the store in a batch that is rolled back afterwards.
template <typename F>
void InRolledBackBatch(F&& body) {
  Store& store = TheStore();
  Require(store.BeginBatch().ok(), "BeginBatch");
  body(store);
  Require(store.EndBatch(/*commit=*/false).ok(), "EndBatch(rollback)");
}

}  // namespace cmf::fuzz
