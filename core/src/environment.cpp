#include "cmf/environment.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

#include "cmf/data/file_ops.h"
#include "cmf/data/object_cache.h"

namespace fs = std::filesystem;

namespace cmf {
namespace {

// The folders matching BASE/python3*/LEAF, sorted.
std::vector<fs::path> PythonVersions(const fs::path& base,
                                     const std::string& leaf) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("python3", 0) != 0) continue;
    fs::path p = it->path() / leaf;
    if (fs::is_directory(p, ec)) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Debian's installed packages, as "deb NAME VERSION" lines.
void AddDebian(const fs::path& status, std::set<std::string>& lines) {
  std::ifstream in(status);
  if (!in) return;
  std::string line, package, version, state;
  auto flush = [&] {
    if (!package.empty() && !version.empty() &&
        state.find(" installed") != std::string::npos) {
      lines.insert("deb " + package + " " + version);
    }
    package.clear();
    version.clear();
    state.clear();
  };
  while (std::getline(in, line)) {
    if (line.empty()) {
      flush();
    } else if (line.rfind("Package: ", 0) == 0) {
      package = line.substr(9);
    } else if (line.rfind("Version: ", 0) == 0) {
      version = line.substr(9);
    } else if (line.rfind("Status: ", 0) == 0) {
      state = line.substr(7);
    }
  }
  flush();
}

// Python distributions in FOLDER, as "python NAME VERSION" lines (NAME
// normalised as PEP 503 does: lowercase, runs of -_. as one -).
void AddPython(const fs::path& folder, std::set<std::string>& lines) {
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    std::string stem;
    for (std::string_view suffix : {".dist-info", ".egg-info"}) {
      if (name.size() > suffix.size() &&
          name.compare(name.size() - suffix.size(), suffix.size(), suffix) ==
              0) {
        stem = name.substr(0, name.size() - suffix.size());
      }
    }
    auto dash = stem.find('-');
    if (stem.empty() || dash == std::string::npos || dash == 0) continue;
    std::string version = stem.substr(dash + 1);
    // An egg-info's name may end in -pyX.Y after the version.
    if (auto py = version.find("-py"); py != std::string::npos)
      version.resize(py);
    std::string normal;
    for (char c : stem.substr(0, dash)) {
      const bool sep = c == '-' || c == '_' || c == '.';
      if (sep) {
        if (normal.empty() || normal.back() != '-') normal += '-';
      } else {
        normal +=
            static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    bool printable = !version.empty();
    for (char c : normal + version) {
      if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) printable = false;
    }
    if (printable) lines.insert("python " + normal + " " + version);
  }
}

// What changes when software is installed or removed: the status file's and
// each folder's size and modification time.
std::string Fingerprint(const EnvironmentSources& sources) {
  std::string out = "cmf-environment 1\n";
  auto add = [&](const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
      out += p.string() + " -\n";
      return;
    }
    out += fmt::format("{} {} {} {}.{}\n", p.string(), st.st_ino, st.st_size,
                       st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  };
  add(sources.dpkg_status);
  for (const fs::path& p : sources.python) add(p);
  return out;
}

}  // namespace

std::vector<fs::path> PythonFolders() {
  std::vector<fs::path> out;
  std::error_code ec;
  auto add = [&](const fs::path& p) {
    if (!p.empty() && fs::is_directory(p, ec) &&
        std::find(out.begin(), out.end(), p) == out.end()) {
      out.push_back(p);
    }
  };
  if (const char* path = std::getenv("PYTHONPATH")) {
    std::stringstream parts(path);
    std::string part;
    while (std::getline(parts, part, ':')) add(part);
  }
  if (const char* venv = std::getenv("VIRTUAL_ENV"); venv && *venv) {
    for (const fs::path& p :
         PythonVersions(fs::path(venv) / "lib", "site-packages"))
      add(p);
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    for (const fs::path& p :
         PythonVersions(fs::path(home) / ".local/lib", "site-packages"))
      add(p);
  }
  for (const fs::path& p : PythonVersions("/usr/local/lib", "dist-packages"))
    add(p);
  add("/usr/lib/python3/dist-packages");
  return out;
}

std::string DescribeEnvironment(const EnvironmentSources& sources) {
  std::set<std::string> lines;
  AddDebian(sources.dpkg_status, lines);
  for (const fs::path& p : sources.python) AddPython(p, lines);
  std::string out;
  for (const std::string& l : lines) (out += l) += '\n';
  return out;
}

std::map<std::string, std::string> ParseEnvironment(std::string_view text) {
  std::map<std::string, std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    auto first = line.find(' ');
    auto second = first == std::string_view::npos ? std::string_view::npos
                                                  : line.find(' ', first + 1);
    if (second == std::string_view::npos) continue;
    out[std::string(line.substr(0, second))] =
        std::string(line.substr(second + 1));
  }
  return out;
}

Result<std::string> ReadEnvironment(const Repo& repo, const std::string& hash) {
  return repo.objects().ReadObject(hash);
}

Result<std::string> RecordEnvironment(Repo& repo, const std::string& id) {
  EnvironmentSources sources;
  sources.python = PythonFolders();
  const std::string fingerprint = Fingerprint(sources);
  const fs::path cache = repo.cmf_dir() / "environment";
  std::string hash;
  {  // the hash of the last description, while its sources are unchanged
    std::ifstream in(cache);
    std::stringstream text;
    text << in.rdbuf();
    const std::string saved = text.str();
    if (saved.size() == fingerprint.size() + 65 &&
        saved.compare(0, fingerprint.size(), fingerprint) == 0 &&
        saved.back() == '\n') {
      hash = saved.substr(fingerprint.size(), 64);
      std::error_code ec;
      if (!fs::exists(repo.objects().PathOf(hash), ec)) hash.clear();
    }
  }
  // Stored and named under the cache lock, so that a gc cannot remove the
  // object between the two.
  CMF_ASSIGN_OR_RETURN(CacheLock lock,
                       CacheLock::Acquire(repo, /*exclusive=*/false));
  std::uint64_t size = 0;
  if (hash.empty()) {
    const std::string description = DescribeEnvironment(sources);
    CMF_ASSIGN_OR_RETURN(hash, repo.objects().PutBytes(description));
    size = description.size();
    // Only a shortcut: a cache that cannot be written costs a read next time
    // (and one lost to a power cut, the same).
    data::AtomicFile::Options options;
    options.durability = data::Durability::kAtomic;
    static_cast<void>(
        data::WriteFileAtomically(cache, fingerprint + hash + '\n', options));
  } else {
    std::error_code ec;
    size = fs::file_size(repo.objects().PathOf(hash), ec);
  }
  ArtifactRef ref;
  ref.hash = hash;
  ref.size = size;
  ref.kind = ArtifactKind::kFile;
  CMF_RETURN_IF_ERROR(repo.store().RecordArtifact(ref));
  CMF_RETURN_IF_ERROR(repo.store().SetProperty(RecordType::kExecution, id,
                                               "environment", Value(hash)));
  return hash;
}

}  // namespace cmf
