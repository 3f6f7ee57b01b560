#include "cmf/data/scan.h"

#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iterator>
#include <mutex>
#include <system_error>
#include <thread>

#include "cmf/data/hash.h"

namespace fs = std::filesystem;

namespace cmf::data {
namespace {

constexpr std::string_view kManifestHeader = "cmf-manifest 1\n";

// A file whose mtime is this close to the scan's start may still be written
// within the same timestamp tick: its hash is not remembered ("racily clean").
constexpr std::int64_t kRacyWindowNs = 1'000'000'000;

struct Entry {
  std::string relative;
  std::string absolute;
  FileStat stat;
  bool executable = false;
  std::string hash;
  bool need_hash = false;   // not in the stat cache
  bool need_store = false;  // to be stored in the object cache
};

Result<Entry> StatEntry(const fs::path& absolute, std::string relative) {
  struct stat st {};
  if (::stat(absolute.c_str(), &st) != 0) {
    int err = errno;
    struct stat link {};
    if (err == ENOENT && ::lstat(absolute.c_str(), &link) == 0) {
      return Status::IOError("'" + absolute.string() +
                             "' is a broken symbolic link");
    }
    if (err == ENOENT)
      return Status::NotFound("no such file or directory '" +
                              absolute.string() + "'");
    return Status::IOError("cannot stat '" + absolute.string() +
                           "': " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::IOError("'" + absolute.string() +
                           "' is neither a regular file nor a directory");
  }
  Entry e;
  e.relative = std::move(relative);
  e.absolute = absolute.string();
  e.stat = {static_cast<std::uint64_t>(st.st_dev),
            static_cast<std::uint64_t>(st.st_ino),
            static_cast<std::uint64_t>(st.st_size),
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                st.st_mtim.tv_nsec};
  e.executable = (st.st_mode & S_IXUSR) != 0;
  return e;
}

Status ListTree(const fs::path& root, unsigned threads,
                std::vector<Entry>* out) {
  std::error_code ec;
  // Links to folders are followed like links to files (a loop ends in an
  // error from the file system, not in a hang).
  fs::recursive_directory_iterator it(
      root, fs::directory_options::follow_directory_symlink, ec),
      end;
  if (ec)
    return Status::IOError("cannot list '" + root.string() +
                           "': " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec)
      return Status::IOError("cannot list '" + root.string() +
                             "': " + ec.message());
    const fs::directory_entry& entry = *it;
    bool is_dir = entry.is_directory(ec);
    if (is_dir && entry.is_symlink(ec) &&
        fs::canonical(entry.path(), ec).filename() == ".cmf") {
      it.disable_recursion_pending();  // a link to a cmf repository is not data
                                       // either
      continue;
    }
    if (is_dir && entry.path().filename() == ".cmf") {
      it.disable_recursion_pending();  // a nested cmf repository is not data
      continue;
    }
    if (is_dir) continue;
    std::string relative =
        entry.path().lexically_relative(root).generic_string();
    if (relative.find('\n') != std::string::npos) {
      return Status::InvalidArgument("file name with a line break under '" +
                                     root.string() + "'");
    }
    Entry e;
    e.relative = std::move(relative);
    e.absolute = entry.path().string();
    out->push_back(std::move(e));
  }
  std::sort(out->begin(), out->end(), [](const Entry& a, const Entry& b) {
    return a.relative < b.relative;
  });
  // Stat them on all cores: with many small files this is most of the work.
  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  Status first_error;
  auto worker = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < out->size();) {
      Entry& e = (*out)[i];
      Result<Entry> full = StatEntry(e.absolute, std::move(e.relative));
      if (!full.ok()) {
        std::lock_guard<std::mutex> lock(mutex);
        if (first_error.ok()) first_error = full.status();
        next = out->size();
        return;
      }
      e = std::move(full).value();
    }
  };
  threads =
      std::max(1u, std::min<unsigned>(
                       threads, static_cast<unsigned>(out->size() / 256 + 1)));
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

}  // namespace

std::string BuildManifest(const std::vector<ScannedFile>& files) {
  std::string manifest(kManifestHeader);
  for (const ScannedFile& f : files) {
    manifest += f.executable ? "100755 " : "100644 ";
    manifest += std::to_string(f.size);
    manifest += ' ';
    manifest += f.hash;
    manifest += ' ';
    manifest += f.path;
    manifest += '\n';
  }
  return manifest;
}

Result<std::vector<ScannedFile>> ParseManifest(std::string_view text) {
  if (!text.starts_with(kManifestHeader))
    return Status::Corruption("not a cmf manifest");
  std::vector<ScannedFile> files;
  std::size_t pos = kManifestHeader.size();
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
    f.path = std::string(line.substr(c + 1));
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
  const bool is_directory = fs::is_directory(status);
  const std::int64_t started_ns = WallNs();

  std::vector<Entry> entries;
  if (is_directory) {
    CMF_RETURN_IF_ERROR(ListTree(
        root,
        options.threads ? options.threads : std::thread::hardware_concurrency(),
        &entries));
  } else {
    CMF_ASSIGN_OR_RETURN(Entry e, StatEntry(root, ""));
    entries.push_back(std::move(e));
  }

  if (options.stat_cache) options.stat_cache->Prefetch(root);
  std::vector<std::size_t> work;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Entry& e = entries[i];
    if (options.stat_cache) {
      if (auto hash = options.stat_cache->Lookup(e.absolute, e.stat))
        e.hash = *hash;
    }
    e.need_hash = e.hash.empty();
    e.need_store = options.store && (e.need_hash || !cache.Has(e.hash));
    if (e.need_hash || e.need_store) {
      work.push_back(i);
    } else if (options.progress) {
      options.progress->Add(1, 0);
    }
  }

  // Hash (and store) the files that need it, on all cores, largest first so
  // that one big file does not run alone at the end.
  std::sort(work.begin(), work.end(), [&](std::size_t a, std::size_t b) {
    return entries[a].stat.size > entries[b].stat.size;
  });
  unsigned threads =
      options.threads ? options.threads : std::thread::hardware_concurrency();
  threads = std::max(
      1u, std::min<unsigned>(threads, static_cast<unsigned>(work.size())));
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  Status first_error;
  std::vector<ObjectCache::Pending>
      pending;  // published together, after one flush
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
            cache.StoreFile(e.absolute, options.link_order, &mine);
        if (stored.ok()) e.hash = stored->hash;
        st = stored.status();
      } else {
        Result<std::string> hash = HashFile(e.absolute);
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
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  if (!work.empty()) worker();
  for (std::thread& t : pool) t.join();
  if (failed) {
    cache.Discard(pending);
    return first_error;
  }
  CMF_RETURN_IF_ERROR(cache.Publish(pending));

  ScanResult result;
  result.info.is_directory = is_directory;
  for (Entry& e : entries) {
    if (e.need_hash) {
      ++result.hashed_files;
      result.hashed_bytes += e.stat.size;
      if (options.stat_cache && e.stat.mtime_ns < started_ns - kRacyWindowNs) {
        options.stat_cache->Remember(e.absolute, e.stat, e.hash);
      }
    }
    result.info.size += e.stat.size;
    result.files.push_back(
        {std::move(e.relative), e.stat.size, e.executable, std::move(e.hash)});
  }
  if (is_directory) {
    std::string manifest = BuildManifest(result.files);
    if (options.store) {
      CMF_ASSIGN_OR_RETURN(result.info.hash, cache.PutBytes(manifest));
    } else {
      result.info.hash = HashBytes(manifest);
    }
  } else {
    result.info.hash = result.files.front().hash;
  }
  if (options.stat_cache) CMF_RETURN_IF_ERROR(options.stat_cache->Flush());
  return result;
}

}  // namespace cmf::data
