// Fuzz target: a segment as it arrives from another site (pull, push's merge),
// through the whole ingest path: its header line, the artifacts it names, and
// Store::IngestSegment into a real SQLite store, then the same text as
// imported facts (Store::ImportFacts), each in a batch rolled back afterwards.
// Seeds: tests/fuzz/corpus/segment (segments that the real cmf committed).

#include <cstddef>
#include <cstdint>
#include <string>

#include "cmf/data/hash.h"
#include "cmf/segment.h"
#include "cmf/store.h"
#include "fuzz_util.h"

using namespace cmf;
using cmf::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  const std::string_view text = fuzz::Bytes(data, size);

  Result<SegmentHeader> header =
      SegmentHeader::Parse(text.substr(0, text.find('\n')));
  if (header.ok()) {
    // What Parse accepts, Line writes back in a form Parse reads the same.
    Result<SegmentHeader> again = SegmentHeader::Parse(header->Line());
    Require(again.ok() && again->site == header->site &&
                again->seq == header->seq && again->version == header->version,
            "SegmentHeader::Parse(Line()) gives the header back");
  }
  static_cast<void>(SegmentArtifacts(text));

  const std::string hash = data::HashBytes(text);
  fuzz::InRolledBackBatch([&](Store& store) {
    using Kind = Store::IngestOutcome::Kind;
    // Only the store itself may fail an ingest: bad bytes are quarantined.
    Result<Store::IngestOutcome> first = store.IngestSegment(hash, text);
    Require(first.ok(), "an ingest fails only when the store does");
    if (first->kind == Kind::kApplied) {
      // A segment already applied is skipped.
      Result<Store::IngestOutcome> twice = store.IngestSegment(hash, text);
      Require(twice.ok() && twice->kind == Kind::kKnown,
              "a segment is ingested only once");
      static_cast<void>(store.ExportFacts(std::nullopt));
    } else if (first->kind == Kind::kQuarantined) {
      // ... and said once.
      Result<Store::IngestOutcome> again = store.IngestSegment(hash, text);
      Require(
          again.ok() && again->kind == Kind::kQuarantined && !again->first_time,
          "a quarantined segment is reported once");
    }
  });
  fuzz::InRolledBackBatch([&](Store& store) {
    if (store.ImportFacts(text).ok())
      static_cast<void>(store.ExportFacts(std::nullopt));
  });
  return 0;
}
