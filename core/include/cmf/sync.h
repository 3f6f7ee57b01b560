// Federation: commit, remotes, push, pull, fetch, whereis and get
// (doc/federation.md).
//
// A remote is a URL: a path or file:// URL of a cmf repository (bare or not),
// ssh://[user@]host[:port]/path (or user@host:path) of one, or two URLs apart:
// a git URL for the metadata log and an object-store URL for the bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cmf/config.h"
#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf {

// --- commit ---

struct CommitReport {
  std::string commit;  // the log commit; empty when there was nothing
  std::string segment;
  std::int64_t facts = 0;
  // Executions whose process had died, recorded as interrupted by this commit.
  std::vector<std::string> interrupted;
};
// Seals every uncommitted fact into one segment and commits it to the log.
// MESSAGE may be empty (a summary is written).
Result<CommitReport> CommitMetadata(Repo& repo, const std::string& message);

// Creates a bare cmf repository at PATH (a folder that is absent or empty):
// config, log.git and objects, nothing else. Something to push to.
Status InitBare(const std::filesystem::path& path);

// --- remotes ---

struct RemoteSpec {
  std::string name;
  std::string url;       // a cmf repository; or empty when the two below are
  std::string metadata;  // a git URL for the log (overrides url's)
  std::string data;      // an object-store URL (overrides url's)
};
Result<std::vector<RemoteSpec>> ListRemotes(const Config& config);
// NotFound when no remote has that name.
Result<RemoteSpec> FindRemote(const Config& config, const std::string& name);
// InvalidArgument for a bad name, a URL with a password, or no URL at all;
// AlreadyExists when the name is taken.
Status AddRemote(Config& config, const RemoteSpec& remote);
Status RemoveRemote(Config& config, const std::string& name);

// --- push, pull, fetch ---

// URL as it may be shown: any password removed (user:secret@host becomes
// user@host), and for http(s) the whole user part.
std::string RedactUrl(const std::string& url);

// True when progress lines would be seen (standard output is a terminal): what
// SyncOptions::progress and friends should be by default.
bool ProgressWanted();

enum class DataPolicy { kRelevant, kAll, kNone };
// "relevant", "all", "none".
Result<DataPolicy> ParseDataPolicy(const std::string& text);

struct SyncOptions {
  std::optional<DataPolicy> data;  // absent: config push.data / pull.data
  bool progress = false;           // a progress line on the terminal
  int max_tries = 8;               // push: fetch, merge and retry this often
};

struct SyncReport {
  std::string remote;
  std::string merge = "up-to-date";  // "fast-forward", "union"
  std::int64_t commits_sent = 0;
  std::int64_t commits_received = 0;
  std::int64_t segments_ingested = 0;
  // Segments kept out of the store by this run (bad, or of a newer format).
  std::int64_t segments_quarantined = 0;
  std::uint64_t metadata_bytes_sent = 0;
  std::uint64_t metadata_bytes_received = 0;
  std::uint64_t objects_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t objects_received = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t objects_left = 0;  // left where they are by the data policy
  // Objects whose bytes do not match their name. Push: damaged in the local
  // cache; not sent, and their artifacts get no location (the rest is sent).
  // Pull: damaged in the remote's store; not fetched (counted in objects_left
  // too), and noted so that a later push to that store replaces them.
  struct Damaged {
    std::string hash;
    std::string path;  // the artifact it belongs to, as recorded
  };
  std::vector<Damaged> damaged;
  // (push) objects of the remote's store whose bytes were wrong, replaced by
  // good ones from here (counted in objects_sent too).
  std::uint64_t objects_repaired = 0;
  int tries = 0;
};

// Every object is hashed as it is sent, and one whose bytes do not match its
// name is left out (report.damaged) while the rest and the metadata go. An
// object the store has already is trusted, unless the data policy was given
// as all (SyncOptions::data), or a pull or get found it damaged there: then
// the store's copy is read and hashed, and replaced when it is wrong.
Result<SyncReport> Push(Repo& repo, const std::string& remote,
                        const SyncOptions& options);
Result<SyncReport> Pull(Repo& repo, const std::string& remote,
                        const SyncOptions& options);
// Fetches the remote's log into refs/remotes/NAME/main; ingests nothing.
Result<SyncReport> Fetch(Repo& repo, const std::string& remote,
                         const SyncOptions& options);

// --- where the bytes are ---

struct Whereabouts {
  std::string hash;
  std::string path;  // as the user named it, when by path
  bool here = false;
  struct Place {
    std::string id;      // a site id or an object store's id
    std::string remote;  // the configured remote with that store, if any
    bool this_site = false;
  };
  std::vector<Place> places;
};
// TARGET: a workspace path, an artifact hash or a unique prefix of one.
Result<Whereabouts> WhereIs(Repo& repo, const std::string& target);

struct GetReport {
  std::string hash;
  std::uint64_t objects = 0;  // fetched
  std::uint64_t bytes = 0;
  std::string from;       // the remote they came from
  std::string placed_at;  // the workspace path written, if any
};
// Fetches the bytes of TARGET (and of a directory's files) into the cache from
// FROM (or from the remotes that have them), verifying each, and places them
// at TARGET when TARGET is a workspace path that is missing.
Result<GetReport> Get(Repo& repo, const std::string& target,
                      const std::optional<std::string>& from, bool progress);

}  // namespace cmf
