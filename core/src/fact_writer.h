// Internal: applying the fact lines of a segment, or of `cmf import json`, to
// the store, one applier per kind of fact (the kinds are listed in
// doc/federation.md).
//
// A FactWriter runs inside the write transaction that Store::ApplyFacts opened
// (segment_ingest.cpp). Every line is another site's bytes: each field is read
// through the checks of fact_check.h, and a line that fails them, or names a
// record no earlier line or segment brought, is refused. A refusal fills the
// Rejection and fails with Corruption, so that the transaction rolls back and
// nothing of the text is applied. Not thread-safe (neither is Store).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "store_impl.h"

namespace cmf {

// Why ApplyFacts refused a text (nothing of it applied).
struct Store::Rejection {
  std::string reason;
  int needs_format = 0;  // its header needs this newer segment format
  bool depends = false;  // it names a record this store does not hold
};

class Store::FactWriter {
 public:
  // The facts of a segment of HEADER_SITE that has the row SEG in the segment
  // table; or, AS_PENDING (SEG null), imported facts this site will commit.
  // NOW_MS bounds the clock values it accepts. REJECTED outlives the writer.
  FactWriter(Impl& m, std::string header_site, std::optional<std::int64_t> seg,
             bool as_pending, std::int64_t now_ms, Rejection* rejected);

  // Applies LINE, the LINE_NUMBERth of the text (for messages). A kind of fact
  // this cmf does not know comes from a newer one and is skipped, so that an
  // older site still reads what it understands. Corruption when the line is
  // refused (*rejected says why); the store's error when the store fails.
  Status Apply(std::string_view line, std::int64_t line_number);

  // The largest clock value among the facts applied; 0 when none had one.
  std::int64_t max_hlc() const { return max_hlc_; }

 private:
  using json = nlohmann::json;

  // One applier per kind of fact: reads J's fields (a FactError when one is
  // missing or malformed) and writes its row (a fact already known changes
  // nothing).
  Status Artifact(const json& j);
  Status Execution(const json& j);
  Status State(const json& j);
  Status Event(const json& j);
  Status DerivedFrom(const json& j);
  Status Metrics(const json& j);
  Status Property(const json& j);
  Status Tag(const json& j);
  Status Location(const json& j);

  // Refuses the text for REASON (DEPENDS: it names a record this store does
  // not hold yet); returns the Corruption that rolls it back.
  Status Reject(std::string reason, bool depends = false);
  // The line in messages.
  std::string Subject() const;
  // Runs SQL with BIND.
  Status Run(const std::string& sql,
             const std::function<void(sql::Stmt&)>& bind);
  // The row of the record KEY names (TABLE's COLUMN), which an earlier line or
  // segment must have brought; refuses the text when none did.
  Result<RowId> RowOf(const char* table, const char* column, const char* what,
                      const std::string& key);
  Result<RowId> ExecutionRow(const std::string& uuid);
  Result<RowId> ArtifactRow(const std::string& hash);
  Result<RowId> EnsurePipeline(const std::string& name);
  Result<RowId> EnsureStage(RowId pipeline, const std::string& name);
  // The row of a property's target, "PIPELINE/STAGE" for a stage; a pipeline
  // or stage is made when new.
  Result<RowId> PropertyTarget(const std::string& type_name, const json& j);

  Impl& m_;
  const std::string header_site_;
  const std::optional<std::int64_t> seg_;
  const bool as_pending_;
  const std::int64_t now_ms_;
  Rejection* const rejected_;
  std::int64_t line_number_ = 1;  // the header's
  std::int64_t max_hlc_ = 0;
};

}  // namespace cmf
