#include "cmf/data/open_transport.h"

#include <map>
#include <mutex>

#include "ssh_module.h"

namespace cmf::data {

Result<std::unique_ptr<ObjectTransport>> OpenFileTransport(
    const std::string& url);

namespace {

// ssh object stores are served by the module cmf-ssh.so, loaded on first use.
Result<std::unique_ptr<ObjectTransport>> OpenSftpTransport(
    const std::string& url) {
  CMF_ASSIGN_OR_RETURN(const SshModule* module,
                       LoadModuleOnce<SshModule>(
                           {"ssh", "CMF_SSH_MODULE", "dvc_like", "cmf-ssh.so",
                            "cmf_ssh_module", kSshModuleAbi}));
  return module->open_sftp(url);
}

std::mutex registry_mutex;

std::map<std::string, TransportFactory>& Registry() {
  static std::map<std::string, TransportFactory> registry{
      {"file", OpenFileTransport}, {"ssh", OpenSftpTransport}};
  return registry;
}

}  // namespace

void RegisterTransport(const std::string& scheme, TransportFactory factory) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  Registry()[scheme] = std::move(factory);
}

Result<std::unique_ptr<ObjectTransport>> OpenTransport(const std::string& url) {
  std::string scheme = UrlScheme(url);
  TransportFactory factory;
  std::string known;
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    auto it = Registry().find(scheme);
    if (it != Registry().end()) factory = it->second;
    for (const auto& [name, f] : Registry()) {
      known += (known.empty() ? "" : ", ") + name;
    }
  }
  if (!factory) {
    return Status::InvalidArgument("unknown URL scheme '" + scheme + "' in '" +
                                   RedactUrl(url) + "' (cmf knows: " + known +
                                   ", and paths)");
  }
  return factory(url);
}

}  // namespace cmf::data
