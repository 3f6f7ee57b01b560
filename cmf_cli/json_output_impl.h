// What the json_output*.cpp files share: the JSON document forms of values
// and artifacts, and the one way a document is written out. Private to them;
// the verbs include json_output.h.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cmf/records.h"

namespace cmf::json_impl {

using nlohmann::json;

// V as the JSON library holds it: a string, an integer, a real or a bool.
json ValueJson(const Value& value);

// [{"path", "hash", "size", "kind"}], in the order given.
json ArtifactsJson(const std::vector<ArtifactRef>& refs);

// J's text with INDENT (-1: one line), UTF-8 kept as it is and invalid
// UTF-8 replaced (a record's text may hold any bytes).
std::string Dump(const json& j, int indent);

}  // namespace cmf::json_impl
