// The process that runs an execution, as this machine knows it: enough to tell
// later, from another command, that the process is gone (a kill -9, a crash,
// a reboot) and the execution will never record how it ended. A value type;
// thread-safe.
#pragma once

#include <cstdint>
#include <string>

namespace cmf {

struct ProcessIdentity {
  std::int64_t pid = 0;
  // When the process started, in clock ticks since boot (/proc/PID/stat,
  // field 22): with the pid, it names one process even after the pid is
  // reused.
  std::int64_t start_ticks = 0;
  std::string boot_id;  // /proc/sys/kernel/random/boot_id
  std::string host;     // gethostname()

  // The calling process. Fields that cannot be read stay empty or zero.
  static ProcessIdentity Self();

  // True when this process has certainly ended: it ran on this host and the
  // machine has booted since, or no process with its pid and start time runs
  // now. False while it runs, and for a process of another host (which cannot
  // be seen from here).
  bool Gone() const;
};

// This machine's host name ("unknown" when it cannot be read).
std::string HostName();

}  // namespace cmf
