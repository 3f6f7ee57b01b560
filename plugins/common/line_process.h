// A helper program that answers one line for every line it is sent: the
// instrument controller of dkl-al and the energy driver of aimd-al
// (doc/instrument-protocol.md, doc/aimd.md). It runs `/bin/sh -c COMMAND` in a
// process group of its own, with its standard input and output as the
// channel and its standard error inherited. Errors throw std::runtime_error
// with a message for the user that names WHO ("the instrument controller").
// One thread at a time. Torch-free.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

namespace cmf::proc {

class LineProcess {
 public:
  // Starts COMMAND. WHO names the program in messages; TIMEOUT_FLAG is the
  // option that sets TIMEOUT_SECONDS, the bound on every answer.
  LineProcess(std::string command, std::string who, std::string timeout_flag,
              double timeout_seconds);
  // Writes BYE (a line, without its newline; none when empty), closes the
  // program's input, and waits about 2 s for it to end; then SIGTERM to its
  // group, 2 s more, then SIGKILL to the group.
  ~LineProcess();
  LineProcess(const LineProcess&) = delete;
  LineProcess& operator=(const LineProcess&) = delete;

  void set_bye(std::string line) { bye_ = std::move(line); }
  // Polled while an answer is awaited (a signal such as Ctrl-C wakes the
  // wait): when it returns true, Exchange throws "interrupted".
  void set_cancelled(std::function<bool()> cancelled) {
    cancelled_ = std::move(cancelled);
  }

  // Writes REQUEST and a newline; returns the next answer line that is not
  // blank, without its line end. Throws when the program ended, closed its
  // output, sent a line over 64 MiB, or did not answer in time.
  std::string Exchange(const std::string& request);

  const std::string& command() const { return command_; }

 private:
  std::string ExitDescription();
  std::string ReadLine();
  [[noreturn]] void Fail(const std::string& message) const;

  std::string command_;
  std::string who_;
  std::string timeout_flag_;
  double timeout_;
  std::string bye_;
  std::function<bool()> cancelled_;
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

}  // namespace cmf::proc
