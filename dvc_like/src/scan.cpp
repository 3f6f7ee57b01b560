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

// A tree as listed, before any Entry is made: each folder's names sorted so
// that walking the folders in that order yields the files sorted by relative
// path, and the number of files, so that the entries are made in place, in
// order, once. Sorting 100,000 Entries by path afterwards (and growing their
// vector by doubling) was most of the listing of an unchanged tree.
struct Listing {
  struct Child {
    std::string name;
    std::uint32_t folder = 0;   // a folder: its index in folders, plus 1
    std::int32_t stat_at = -1;  // a link to a regular file: its stat in stats
    bool is_link = false;
  };
  struct Folder {
    std::string absolute;  // ends in '/'
    std::string relative;  // "" or ends in '/'
    bool behind_link = false;
    std::vector<Child> children;
  };
  std::vector<Folder> folders;
  std::vector<struct stat> stats;
  std::size_t files = 0;
};

// Whether A sorts before B, two names of one folder, as the paths below them
// do: a folder's name as if it ended in '/' ("a.txt" before the files of
// "a/", which come before "a0").
bool ListedBefore(const Listing::Child& a, const Listing::Child& b) {
  const std::size_t n = std::min(a.name.size(), b.name.size());
  if (int c = std::memcmp(a.name.data(), b.name.data(), n); c != 0)
    return c < 0;
  auto next = [n](const Listing::Child& c) -> int {
    if (c.name.size() > n) return static_cast<unsigned char>(c.name[n]);
    return c.folder != 0 ? '/' : -1;
  };
  return next(a) < next(b);
}

// Lists the folder ABSOLUTE (RELATIVE to the scanned ROOT, "" or ending in
// '/') and its subfolders into LISTING. Links to folders are followed like
// links to files (a loop ends in an error from the file system, a path grown
// too long, not in a hang); what lies behind one is marked so (BEHIND_LINK:
// this folder was reached through one). Plain strings and readdir, not
// std::filesystem: a scan of many unchanged files spent most of its listing
// building and parsing paths.
Status ListFolder(std::string absolute, std::string relative,
                  const fs::path& root, bool behind_link, Listing& listing) {
  auto failed = [&](int err) {
    return Status::IOError("cannot list '" + root.string() +
                           "': " + std::strerror(err));
  };
  if (absolute.back() != '/') absolute += '/';
  const std::size_t at = listing.folders.size();
  listing.folders.push_back(
      {std::move(absolute), std::move(relative), behind_link, {}});
  // By index: listing.folders grows below.
  auto folder = [&]() -> Listing::Folder& { return listing.folders[at]; };
  DIR* dir = ::opendir(folder().absolute.c_str());
  if (dir == nullptr) return failed(errno);
  struct Closer {
    DIR* d;
    ~Closer() { ::closedir(d); }
  } closer{dir};
  std::vector<Listing::Child> children;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) return failed(errno);
      break;
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    // The listing's file type where it has one; a link is followed. Looked
    // up from the open folder: no whole path is made for a plain file.
    bool is_link = entry->d_type == DT_LNK;
    bool is_dir = entry->d_type == DT_DIR;
    struct stat st {};
    if (entry->d_type == DT_UNKNOWN &&
        ::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      is_link = S_ISLNK(st.st_mode);
      is_dir = S_ISDIR(st.st_mode);
    }
    bool followed = false;  // ST holds what the link leads to
    if (is_link) {
      if (::fstatat(::dirfd(dir), entry->d_name, &st, 0) == 0) {
        is_dir = S_ISDIR(st.st_mode);
        followed = true;
      } else if (errno != ENOENT) {
        return failed(errno);  // a loop of links ends here (ELOOP)
      }  // a broken link is listed, and reported as one when it is stat'd
    }
    // A nested cmf repository is not data, nor is a link to one.
    if (is_dir && name == ".cmf") continue;
    if (is_dir && is_link) {
      std::error_code ec;
      const std::string path = folder().absolute + std::string(name);
      if (fs::canonical(path, ec).filename() == ".cmf") continue;
    }
    Listing::Child& child = children.emplace_back();
    child.name.assign(name);
    child.is_link = is_link;
    if (is_dir) {
      child.folder = 1;  // told apart from a file for the sort; set below
    } else if (followed && S_ISREG(st.st_mode)) {
      // A link to a file (cache.link symlink) is stat'd once, here:
      // following it walks the whole path of its target.
      child.stat_at = static_cast<std::int32_t>(listing.stats.size());
      listing.stats.push_back(st);
    }
  }
  std::sort(children.begin(), children.end(), ListedBefore);
  for (Listing::Child& child : children) {
    if (child.folder == 0) {
      ++listing.files;
      continue;
    }
    child.folder = static_cast<std::uint32_t>(listing.folders.size()) + 1;
    CMF_RETURN_IF_ERROR(ListFolder(folder().absolute + child.name,
                                   folder().relative + child.name + "/", root,
                                   behind_link || child.is_link, listing));
  }
  folder().children = std::move(children);
  return Status::Ok();
}

// Appends to OUT the files of LISTING's folder AT and of its subfolders, in
// order.
void EmitFolder(const Listing& listing, std::size_t at, std::size_t root_index,
                std::vector<Entry>* out) {
  const Listing::Folder& folder = listing.folders[at];
  for (const Listing::Child& child : folder.children) {
    if (child.folder != 0) {
      EmitFolder(listing, child.folder - 1, root_index, out);
      continue;
    }
    Entry& e = out->emplace_back();
    e.relative.reserve(folder.relative.size() + child.name.size());
    e.relative.append(folder.relative).append(child.name);
    e.absolute.reserve(folder.absolute.size() + child.name.size());
    e.absolute.append(folder.absolute).append(child.name);
    e.is_link = child.is_link;
    e.behind_link = folder.behind_link;
    e.root = root_index;
    if (child.stat_at >= 0)
      FillStat(e, listing.stats[static_cast<std::size_t>(child.stat_at)]);
  }
}

// Appends the files under ROOT to OUT, sorted by relative path, named but not
// yet stat'd (StatAll does that). BEHIND_LINK: ROOT is, or lies behind, a
// symbolic link.
Status ListTree(const fs::path& root, std::size_t root_index, bool behind_link,
                std::vector<Entry>* out) {
  Listing listing;
  CMF_RETURN_IF_ERROR(
      ListFolder(root.string(), "", root, behind_link, listing));
  out->reserve(out->size() + listing.files);
  EmitFolder(listing, 0, root_index, out);
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

// Writes the manifest of FILES (sorted by path) to OUT, calling FLUSH to
// take OUT's bytes (and clear it) whenever it holds FLUSH_AT bytes or more,
// and at the end.
template <typename Flush>
void WriteManifest(const std::vector<ScannedFile>& files, std::string& out,
                   std::size_t flush_at, Flush&& flush) {
  const bool escaped =
      std::any_of(files.begin(), files.end(), [](const ScannedFile& f) {
        return f.path.find('\n') != std::string::npos;
      });
  out += escaped ? kEscapedHeader : kManifestHeader;
  for (const ScannedFile& f : files) {
    out += f.executable ? "100755 " : "100644 ";
    out += std::to_string(f.size);
    out += ' ';
    out += f.hash;
    out += ' ';
    if (!escaped) {
      out += f.path;
    } else {
      for (char c : f.path) {
        if (c == '\\') {
          out += "\\\\";
        } else if (c == '\n') {
          out += "\\n";
        } else {
          out += c;
        }
      }
    }
    out += '\n';
    if (out.size() >= flush_at) flush();
  }
  flush();
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
    if (!options.store) {
      // Hashed as it is written: 100,000 files make a 10 MiB manifest,
      // which nothing else would read.
      Sha256 sha;
      std::string piece;
      constexpr std::size_t kPiece = 64 << 10;
      piece.reserve(kPiece + 512);
      WriteManifest(result.files, piece, kPiece, [&] {
        sha.Update(piece);
        piece.clear();
      });
      result.info.hash = ToHex(sha.Finish());
      continue;
    }
    std::string manifest = BuildManifest(result.files);
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
  std::string manifest;
  // "100644 SIZE HASH PATH\n": grown once, not doubled a dozen times.
  std::size_t length = kManifestHeader.size();
  for (const ScannedFile& f : files) length += 7 + 21 + 65 + f.path.size() + 1;
  manifest.reserve(length);
  WriteManifest(files, manifest, std::string::npos, [] {});
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
  if (roots.size() == 1) results.front().files.reserve(entries.size());
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
