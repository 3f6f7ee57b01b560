// The cmf executable: builds the command line from the verb table, opens the
// repository for the verbs that need one, and maps failures to exit codes (0
// success, 1 failure, 2 usage).
#include <fmt/format.h>
#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "cmf_config.h"
#include "verb.h"

namespace cmf::cli {
namespace {

// Edits (insert, delete, substitute, swap two neighbours) that turn A into B.
std::size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(
      a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] =
          std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The first argument that is not a global option: the verb the user asked for,
// or empty.
std::string RequestedVerb(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-C") {
      ++i;
      continue;
    }
    if (arg == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (arg.starts_with("-")) continue;
    return std::string(arg);
  }
  return "";
}

int UnknownVerb(const std::string& name) {
  std::string message =
      fmt::format("'{}' is not a cmf verb; see 'cmf --help'", name);
  std::vector<std::string_view> close;
  for (const VerbInfo& v : Verbs()) {
    std::size_t allowed = name.size() <= 4 ? 1 : 2;
    if (EditDistance(name, v.name) <= allowed ||
        (name.size() >= 2 && v.name.starts_with(name))) {
      close.push_back(v.name);
    }
  }
  if (!close.empty()) {
    message += "\n\nThe most similar verb";
    message += close.size() == 1 ? " is" : "s are";
    for (std::string_view v : close) message += fmt::format("\n\t{}", v);
  }
  return UsageError(message);
}

// Memory for verbs that read thousands of records. A listing reads them a
// page at a time and frees each page: with glibc's defaults the freed memory
// goes back to the system and every large vector is mapped afresh, so the
// next page faults its memory in again. So freed memory is kept for reuse, up
// to a bound, and the first 128 MiB of the heap are reserved at once and
// offered to the kernel for huge pages (madvise; the kernel's choice, and
// nothing when transparent huge pages are off). On the virtual machines cmf
// is measured on, a page fault costs some microseconds: a 10,000-row cmf
// compare first-touched some 2,000 pages of 4 KiB, over a quarter of its
// time, and `cmf status` over 100,000 files took 18,000 faults (100 MiB) when
// only 24 MiB were reserved, 1,300 with 128 MiB. Address space only: nothing
// is touched until used, and memory is touched 2 MiB at a time.
void TuneAllocator() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // A sanitizer's allocator ignores mallopt and keeps the block elsewhere, and
  // poisoning 120 MiB made every sanitized cmf process 0.35 s slower.
  return;
#endif
#ifdef __GLIBC__
  // MALLOC_PERTURB_ (which `meson test` sets) makes glibc fill every block
  // it hands out and takes back: the reserved block would be written whole,
  // 30,000 page faults and 0.38 s for each cmf process, where it should cost
  // nothing. Under it the defaults stay.
  const char* perturb = std::getenv("MALLOC_PERTURB_");
  if (perturb != nullptr && *perturb != '\0' && std::strcmp(perturb, "0") != 0)
    return;
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_TOP_PAD, 8 << 20);
  void* block = std::malloc(120 << 20);  // below the mmap threshold: the heap
  if (block == nullptr) return;
  const auto start = reinterpret_cast<std::uintptr_t>(block);
  std::free(block);  // stays, as the heap's top, under the trim threshold
  constexpr std::uintptr_t kHuge = std::uintptr_t{1} << 21;
  const auto from = (start + kHuge - 1) & ~(kHuge - 1);
  const auto to = reinterpret_cast<std::uintptr_t>(sbrk(0)) & ~(kHuge - 1);
  // Only a block inside the heap (a sanitizer's allocator puts it elsewhere).
  if (to > from && to - from <= (std::uintptr_t{256} << 20)) {
    // Advice only: a kernel without huge pages refuses it, and that is fine.
    static_cast<void>(
        ::madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE));
  }
#endif
}

int Main(int argc, char** argv) {
  TuneAllocator();
  std::string verb_name = RequestedVerb(argc, argv);
  if (!verb_name.empty() && FindVerb(verb_name) == nullptr)
    return UnknownVerb(verb_name);

  CLI::App app{
      "cmf records the lineage of scientific workflows (executions, data, "
      "code, "
      "metrics) and shares it between sites.",
      "cmf"};
  app.set_version_flag("--version", "cmf " CMF_VERSION);
  std::string directory;
  app.add_option("-C", directory, "Run as if cmf was started in DIR")
      ->type_name("DIR");
  app.require_subcommand(0, 1);
  app.footer("Run 'cmf help VERB' for a verb's manual page.");

  struct Entry {
    const VerbInfo* info;
    CLI::App* sub;
    std::unique_ptr<Verb> verb;
  };
  std::vector<Entry> entries;
  // Only the verb asked for is set up: all of them cost CLI11 about 1 ms of
  // allocations at every start (a tenth of `cmf log -n 20`). The bare
  // command, `cmf help` and the top level's --help list them all.
  bool every_verb = verb_name.empty() || verb_name == "help";
  for (int i = 1; i < argc && argv[i] != verb_name; ++i) {
    const std::string_view arg = argv[i];
    every_verb = every_verb || arg == "-h" || arg == "--help";
  }
  for (const VerbInfo& info : Verbs()) {
    if (!every_verb && info.name != verb_name) continue;
    CLI::App* sub =
        app.add_subcommand(std::string(info.name), std::string(info.summary));
    std::unique_ptr<Verb> verb = info.make();
    verb->Setup(*sub);
    entries.push_back({&info, sub, std::move(verb)});
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where =
        verb_name.empty() ? "cmf --help" : "cmf " + verb_name + " --help";
    return UsageError(fmt::format("{} (see '{}')", e.what(), where));
  }

  if (!directory.empty() && ::chdir(directory.c_str()) != 0) {
    return Fail(Status::NotFound(fmt::format("cannot change to '{}': {}",
                                             directory, std::strerror(errno))));
  }

  for (Entry& e : entries) {
    if (!e.sub->parsed()) continue;
    Context ctx;
    ctx.app = e.sub;
    if (const char* dir = std::getenv("CMF_DIR"); dir && *dir)
      ctx.discover.cmf_dir = dir;
    Result<Repo> repo = Status::NotFound("no repository");
    if (e.info->needs == Needs::kRepoOrBare) {
      std::error_code ec;
      std::filesystem::path here = ctx.discover.cmf_dir.empty()
                                       ? std::filesystem::current_path(ec)
                                       : ctx.discover.cmf_dir;
      if (!ec && IsBareRepository(here)) {
        ctx.bare = here;
        return e.verb->Run(ctx);
      }
    }
    if (e.info->needs != Needs::kNothing) {
      OpenMode mode =
          e.info->needs == Needs::kRepo || e.info->needs == Needs::kRepoOrBare
              ? OpenMode::kReadWrite
          : e.info->needs == Needs::kConfig ? OpenMode::kConfig
                                            : OpenMode::kRead;
      repo = Repo::Open(ctx.discover, mode);
      if (!repo.ok()) return Fail(repo.status());
      ctx.repo = &repo.value();
    }
    return e.verb->Run(ctx);
  }
  fmt::print("{}", app.help());
  return kExitUsage;
}

}  // namespace
}  // namespace cmf::cli

int main(int argc, char** argv) { return cmf::cli::Main(argc, argv); }
