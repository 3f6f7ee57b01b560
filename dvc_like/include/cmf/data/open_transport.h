// Opening an object store by its URL: the registry of transports (file, and
// ssh through the module cmf-ssh.so) over the interface of
// cmf/data/transport.h.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cmf/data/transport.h"
#include "cmf/status.h"

namespace cmf::data {

using TransportFactory = std::function<Result<std::unique_ptr<ObjectTransport>>(
    const std::string& url)>;

// Registers FACTORY for URLs of SCHEME ("file", "ssh"). The built-in ones are
// registered on first use.
void RegisterTransport(const std::string& scheme, TransportFactory factory);

// Opens the object store at URL (nothing is created). InvalidArgument for an
// unknown scheme (the message lists the known ones); the transport's errors
// otherwise.
Result<std::unique_ptr<ObjectTransport>> OpenTransport(const std::string& url);

}  // namespace cmf::data
