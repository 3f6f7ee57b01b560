// What push, pull and fetch share: their options and their report.
#pragma once

#include <fmt/format.h>

#include "../format.h"
#include "../json_output.h"
#include "../verb.h"
#include "cmf/sync.h"

namespace cmf::cli {

class SyncVerb : public Verb {
 public:
  enum class Kind { kPush, kPull, kFetch };
  explicit SyncVerb(Kind kind) : kind_(kind) {}

  void Setup(CLI::App& app) override {
    app.add_option("remote", remote_, "The remote's name")->required();
    if (kind_ != Kind::kFetch) {
      app.add_option(
             "--data", data_,
             "Which data goes along: relevant (default: config " +
                 std::string(kind_ == Kind::kPush ? "push.data" : "pull.data") +
                 "), all or none")
          ->check(CLI::IsMember({"relevant", "all", "none"}));
    }
    app.add_flag("-q,--quiet", quiet_,
                 "Print nothing on success (no progress line)");
    app.add_flag("--json", json_, "Print a summary as JSON");
  }

  int Run(Context& ctx) override {
    SyncOptions options;
    if (!data_.empty()) options.data = ParseDataPolicy(data_).value();
    options.progress = !quiet_ && !json_ && ProgressWanted();
    Result<SyncReport> report =
        kind_ == Kind::kPush   ? Push(*ctx.repo, remote_, options)
        : kind_ == Kind::kPull ? Pull(*ctx.repo, remote_, options)
                               : Fetch(*ctx.repo, remote_, options);
    if (!report.ok()) return Fail(report.status());
    const SyncReport& r = *report;
    for (const SyncReport::Damaged& d : r.damaged) {
      std::string of = d.path.empty() ? "" : fmt::format(" of '{}'", d.path);
      if (kind_ == Kind::kPush) {
        fmt::print(stderr,
                   "cmf: warning: object {}{} is damaged in the cache (its "
                   "bytes do not match its name); not pushed, and no location "
                   "recorded for it; run cmf fsck\n",
                   d.hash, of);
      } else {
        fmt::print(stderr,
                   "cmf: warning: object {}{} in the store of '{}' does not "
                   "match its name; not fetched (cmf get can fetch it from "
                   "another remote; a push of the good bytes repairs that "
                   "store)\n",
                   d.hash, of, remote_);
      }
    }
    // A push that had to leave damaged objects out did not do all it was
    // asked (the rest went); a pull goes on without them.
    auto done = [&]() {
      if (kind_ != Kind::kPush || r.damaged.empty()) return kExitOk;
      std::size_t n = r.damaged.size();
      return Fail(Status::Corruption(fmt::format(
          "{} damaged object{} not pushed (everything else was); run cmf fsck",
          n, n == 1 ? "" : "s")));
    };
    if (json_) {
      fmt::print("{}\n", SyncJson(*report));
      return done();
    }
    if (quiet_) return done();
    if (kind_ == Kind::kPush) {
      fmt::print("{}: {} commit{} sent, {} object{} ({}) sent", remote_,
                 r.commits_sent, r.commits_sent == 1 ? "" : "s", r.objects_sent,
                 r.objects_sent == 1 ? "" : "s", HumanSize(r.bytes_sent));
    } else {
      fmt::print("{}: {} commit{} received", remote_, r.commits_received,
                 r.commits_received == 1 ? "" : "s");
      if (kind_ == Kind::kPull) {
        fmt::print(", {} segment{} ingested, {} object{} ({}) received",
                   r.segments_ingested, r.segments_ingested == 1 ? "" : "s",
                   r.objects_received, r.objects_received == 1 ? "" : "s",
                   HumanSize(r.bytes_received));
      }
    }
    if (r.objects_left > 0) {
      fmt::print(", {} object{} left where {} (cmf get fetches on demand)",
                 r.objects_left, r.objects_left == 1 ? "" : "s",
                 r.objects_left == 1 ? "it is" : "they are");
    }
    if (r.segments_quarantined > 0) {
      fmt::print(", {} segment{} quarantined (cmf fsck lists them)",
                 r.segments_quarantined,
                 r.segments_quarantined == 1 ? "" : "s");
    }
    if (r.objects_repaired > 0) {
      fmt::print(", {} damaged object{} in the store replaced",
                 r.objects_repaired, r.objects_repaired == 1 ? "" : "s");
    }
    if (r.merge != "up-to-date") fmt::print(" [{}]", r.merge);
    fmt::print("\n");
    return done();
  }

 private:
  Kind kind_;
  std::string remote_;
  std::string data_;
  bool quiet_ = false;
  bool json_ = false;
};

}  // namespace cmf::cli
