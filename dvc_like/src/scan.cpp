#include "cmf/data/scan.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <iterator>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "cmf/data/hash.h"
#include "cmf/data/phase_trace.h"
#include "file_reader.h"

namespace fs = std::filesystem;

namespace cmf::data {
namespace {

constexpr std::string_view kManifestHeader = "cmf-manifest 1\n";
// The same lines, each path escaped ('\\' and '\n' for a backslash and a line
// break): written only when some path holds a line break, so that every other
// folder keeps the hash it had.
constexpr std::string_view kEscapedHeader = "cmf-manifest 2\n";

// A file whose mtime is this close to the scan's start may still be written
// within the same timestamp tick: its hash is not remembered ("racily clean").
constexpr std::int64_t kRacyWindowNs = 1'000'000'000;

struct Entry {
  std::string relative;
  std::string absolute;
  FileStat stat;
  std::int64_t ctime_ns = 0;
  bool executable = false;
  bool is_link = false;      // the path is a symbolic link (to a file)
  bool behind_link = false;  // reached through a symbolic link to a folder
  std::uint64_t links = 1;   // st_nlink
  bool has_stat = false;     // stat and executable are filled in
  std::size_t root = 0;      // which of the scanned paths it lies under
  std::string hash;
  bool need_hash = false;            // not in the stat cache
  bool need_store = false;           // to be stored in the object cache
  std::int64_t object_ctime_ns = 0;  // as StatCache::Known, when it is known
};

// The folder of the last file stat'd, kept open so that the next file in it
// is looked up by its name alone: a listing keeps a folder's files together,
// and resolving every file's whole path was most of a scan of unchanged files.
class ParentDir {
 public:
  ParentDir() = default;
  ParentDir(const ParentDir&) = delete;
  ParentDir& operator=(const ParentDir&) = delete;
  ~ParentDir() {
    if (fd_ >= 0) ::close(fd_);
  }

  // A descriptor of the folder PATH, or -1 when it cannot be opened.
  int Open(std::string_view path) {
    if (fd_ >= 0 && path == path_) return fd_;
    if (fd_ >= 0) ::close(fd_);
    path_.assign(path);
    fd_ = ::open(path_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    return fd_;
  }

 private:
  int fd_ = -1;
  std::string path_;
};

// Fills in E's stat from ST, a regular file's.
void FillStat(Entry& e, const struct stat& st) {
  e.stat = ToFileStat(st);
  e.ctime_ns = CtimeNs(st);
  e.executable = (st.st_mode & S_IXUSR) != 0;
  e.links = static_cast<std::uint64_t>(st.st_nlink);
  e.has_stat = true;
}

// Fills in E's stat from the file system (through links), looking it up from
// DIR's folder when given.
Status StatEntry(Entry& e, ParentDir* dir = nullptr) {
  const std::string& name = e.absolute;
  int at = AT_FDCWD;
  const char* relative = name.c_str();
  if (std::size_t slash = name.rfind('/');
      dir != nullptr && slash != std::string::npos && slash > 0) {
    if (int fd = dir->Open(std::string_view(name).substr(0, slash)); fd >= 0) {
      at = fd;
      relative = name.c_str() + slash + 1;
    }
  }
  struct stat st {};
  if (::fstatat(at, relative, &st, 0) != 0) {
    int err = errno;
    struct stat link {};
    if (err == ENOENT &&
        ::fstatat(at, relative, &link, AT_SYMLINK_NOFOLLOW) == 0)
      return Status::IOError("'" + name + "' is a broken symbolic link");
    if (err == ENOENT)
      return Status::NotFound("no such file or directory '" + name + "'");
    return Status::IOError("cannot stat '" + name + "': " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::IOError("'" + name +
                           "' is neither a regular file nor a directory");
  }
  FillStat(e, st);
  return Status::Ok();
}

// Appends the files of the folder ABSOLUTE (RELATIVE to the scanned ROOT, ""
// or ending in '/') and of its subfolders to OUT, in no particular order.
// Links to folders are followed like links to files (a loop ends in an error
// from the file system, a path grown too long, not in a hang); what lies
// behind one is marked so (BEHIND_LINK: this folder was reached through one).
// Plain strings and readdir, not std::filesystem: a scan of many unchanged
// files spent most of its listing building and parsing paths.
Status ListFolder(const std::string& absolute, const std::string& relative,
                  const fs::path& root, std::size_t root_index,
                  bool behind_link, std::vector<Entry>* out) {
  auto failed = [&](int err) {
    return Status::IOError("cannot list '" + root.string() +
                           "': " + std::strerror(err));
  };
  DIR* dir = ::opendir(absolute.c_str());
  if (dir == nullptr) return failed(errno);
  struct Closer {
    DIR* d;
    ~Closer() { ::closedir(d); }
  } closer{dir};
  const std::string base = absolute.back() == '/' ? absolute : absolute + "/";
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) return failed(errno);
      return Status::Ok();
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    std::string path = base;
    path += name;
    // The listing's file type where it has one; a link is followed.
    bool is_link = entry->d_type == DT_LNK;
    bool is_dir = entry->d_type == DT_DIR;
    struct stat st {};
    if (entry->d_type == DT_UNKNOWN && ::lstat(path.c_str(), &st) == 0) {
      is_link = S_ISLNK(st.st_mode);
      is_dir = S_ISDIR(st.st_mode);
    }
    bool followed = false;  // ST holds what the link leads to
    if (is_link) {
      if (::stat(path.c_str(), &st) == 0) {
        is_dir = S_ISDIR(st.st_mode);
        followed = true;
      } else if (errno != ENOENT) {
        return failed(errno);  // a loop of links ends here (ELOOP)
      }  // a broken link is listed, and reported as one when it is stat'd
    }
    if (is_dir) {
      if (name == ".cmf") continue;  // a nested cmf repository is not data
      std::error_code ec;
      if (is_link && fs::canonical(path, ec).filename() == ".cmf")
        continue;  // nor is a link to one
      CMF_RETURN_IF_ERROR(ListFolder(path, relative + std::string(name) + "/",
                                     root, root_index, behind_link || is_link,
                                     out));
      continue;
    }
    Entry e;
    e.relative = relative;
    e.relative += name;
    e.absolute = std::move(path);
    e.is_link = is_link;
    e.behind_link = behind_link;
    e.root = root_index;
    // A link to a file (cache.link symlink) is stat'd once, here: following
    // it walks the whole path of its target.
    if (followed && S_ISREG(st.st_mode)) FillStat(e, st);
    out->push_back(std::move(e));
  }
}

// Appends the files under ROOT to OUT, sorted by relative path, named but not
// yet stat'd (StatAll does that). BEHIND_LINK: ROOT is, or lies behind, a
// symbolic link.
Status ListTree(const fs::path& root, std::size_t root_index, bool behind_link,
                std::vector<Entry>* out) {
  const std::size_t first = out->size();
  CMF_RETURN_IF_ERROR(
      ListFolder(root.string(), "", root, root_index, behind_link, out));
  std::sort(
      out->begin() + static_cast<std::ptrdiff_t>(first), out->end(),
      [](const Entry& a, const Entry& b) { return a.relative < b.relative; });
  return Status::Ok();
}

// Stats the listed entries on all cores, and calls CLASSIFY (from the same
// threads) for each once it is stat'd: with many small files that are
// unchanged, this is most of the work of a scan.
Status StatAll(unsigned threads, std::vector<Entry>* entries,
               const std::function<void(Entry&)>& classify) {
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  Status first_error;
  // Runs of consecutive entries, so that a thread sees a folder's files one
  // after the other.
  constexpr std::size_t kRun = 64;
  const std::size_t n = entries->size();
  auto worker = [&] {
    ParentDir dir;
    for (std::size_t begin; (begin = next.fetch_add(kRun)) < n;) {
      for (std::size_t i = begin; i < std::min(n, begin + kRun); ++i) {
        Entry& e = (*entries)[i];
        if (!e.has_stat) {  // a single file was stat'd when it was named
          if (Status st = StatEntry(e, &dir); !st.ok()) {
            std::lock_guard<std::mutex> lock(mutex);
            if (first_error.ok()) first_error = st;
            next = n;
            return;
          }
        }
        classify(e);
      }
    }
  };
  threads = std::max(
      1u, std::min<unsigned>(threads,
                             static_cast<unsigned>(entries->size() / 256 + 1)));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  return first_error;
}

std::int64_t WallNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The steps of ScanMany.

// Lists each of PATHS: appends its absolute form to ROOTS, whether it is a
// folder to IS_DIRECTORY, and its files to ENTRIES (a single file stat'd, the
// files of a folder not yet). NotFound for a path that does not exist.
Status ListPaths(std::span<const fs::path> paths, const ScanOptions& options,
                 std::vector<fs::path>& roots, std::vector<bool>& is_directory,
                 std::vector<Entry>& entries) {
  for (const fs::path& path : paths) {
    std::error_code ec;
    fs::path root = fs::absolute(path, ec).lexically_normal();
    if (root.has_relative_path() && !root.has_filename())
      root = root.parent_path();
    fs::file_status status = fs::status(root, ec);
    if (!fs::exists(status)) {
      if (ec && ec != std::errc::no_such_file_or_directory &&
          ec != std::errc::not_a_directory) {
        return Status::IOError("cannot read '" + path.string() +
                               "': " + ec.message());
      }
      return Status::NotFound("no such file or directory '" + path.string() +
                              "'");
    }
    is_directory.push_back(fs::is_directory(status));
    const bool is_link = fs::is_symlink(fs::symlink_status(root, ec));
    // A folder on the way that is a link: what lies behind it is not the
    // caller's to link into the cache (asked only when storing).
    bool behind_link = false;
    if (options.store && root.has_parent_path()) {
      fs::path parent = root.parent_path();
      behind_link = fs::weakly_canonical(parent, ec) != parent;
    }
    if (is_directory.back()) {
      CMF_RETURN_IF_ERROR(
          ListTree(root, roots.size(), behind_link || is_link, &entries));
    } else {
      Entry e;
      e.absolute = root.string();
      CMF_RETURN_IF_ERROR(StatEntry(e));
      e.is_link = is_link;
      e.behind_link = behind_link;
      e.root = roots.size();
      entries.push_back(std::move(e));
    }
    roots.push_back(std::move(root));
  }
  return Status::Ok();
}

// Stats ENTRIES (the files under ROOTS, whose stat cache is fetched first) on
// THREADS threads, and appends to WORK the index of each that needs hashing
// or storing; the others are counted as done.
Status ClassifyAll(const ObjectCache& cache, const ScanOptions& options,
                   unsigned threads, const std::vector<fs::path>& roots,
                   std::vector<Entry>& entries,
                   std::vector<std::size_t>& work) {
  if (options.stat_cache) {
    for (const fs::path& root : roots) options.stat_cache->Prefetch(root);
    MarkPhase("stat cache");
  }
  // What each file needs: hashing (not in the stat cache), storing (not in
  // the object cache), or nothing. A file known to be the object itself, with
  // the ctime it had then, proves the object is there: looking it up in the
  // cache cost as much as the file's own stat.
  CMF_RETURN_IF_ERROR(StatAll(threads, &entries, [&](Entry& e) {
    bool is_object = false;
    if (options.stat_cache) {
      if (auto known = options.stat_cache->Lookup(e.absolute, e.stat)) {
        e.hash = std::move(known->hash);
        e.object_ctime_ns = known->object_ctime_ns;
        is_object = e.object_ctime_ns != 0 && e.object_ctime_ns == e.ctime_ns;
      }
    }
    e.need_hash = e.hash.empty();
    e.need_store =
        options.store && (e.need_hash || (!is_object && !cache.Has(e.hash)));
  }));
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.need_hash || e.need_store) {
      work.push_back(i);
    } else if (options.progress) {
      options.progress->Add(1, 0);
    }
  }
  return Status::Ok();
}

// Hashes the ENTRIES that WORK names, and stores those that need it (adding
// them to PENDING), on up to THREADS threads. On error PENDING is discarded.
Status HashAll(const ObjectCache& cache, const ScanOptions& options,
               unsigned threads, std::vector<Entry>& entries,
               std::vector<std::size_t>& work,
               std::vector<ObjectCache::Pending>& pending) {
  // Hash (and store) the files that need it, on all cores, largest first so
  // that one big file does not run alone at the end.
  std::sort(work.begin(), work.end(), [&](std::size_t a, std::size_t b) {
    return entries[a].stat.size > entries[b].stat.size;
  });
  const unsigned workers = std::max(
      1u, std::min<unsigned>(threads, static_cast<unsigned>(work.size())));
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  Status first_error;
  auto worker = [&] {
    std::vector<ObjectCache::Pending> mine;
    auto hand_over = [&] {
      std::lock_guard<std::mutex> lock(error_mutex);
      std::move(mine.begin(), mine.end(), std::back_inserter(pending));
    };
    for (;;) {
      std::size_t k = next.fetch_add(1);
      if (k >= work.size() || failed.load()) return hand_over();
      Entry& e = entries[work[k]];
      Status st;
      if (e.need_store) {
        Result<ObjectCache::Stored> stored =
            cache.StoreFile(e.absolute, options.link_order, &mine,
                            ObjectCache::Listed{e.stat, e.executable, e.is_link,
                                                e.behind_link, e.links});
        if (stored.ok()) e.hash = stored->hash;
        st = stored.status();
      } else {
        Result<std::string> hash = HashFileContent(e.absolute, &e.stat);
        if (hash.ok()) e.hash = *hash;
        st = hash.status();
      }
      if (!st.ok()) {
        hand_over();
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!failed.exchange(true)) first_error = st;
        return;
      }
      if (options.progress) options.progress->Add(1, e.stat.size);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < workers; ++t) pool.emplace_back(worker);
  if (!work.empty()) worker();
  for (std::thread& t : pool) t.join();
  if (failed) {
    cache.Discard(pending);
    return first_error;
  }
  return Status::Ok();
}

// Gives each of RESULTS its hash: a file its own, a folder its manifest's,
// stored (added to PENDING) when OPTIONS.store. On error PENDING is
// discarded.
Status HashRoots(const ObjectCache& cache, const ScanOptions& options,
                 std::vector<ScanResult>& results,
                 std::vector<ObjectCache::Pending>& pending) {
  // A folder's manifest is published with its files, after the same flush.
  for (ScanResult& result : results) {
    if (!result.info.is_directory) {
      result.info.hash = result.files.front().hash;
      continue;
    }
    std::string manifest = BuildManifest(result.files);
    if (!options.store) {
      result.info.hash = HashBytes(manifest);
      continue;
    }
    Result<std::string> hash = cache.PutBytes(manifest, &pending);
    if (!hash.ok()) {
      cache.Discard(pending);
      return hash.status();
    }
    result.info.hash = *hash;
  }
  return Status::Ok();
}

}  // namespace

std::string BuildManifest(const std::vector<ScannedFile>& files) {
  const bool escaped =
      std::any_of(files.begin(), files.end(), [](const ScannedFile& f) {
        return f.path.find('\n') != std::string::npos;
      });
  std::string manifest(escaped ? kEscapedHeader : kManifestHeader);
  for (const ScannedFile& f : files) {
    manifest += f.executable ? "100755 " : "100644 ";
    manifest += std::to_string(f.size);
    manifest += ' ';
    manifest += f.hash;
    manifest += ' ';
    if (!escaped) {
      manifest += f.path;
    } else {
      for (char c : f.path) {
        if (c == '\\') {
          manifest += "\\\\";
        } else if (c == '\n') {
          manifest += "\\n";
        } else {
          manifest += c;
        }
      }
    }
    manifest += '\n';
  }
  return manifest;
}

Result<std::vector<ScannedFile>> ParseManifest(std::string_view text) {
  const bool escaped = text.starts_with(kEscapedHeader);
  if (!escaped && !text.starts_with(kManifestHeader))
    return Status::Corruption("not a cmf manifest");
  std::vector<ScannedFile> files;
  std::size_t pos = kManifestHeader.size();  // both headers are this long
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos)
      return Status::Corruption("manifest ends mid-line");
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    // MODE SIZE HASH PATH (the path may hold blanks)
    std::size_t a = line.find(' '),
                b = a == line.npos ? a : line.find(' ', a + 1),
                c = b == line.npos ? b : line.find(' ', b + 1);
    if (c == line.npos) return Status::Corruption("malformed manifest line");
    ScannedFile f;
    std::string_view mode = line.substr(0, a);
    if (mode != "100644" && mode != "100755")
      return Status::Corruption("malformed manifest mode");
    f.executable = mode == "100755";
    std::string_view size = line.substr(a + 1, b - a - 1);
    auto [end, ec] =
        std::from_chars(size.data(), size.data() + size.size(), f.size);
    if (ec != std::errc() || end != size.data() + size.size()) {
      return Status::Corruption("malformed manifest size");
    }
    f.hash = std::string(line.substr(b + 1, c - b - 1));
    if (!IsSha256Hex(f.hash))
      return Status::Corruption("malformed manifest hash");
    if (!escaped) {
      f.path = std::string(line.substr(c + 1));
    } else {
      std::string_view raw = line.substr(c + 1);
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
          f.path += raw[i];
        } else if (i + 1 < raw.size() && raw[i + 1] == '\\') {
          f.path += '\\';
          ++i;
        } else if (i + 1 < raw.size() && raw[i + 1] == 'n') {
          f.path += '\n';
          ++i;
        } else {
          return Status::Corruption("malformed manifest path escape");
        }
      }
    }
    // A manifest names files below its folder: nothing that could climb out of
    // it or into a repository.
    if (f.path.empty() || f.path.front() == '/')
      return Status::Corruption("unsafe manifest path");
    for (std::size_t start = 0; start <= f.path.size();) {
      std::size_t slash = f.path.find('/', start);
      if (slash == std::string::npos) slash = f.path.size();
      std::string_view part(f.path.data() + start, slash - start);
      if (part.empty() || part == "." || part == ".." || part == ".cmf") {
        return Status::Corruption("unsafe manifest path '" + f.path + "'");
      }
      start = slash + 1;
    }
    files.push_back(std::move(f));
  }
  return files;
}

Result<ScanResult> Scan(const ObjectCache& cache, const fs::path& path,
                        const ScanOptions& options) {
  CMF_ASSIGN_OR_RETURN(
      std::vector<ScanResult> results,
      ScanMany(cache, std::span<const fs::path>(&path, 1), options));
  return std::move(results.front());
}

Result<std::vector<ScanResult>> ScanMany(const ObjectCache& cache,
                                         std::span<const fs::path> paths,
                                         const ScanOptions& options) {
  const unsigned threads =
      options.threads ? options.threads
                      : std::max(1u, std::thread::hardware_concurrency());
  const std::int64_t started_ns = WallNs();

  // Every path is listed before anything is read.
  std::vector<fs::path> roots;
  std::vector<bool> is_directory;
  std::vector<Entry> entries;
  CMF_RETURN_IF_ERROR(ListPaths(paths, options, roots, is_directory, entries));
  MarkPhase("list");
  std::vector<std::size_t> work;
  CMF_RETURN_IF_ERROR(
      ClassifyAll(cache, options, threads, roots, entries, work));
  MarkPhase("stat");
  std::vector<ObjectCache::Pending>
      pending;  // published together, after one flush
  CMF_RETURN_IF_ERROR(HashAll(cache, options, threads, entries, work, pending));
  MarkPhase("hash");

  std::vector<ScanResult> results(roots.size());
  for (std::size_t r = 0; r < roots.size(); ++r)
    results[r].info.is_directory = is_directory[r];
  for (Entry& e : entries) {
    ScanResult& result = results[e.root];
    if (e.need_hash) {
      ++result.hashed_files;
      result.hashed_bytes += e.stat.size;
    }
    result.info.size += e.stat.size;
    // The hash of a file hashed or stored now stays: the stat cache is told
    // of it after Publish. The stat cache knew the others already.
    result.files.push_back(
        {std::move(e.relative), e.stat.size, e.executable,
         e.need_hash || e.need_store ? e.hash : std::move(e.hash)});
  }
  CMF_RETURN_IF_ERROR(HashRoots(cache, options, results, pending));
  MarkPhase("manifest");
  // The stat cache is saved while the names are flushed: it says what files
  // hold, whatever the cache does. It runs once every object has its name:
  // the files that became their objects have the ctime they will keep.
  CMF_RETURN_IF_ERROR(cache.Publish(pending, [&]() -> Status {
    if (!options.stat_cache) return Status::Ok();
    std::unordered_map<std::string_view, std::int64_t> linked;
    for (const ObjectCache::Pending& p : pending) {
      if (p.linked_ctime_ns != 0)
        linked.emplace(p.source.native(), p.linked_ctime_ns);
    }
    for (const Entry& e : entries) {
      auto it = linked.find(e.absolute);
      if (!e.need_hash && it == linked.end()) continue;
      if (e.stat.mtime_ns >= started_ns - kRacyWindowNs) continue;
      options.stat_cache->Remember(
          e.absolute, e.stat,
          {e.hash, it != linked.end() ? it->second : e.object_ctime_ns});
    }
    return options.stat_cache->Flush();
  }));
  MarkPhase("publish");
  return results;
}

Result<ObjectInfo> HashPath(const ObjectCache& cache, const fs::path& path) {
  CMF_ASSIGN_OR_RETURN(ScanResult scan, Scan(cache, path, ScanOptions{}));
  return scan.info;
}

Result<ObjectInfo> StorePath(const ObjectCache& cache, const fs::path& path) {
  ScanOptions options;
  options.store = true;
  options.link_order = {LinkMode::kReflink, LinkMode::kCopy};
  CMF_ASSIGN_OR_RETURN(ScanResult scan, Scan(cache, path, options));
  return scan.info;
}

}  // namespace cmf::data
