// Telling that the process of a run is gone (cmf/process.h).
#include "cmf/process.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "cmf/status.h"

TEST_CASE(
    "process: this process is not gone; one that ended, or ran before "
    "the last boot, is") {
  const cmf::ProcessIdentity self = cmf::ProcessIdentity::Self();
  CHECK(self.pid == ::getpid());
  CHECK(self.start_ticks > 0);
  CHECK_FALSE(self.boot_id.empty());
  CHECK_FALSE(self.Gone());

  // A child says who it is, then waits to be killed.
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const std::int64_t ticks = cmf::ProcessIdentity::Self().start_ticks;
    (void)!::write(pipe_fds[1], &ticks, sizeof ticks);
    for (;;) ::pause();
  }
  cmf::ProcessIdentity other = self;
  other.pid = child;
  REQUIRE(::read(pipe_fds[0], &other.start_ticks, sizeof other.start_ticks) ==
          sizeof other.start_ticks);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  CHECK_FALSE(other.Gone());
  ::kill(child, SIGKILL);
  // Dead but not yet collected (a zombie), then collected: gone either way.
  for (int i = 0; i < 1000 && !other.Gone(); ++i) ::usleep(1000);
  CHECK(other.Gone());
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(other.Gone());

  cmf::ProcessIdentity rebooted = self;
  rebooted.boot_id = "00000000-0000-0000-0000-000000000000";
  CHECK(rebooted.Gone());
  cmf::ProcessIdentity reused = self;  // the pid, with another start time
  reused.start_ticks = self.start_ticks + 1;
  CHECK(reused.Gone());
  cmf::ProcessIdentity elsewhere = rebooted;  // nothing can be told of
  elsewhere.host = "another-host";            // another machine
  CHECK_FALSE(elsewhere.Gone());
}

TEST_CASE(
    "Result: the value of a failed result is never read: the process "
    "aborts and says why, in every build") {
  int err[2];
  REQUIRE(::pipe(err) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // The abort is this child's own: not reported as a crash by the test
    // framework's handler, and nothing of the child's on standard output.
    ::signal(SIGABRT, SIG_DFL);
    const int null = ::open("/dev/null", O_WRONLY);
    if (null >= 0) ::dup2(null, 1);
    ::dup2(err[1], 2);
    cmf::Result<int> failed = cmf::Status::NotFound("no execution 'x'");
    const int v = failed.value();
    ::_exit(v == 0 ? 3 : 4);  // not reached
  }
  ::close(err[1]);
  std::string said;
  char buf[256];
  for (ssize_t n; (n = ::read(err[0], buf, sizeof buf)) > 0;)
    said.append(buf, n);
  ::close(err[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(said.find("cmf: internal error: the value of a failed result was used "
                  "(no execution 'x')") != std::string::npos);
}
