// Internal: the table the ssh module (cmf-ssh.so, built from
// sftp_transport.cpp) gives cmf. libssh2, and the shared OpenSSL it links,
// are loaded only by a command that opens an ssh object store: every other
// command starts without them. Both sides come from one build, so it passes
// C++ types; the ABI number and the version string keep a module from another
// build out.
#pragma once

#include <memory>
#include <string>

#include "cmf/data/module_loader.h"
#include "cmf/data/transport.h"

namespace cmf::data {

constexpr int kSshModuleAbi = 3;  // 2: Put reports damaged items; Verify.
                                  // 3: the header holds a build id

struct SshModule {
  ModuleHeader header;  // first: what the loader checks
  Result<std::unique_ptr<ObjectTransport>> (*open_sftp)(const std::string& url);
};

}  // namespace cmf::data

// The module's one exported symbol.
extern "C" const cmf::data::SshModule* cmf_ssh_module();
