// Import and export (doc/export.md): cmf's own JSON form of a store, which
// `cmf import json` reads back losslessly, and cmflib's ML-Metadata (MLMD)
// SQLite stores.
//
// Both imports bring facts in as this site's own, not yet committed, so the
// next `cmf commit` and `cmf push` share them. Both are idempotent: importing
// the same thing twice adds nothing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "cmf/status.h"

namespace cmf {

class Store;

inline constexpr char kExportFormat[] = "cmf-export";
// The newest export format this cmf reads and writes: version 2 may hold
// strings that are not UTF-8 ({"hex": …}, cmf/byte_strings.h); an export
// without one is written as version 1.
inline constexpr int kExportVersion = 2;
inline constexpr int kExportVersionPlain = 1;

// The store (or one pipeline: its executions and the artifacts they name) as
// {"format": "cmf-export", "version": 1, "facts": [...]}, facts in the form of
// segment lines (doc/federation.md), sorted.
Result<std::string> ExportJson(Store& store,
                               const std::optional<std::string>& pipeline);

// Writes ExportJson's text as the whole new content of FILE: a reader, or a
// crash, sees the old file or the new one, never a part.
Status ExportJsonToFile(Store& store,
                        const std::optional<std::string>& pipeline,
                        const std::filesystem::path& file);

struct ImportReport {
  std::int64_t executions = 0;
  std::int64_t artifacts = 0;
  std::int64_t events = 0;
  std::int64_t facts = 0;
};

// Reads what ExportJson wrote. InvalidArgument when TEXT is not a cmf export
// (or is of a newer version); Corruption when a fact is malformed.
Result<ImportReport> ImportJson(Store& store, const std::string& text);

// Reads a cmflib MLMD SQLite store at PATH (opened read-only, never changed):
// contexts become pipelines and stages, executions keep their Execution_uuid as
// their id and all their properties (custom ones as parameters), artifacts are
// named by their uri exactly as stored (cmflib's md5) with their names and
// properties, events keep their direction. Their bytes are recorded as living
// elsewhere (at "cmflib"). NotFound when PATH does not exist; InvalidArgument
// when it is not an MLMD store.
Result<ImportReport> ImportCmflib(Store& store,
                                  const std::filesystem::path& path);

}  // namespace cmf
