#include "cmf/config.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <limits>
#include <string_view>

#include "cmf/data/file_ops.h"
#include "cmf/data/object_cache.h"
#include "cmf/segment.h"

namespace cmf {

Result<std::uint64_t> ParseSize(const std::string& text) {
  std::uint64_t n = 0;
  const char* end = text.data() + text.size();
  auto [rest, err] = std::from_chars(text.data(), end, n);
  const std::string_view suffix(rest, static_cast<std::size_t>(end - rest));
  std::uint64_t unit = 0;
  if (suffix.empty())
    unit = 1;
  else if (suffix == "K" || suffix == "k" || suffix == "KiB")
    unit = 1ull << 10;
  else if (suffix == "M" || suffix == "m" || suffix == "MiB")
    unit = 1ull << 20;
  else if (suffix == "G" || suffix == "g" || suffix == "GiB")
    unit = 1ull << 30;
  if (err == std::errc::result_out_of_range ||
      (unit != 0 && err == std::errc() &&
       n > std::numeric_limits<std::uint64_t>::max() / unit)) {
    return Status::InvalidArgument("'" + text + "' is too large a size");
  }
  if (err != std::errc() || unit == 0) {
    return Status::InvalidArgument(
        "'" + text + "' is not a size (a number of bytes, or with K, M or G)");
  }
  return n * unit;
}
namespace {

std::string Lower(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-';
}

// A key split as git splits it: "section.name" or "section.sub.name" (the
// subsection may hold dots). Section and name are lowercased; the subsection
// keeps its case, as in git.
struct Key {
  std::string section;
  std::string sub;
  bool has_sub = false;
  std::string name;
  std::string Normal() const {
    return section + "." + (has_sub ? sub + "." : "") + name;
  }
  bool operator==(const Key& o) const {
    return section == o.section && has_sub == o.has_sub && sub == o.sub &&
           name == o.name;
  }
};

Result<Key> ParseKey(const std::string& text) {
  std::size_t first = text.find('.'), last = text.rfind('.');
  Status bad = Status::InvalidArgument("invalid config key '" + text + "'");
  if (first == std::string::npos || first == 0 || last + 1 == text.size())
    return bad;
  Key key;
  key.section = Lower(text.substr(0, first));
  key.name = Lower(text.substr(last + 1));
  if (first != last) {
    key.has_sub = true;
    key.sub = text.substr(first + 1, last - first - 1);
    if (key.sub.find('\n') != std::string::npos) return bad;
  }
  for (char c : key.section)
    if (!IsNameChar(c)) return bad;
  if (!std::isalpha(static_cast<unsigned char>(key.name[0]))) return bad;
  for (char c : key.name)
    if (!IsNameChar(c)) return bad;
  return key;
}

// One logical line of the file: a section header, a variable (which may span
// several physical lines), or anything else (blank, comment), kept verbatim.
struct Line {
  enum class Kind { kHeader, kVariable, kOther } kind = Kind::kOther;
  std::string raw;  // the physical lines, each with its newline
  Key key;          // a header's section (no name), a variable's key
  std::string value;
};

// A value as git reads it: quotes group, backslash escapes \n \t \b \" \\ and
// joins lines, # and ; outside quotes start a comment, and whitespace around
// the value (outside quotes) is dropped. POS is just after the '='; the value
// may continue on the following physical lines of TEXT.
Result<std::string> ParseValue(std::string_view text, std::size_t& pos) {
  std::string value;
  bool quoted = false;
  std::size_t kept = 0;  // the length before trailing unquoted whitespace
  while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (c == '\n') {
      if (quoted)
        return Status::Corruption("a quoted value runs past its line");
      break;
    }
    if (!quoted && (c == '#' || c == ';')) {
      pos = text.find('\n', pos);
      if (pos == std::string_view::npos) pos = text.size();
      break;
    }
    if (c == '"') {
      quoted = !quoted;
      kept = value.size();
      continue;
    }
    if (c == '\\') {
      if (++pos >= text.size())
        return Status::Corruption("a value ends in '\\'");
      char e = text[pos];
      if (e == '\n') continue;  // the value goes on on the next line
      if (e == 'n')
        value += '\n';
      else if (e == 't')
        value += '\t';
      else if (e == 'b')
        value += '\b';
      else if (e == '"' || e == '\\')
        value += e;
      else
        return Status::Corruption(std::string("unknown escape '\\") + e + "'");
      kept = value.size();
      continue;
    }
    value += c;
    if (quoted || (c != ' ' && c != '\t' && c != '\r')) kept = value.size();
  }
  // The file may end inside the quotes: as wrong as a line that does (the
  // next line written after it would make it so).
  if (quoted) return Status::Corruption("a quoted value runs past its line");
  value.resize(kept);
  return value;
}

// The Corruption error WHAT, for line NUMBER of the file.
Status LineError(std::size_t number, const std::string& what) {
  return Status::Corruption("line " + std::to_string(number) + ": " + what);
}

// Parses the section header at P (its '[') into HEADER; returns its line's end.
Result<std::size_t> ParseHeader(std::string_view text, std::size_t p,
                                std::size_t number, Key* header) {
  auto error = [&](const std::string& what) { return LineError(number, what); };
  std::size_t close = p + 1;
  while (close < text.size() && IsNameChar(text[close])) ++close;
  header->section = Lower(std::string(text.substr(p + 1, close - p - 1)));
  if (close < text.size() && text[close] == '.') {  // [section.sub], old
    // As git reads it: name characters and dots, on this line.
    std::size_t end = close + 1;
    while (end < text.size() && (IsNameChar(text[end]) || text[end] == '.'))
      ++end;
    if (end >= text.size()) return error("unclosed section");
    if (text[end] != ']') return error("malformed section header");
    header->has_sub = true;
    header->sub = Lower(std::string(text.substr(close + 1, end - close - 1)));
    close = end;
  } else if (close < text.size() &&
             (text[close] == ' ' || text[close] == '\t')) {
    while (close < text.size() && (text[close] == ' ' || text[close] == '\t'))
      ++close;
    if (close >= text.size() || text[close] != '"')
      return error("malformed section header");
    header->has_sub = true;
    for (++close; close < text.size() && text[close] != '"'; ++close) {
      if (text[close] == '\\' && close + 1 < text.size()) ++close;
      // Not even escaped: a key with a line break cannot be named.
      if (text[close] == '\n') return error("malformed section header");
      header->sub += text[close];
    }
    if (close >= text.size()) return error("malformed section header");
    ++close;
  }
  if (close >= text.size() || text[close] != ']' || header->section.empty())
    return error("malformed section header");
  p = close + 1;
  // The rest of the line may hold a comment (or, rarely, a variable:
  // not supported, as cmf never writes one).
  while (p < text.size() &&
         (text[p] == ' ' || text[p] == '\t' || text[p] == '\r'))
    ++p;
  if (p < text.size() && text[p] != '\n' && text[p] != '#' && text[p] != ';')
    return error("text after a section header");
  return text.find('\n', p);
}

// Parses the variable at P (its name) of SECTION into LINE; returns its end.
Result<std::size_t> ParseVariable(std::string_view text, std::size_t p,
                                  std::size_t number, const Key& section,
                                  Line* line) {
  auto error = [&](const std::string& what) { return LineError(number, what); };
  std::size_t end = p;
  while (end < text.size() && IsNameChar(text[end])) ++end;
  line->kind = Line::Kind::kVariable;
  line->key = section;
  line->key.name = Lower(std::string(text.substr(p, end - p)));
  while (end < text.size() && (text[end] == ' ' || text[end] == '\t')) ++end;
  if (end < text.size() && text[end] == '=') {
    ++end;
    Result<std::string> value = ParseValue(text, end);
    if (!value.ok()) return error(value.status().message());
    line->value = std::move(value).value();
    return end;
  }
  if (end >= text.size() || text[end] == '\n' || text[end] == '#' ||
      text[end] == ';' || text[end] == '\r') {
    line->value = "true";  // a bare name is a true boolean, as in git
    return text.find('\n', end);
  }
  return error("malformed variable");
}

Result<std::vector<Line>> Parse(std::string_view text) {
  std::vector<Line> lines;
  Key section;
  bool in_section = false;
  std::size_t pos = 0, number = 1;
  auto error = [&](const std::string& what) { return LineError(number, what); };
  while (pos < text.size()) {
    const std::size_t start = pos;
    Line line;
    std::size_t p = pos;
    while (p < text.size() && (text[p] == ' ' || text[p] == '\t')) ++p;
    if (p < text.size() && text[p] == '[') {
      Key header;
      CMF_ASSIGN_OR_RETURN(pos, ParseHeader(text, p, number, &header));
      section = header;
      in_section = true;
      line.kind = Line::Kind::kHeader;
      line.key = header;
    } else if (p < text.size() &&
               std::isalpha(static_cast<unsigned char>(text[p]))) {
      if (!in_section) return error("a variable outside any section");
      CMF_ASSIGN_OR_RETURN(pos, ParseVariable(text, p, number, section, &line));
    } else if (p >= text.size() || text[p] == '\n' || text[p] == '#' ||
               text[p] == ';' || text[p] == '\r') {
      pos = text.find('\n', p);
    } else {
      return error("neither a section, a variable nor a comment");
    }
    if (pos == std::string_view::npos)
      pos = text.size();
    else
      ++pos;  // the newline
    line.raw = std::string(text.substr(start, pos - start));
    for (char c : line.raw) number += c == '\n';
    if (!line.raw.empty() && line.raw.back() != '\n') line.raw += '\n';
    // A value continued on a next line that the file lacks: a blank line
    // ends it, or the first line written after it would join the value.
    if (line.kind == Line::Kind::kVariable && pos >= text.size() &&
        line.raw.ends_with("\\\n"))
      line.raw += '\n';
    lines.push_back(std::move(line));
  }
  return lines;
}

// VALUE as git writes it: quoted when it has blanks at either end that
// ParseValue would drop (a carriage return too, at the end) or a comment
// character, with \, " and control characters escaped.
std::string QuoteValue(const std::string& value) {
  bool quote =
      !value.empty() &&
      (value.front() == ' ' || value.front() == '\t' || value.back() == ' ' ||
       value.back() == '\t' || value.back() == '\r' ||
       value.find_first_of("#;") != std::string::npos);
  std::string out = quote ? "\"" : "";
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\b') {
      out += "\\b";
    } else {
      out += c;
    }
  }
  if (quote) out += '"';
  return out;
}

std::string HeaderText(const Key& key) {
  if (!key.has_sub) return "[" + key.section + "]\n";
  std::string sub;
  for (char c : key.sub) {
    if (c == '\\' || c == '"') sub += '\\';
    sub += c;
  }
  return "[" + key.section + " \"" + sub + "\"]\n";
}

bool SameSection(const Key& a, const Key& b) {
  return a.section == b.section && a.has_sub == b.has_sub && a.sub == b.sub;
}

}  // namespace

struct Config::Impl {
  std::string path;
  std::vector<Line> lines;

  Status Load() {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        lines.clear();
        return Status::Ok();  // created by the first Set
      }
      return Status::IOError("cannot read config '" + path +
                             "': " + std::strerror(errno));
    }
    std::string text;
    char buffer[4096];
    for (;;) {
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return Status::IOError("cannot read config '" + path +
                               "': " + std::strerror(err));
      }
      if (n == 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    Result<std::vector<Line>> parsed = Parse(text);
    if (!parsed.ok()) {
      return Status::IOError("cannot read config '" + path +
                             "': " + parsed.status().message());
    }
    lines = std::move(parsed).value();
    return Status::Ok();
  }

  // Takes LOCK, the file that becomes the new config, as git does: it is
  // created only where none exists. It is also flock()ed before its name
  // appears, and stays so until it is renamed into place, so that a lock left
  // by a process that died while it held it (kill -9, a power cut) is known
  // for one: nobody holds its flock. Such a lock is removed and taken.
  Result<int> TakeLock(const std::string& lock) {
    auto fail = [&](int err) {
      return Status::IOError("cannot write config '" + path +
                             "': " + std::strerror(err));
    };
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::string temp = lock + "-XXXXXX";
      int fd = ::mkostemp(temp.data(), O_CLOEXEC);
      if (fd < 0) return fail(errno);
      ::fchmod(fd, 0644);
      ::flock(fd, LOCK_EX);  // a new file: nobody else holds it
      int rc = ::link(temp.c_str(), lock.c_str());
      int err = errno;
      ::unlink(temp.c_str());
      if (rc == 0) return fd;
      ::close(fd);
      if (err != EEXIST) return fail(err);
      int old = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC);
      if (old < 0) {
        if (errno == ENOENT) continue;  // its writer just finished
        return fail(errno);
      }
      struct stat held {
      }, named{};
      bool stale = ::flock(old, LOCK_EX | LOCK_NB) == 0 &&
                   ::fstat(old, &held) == 0 &&
                   ::stat(lock.c_str(), &named) == 0 &&
                   held.st_dev == named.st_dev && held.st_ino == named.st_ino;
      if (stale) ::unlink(lock.c_str());  // its writer died: take it over
      ::close(old);
      if (!stale) break;
    }
    return Status::Conflict("config '" + path +
                            "' is being written by another process ('" + lock +
                            "' exists)");
  }

  // Re-reads the file under its lock, lets CHANGE edit the lines, and writes
  // them back atomically (a lock file renamed into place, as git does).
  Status Rewrite(const std::function<Status()>& change) {
    const std::string lock = path + ".lock";
    CMF_ASSIGN_OR_RETURN(int fd, TakeLock(lock));
    Status st = Load();
    if (st.ok()) st = change();
    // Written, flushed, renamed and the folder flushed, as AtomicFile does
    // (the lock file is the temporary here).
    data::FileOps& ops = data::FileOps::Default();
    auto fail = [&](int err) {
      return Status::IOError("cannot write config '" + path +
                             "': " + std::strerror(err));
    };
    if (st.ok()) {
      std::string text;
      for (const Line& l : lines) text += l.raw;
      if (int err = ops.Write(fd, text.data(), text.size())) st = fail(err);
    }
    if (st.ok()) {
      if (int err = ops.Fsync(fd)) st = fail(err);
    }
    bool renamed = false;
    if (st.ok()) {
      if (int err = ops.Rename(lock, path)) st = fail(err);
      renamed = st.ok();
    }
    if (st.ok()) {
      std::filesystem::path dir = std::filesystem::path(path).parent_path();
      st = data::FsyncFolder(dir.empty() ? "." : dir);
    }
    if (!renamed) ::unlink(lock.c_str());
    ::close(fd);  // the flock goes with it, after the rename
    if (!st.ok()) {
      // Back to what the file holds; the write's error is the one to report
      // (a file that cannot be read again leaves what was read before).
      static_cast<void>(Load());
    }
    return st;
  }

  // The index of the last variable KEY, or -1.
  long Find(const Key& key) const {
    for (long i = static_cast<long>(lines.size()) - 1; i >= 0; --i) {
      const Line& l = lines[static_cast<std::size_t>(i)];
      if (l.kind == Line::Kind::kVariable && l.key == key) return i;
    }
    return -1;
  }
};

Config::Config(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Config::Config(Config&&) noexcept = default;
Config& Config::operator=(Config&&) noexcept = default;
Config::~Config() = default;

Result<Config> Config::Open(const std::filesystem::path& path) {
  auto impl = std::make_unique<Impl>();
  impl->path = path.string();
  CMF_RETURN_IF_ERROR(impl->Load());
  return Config(std::move(impl));
}

Result<std::string> Config::Get(const std::string& key) const {
  CMF_ASSIGN_OR_RETURN(Key k, ParseKey(key));
  long i = impl_->Find(k);
  if (i < 0) return Status::NotFound("config key '" + key + "' is not set");
  return impl_->lines[static_cast<std::size_t>(i)].value;
}

std::string Config::GetOr(const std::string& key,
                          const std::string& fallback) const {
  Result<std::string> value = Get(key);
  return value.ok() ? value.value() : fallback;
}

Status Config::Set(const std::string& key, const std::string& value) {
  CMF_ASSIGN_OR_RETURN(Key k, ParseKey(key));
  return impl_->Rewrite([&]() -> Status {
    std::vector<Line>& lines = impl_->lines;
    Line line;
    line.kind = Line::Kind::kVariable;
    line.key = k;
    line.value = value;
    line.raw = "\t" + k.name + " = " + QuoteValue(value) + "\n";
    long at = impl_->Find(k);
    if (at >= 0) {
      lines[static_cast<std::size_t>(at)] = std::move(line);
      return Status::Ok();
    }
    // After the last variable of the key's last section, or in a new one.
    long after = -1;
    for (long i = 0; i < static_cast<long>(lines.size()); ++i) {
      const Line& l = lines[static_cast<std::size_t>(i)];
      if (l.kind == Line::Kind::kHeader) {
        if (SameSection(l.key, k)) after = i;
      } else if (l.kind == Line::Kind::kVariable && SameSection(l.key, k)) {
        after = i;
      }
    }
    if (after < 0) {  // (every line's raw text ends in a newline)
      Line header;
      header.kind = Line::Kind::kHeader;
      header.key = k;
      header.key.name.clear();
      header.raw = HeaderText(k);
      lines.push_back(std::move(header));
      lines.push_back(std::move(line));
    } else {
      lines.insert(lines.begin() + after + 1, std::move(line));
    }
    return Status::Ok();
  });
}

Status Config::Validate(const std::string& key, const std::string& value) {
  std::string k = Lower(key);
  if (k == "core.site") {
    if (!IsValidSiteId(value)) {
      return Status::InvalidArgument(
          "core.site must be 1 to 64 letters, digits, '-' or '_'");
    }
  } else if (k == "store.synchronous") {
    if (value != "full" && value != "normal") {
      return Status::InvalidArgument(
          "store.synchronous must be 'full' or 'normal', not '" + value + "'");
    }
  } else if (k == "push.data" || k == "pull.data") {
    if (value != "relevant" && value != "all" && value != "none") {
      return Status::InvalidArgument(
          k + " must be 'relevant', 'all' or 'none', not '" + value + "'");
    }
  } else if (k == "push.max-size") {
    return ParseSize(value).status();
  } else if (k == "cache.link") {
    return data::ParseLinkOrder(value).status();
  } else if (k == "core.repositoryformatversion" && value != "1") {
    return Status::InvalidArgument("core.repositoryformatversion must stay 1");
  }
  return Status::Ok();
}

Status Config::Unset(const std::string& key) {
  CMF_ASSIGN_OR_RETURN(Key k, ParseKey(key));
  if (impl_->Find(k) < 0)
    return Status::NotFound("config key '" + key + "' is not set");
  return impl_->Rewrite([&]() -> Status {
    long at = impl_->Find(k);
    if (at < 0) return Status::NotFound("config key '" + key + "' is not set");
    impl_->lines.erase(impl_->lines.begin() + at);
    return Status::Ok();
  });
}

Result<std::vector<std::pair<std::string, std::string>>> Config::List() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const Line& l : impl_->lines) {
    if (l.kind == Line::Kind::kVariable)
      out.emplace_back(l.key.Normal(), l.value);
  }
  return out;
}

}  // namespace cmf
