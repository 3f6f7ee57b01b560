#include "sync_verbs.h"

namespace cmf::cli {

std::unique_ptr<Verb> MakePullVerb() {
  return std::make_unique<SyncVerb>(SyncVerb::Kind::kPull);
}

}  // namespace cmf::cli
