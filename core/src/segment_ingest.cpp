// Ingest: applying the segments of other sites, and the facts of cmf import,
// in one transaction each (doc/federation.md). A segment that is refused is
// quarantined with its reason and retried when this cmf can read it (a newer
// format) or when the segment it depends on went in. The appliers of the
// facts themselves are fact_writer.cpp; commit and export, segment_export.cpp.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <utility>

#include "cmf/data/hash.h"
#include "cmf/segment.h"
#include "fact_check.h"
#include "fact_writer.h"
#include "store_impl.h"

namespace cmf {
namespace {

using json = nlohmann::json;

// Records a quarantined segment in M's store. True when it was not there.
template <typename StoreState>
Result<bool> RecordQuarantine(StoreState& m, const std::string& path,
                              const std::string& site, const std::string& hash,
                              std::string_view text, const std::string& reason,
                              int needs_format, bool depends) {
  bool first = false;
  CMF_RETURN_IF_ERROR(m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare("INSERT INTO quarantine(path, site, hash, reason, retry, "
                  "needs_format, text, recorded_ms) VALUES(?1, ?2, ?3, ?4, ?5, "
                  "?6, ?7, ?8) ON CONFLICT(path) DO NOTHING"));
    std::optional<std::string> retry;
    if (needs_format > 0) retry = "format";
    if (depends) retry = "depends";
    std::optional<std::int64_t> needs;
    if (needs_format > 0) needs = needs_format;
    CMF_RETURN_IF_ERROR(s.Bind(1, path)
                            .Bind(2, site)
                            .Bind(3, hash)
                            .Bind(4, reason)
                            .Bind(5, retry)
                            .Bind(6, needs)
                            .Bind(7, text)
                            .Bind(8, m.options.clock->NowMs())
                            .Run());
    first = sqlite3_changes(m.db) > 0;
    return Status::Ok();
  }));
  return first;
}

}  // namespace

Result<bool> Store::HasSegment(const std::string& hash) {
  CMF_ASSIGN_OR_RETURN(sql::Stmt s,
                       impl_->Prepare("SELECT 1 FROM segment WHERE hash = ?1"));
  Status st;
  bool found = s.Bind(1, hash).Step(&st);
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return found;
}

Result<std::string> Store::IngestedTip() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT value FROM meta WHERE key = 'ingested'"));
  Status st;
  std::string tip = s.Step(&st) ? s.Text(0) : "";
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return tip;
}

Status Store::SetIngestedTip(const std::string& commit) {
  Impl& m = *impl_;
  return m.InWrite([&]() -> Status {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt s,
        m.Prepare(
            "INSERT OR REPLACE INTO meta(key, value) VALUES('ingested', ?1)"));
    return s.Bind(1, commit).Run();
  });
}

Result<Store::IngestOutcome> Store::IngestSegment(const std::string& hash,
                                                  std::string_view text,
                                                  const std::string& site) {
  Impl& m = *impl_;
  IngestOutcome out;
  CMF_ASSIGN_OR_RETURN(bool known, HasSegment(hash));
  if (known) return out;
  // Where the log holds it: its site as its path says, else as its header
  // says.
  std::string path_site = site;
  if (path_site.empty()) {  // as its header says, even when it is refused
    Result<json> h = facts::ParseJson(text.substr(0, text.find('\n')),
                                      facts::kMaxFactLineBytes, "the header");
    if (h.ok() && h->is_object()) {
      auto it = h->find("site");
      if (it != h->end() && it->is_string() &&
          IsValidSiteId(it->get_ref<const std::string&>())) {
        path_site = it->get<std::string>();
      }
    }
  }
  const std::string path = facts::Printable(
      SegmentPath(path_site.empty() ? "unknown" : path_site, hash), 200);
  {
    CMF_ASSIGN_OR_RETURN(
        sql::Stmt q,
        m.Prepare("SELECT reason FROM quarantine WHERE path = ?1"));
    Status st;
    if (q.Bind(1, path).Step(&st)) {
      out.kind = IngestOutcome::Kind::kQuarantined;
      out.reason = q.Text(0);
    }
    q.Reset();
    CMF_RETURN_IF_ERROR(st);
    if (out.kind == IngestOutcome::Kind::kQuarantined) return out;
  }
  Rejection rejected;
  CMF_ASSIGN_OR_RETURN(
      bool applied,
      ApplyFacts(hash, text, /*as_pending=*/false, site, &rejected));
  if (rejected.reason.empty()) {
    if (applied) out.kind = IngestOutcome::Kind::kApplied;
    return out;
  }
  out.kind = IngestOutcome::Kind::kQuarantined;
  out.reason = rejected.reason;
  out.needs_format = rejected.needs_format;
  CMF_ASSIGN_OR_RETURN(
      out.first_time,
      RecordQuarantine(m, path, path_site, facts::Printable(hash, 64), text,
                       rejected.reason, rejected.needs_format,
                       rejected.depends));
  return out;
}

Result<bool> Store::QuarantineFile(const std::string& path,
                                   const std::string& site,
                                   const std::string& hash,
                                   std::string_view text,
                                   const std::string& reason) {
  return RecordQuarantine(*impl_, facts::Printable(path, 200),
                          facts::Printable(site, 64),
                          facts::Printable(hash, 64), text, reason, 0, false);
}

Result<std::vector<Store::Quarantined>> Store::ListQuarantined() {
  CMF_ASSIGN_OR_RETURN(
      sql::Stmt s,
      impl_->Prepare("SELECT path, site, hash, reason, needs_format, "
                     "recorded_ms FROM quarantine ORDER BY path"));
  std::vector<Quarantined> out;
  Status st;
  while (s.Step(&st)) {
    Quarantined q;
    q.path = s.Text(0);
    q.site = s.Text(1);
    q.hash = s.Text(2);
    q.reason = s.Text(3);
    q.needs_format = s.IsNull(4) ? 0 : static_cast<int>(s.Int(4));
    q.recorded_ms = s.Int(5);
    out.push_back(std::move(q));
  }
  s.Reset();
  CMF_RETURN_IF_ERROR(st);
  return out;
}

Result<std::vector<Store::Retried>> Store::RetryQuarantined() {
  Impl& m = *impl_;
  std::vector<Retried> out;
  bool progress = false;  // a retried segment went in: try its dependents
  for (;;) {
    struct Row {
      Quarantined q;
      std::string retry;
      std::string text;
    };
    std::vector<Row> rows;
    {
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt s,
          m.Prepare("SELECT path, site, hash, reason, needs_format, "
                    "recorded_ms, retry, text FROM quarantine WHERE (retry = "
                    "'format' AND needs_format <= ?1) OR (?2 AND retry = "
                    "'depends') ORDER BY recorded_ms, path"));
      Status st;
      s.Bind(1, kSegmentVersion).Bind(2, progress ? 1 : 0);
      while (s.Step(&st)) {
        Row r;
        r.q = {s.Text(0),
               s.Text(1),
               s.Text(2),
               s.Text(3),
               s.IsNull(4) ? 0 : static_cast<int>(s.Int(4)),
               s.Int(5)};
        r.retry = s.Text(6);
        r.text = s.Text(7);
        rows.push_back(std::move(r));
      }
      s.Reset();
      CMF_RETURN_IF_ERROR(st);
    }
    bool went_in = false;
    for (Row& r : rows) {
      Rejection rejected;
      CMF_ASSIGN_OR_RETURN(bool applied,
                           ApplyFacts(r.q.hash, r.text, /*as_pending=*/false,
                                      r.q.site, &rejected));
      if (rejected.reason.empty()) {
        CMF_RETURN_IF_ERROR(m.InWrite([&]() -> Status {
          CMF_ASSIGN_OR_RETURN(
              sql::Stmt d, m.Prepare("DELETE FROM quarantine WHERE path = ?1"));
          return d.Bind(1, r.q.path).Run();
        }));
        if (applied) {
          went_in = true;
          out.push_back({r.q, {IngestOutcome::Kind::kApplied, false, "", 0}});
        }
        continue;
      }
      if (rejected.reason == r.q.reason) continue;  // no news
      CMF_RETURN_IF_ERROR(m.InWrite([&]() -> Status {
        CMF_ASSIGN_OR_RETURN(
            sql::Stmt u,
            m.Prepare("UPDATE quarantine SET reason = ?2, retry = ?3, "
                      "needs_format = ?4 WHERE path = ?1"));
        std::optional<std::string> retry;
        std::optional<std::int64_t> needs;
        if (rejected.needs_format > 0) {
          retry = "format";
          needs = rejected.needs_format;
        }
        if (rejected.depends) retry = "depends";
        return u.Bind(1, r.q.path)
            .Bind(2, rejected.reason)
            .Bind(3, retry)
            .Bind(4, needs)
            .Run();
      }));
      r.q.reason = rejected.reason;
      r.q.needs_format = rejected.needs_format;
      out.push_back({r.q,
                     {IngestOutcome::Kind::kQuarantined, true, rejected.reason,
                      rejected.needs_format}});
    }
    if (!went_in) break;
    progress = true;
  }
  return out;
}

Status Store::ImportFacts(std::string_view text) {
  Rejection rejected;
  CMF_RETURN_IF_ERROR(
      ApplyFacts("", text, /*as_pending=*/true, "", &rejected).status());
  if (!rejected.reason.empty()) {
    return Status::InvalidArgument(rejected.reason);
  }
  return Status::Ok();
}

Result<bool> Store::ApplyFacts(const std::string& hash, std::string_view text,
                               bool as_pending, const std::string& site,
                               Rejection* rejected) {
  Impl& m = *impl_;
  bool applied = false;
  const std::int64_t now_ms = m.options.clock->NowMs();
  if (text.size() > facts::kMaxSegmentBytes) {
    rejected->reason =
        fmt::format("it is larger than {} bytes", facts::kMaxSegmentBytes);
    return false;
  }
  if (!as_pending && data::HashBytes(text) != hash) {
    rejected->reason = "its name is not the SHA-256 of its text";
    return false;
  }
  const auto newline = text.find('\n');
  Result<SegmentHeader> parsed =
      SegmentHeader::Parse(text.substr(0, newline), &rejected->needs_format);
  if (!parsed.ok()) {
    rejected->reason = parsed.status().message();
    return false;
  }
  const SegmentHeader header = std::move(parsed).value();
  if (!site.empty() && header.site != site) {
    rejected->reason = fmt::format(
        "its header names the site '{}', not '{}' whose path holds it",
        header.site, site);
    return false;
  }

  // A refused line rolls back what was applied of the text.
  Status done = m.InWrite([&]() -> Status {
    if (!as_pending) {
      CMF_ASSIGN_OR_RETURN(bool known, HasSegment(hash));
      if (known) return Status::Ok();
    }
    // Imported facts are this site's to commit (seg null); a segment's are
    // committed already, in it.
    std::optional<std::int64_t> seg;
    if (!as_pending) {
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt ins,
          m.Prepare("INSERT INTO segment(hash, site, seq, local, facts, "
                    "recorded_ms) VALUES(?1, ?2, ?3, 0, 0, ?4)"));
      CMF_RETURN_IF_ERROR(ins.Bind(1, hash)
                              .Bind(2, header.site)
                              .Bind(3, header.seq)
                              .Bind(4, now_ms)
                              .Run());
      seg = sqlite3_last_insert_rowid(m.db);
    }
    FactWriter writer(m, header.site, seg, as_pending, now_ms, rejected);
    std::int64_t fact_count = 0;
    std::int64_t line_number = 1;  // the header's
    std::size_t pos =
        newline == std::string_view::npos ? text.size() : newline + 1;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      std::string_view line = text.substr(pos, end - pos);
      pos = end + 1;
      ++line_number;
      if (line.empty()) continue;
      ++fact_count;
      CMF_RETURN_IF_ERROR(writer.Apply(line, line_number));
    }
    if (seg) {
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt count,
          m.Prepare("UPDATE segment SET facts = ?1 WHERE id = ?2"));
      CMF_RETURN_IF_ERROR(count.Bind(1, fact_count).Bind(2, *seg).Run());
    }
    if (writer.max_hlc() > 0) {
      // The clock moves past every fact seen (receive rule).
      CMF_ASSIGN_OR_RETURN(
          sql::Stmt clock,
          m.Prepare("INSERT INTO meta(key, value) VALUES('hlc', ?1) "
                    "ON CONFLICT(key) DO UPDATE SET value = "
                    "max(value, excluded.value)"));
      CMF_RETURN_IF_ERROR(clock.Bind(1, writer.max_hlc()).Run());
    }
    applied = true;
    return Status::Ok();
  });
  if (!rejected->reason.empty()) return false;  // rolled back
  if (!done.ok()) return done;
  return applied;
}

}  // namespace cmf
