#include "cmf/workspace.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <chrono>

#include "cmf/data/hash.h"
#include "cmf/data/object_cache.h"
#include "cmf/store_stat_cache.h"
#include "support.h"

using namespace cmf;
using cmf::test::TempDir;
namespace fs = std::filesystem;

namespace {

AddOptions Quiet() {
  AddOptions o;
  o.progress = false;
  return o;
}

void Age(const fs::path& path) {
  fs::last_write_time(path,
                      fs::file_time_type::clock::now() - std::chrono::hours(1));
}

// Writes TEXT to PATH, an hour old: a file the stat cache remembers.
void WriteAged(const fs::path& path, const std::string& text) {
  test::WriteFile(path, text);
  Age(path);
}

}  // namespace

TEST_CASE("workspace: add tracks a directory; a second add reads nothing") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  for (int i = 0; i < 5; ++i) {
    test::WriteFile(dir / "data" / ("f" + std::to_string(i)),
                    std::string(100, 'a' + i));
    Age(dir / "data" / ("f" + std::to_string(i)));
  }
  Result<std::vector<AddResult>> first = Add(repo, {dir / "data"}, Quiet());
  REQUIRE(first.ok());
  CHECK(first->at(0).artifact.path == "data");
  CHECK(first->at(0).artifact.kind == ArtifactKind::kDirectory);
  CHECK(first->at(0).files == 5);
  CHECK(first->at(0).changed);
  CHECK(repo.objects().Has(first->at(0).artifact.hash));
  Result<std::vector<AddResult>> again = Add(repo, {dir / "data"}, Quiet());
  REQUIRE(again.ok());
  CHECK(again->at(0).hashed_files == 0);
  CHECK_FALSE(again->at(0).changed);
  CHECK(WorkspaceStatus(repo, Quiet())->changes.empty());
}

TEST_CASE(
    "workspace: status reports modified, missing and new files of tracked "
    "paths") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "d" / "keep", "k");
  test::WriteFile(dir / "d" / "edit", "e");
  test::WriteFile(dir / "d" / "gone", "g");
  test::WriteFile(dir / "solo.csv", "1");
  test::WriteFile(dir / "lost.csv", "2");
  REQUIRE(
      Add(repo, {dir / "d", dir / "solo.csv", dir / "lost.csv"}, Quiet()).ok());
  test::WriteFile(dir / "d" / "edit", "edited");
  fs::remove(dir / "d" / "gone");
  test::WriteFile(dir / "d" / "fresh", "f");
  test::WriteFile(dir / "solo.csv", "changed");
  fs::remove(dir / "lost.csv");
  Result<StatusReport> report = WorkspaceStatus(repo, Quiet());
  REQUIRE(report.ok());
  std::vector<std::pair<std::string, Change::Kind>> got;
  for (const Change& c : report->changes) got.push_back({c.path, c.kind});
  CHECK(got == std::vector<std::pair<std::string, Change::Kind>>{
                   {"d/edit", Change::Kind::kModified},
                   {"d/fresh", Change::Kind::kNew},
                   {"d/gone", Change::Kind::kMissing},
                   {"lost.csv", Change::Kind::kMissing},
                   {"solo.csv", Change::Kind::kModified}});
}

TEST_CASE(
    "workspace: paths outside the workspace or inside .cmf/ are refused before "
    "storing") {
  TempDir dir, outside;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "ok", "x");
  test::WriteFile(outside / "far", "y");
  Result<std::vector<AddResult>> far =
      Add(repo, {dir / "ok", outside / "far"}, Quiet());
  CHECK(far.status().code() == Code::kInvalidArgument);
  CHECK(far.status().message().find("outside the workspace") !=
        std::string::npos);
  CHECK(Add(repo, {dir / ".cmf" / "config"}, Quiet()).status().code() ==
        Code::kInvalidArgument);
  CHECK(Add(repo, {dir / "missing"}, Quiet()).status().code() ==
        Code::kNotFound);
  CHECK(repo.store().ListTracked()->empty());
  CHECK_FALSE(
      repo.objects().Has(data::HashBytes("x")));  // nothing stored either
}

TEST_CASE("workspace: an add that fails halfway records nothing") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "d" / "a", "a");
  REQUIRE(::mkfifo((dir / "d" / "pipe").c_str(), 0644) == 0);
  CHECK_FALSE(Add(repo, {dir / "d"}, Quiet()).ok());
  CHECK(repo.store().ListTracked()->empty());
}

TEST_CASE(
    "workspace: checkout restores tracked content, or another version with "
    "--rev") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "d" / "a.txt", "version one");
  test::WriteFile(dir / "d" / "sub" / "b.txt", "bee");
  std::string v1 = Add(repo, {dir / "d"}, Quiet())->at(0).artifact.hash;
  // Added files are hard links into the cache: edited after an unlock, as a
  // user must (the tests may run as root, who could write them anyway).
  REQUIRE(Unlock(repo, dir / "d").ok());
  test::WriteFile(dir / "d" / "a.txt", "version two");
  std::string v2 = Add(repo, {dir / "d"}, Quiet())->at(0).artifact.hash;
  REQUIRE(v1 != v2);

  fs::remove_all(dir / "d" / "sub");
  REQUIRE(Unlock(repo, dir / "d" / "a.txt").ok());
  test::WriteFile(dir / "d" / "a.txt", "scribbled");
  // A file with local changes is kept unless they are to be discarded.
  Result<CheckoutResult> kept = Checkout(repo, dir / "d", std::nullopt);
  CHECK(kept.status().code() == Code::kConflict);
  CHECK(kept.status().message() ==
        "'d/a.txt' has local changes; commit them with cmf add, or use "
        "--force to discard them");
  CHECK(test::ReadFile(dir / "d" / "a.txt") == "scribbled");
  CHECK_FALSE(fs::exists(dir / "d" / "sub" / "b.txt"));
  Result<CheckoutResult> r =
      Checkout(repo, dir / "d", std::nullopt, /*force=*/true);
  REQUIRE(r.ok());
  CHECK(r->restored_files == 2);
  CHECK(test::ReadFile(dir / "d" / "a.txt") == "version two");
  CHECK(test::ReadFile(dir / "d" / "sub" / "b.txt") == "bee");

  // one file inside a tracked directory
  fs::remove(dir / "d" / "sub" / "b.txt");
  REQUIRE(Checkout(repo, dir / "d" / "sub" / "b.txt", std::nullopt).ok());
  CHECK(test::ReadFile(dir / "d" / "sub" / "b.txt") == "bee");

  Result<CheckoutResult> old = Checkout(repo, dir / "d", v1.substr(0, 10));
  REQUIRE(old.ok());
  CHECK(test::ReadFile(dir / "d" / "a.txt") == "version one");
  CHECK(repo.store().ListTracked()->at(0).hash == v1);
  CHECK(WorkspaceStatus(repo, Quiet())->changes.empty());

  CHECK(Checkout(repo, dir / "untracked", std::nullopt).status().code() ==
        Code::kNotFound);
  CHECK(Checkout(repo, dir / "d", std::string("ffffffff")).status().code() ==
        Code::kNotFound);
}

TEST_CASE(
    "workspace: unlock turns hard links into the cache into private copies") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  REQUIRE(repo.config().Set("cache.link", "hardlink").ok());
  test::WriteFile(dir / "d" / "a", "shared");
  test::WriteFile(dir / "d" / "b", "other");
  REQUIRE(Add(repo, {dir / "d"}, Quiet()).ok());
  struct stat st {};
  REQUIRE(::stat((dir / "d" / "a").c_str(), &st) == 0);
  CHECK(st.st_nlink == 2);
  CHECK((st.st_mode & 0200) == 0);
  Result<std::uint64_t> n = Unlock(repo, dir / "d");
  REQUIRE(n.ok());
  CHECK(*n == 2);
  REQUIRE(::stat((dir / "d" / "a").c_str(), &st) == 0);
  CHECK(st.st_nlink == 1);
  CHECK((st.st_mode & 0200) != 0);
  test::WriteFile(dir / "d" / "a", "edited");  // the cache keeps the old bytes
  CHECK(Fsck(repo, Quiet())->ok());
  CHECK(Unlock(repo, dir / "d").value() == 0);
}

namespace {

// The entries of the stat index blob saved for the absolute path ABS (none
// when it has no blob of its own).
std::vector<StoreStatCache::Entry> StatIndexOf(Repo& repo,
                                               const fs::path& abs) {
  std::vector<StoreStatCache::Entry> entries;
  for (const Store::StatBlob& blob :
       repo.store().LoadStatIndex(abs.string()).value()) {
    if (blob.root == abs.string())
      REQUIRE(StoreStatCache::Decode(blob.bytes, &entries));
  }
  return entries;
}

// How many blobs a scan of ABS loads: its own, those above and below it.
std::size_t StatBlobsAt(Repo& repo, const fs::path& abs) {
  return repo.store().LoadStatIndex(abs.string()).value().size();
}

}  // namespace

TEST_CASE("workspace: a stat index blob round-trips and refuses a torn one") {
  StoreStatCache::Entry a{"sub/a", {1, 2, 3, 4}, 5, {}};
  StoreStatCache::Entry b{"", {6, 7, 8, 9}, 0, {}};
  a.digest[0] = 0xab;
  b.digest[31] = 0xcd;
  const std::string bytes = StoreStatCache::Encode({a, b});
  std::vector<StoreStatCache::Entry> back;
  REQUIRE(StoreStatCache::Decode(bytes, &back));
  REQUIRE(back.size() == 2);  // sorted by path
  CHECK(back[0].path == "");
  CHECK(back[0].stat == b.stat);
  CHECK(back[0].digest == b.digest);
  CHECK(back[1].path == "sub/a");
  CHECK(back[1].stat == a.stat);
  CHECK(back[1].object_ctime_ns == 5);
  CHECK(back[1].digest == a.digest);
  // A path given twice is kept once, as first given.
  StoreStatCache::Entry a2 = a;
  a2.object_ctime_ns = 6;
  back.clear();
  REQUIRE(StoreStatCache::Decode(StoreStatCache::Encode({a, b, a2}), &back));
  REQUIRE(back.size() == 2);
  CHECK(back[1].object_ctime_ns == 5);
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, bytes.size() - 1}) {
    back.clear();
    CHECK_FALSE(StoreStatCache::Decode(bytes.substr(0, cut), &back));
  }
}

TEST_CASE(
    "workspace: a folder's stat index serves the paths below it; an unchanged "
    "add saves nothing") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  for (int i = 0; i < 5; ++i) {
    test::WriteFile(dir / "data" / "a" / ("x" + std::to_string(i)),
                    std::string(10 + i, 'x'));
    Age(dir / "data" / "a" / ("x" + std::to_string(i)));
  }
  WriteAged(dir / "data" / "b" / "y", "y");
  REQUIRE(Add(repo, {dir / "data"}, Quiet()).value().at(0).hashed_files == 6);
  CHECK(StatIndexOf(repo, dir / "data").size() == 6);

  // Below it: nothing read again; the path gets its own blob.
  CHECK(Add(repo, {dir / "data" / "a"}, Quiet()).value().at(0).hashed_files ==
        0);
  CHECK(Add(repo, {dir / "data" / "a" / "x0"}, Quiet())
            .value()
            .at(0)
            .hashed_files == 0);
  CHECK(StatIndexOf(repo, dir / "data" / "a").size() == 5);
  CHECK(StatIndexOf(repo, dir / "data" / "a" / "x0").size() == 1);
  CHECK(StatBlobsAt(repo, dir / "data") == 3);

  // Unchanged: the blob is not written again.
  const std::string before =
      repo.store().LoadStatIndex((dir / "data").string()).value()[0].bytes;
  REQUIRE(Add(repo, {dir / "data"}, Quiet()).value().at(0).hashed_files == 0);
  CHECK(repo.store().LoadStatIndex((dir / "data").string()).value()[0].bytes ==
        before);
  CHECK(StatBlobsAt(repo, dir / "data") == 3);

  // A changed file and a gone one: the folder's blob is saved again, and the
  // blobs below it (which it covers now) are dropped.
  REQUIRE(Unlock(repo, dir / "data" / "a" / "x1").ok());
  WriteAged(dir / "data" / "a" / "x1", "changed");
  fs::remove(dir / "data" / "b" / "y");
  REQUIRE(Add(repo, {dir / "data"}, Quiet()).value().at(0).hashed_files == 1);
  std::vector<StoreStatCache::Entry> now = StatIndexOf(repo, dir / "data");
  REQUIRE(now.size() == 5);
  CHECK(now[1].path == "a/x1");
  CHECK(now[1].stat.size == 7);
  CHECK(StatBlobsAt(repo, dir / "data") == 1);
}

TEST_CASE(
    "workspace: gc drops the stat cache of paths that are gone, and only with "
    "force") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  WriteAged(dir / "keep" / "k", "k");
  WriteAged(dir / "gone" / "g", "g");
  REQUIRE(Add(repo, {dir / "keep", dir / "gone"}, Quiet()).ok());
  REQUIRE(repo.store().ListStatRoots().value().size() == 2);
  fs::remove_all(dir / "gone");

  Result<GcReport> dry = CollectGarbage(repo, /*dry_run=*/true);
  REQUIRE(dry.ok());
  CHECK(dry->stale_stat_blobs == 1);
  CHECK(repo.store().ListStatRoots().value().size() == 2);
  Result<GcReport> done = CollectGarbage(repo, /*dry_run=*/false);
  REQUIRE(done.ok());
  CHECK(done->stale_stat_blobs == 1);
  CHECK(repo.store().ListStatRoots().value() ==
        std::vector<std::string>{(dir / "keep").string()});
  // What is left still serves: nothing is read again.
  CHECK(Add(repo, {dir / "keep"}, Quiet()).value().at(0).hashed_files == 0);
  CHECK(CollectGarbage(repo, /*dry_run=*/true)->stale_stat_blobs == 0);
}

TEST_CASE("workspace: a damaged stat index only costs time") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  WriteAged(dir / "data" / "f", "f");
  Result<std::vector<AddResult>> first = Add(repo, {dir / "data"}, Quiet());
  REQUIRE(first.ok());
  REQUIRE(repo.store()
              .SaveStatIndex((dir / "data").string(), "cmf-stat 1\nxyz")
              .ok());
  Result<std::vector<AddResult>> again = Add(repo, {dir / "data"}, Quiet());
  REQUIRE(again.ok());
  CHECK(again->at(0).hashed_files == 1);
  CHECK(again->at(0).artifact.hash == first->at(0).artifact.hash);
  CHECK(StatIndexOf(repo, dir / "data").size() == 1);  // whole again
}

TEST_CASE(
    "workspace: a file that became its object is not looked up in the cache "
    "again, until its inode changes names") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  REQUIRE(repo.config().Set("cache.link", "hardlink").ok());
  WriteAged(dir / "d" / "a", "aaa");
  WriteAged(dir / "d" / "b", "bbb");
  REQUIRE(Add(repo, {dir / "d"}, Quiet()).ok());
  // Each file is remembered as the object, with its ctime once it had the
  // object's name.
  std::vector<StoreStatCache::Entry> index = StatIndexOf(repo, dir / "d");
  REQUIRE(index.size() == 2);
  for (const StoreStatCache::Entry& e : index) {
    struct stat st {};
    REQUIRE(::stat((dir / "d" / e.path).c_str(), &st) == 0);
    CHECK(e.object_ctime_ns == data::CtimeNs(st));
  }

  // An object removed behind cmf's back: the unlink moved the file's ctime,
  // so the next add looks the object up, misses it, and stores it again.
  const fs::path object = repo.objects().PathOf(data::HashBytes("aaa"));
  fs::remove(object);
  Result<std::vector<AddResult>> again = Add(repo, {dir / "d"}, Quiet());
  REQUIRE(again.ok());
  CHECK(again->at(0).hashed_files == 0);
  CHECK(test::ReadFile(object) == "aaa");
  CHECK(Fsck(repo, Quiet())->ok());

  // Copied into the cache, a file is not its object.
  REQUIRE(repo.config().Set("cache.link", "copy").ok());
  WriteAged(dir / "e" / "c", "ccc");
  REQUIRE(Add(repo, {dir / "e"}, Quiet()).ok());
  REQUIRE(StatIndexOf(repo, dir / "e").size() == 1);
  CHECK(StatIndexOf(repo, dir / "e")[0].object_ctime_ns == 0);
}

TEST_CASE(
    "workspace: fsck finds corrupt and missing objects and repairs nothing") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "d" / "a", "aaa");
  test::WriteFile(dir / "d" / "b", "bbb");
  REQUIRE(Add(repo, {dir / "d"}, Quiet()).ok());
  Result<FsckReport> clean = Fsck(repo, Quiet());
  REQUIRE(clean.ok());
  CHECK(clean->ok());
  CHECK(clean->objects == 3);  // two files and the manifest

  fs::path a = repo.objects().PathOf(data::HashBytes("aaa"));
  fs::permissions(a, fs::perms::owner_write, fs::perm_options::add);
  test::WriteFile(a, "rot");
  fs::remove(repo.objects().PathOf(data::HashBytes("bbb")));
  Result<FsckReport> bad = Fsck(repo, Quiet());
  REQUIRE(bad.ok());
  CHECK(bad->corrupt == std::vector<std::string>{data::HashBytes("aaa")});
  REQUIRE(bad->missing.size() == 1);
  CHECK(bad->missing[0].hash == data::HashBytes("bbb"));
  CHECK(bad->missing[0].path == "d/b");
  CHECK(test::ReadFile(a) == "rot");  // left as found
}

TEST_CASE(
    "workspace: gc lists unreferenced objects, and removes them only when "
    "asked") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "d" / "a", "kept");
  REQUIRE(Add(repo, {dir / "d"}, Quiet()).ok());
  std::string stray = repo.objects().PutBytes("nobody needs me").value();
  Result<GcReport> dry = CollectGarbage(repo, /*dry_run=*/true);
  REQUIRE(dry.ok());
  CHECK(dry->unreferenced == std::vector<std::string>{stray});
  CHECK_FALSE(dry->removed);
  CHECK(repo.objects().Has(stray));
  Result<GcReport> real = CollectGarbage(repo, /*dry_run=*/false);
  REQUIRE(real.ok());
  CHECK_FALSE(repo.objects().Has(stray));
  CHECK(repo.objects().Has(
      data::HashBytes("kept")));  // needed through the manifest
  CHECK(Fsck(repo, Quiet())->ok());
}

TEST_CASE(
    "workspace: checkout verifies an object before it places it, and keeps "
    "local changes without force") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  REQUIRE(repo.config().Set("cache.link", "copy").ok());
  test::WriteFile(dir / "one.txt", "the recorded bytes");
  test::WriteFile(dir / "d" / "a.txt", "alpha");
  test::WriteFile(dir / "d" / "b.txt", "beta");
  REQUIRE(Add(repo, {dir / "one.txt", dir / "d"}, Quiet()).ok());
  auto damage = [&](const std::string& content) {
    fs::path object = repo.objects().PathOf(data::HashBytes(content));
    fs::permissions(object, fs::perms::owner_write, fs::perm_options::add);
    std::string bytes = test::ReadFile(object);
    bytes[0] ^= 1;
    test::WriteFile(object, bytes);
  };

  // A missing file whose object is damaged: nothing is written.
  fs::remove(dir / "one.txt");
  damage("the recorded bytes");
  Result<CheckoutResult> bad = Checkout(repo, dir / "one.txt", std::nullopt);
  CHECK(bad.status().code() == Code::kCorruption);
  CHECK(bad.status().message().find(data::HashBytes("the recorded bytes")) !=
        std::string::npos);
  CHECK_FALSE(fs::exists(dir / "one.txt"));

  // A modified file: refused without force; with force, the damaged object
  // still leaves it as it is.
  test::WriteFile(dir / "one.txt", "my edit");
  CHECK(Checkout(repo, dir / "one.txt", std::nullopt).status().code() ==
        Code::kConflict);
  CHECK(Checkout(repo, dir / "one.txt", std::nullopt, /*force=*/true)
            .status()
            .code() == Code::kCorruption);
  CHECK(test::ReadFile(dir / "one.txt") == "my edit");

  // In a directory: one damaged file stops the whole checkout first.
  fs::remove(dir / "d" / "a.txt");
  fs::remove(dir / "d" / "b.txt");
  damage("beta");
  CHECK(Checkout(repo, dir / "d", std::nullopt).status().code() ==
        Code::kCorruption);
  CHECK_FALSE(fs::exists(dir / "d" / "a.txt"));
  // The intact one alone is fine.
  REQUIRE(Checkout(repo, dir / "d" / "a.txt", std::nullopt).ok());
  CHECK(test::ReadFile(dir / "d" / "a.txt") == "alpha");
}

TEST_CASE(
    "workspace: a tracked file that looks like a manifest is restored as a "
    "file") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  std::string fake =
      "cmf-manifest 1\n100644 3 " + data::HashBytes("abc") + " ../../pwned\n";
  test::WriteFile(dir / "notes.txt", fake);
  REQUIRE(Add(repo, {dir / "notes.txt"}, Quiet()).ok());
  fs::remove(dir / "notes.txt");
  REQUIRE(Checkout(repo, dir / "notes.txt", std::nullopt).ok());
  CHECK(test::ReadFile(dir / "notes.txt") == fake);
  CHECK_FALSE(fs::exists(dir.path().parent_path().parent_path() / "pwned"));
}

TEST_CASE(
    "workspace: status notices a file made executable; --rev inside a tracked "
    "folder is refused") {
  TempDir dir;
  Repo repo = Repo::Init(dir.path()).value();
  test::WriteFile(dir / "d" / "run.sh", "echo\n");
  std::string v1 = Add(repo, {dir / "d"}, Quiet())->at(0).artifact.hash;
  fs::permissions(dir / "d" / "run.sh", fs::perms::owner_exec,
                  fs::perm_options::add);
  Result<StatusReport> report = WorkspaceStatus(repo, Quiet());
  REQUIRE(report.ok());
  REQUIRE(report->changes.size() == 1);
  CHECK(report->changes[0].path == "d/run.sh");
  // A hard link into the cache whose mode changed: its bytes are intact.
  CHECK_FALSE(report->changes[0].cache_damaged);
  CHECK(Checkout(repo, dir / "d" / "run.sh", v1)
            .status()
            .message()
            .find("lies inside tracked 'd'") != std::string::npos);
}
