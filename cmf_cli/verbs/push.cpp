#include "sync_verbs.h"

namespace cmf::cli {

std::unique_ptr<Verb> MakePushVerb() {
  return std::make_unique<SyncVerb>(SyncVerb::Kind::kPush);
}

}  // namespace cmf::cli
