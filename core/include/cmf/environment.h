// The software environment of an execution: the Debian packages installed and
// the Python distributions importable where it ran, recorded once per distinct
// environment (doc/compare.md, "Environments").
//
// The description is text, one package per line, sorted:
//   deb libtorch2.1 2.1.2+dfsg-1
//   python numpy 1.24.2
// Its SHA-256 names it: runs with the same software share one artifact (kind
// file, its bytes in the object cache), and each execution names it in its
// property "environment".
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "cmf/repo.h"
#include "cmf/status.h"

namespace cmf {

struct EnvironmentSources {
  std::filesystem::path dpkg_status = "/var/lib/dpkg/status";
  // The folders searched for Python distributions (*.dist-info, *.egg-info);
  // PythonFolders() when empty.
  std::vector<std::filesystem::path> python;
};

// Where Python looks for distributions, as far as cmf can tell without
// starting Python: PYTHONPATH, the virtual environment ($VIRTUAL_ENV), the
// user's site-packages, /usr/local/lib/python3*/dist-packages and
// /usr/lib/python3/dist-packages; those that exist.
std::vector<std::filesystem::path> PythonFolders();

// The description of the environment SOURCES name. A source that is missing
// or unreadable contributes nothing (a machine without dpkg has no deb
// lines).
std::string DescribeEnvironment(const EnvironmentSources& sources);

// A description's packages: "deb NAME" or "python NAME" -> version. Lines that
// do not parse are skipped.
std::map<std::string, std::string> ParseEnvironment(std::string_view text);

// The description named HASH, from the object cache. NotFound when this site
// does not hold its bytes.
Result<std::string> ReadEnvironment(const Repo& repo, const std::string& hash);

// Records the environment of execution ID: stores its description (once: a
// fingerprint of the sources in .cmf/environment skips reading them again
// while nothing was installed or removed) and sets the execution's property
// "environment" to its hash. Returns the hash.
Result<std::string> RecordEnvironment(Repo& repo, const std::string& id);

}  // namespace cmf
