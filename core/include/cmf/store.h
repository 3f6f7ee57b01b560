// The metadata store: .cmf/metadata.db, one SQLite database in WAL mode
// (doc/metadata-store.md).
//
// The store is the queryable index of every record, local and (later) pulled.
// Records are immutable facts; a value that changes (an execution's state, a
// property) is a new fact stamped with a hybrid logical clock and the site id,
// and the newest (hlc, site) wins.
//
// Every write method is one transaction: when it returns ok the fact is
// committed, visible to other processes, and survives a crash of this process
// (and a power cut with the default store.synchronous=full). Several processes
// may write at once; SQLite serialises them and a writer waits up to the busy
// timeout for another's transaction to end.
//
// A Store is one SQLite connection with cached prepared statements: use it from
// one thread at a time (open one Store per thread to write from several).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cmf/clock.h"
#include "cmf/process.h"
#include "cmf/records.h"
#include "cmf/status.h"

namespace cmf {

struct LineageTarget;
struct LineageOptions;
struct LineageGraph;

// The schema version this binary writes (PRAGMA user_version).
inline constexpr int kStoreSchemaVersion = 9;

struct StoreOptions {
  bool create = false;           // create the schema in a new, empty file
  bool read_only = false;        // refuse every write method (InvalidArgument)
  bool synchronous_full = true;  // false: PRAGMA synchronous=NORMAL
  int busy_timeout_ms = 30000;
  std::string site;  // stamped on facts written through this store
  std::shared_ptr<Clock> clock = SystemClock::Get();
};

// Which executions a listing returns, newest first.
struct ExecutionFilter {
  std::optional<std::string> pipeline;
  std::optional<std::string> stage;
  std::optional<std::int64_t> limit;     // absent: all
  std::optional<std::int64_t> since_ms;  // started at or after
  std::optional<std::int64_t> until_ms;  // started before
  // NAME=VALUE: a parameter, or the current value of a property, whose text
  // is VALUE (0.01 matches a real 0.01 or the string "0.01"; true/false match
  // a bool).
  std::vector<std::pair<std::string, std::string>> where;
  // False: leave ExecutionRecord's inputs and outputs empty (a listing that
  // does not show them reads less: an execution's inputs are as many random
  // reads of the artifact table).
  bool events = true;
  // False: leave ExecutionRecord's command empty.
  bool command = true;
  // True: fill ExecutionRecord's metric_summaries.
  bool metric_summaries = false;
};

// A row id of the local database. Row ids never leave this store: records are
// exchanged by their global identity (uuid, hash, name).
using RowId = std::int64_t;

enum class RecordType { kPipeline, kStage, kExecution, kArtifact };

class Store {
 public:
  // Opens the store at PATH. NotFound when PATH does not exist (and !create);
  // Corruption when it is not a database, or is a database but not a cmf store;
  // InvalidArgument when it was written by a newer cmf (a schema version above
  // kStoreSchemaVersion); IOError otherwise. Opening never changes an existing
  // file that it refuses.
  static Result<std::unique_ptr<Store>> Open(const std::filesystem::path& path,
                                             const StoreOptions& options);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::filesystem::path& path() const;

  // --- writes (each one transaction) ---

  // Records a new execution in state "running", with its pipeline and stage
  // (created when new) and its parameters. RECORD.id must be a new UUID.
  // PROCESS, when given, is the process that runs it (kept here only, never
  // committed): while the execution stays running, reads show it
  // "interrupted" once that process is gone, and SealInterrupted records it
  // so. Returns its row id. AlreadyExists when the id is taken;
  // InvalidArgument for a parameter name that is not UTF-8.
  Result<RowId> BeginExecution(const ExecutionRecord& record,
                               const ProcessIdentity* process = nullptr);

  // Records a new state of an execution (a newer fact than every earlier one).
  // A state other than running forgets the execution's process.
  Status SetExecutionState(RowId execution, ExecStatus status,
                           std::optional<int> exit_code,
                           std::optional<std::int64_t> ended_ms,
                           const std::string& message);

  // Records that EXECUTION used (kInput) or produced (kOutput) ARTIFACT at
  // PATH; the artifact is created on first sight (same hash, same artifact).
  // POSITION orders an execution's events.
  Status AddEvent(RowId execution, Direction direction, int position,
                  const ArtifactRef& artifact);

  // Records the artifact REF (REF.path unused) without an event: what an
  // execution names by a property, such as its environment.
  Status RecordArtifact(const ArtifactRef& ref);

  // Records that CHILD was derived from PARENT (both artifact hashes, both
  // already recorded).
  Status AddDerivedFrom(const std::string& child_hash,
                        const std::string& parent_hash);

  // Appends step metrics to a series of an execution, all in one transaction. A
  // step logged again replaces its value. NaN is stored as SQL NULL and read
  // back as NaN.
  Status LogMetrics(RowId execution, const std::string& series,
                    std::span<const MetricPoint> points);

  // Sets a typed property on a record (a newer fact than every earlier value of
  // NAME). NotFound when the record does not exist.
  Status SetProperty(RecordType type, const std::string& key,
                     const std::string& name, const Value& value);

  // Sets tag NAME of an execution (KEY its full id) or an artifact (KEY its
  // hash) to VALUE, or removes it (VALUE absent): a fact like a property, the
  // newest (hlc, site) wins. NotFound when the record does not exist, or when
  // removing a tag it does not have; InvalidArgument for another record type
  // or a name that is not UTF-8 or is empty.
  Status SetTag(RecordType type, const std::string& key,
                const std::string& name,
                const std::optional<std::string>& value);

  // --- reads ---

  // The current tags of an execution or an artifact.
  Result<std::map<std::string, std::string>> GetTags(RecordType type,
                                                     const std::string& key);
  // The current properties of an execution or an artifact (of each name,
  // the newest value).
  Result<std::map<std::string, Value>> GetProperties(RecordType type,
                                                     const std::string& key);
  // The records whose current tag NAME has VALUE (any value when absent),
  // most recently tagged first: an alias names the newest.
  struct Tagged {
    RecordType type = RecordType::kArtifact;
    std::string key;  // the execution's id or the artifact's hash
    std::string value;
    std::int64_t hlc = 0;
  };
  Result<std::vector<Tagged>> FindTagged(
      const std::string& name, const std::optional<std::string>& value);

  // The summary of every step-metric series of each execution IDS names (full
  // ids); an execution without metrics is left out.
  Result<std::map<std::string, MetricSummaries>> SummarizeMetrics(
      std::span<const std::string> ids);

  // Executions matching FILTER, newest first, with everything in
  // ExecutionRecord.
  Result<std::vector<ExecutionRecord>> ListExecutions(
      const ExecutionFilter& filter);

  // As ListExecutions, but hands them to SINK a page at a time (at most
  // PAGE_SIZE each), so that memory stays bounded whatever the store's size.
  // Stops at, and returns, SINK's first error. Each page is read in its own
  // snapshot; executions recorded meanwhile start later and so are never seen
  // twice.
  Status ScanExecutions(
      const ExecutionFilter& filter,
      const std::function<Status(std::vector<ExecutionRecord>&)>& sink,
      int page_size = 512);

  // The full id of the one execution that PREFIX names: the id starts with
  // PREFIX (dashes optional, any case), or PREFIX, without dashes and of
  // kShortIdMinimum to kShortIdLength hex digits, starts its short form
  // (clock.h's ShortId: the last 12 digits). NotFound when none does;
  // InvalidArgument when several do (the message names some) or PREFIX is
  // not hex.
  Result<std::string> ResolveExecution(const std::string& prefix);

  // One execution by its full id. NotFound when it does not exist.
  Result<ExecutionRecord> GetExecution(const std::string& id);

  // The step metrics of an execution (all series, or only SERIES), steps
  // ascending.
  Result<MetricSeries> GetMetrics(
      const std::string& id,
      const std::optional<std::string>& series = std::nullopt);

  // The number of executions in the store.
  Result<std::int64_t> CountExecutions();

  // What SQLite's integrity check (PRAGMA integrity_check) finds wrong in the
  // file, at most MAX_ERRORS lines; empty when it is sound. An error only
  // when the check cannot run at all.
  Result<std::vector<std::string>> CheckIntegrity(int max_errors = 100);

  // --- runs whose process died ---

  struct InterruptedRun {
    std::string id;  // the execution
    ProcessIdentity process;
    std::string message;  // what SealInterrupted records
  };
  // The executions of this store still running whose process is gone
  // (ProcessIdentity::Gone), oldest first. Reads show them "interrupted".
  Result<std::vector<InterruptedRun>> FindInterrupted();
  // Records each of FindInterrupted's executions as interrupted (a new state
  // fact, with no exit code or end time, since neither is known) and returns
  // them.
  Result<std::vector<InterruptedRun>> SealInterrupted();

  // --- tracked paths (cmf add) ---

  // Records that the workspace path REF.path holds REF's content (replacing
  // what it held before); the artifact is created on first sight.
  Status Track(const ArtifactRef& ref);
  // Every tracked path, sorted by path.
  Result<std::vector<ArtifactRef>> ListTracked();

  // --- artifacts ---

  // The full hash of the one artifact whose hash starts with PREFIX. NotFound
  // when none does; InvalidArgument when several do or PREFIX is not hex.
  Result<std::string> ResolveArtifact(const std::string& prefix);
  // The artifact HASH (path left empty). NotFound when it is not recorded.
  Result<ArtifactRef> GetArtifact(const std::string& hash);
  // Every artifact hash with its kind and whether its bytes are expected in the
  // object cache (it is tracked or an execution's output).
  struct ArtifactUse {
    std::string hash;
    ArtifactKind kind = ArtifactKind::kFile;
    bool cached = false;
    bool referenced = false;  // tracked, or used or made by an execution
    std::string path;         // one path it was seen at
    bool elsewhere = false;   // another site or store holds its bytes
  };
  Result<std::vector<ArtifactUse>> ListArtifacts();

  // Artifacts of KIND (any when absent), by hash, at most LIMIT, each with
  // every path it was seen at.
  struct ArtifactRow {
    ArtifactRef ref;  // path: empty
    std::vector<std::string> paths;
  };
  Result<std::vector<ArtifactRow>> QueryArtifacts(
      const std::optional<ArtifactKind>& kind,
      std::optional<std::int64_t> limit);

  // --- commit and ingest (doc/federation.md) ---

  // A segment: every fact committed at once, as canonical text (a header line,
  // then one JSON object per line, keys sorted, lines sorted), named by the
  // SHA-256 of that text.
  struct Segment {
    std::string hash;
    std::string text;
    std::int64_t facts = 0;  // lines after the header
    std::int64_t seq = 0;    // this site's segment number, from 1
  };
  struct CommitOptions {
    // Seal only location facts (what push learns about where bytes are).
    bool locations_only = false;
    // True when this site's object cache holds the bytes of HASH: such an
    // artifact, newly committed, gets a location fact for this site.
    std::function<bool(const std::string& hash)> held;
  };
  // Seals every fact made here and not yet committed into one segment. Inside
  // one write transaction (so that no fact logged meanwhile is lost or sealed
  // twice) it builds the segment, hands it to SEAL (which records it, in the
  // metadata log), and when SEAL succeeds marks the facts as committed in it.
  // Returns the segment; facts == 0 (and SEAL not called) when there is
  // nothing to commit.
  Result<Segment> CommitPending(
      const CommitOptions& options,
      const std::function<Status(const Segment&)>& seal);

  // What IngestSegment made of a segment.
  struct IngestOutcome {
    enum class Kind {
      kApplied,      // its facts are in the store now
      kKnown,        // applied (or sealed here) before: nothing done
      kQuarantined,  // kept out of the store (see below)
    };
    Kind kind = Kind::kKnown;
    // Quarantined by this call (not by an earlier one): the caller reports it,
    // so that each bad segment is reported once.
    bool first_time = false;
    std::string reason;    // why it is quarantined
    int needs_format = 0;  // the newer segment format it needs, if that is why
  };
  // Applies the facts of segment HASH from any site, all or none, or
  // quarantines it: records it in the store (ListQuarantined) with the reason
  // and applies none of its facts, when TEXT is not a valid segment of format
  // 1 named HASH, its header names a site other than SITE (when given), one of
  // its facts is malformed or names a record this store does not hold, or it
  // needs a newer segment format (then RetryQuarantined applies it once a cmf
  // that reads that format runs). Idempotent: a segment applied or
  // quarantined before is not looked at again. Fails only when the store
  // does.
  Result<IngestOutcome> IngestSegment(const std::string& hash,
                                      std::string_view text,
                                      const std::string& site = "");

  // A segment kept out of the store.
  struct Quarantined {
    std::string path;  // where the metadata log holds it
    std::string site;  // as its path says ("" when the path names none)
    std::string hash;  // its name
    std::string reason;
    int needs_format = 0;  // the segment format it needs, when newer
    std::int64_t recorded_ms = 0;
  };
  // Quarantines the file at PATH of the metadata log (SITE and HASH as far as
  // its path tells them, TEXT its content) for REASON: a file the log holds
  // at a path no segment has. True when it was not quarantined before.
  Result<bool> QuarantineFile(const std::string& path, const std::string& site,
                              const std::string& hash, std::string_view text,
                              const std::string& reason);
  // Every quarantined segment, by path.
  Result<std::vector<Quarantined>> ListQuarantined();
  // Tries again the quarantined segments that may go in now: those that
  // needed a segment format this cmf reads, then, while one of them goes in,
  // those that named a record only a quarantined segment held. Returns each
  // one tried that went in (kApplied) or was quarantined again for another
  // reason (kQuarantined, first_time).
  struct Retried {
    Quarantined segment;
    IngestOutcome outcome;
  };
  Result<std::vector<Retried>> RetryQuarantined();

  // Groups the writes that follow into one transaction (each still undoes
  // itself alone when it fails), until EndBatch commits them (COMMIT true) or
  // rolls them all back. For many small writes at once, such as ingesting the
  // segments of a long history: one flush to disk instead of one per write.
  Status BeginBatch();
  Status EndBatch(bool commit);

  // The last commit of the metadata log whose segments are all in this store
  // ("" when none). Set inside the transaction that ingests (or seals) the
  // last of them, so that a log that moved without the store (a crash between
  // the two, or a push from outside) is caught up on the next run.
  Result<std::string> IngestedTip();
  Status SetIngestedTip(const std::string& commit);

  // Artifacts named by segments from other sites, whose bytes a pull has not
  // yet decided about (fetched, left by the data policy, or not there).
  Result<std::vector<ArtifactRef>> Wanted();
  Status DropWanted(const std::string& hash);

  // Applies facts in segment form (a header line, then fact lines) as this
  // site's own, not yet committed: what cmf import brings in. Idempotent for
  // facts with the same identity (and, for states and properties, the same
  // clock and site). The facts are checked as IngestSegment checks a
  // segment's; InvalidArgument (and nothing applied) when one is refused.
  Status ImportFacts(std::string_view text);

  // The fact lines of every record, or of one pipeline's executions and the
  // artifacts they name (cmf export), sorted as in a segment. BYTE_STRINGS,
  // when given, is set when a line holds a string that is not UTF-8
  // (cmf/byte_strings.h).
  Result<std::vector<std::string>> ExportFacts(
      const std::optional<std::string>& pipeline, bool* byte_strings = nullptr);

  // True when segment HASH was sealed here or ingested.
  Result<bool> HasSegment(const std::string& hash);

  // What was made here and is not yet committed: executions, and facts of
  // every kind (executions included).
  struct Pending {
    std::int64_t executions = 0;
    std::int64_t facts = 0;
  };
  Result<Pending> CountPending();

  // Records that the store or site ID holds the bytes of artifact HASH (a
  // fact, committed with the next segment). NotFound when HASH is unknown.
  Status AddLocation(const std::string& hash, const std::string& id);
  // Every site or store known to hold the bytes of HASH, sorted.
  Result<std::vector<std::string>> Locations(const std::string& hash);

  // The hash of what workspace path PATH last held: the tracked path, else
  // the newest event at that path. NotFound when no record names it.
  Result<std::string> ArtifactAtPath(const std::string& path);

  // --- lineage (cmf/lineage.h) ---
  Result<LineageGraph> WalkLineage(const LineageTarget& target,
                                   const LineageOptions& options);

  // --- the stat index: what the files under a scanned path held ---
  // One blob per scanned path (absolute), in the format of StoreStatCache
  // (core/src/store_stat_cache.cpp); the store only keeps it.

  struct StatBlob {
    std::string root;   // the absolute path scanned
    std::string bytes;  // its entries
  };
  // The blobs of ROOT, of the folders above it and of the paths below it.
  Result<std::vector<StatBlob>> LoadStatIndex(const std::string& root);
  // Saves BYTES as ROOT's blob and drops the blobs of the paths below ROOT
  // (BYTES covers them now), in one transaction.
  Status SaveStatIndex(const std::string& root, std::string_view bytes);
  // The roots that have a blob, sorted.
  Result<std::vector<std::string>> ListStatRoots();
  // Drops the blobs of ROOTS, in one transaction.
  Status DropStatIndex(std::span<const std::string> roots);

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  // Applies TEXT's facts (AS_PENDING: as this site's own, uncommitted).
  // True when they went in; false when the segment was applied before, or
  // when TEXT is refused (*REJECTED says why, and nothing of it is applied).
  // Fails only when the store does.
  struct Rejection;
  Result<bool> ApplyFacts(const std::string& hash, std::string_view text,
                          bool as_pending, const std::string& site,
                          Rejection* rejected);
  // Internal: reads facts into segment lines (segment_export.cpp), applies
  // segment lines to the store (fact_writer.h).
  class FactReader;
  class FactWriter;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cmf
