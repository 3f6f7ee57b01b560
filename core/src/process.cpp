#include "cmf/process.h"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string_view>

namespace cmf {
namespace {

std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

// The start time of process PID in clock ticks since boot; -1 when no such
// process runs (or its stat cannot be read), and when it has ended but its
// parent has not yet collected it (a zombie).
std::int64_t StartTicks(std::int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  if (!in) return -1;
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string stat = buffer.str();
  // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses, so the
  // fields are counted from the last ')'. STATE is field 3, the start time 22.
  std::size_t pos = stat.rfind(')');
  if (pos == std::string::npos) return -1;
  ++pos;
  for (int field = 3; field <= 22; ++field) {
    while (pos < stat.size() && stat[pos] == ' ') ++pos;
    std::size_t end = stat.find(' ', pos);
    if (end == std::string::npos) end = stat.size();
    if (field == 3 && (stat.compare(pos, end - pos, "Z") == 0 ||
                       stat.compare(pos, end - pos, "X") == 0)) {
      return -1;
    }
    if (field == 22) {
      std::int64_t ticks = -1;
      auto [p, ec] =
          std::from_chars(stat.data() + pos, stat.data() + end, ticks);
      return ec == std::errc() ? ticks : -1;
    }
    pos = end;
  }
  return -1;
}

}  // namespace

std::string HostName() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

ProcessIdentity ProcessIdentity::Self() {
  ProcessIdentity p;
  p.pid = ::getpid();
  p.start_ticks = StartTicks(p.pid);
  if (p.start_ticks < 0) p.start_ticks = 0;
  p.boot_id = BootId();
  p.host = HostName();
  return p;
}

bool ProcessIdentity::Gone() const {
  if (pid <= 0 || host != HostName()) return false;
  const std::string boot = BootId();
  if (!boot.empty() && !boot_id.empty() && boot != boot_id) return true;
  const std::int64_t ticks = StartTicks(pid);
  // No such process; unless /proc cannot be read at all, when nothing can be
  // told.
  if (ticks < 0) return StartTicks(::getpid()) >= 0;
  // Another process has the pid now; a start time that could not be read when
  // the run began (0) only tells that the pid is taken.
  return start_ticks != 0 && ticks != start_ticks;
}

}  // namespace cmf
