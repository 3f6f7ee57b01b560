// Running a command as a recorded execution: what `cmf exec` does.
//
// Exec hashes the inputs, records the execution, runs the command with its
// standard streams inherited (so its output streams through), records step
// metrics that the command writes to the descriptor named by CMF_METRICS_FD,
// then stores and records the outputs and how it ended. Exec blocks until the
// command ends. It changes the process's handling of SIGINT, SIGQUIT, SIGTERM
// and SIGHUP while the command runs (the command gets them; cmf waits and
// records) and restores it afterwards; call it from one thread at a time.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "cmf/records.h"
#include "cmf/repo.h"
#include "cmf/run.h"
#include "cmf/status.h"

namespace cmf {

struct ExecOptions {
  RunSpec run;  // run.command is the command line to run (argv; run.command[0]
                // found in PATH)
  std::vector<std::filesystem::path> inputs;
  std::vector<std::filesystem::path> outputs;
};

struct ExecOutcome {
  std::string id;  // the execution's id
  ExecStatus status = ExecStatus::kFailed;
  int exit_code =
      1;  // the command's exit code (128 + signal when a signal ended it)
  std::string message;     // why it failed, when it did
  int metrics_logged = 0;  // step-metric points received from the command
  int signal = 0;          // the signal that ended the command, if one did
};

// Runs OPTIONS.run.command as an execution of OPTIONS.run.stage. Fails without
// recording anything when the command is empty or cannot be found (NotFound)
// or started (IOError), or an input is missing (NotFound), unreadable
// (IOError) or inside .cmf/ (InvalidArgument). A script without "#!" is run
// with /bin/sh. Once the command has started, its failure is not an error
// of Exec: it is recorded and returned in the outcome (a declared output that
// the command did not produce fails the execution too).
Result<ExecOutcome> Exec(Repo& repo, ExecOptions options);

// Parses one line that a command wrote to CMF_METRICS_FD: "SERIES STEP VALUE"
// separated by blanks (VALUE may be nan or inf). Returns false for anything
// else.
bool ParseMetricLine(std::string_view line, std::string* series,
                     MetricPoint* point);

}  // namespace cmf
