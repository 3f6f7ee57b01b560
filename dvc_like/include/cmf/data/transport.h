// Object transports: how the bytes of objects move to and from a remote's
// object store (doc/federation.md).
//
// A remote object store has the object cache's layout (sha256/ab/cdef...,
// read-only files) under a root folder, plus a small file `store-id` that names
// it. Transports register by URL scheme, so that a new one (s3://) is one more
// factory; a plain path counts as file://, and `user@host:path` as ssh://.
//
// Every object a transport writes appears whole or not at all: it is written
// under a temporary name in the store's tmp/ folder and renamed into place.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cmf/data/progress.h"
#include "cmf/status.h"

namespace cmf::data {

class ObjectTransport {
 public:
  virtual ~ObjectTransport() = default;

  // The store's URL as people may see it (never with credentials).
  virtual std::string Describe() const = 0;

  // True when the store holds object HASH.
  virtual Result<bool> Has(const std::string& hash) = 0;

  struct PutItem {
    std::string hash;
    std::filesystem::path source;  // a local file that should hold that content
    std::uint64_t size = 0;
    // The store holds an object HASH whose bytes are wrong (see Verify):
    // replace it.
    bool replace = false;
  };
  // Uploads ITEMS (each under a temporary name, then renamed), counting bytes
  // on PROGRESS. The bytes of each item are hashed as they are written: one
  // whose bytes do not match its hash (a damaged local object) never gets its
  // name in the store; its temporary is removed, its hash is appended to
  // DAMAGED, and the other items go on. On error, the objects already renamed
  // stay (they are whole), and no temporary is left behind where the transport
  // can remove it.
  virtual Status Put(std::span<const PutItem> items, Progress* progress,
                     std::vector<std::string>* damaged) = 0;

  // Reads the store's object HASH and hashes it: true when its bytes match
  // its name. NotFound when the store does not hold it.
  virtual Result<bool> Verify(const std::string& hash) = 0;

  // Writes the bytes of object HASH to the open file FD. NotFound when the
  // store does not hold it. The caller verifies the bytes.
  virtual Status Get(const std::string& hash, int fd, Progress* progress) = 0;

  // The content of the small file NAME at the store's root (store-id), or
  // NotFound.
  virtual Result<std::string> ReadSmall(const std::string& name) = 0;
  // Creates the small file NAME with CONTENT unless it exists; returns the
  // content the file has afterwards (another writer may have won).
  virtual Result<std::string> CreateSmall(const std::string& name,
                                          const std::string& content) = 0;

  // True when the folder RELATIVE (to the root) exists.
  virtual Result<bool> HasFolder(const std::string& relative) = 0;
};

// The scheme of URL: "file" for a plain path, "ssh" for user@host:path.
std::string UrlScheme(const std::string& url);

// URL as it may be shown: any password removed (user:secret@host becomes
// user@host), and for http(s) the whole user part (often a token).
std::string RedactUrl(const std::string& url);
// True when URL carries a password.
bool UrlHasPassword(const std::string& url);

// The local file-system path a path or file:// URL names.
std::string FileUrlPath(const std::string& url);

// URL with "/" and RELATIVE appended to its path.
std::string JoinUrl(const std::string& url, const std::string& relative);

}  // namespace cmf::data
