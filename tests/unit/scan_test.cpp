#include "cmf/data/scan.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>

#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A stat cache in memory that counts what it was asked.
class MemoryStatCache : public data::StatCache {
 public:
  std::optional<Known> Lookup(const std::string& path,
                              const data::FileStat& st) override {
    auto it = rows.find(path);
    if (it == rows.end() || !(it->second.first == st)) return std::nullopt;
    return it->second.second;
  }
  void Remember(const std::string& path, const data::FileStat& st,
                const Known& known) override {
    rows[path] = {st, known};
  }
  std::map<std::string, std::pair<data::FileStat, Known>> rows;
};

// Makes PATH look written an hour ago: old enough for the stat cache.
void Age(const fs::path& path) {
  fs::last_write_time(path,
                      fs::file_time_type::clock::now() - std::chrono::hours(1));
}

// Appends to SOURCE during the first write into the cache: the file changes
// while it is being read.
class ChangesUnderfoot : public data::FileOps {
 public:
  explicit ChangesUnderfoot(fs::path source) : source_(std::move(source)) {}
  int Write(int fd, const void* data, std::size_t size) override {
    if (!done_) {
      done_ = true;
      test::WriteFile(source_, test::ReadFile(source_) + "more");
    }
    return FileOps::Write(fd, data, size);
  }

 private:
  fs::path source_;
  bool done_ = false;
};

class ReadOnlyCache : public data::FileOps {
 public:
  int Open(const std::string& path, int flags, mode_t mode) override {
    if (flags & O_CREAT) return -EROFS;
    return FileOps::Open(path, flags, mode);
  }
};

}  // namespace

TEST_CASE(
    "scan: unchanged files come from the stat cache, changed ones are read "
    "again") {
  TempDir dir;
  for (int i = 0; i < 20; ++i) {
    test::WriteFile(dir / "d" / ("f" + std::to_string(i)),
                    std::string(1000 + i, 'x'));
    Age(dir / "d" / ("f" + std::to_string(i)));
  }
  data::ObjectCache cache(dir / "objects");
  MemoryStatCache stat_cache;
  data::ScanOptions options;
  options.stat_cache = &stat_cache;
  Result<data::ScanResult> first = data::Scan(cache, dir / "d", options);
  REQUIRE(first.ok());
  CHECK(first->hashed_files == 20);
  Result<data::ScanResult> second = data::Scan(cache, dir / "d", options);
  REQUIRE(second.ok());
  CHECK(second->hashed_files == 0);
  CHECK(second->info.hash == first->info.hash);

  test::WriteFile(dir / "d" / "f3", "changed");
  Result<data::ScanResult> third = data::Scan(cache, dir / "d", options);
  REQUIRE(third.ok());
  CHECK(third->hashed_files == 1);
  CHECK(third->info.hash != first->info.hash);
}

TEST_CASE(
    "scan: a file written just now is not remembered (its mtime may not move "
    "again)") {
  TempDir dir;
  test::WriteFile(dir / "fresh", "x");
  data::ObjectCache cache(dir / "objects");
  MemoryStatCache stat_cache;
  data::ScanOptions options;
  options.stat_cache = &stat_cache;
  REQUIRE(data::Scan(cache, dir / "fresh", options).ok());
  CHECK(stat_cache.rows.empty());
}

TEST_CASE("scan: the result does not depend on the number of threads") {
  TempDir dir;
  // Folders three deep beside files at every level: listed by several
  // threads at once, one folder each.
  for (int i = 0; i < 150; ++i) {
    fs::path folder = dir / "d";
    for (int level = 0; level < i % 4; ++level)
      folder /= std::to_string((i / (level + 1)) % 5);
    test::WriteFile(folder / ("f" + std::to_string(i)),
                    std::string(static_cast<std::size_t>(i * 97),
                                static_cast<char>('a' + i % 26)));
  }
  data::ObjectCache cache(dir / "objects");
  data::ScanOptions one, many;
  one.threads = 1;
  many.threads = 8;
  Result<data::ScanResult> a = data::Scan(cache, dir / "d", one);
  Result<data::ScanResult> b = data::Scan(cache, dir / "d", many);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->info.hash == b->info.hash);
  CHECK(a->files.size() == 150);
  REQUIRE(b->files.size() == a->files.size());
  for (std::size_t i = 0; i < a->files.size(); ++i) {
    CHECK(a->files[i].path == b->files[i].path);
    CHECK(a->files[i].size == b->files[i].size);
    CHECK(a->files[i].hash == b->files[i].hash);
  }
  CHECK(std::is_sorted(
      a->files.begin(), a->files.end(),
      [](const auto& x, const auto& y) { return x.path < y.path; }));

  // Something that is neither a file nor a folder, deep down: the same error
  // whatever the number of threads.
  REQUIRE(::mkfifo((dir / "d" / "1" / "0" / "pipe").c_str(), 0600) == 0);
  Result<data::ScanResult> c = data::Scan(cache, dir / "d", one);
  Result<data::ScanResult> d = data::Scan(cache, dir / "d", many);
  REQUIRE_FALSE(c.ok());
  REQUIRE_FALSE(d.ok());
  CHECK(c.status().message() == d.status().message());
  CHECK(c.status().message().find("neither a regular file nor a directory") !=
        std::string::npos);
}

TEST_CASE(
    "scan: files come sorted by their paths' bytes, each folder's where its "
    "name and '/' sort, and the folder's hash is its manifest's") {
  TempDir dir;
  // Names that a per-folder order gets wrong unless a folder sorts as its
  // name and '/': "a.txt" and "a-b" before the files of "a/", "a0" after; a
  // byte that is not UTF-8; a line break (the escaped manifest).
  const std::vector<std::string> paths = {
      "a/x",         "a.txt", "a-b",     "a0",      "ab",   "a.d/y",
      "A",           "b/c/d", "b/c.txt", "b/c/e/f", "\xff", "z/\xfe/q",
      "line\nbreak", "a/b/c", "a/b.txt", "a/b-c"};
  for (std::size_t i = 0; i < paths.size(); ++i)
    test::WriteFile(dir / "d" / paths[i], std::string(i + 1, 'p'));
  // And enough long names for the manifest to be hashed in several pieces
  // (64 KiB each).
  for (int i = 0; i < 400; ++i) {
    test::WriteFile(dir / "d" / "many" /
                        (std::string(200, 'n') + std::to_string(i * 7 % 400)),
                    std::to_string(i));
  }
  data::ObjectCache cache(dir / "objects");
  Result<data::ScanResult> scan = data::Scan(cache, dir / "d", {});
  REQUIRE(scan.ok());
  std::vector<std::string> got, want(paths);
  for (const data::ScannedFile& f : scan->files)
    if (!f.path.starts_with("many/")) got.push_back(f.path);
  std::sort(want.begin(), want.end());
  CHECK(got == want);
  CHECK(std::is_sorted(
      scan->files.begin(), scan->files.end(),
      [](const auto& x, const auto& y) { return x.path < y.path; }));
  REQUIRE(scan->files.size() == paths.size() + 400);
  const std::string manifest = data::BuildManifest(scan->files);
  CHECK(manifest.size() > (100 << 10));
  CHECK(manifest.starts_with("cmf-manifest 2\n"));
  CHECK(scan->info.hash == data::HashBytes(manifest));
  // Storing builds the manifest whole: the same hash.
  data::ScanOptions store;
  store.store = true;
  Result<data::ScanResult> stored = data::Scan(cache, dir / "d", store);
  REQUIRE(stored.ok());
  CHECK(stored->info.hash == scan->info.hash);
}

TEST_CASE(
    "scan: a file that changes while it is stored fails and leaves no object") {
  TempDir dir;
  test::WriteFile(dir / "f", std::string(3 << 20, 'q'));
  data::ObjectCache cache(dir / "objects",
                          std::make_shared<ChangesUnderfoot>(dir / "f"));
  data::ScanOptions options;
  options.store = true;
  Result<data::ScanResult> r = data::Scan(cache, dir / "f", options);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("changed while it was read") !=
        std::string::npos);
  CHECK(test::CountFiles(dir / "objects") == 0);
}

TEST_CASE(
    "scan: a read-only cache fails with a clear error and stores nothing") {
  TempDir dir;
  test::WriteFile(dir / "d" / "a", "a");
  test::WriteFile(dir / "d" / "b", "b");
  data::ObjectCache cache(dir / "objects", std::make_shared<ReadOnlyCache>());
  data::ScanOptions options;
  options.store = true;
  Result<data::ScanResult> r = data::Scan(cache, dir / "d", options);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("Read-only file system") !=
        std::string::npos);
  CHECK(test::CountFiles(dir / "objects") == 0);
}

TEST_CASE("scan: a link to a folder is followed like a folder") {
  TempDir dir;
  test::WriteFile(dir / "other" / "f", "one");
  test::WriteFile(dir / "d" / "g", "two");
  fs::create_directory_symlink(dir / "other", dir / "d" / "linked");
  data::ObjectCache cache(dir / "objects");
  Result<data::ScanResult> before = data::Scan(cache, dir / "d", {});
  REQUIRE(before.ok());
  CHECK(before->files.size() == 2);
  test::WriteFile(dir / "other" / "f", "changed");
  CHECK(data::Scan(cache, dir / "d", {})->info.hash != before->info.hash);
}

TEST_CASE(
    "scan: the listing skips repositories, and a link loop or a broken link "
    "is an error, not a hang") {
  TempDir dir;
  test::WriteFile(dir / "d" / "a", "a");
  test::WriteFile(dir / "d" / "sub" / "b", "b");
  test::WriteFile(dir / "d" / "nested" / ".cmf" / "config", "x");
  test::WriteFile(dir / "repo" / ".cmf" / "config", "y");
  fs::create_directory_symlink(dir / "repo" / ".cmf", dir / "d" / "meta");
  data::ObjectCache cache(dir / "objects");
  Result<data::ScanResult> r = data::Scan(cache, dir / "d", {});
  REQUIRE(r.ok());
  std::vector<std::string> paths;
  for (const auto& f : r->files) paths.push_back(f.path);
  CHECK(paths == std::vector<std::string>{"a", "sub/b"});
  // Given with a trailing slash, the folder lists the same.
  CHECK(data::Scan(cache, (dir / "d").string() + "/", {})->info.hash ==
        r->info.hash);

  fs::create_directory_symlink(dir / "d", dir / "d" / "sub" / "up");
  Result<data::ScanResult> loop = data::Scan(cache, dir / "d", {});
  REQUIRE_FALSE(loop.ok());
  CHECK(loop.status().message().find("cannot list") != std::string::npos);
  CHECK(loop.status().message().find("symbolic links") != std::string::npos);
  fs::remove(dir / "d" / "sub" / "up");

  fs::create_symlink(dir / "nowhere", dir / "d" / "broken");
  Result<data::ScanResult> broken = data::Scan(cache, dir / "d", {});
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.status().message().find("broken symbolic link") !=
        std::string::npos);
  fs::remove(dir / "d" / "broken");
}

TEST_CASE(
    "scan: a name with a line break is listed with the others, in a manifest "
    "of escaped paths; every other folder keeps its manifest") {
  TempDir dir;
  test::WriteFile(dir / "d" / "a", "a");
  test::WriteFile(dir / "d" / "z", "z");
  data::ObjectCache cache(dir / "objects");
  data::ScanOptions store;
  store.store = true;
  Result<data::ScanResult> plain = data::Scan(cache, dir / "d", store);
  REQUIRE(plain.ok());
  CHECK(cache.ReadObject(plain->info.hash)->starts_with("cmf-manifest 1\n"));

  test::WriteFile(dir / "d" / "two\nlines", "2");
  test::WriteFile(dir / "d" / "back\\slash\n", "b");
  Result<data::ScanResult> r = data::Scan(cache, dir / "d", store);
  REQUIRE(r.ok());
  std::vector<std::string> paths;
  for (const auto& f : r->files) paths.push_back(f.path);
  CHECK(paths ==
        std::vector<std::string>{"a", "back\\slash\n", "two\nlines", "z"});
  Result<std::string> manifest = cache.ReadObject(r->info.hash);
  REQUIRE(manifest.ok());
  CHECK(manifest->starts_with("cmf-manifest 2\n"));
  CHECK(manifest->find(" two\\nlines\n") != std::string::npos);
  CHECK(manifest->find(" back\\\\slash\\n\n") != std::string::npos);
  Result<std::vector<data::ScannedFile>> back = data::ParseManifest(*manifest);
  REQUIRE(back.ok());
  REQUIRE(back->size() == 4);
  CHECK(back->at(1).path == "back\\slash\n");
  CHECK(back->at(2).path == "two\nlines");
}

TEST_CASE(
    "link strategies: hardlink shares a read-only inode, symlink points into "
    "the cache") {
  TempDir dir;
  data::ObjectCache cache(dir / "objects");
  std::vector<data::LinkMode> hard = {data::LinkMode::kHardlink};
  test::WriteFile(dir / "h", "hard");
  Result<data::ObjectCache::Stored> h = cache.StoreFile(dir / "h", hard);
  REQUIRE(h.ok());
  CHECK(h->mode == data::LinkMode::kHardlink);
  struct stat ws {
  }, obj{};
  REQUIRE(::stat((dir / "h").c_str(), &ws) == 0);
  REQUIRE(::stat(cache.PathOf(h->hash).c_str(), &obj) == 0);
  CHECK(ws.st_ino == obj.st_ino);
  CHECK((ws.st_mode & 0777) == 0444);

  std::vector<data::LinkMode> sym = {data::LinkMode::kSymlink};
  test::WriteFile(dir / "s", "soft");
  Result<data::ObjectCache::Stored> s = cache.StoreFile(dir / "s", sym);
  REQUIRE(s.ok());
  CHECK(fs::is_symlink(dir / "s"));
  CHECK(fs::read_symlink(dir / "s").is_relative());  // the workspace can move
  CHECK(fs::canonical(dir / "s") == fs::canonical(cache.PathOf(s->hash)));
  CHECK(test::ReadFile(dir / "s") == "soft");

  std::vector<data::LinkMode> copy = {data::LinkMode::kReflink,
                                      data::LinkMode::kCopy};
  test::WriteFile(dir / "c", "copied");
  Result<data::ObjectCache::Stored> c = cache.StoreFile(dir / "c", copy);
  REQUIRE(c.ok());
  REQUIRE(::stat((dir / "c").c_str(), &ws) == 0);
  REQUIRE(::stat(cache.PathOf(c->hash).c_str(), &obj) == 0);
  CHECK(ws.st_ino != obj.st_ino);
  CHECK((ws.st_mode & 0200) != 0);  // the workspace file stays writable
}

TEST_CASE(
    "link strategies: cache.link parses 'auto' and lists, and refuses the "
    "rest") {
  CHECK(data::ParseLinkOrder("auto").value() ==
        std::vector<data::LinkMode>{data::LinkMode::kReflink,
                                    data::LinkMode::kHardlink,
                                    data::LinkMode::kCopy});
  CHECK(data::ParseLinkOrder("hardlink,copy").value() ==
        std::vector<data::LinkMode>{data::LinkMode::kHardlink,
                                    data::LinkMode::kCopy});
  CHECK(data::ParseLinkOrder("hardlink,,copy").status().code() ==
        Code::kInvalidArgument);
  CHECK(data::ParseLinkOrder("teleport").status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("manifest: parsing gives back what was built; damage is Corruption") {
  std::vector<data::ScannedFile> files = {
      {"a b/c.txt", 3, false, std::string(64, '1')},
      {"run.sh", 12, true, std::string(64, '2')}};
  std::string text = data::BuildManifest(files);
  Result<std::vector<data::ScannedFile>> back = data::ParseManifest(text);
  REQUIRE(back.ok());
  REQUIRE(back->size() == 2);
  CHECK(back->at(0).path == "a b/c.txt");
  CHECK(back->at(1).executable);
  CHECK(data::ParseManifest("hello").status().code() == Code::kCorruption);
  CHECK(data::ParseManifest(text.substr(0, text.size() - 1)).status().code() ==
        Code::kCorruption);
}

TEST_CASE(
    "manifest: paths that could leave the folder or enter a repository are "
    "refused") {
  std::string h(64, 'a');
  for (const char* bad : {"../x", "/etc/passwd", "a//b", "a/./b", ".cmf/config",
                          "a/../../b", "d/.cmf"}) {
    CAPTURE(bad);
    std::string text = "cmf-manifest 1\n100644 1 " + h + " " + bad + "\n";
    CHECK(data::ParseManifest(text).status().code() == Code::kCorruption);
    text = "cmf-manifest 2\n100644 1 " + h + " " + bad + "\n";
    CHECK(data::ParseManifest(text).status().code() == Code::kCorruption);
  }
  // An escape that is not one of the two, or one cut short.
  for (const char* bad : {"a\\tb", "a\\", "\\.\\./x"}) {
    CAPTURE(bad);
    std::string text = "cmf-manifest 2\n100644 1 " + h + " " + bad + "\n";
    CHECK(data::ParseManifest(text).status().code() == Code::kCorruption);
  }
  // In version 1 a backslash is only a backslash.
  std::string text = "cmf-manifest 1\n100644 1 " + h + " a\\nb\n";
  CHECK(data::ParseManifest(text)->at(0).path == "a\\nb");
}

TEST_CASE(
    "link strategies: a refused publish leaves every source file as it was") {
  TempDir dir;
  data::ObjectCache cache(dir / "objects");
  test::WriteFile(dir / "a", "first");
  test::WriteFile(dir / "b", "second");
  std::vector<data::LinkMode> hard = {data::LinkMode::kHardlink};
  std::vector<data::ObjectCache::Pending> pending;
  REQUIRE(cache.StoreFile(dir / "a", hard, &pending).ok());
  REQUIRE(cache.StoreFile(dir / "b", hard, &pending).ok());
  test::WriteFile(dir / "b", "second, changed");  // after it was hashed
  Status st = cache.Publish(pending);
  CHECK(st.message().find("changed while it was added") != std::string::npos);
  for (const char* name : {"a", "b"}) {
    struct stat s {};
    REQUIRE(::stat((dir / name).c_str(), &s) == 0);
    CHECK(s.st_nlink == 1);          // not linked into the cache
    CHECK((s.st_mode & 0200) != 0);  // still writable
  }
  CHECK_FALSE(cache.Has(data::HashBytes("first")));
}

TEST_CASE(
    "link strategies: a damaged object is replaced, not shared, when its "
    "content comes again") {
  TempDir dir;
  data::ObjectCache cache(dir / "objects");
  std::vector<data::LinkMode> hard = {data::LinkMode::kHardlink};
  test::WriteFile(dir / "a", "precious");
  REQUIRE(cache.StoreFile(dir / "a", hard).ok());
  fs::path object = cache.PathOf(data::HashBytes("precious"));
  fs::permissions(object, fs::perms::owner_write, fs::perm_options::add);
  test::WriteFile(dir / "a",
                  "CORRUPT");  // a root user writing through the shared inode
  test::WriteFile(dir / "b", "precious");
  REQUIRE(cache.StoreFile(dir / "b", hard).ok());
  CHECK(test::ReadFile(dir / "b") == "precious");
  CHECK(cache.Verify(data::HashBytes("precious")).value());
}

TEST_CASE(
    "link strategies: a symbolic link to a file elsewhere is copied, its "
    "target untouched") {
  TempDir dir, elsewhere;
  test::WriteFile(elsewhere / "target", "theirs");
  fs::create_symlink(elsewhere / "target", dir / "link");
  data::ObjectCache cache(dir / "objects");
  std::vector<data::LinkMode> order = {data::LinkMode::kHardlink,
                                       data::LinkMode::kSymlink};
  Result<data::ObjectCache::Stored> s = cache.StoreFile(dir / "link", order);
  REQUIRE(s.ok());
  CHECK(s->mode == data::LinkMode::kCopy);
  CHECK((fs::status(elsewhere / "target").permissions() &
         fs::perms::owner_write) != fs::perms::none);
  CHECK(cache.Verify(s->hash).value());
}

TEST_CASE(
    "link strategies: an executable keeps its execute bits in the cache") {
  TempDir dir;
  test::WriteFile(dir / "run.sh", "#!/bin/sh\n");
  fs::permissions(dir / "run.sh", fs::perms::owner_all);
  data::ObjectCache cache(dir / "objects");
  std::vector<data::LinkMode> hard = {data::LinkMode::kHardlink};
  Result<data::ObjectCache::Stored> s = cache.StoreFile(dir / "run.sh", hard);
  REQUIRE(s.ok());
  struct stat st {};
  REQUIRE(::stat((dir / "run.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0555);
}

TEST_CASE(
    "link strategies: what links lead to, and a file hard-linked from "
    "elsewhere, are copied, never linked, replaced or made read-only") {
  for (data::LinkMode mode :
       {data::LinkMode::kHardlink, data::LinkMode::kSymlink}) {
    CAPTURE(data::ToString(mode));
    TempDir dir, elsewhere;
    test::WriteFile(elsewhere / "folder" / "inner", "in their folder");
    test::WriteFile(elsewhere / "file", "their file");
    test::WriteFile(elsewhere / "shared", "their inode");
    for (const char* name : {"folder/inner", "file", "shared"}) {
      fs::permissions(elsewhere / name,
                      fs::perms::owner_read | fs::perms::owner_write |
                          fs::perms::group_read);  // 0640
    }
    test::WriteFile(dir / "d" / "own", "ours");
    fs::create_directory_symlink(elsewhere / "folder", dir / "d" / "ext");
    fs::create_symlink(elsewhere / "file", dir / "d" / "link");
    fs::create_hard_link(elsewhere / "shared", dir / "d" / "hard");
    std::map<std::string, struct stat> before;
    for (const char* name : {"folder/inner", "file", "shared"})
      REQUIRE(::stat((elsewhere / name).c_str(), &before[name]) == 0);

    data::ObjectCache cache(dir / "objects");
    data::ScanOptions options;
    options.store = true;
    options.link_order = {mode};
    Result<data::ScanResult> r = data::Scan(cache, dir / "d", options);
    REQUIRE(r.ok());
    CHECK(r->files.size() == 4);
    for (const auto& f : r->files) CHECK(cache.Verify(f.hash).value());
    // Only the workspace's own file became its object.
    struct stat own {};
    REQUIRE(::stat((dir / "d" / "own").c_str(), &own) == 0);
    CHECK((own.st_mode & 0777) == 0444);
    for (const char* name : {"folder/inner", "file", "shared"}) {
      CAPTURE(name);
      struct stat now {};
      REQUIRE(::lstat((elsewhere / name).c_str(), &now) == 0);
      CHECK(S_ISREG(now.st_mode));
      CHECK(now.st_ino == before[name].st_ino);
      CHECK(now.st_nlink == before[name].st_nlink);
      CHECK((now.st_mode & 07777) == 0640);
      CHECK(now.st_ctim.tv_sec == before[name].st_ctim.tv_sec);
      CHECK(now.st_ctim.tv_nsec == before[name].st_ctim.tv_nsec);
    }
    CHECK(test::CountFiles(elsewhere.path()) == 3);
    CHECK(fs::read_symlink(dir / "d" / "ext") == elsewhere / "folder");
    CHECK(fs::read_symlink(dir / "d" / "link") == elsewhere / "file");
    CHECK(test::ReadFile(dir / "d" / "hard") == "their inode");

    // A link given as the path to scan is treated the same.
    Result<data::ScanResult> root =
        data::Scan(cache, dir / "d" / "ext", options);
    REQUIRE(root.ok());
    struct stat inner {};
    REQUIRE(::stat((elsewhere / "folder" / "inner").c_str(), &inner) == 0);
    CHECK(inner.st_nlink == 1);
    CHECK((inner.st_mode & 07777) == 0640);
  }
}

TEST_CASE(
    "link strategies: a hard-linked file that is its object already stays "
    "linked when it is stored again") {
  TempDir dir;
  data::ObjectCache cache(dir / "objects");
  std::vector<data::LinkMode> hard = {data::LinkMode::kHardlink};
  test::WriteFile(dir / "f", "once");
  REQUIRE(cache.StoreFile(dir / "f", hard).ok());
  Result<data::ObjectCache::Stored> again = cache.StoreFile(dir / "f", hard);
  REQUIRE(again.ok());
  CHECK(again->mode == data::LinkMode::kHardlink);
  struct stat ws {
  }, obj{};
  REQUIRE(::stat((dir / "f").c_str(), &ws) == 0);
  REQUIRE(::stat(cache.PathOf(again->hash).c_str(), &obj) == 0);
  CHECK(ws.st_ino == obj.st_ino);
  CHECK(ws.st_nlink == 2);
}
