#include "sync_verbs.h"

namespace cmf::cli {

std::unique_ptr<Verb> MakeFetchVerb() {
  return std::make_unique<SyncVerb>(SyncVerb::Kind::kFetch);
}

}  // namespace cmf::cli
