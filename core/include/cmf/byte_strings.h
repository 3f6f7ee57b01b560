// Byte strings in JSON (doc/formats.md, "Strings that are not UTF-8").
//
// JSON text holds Unicode, but a Linux path, a command argument or a value
// a user typed may hold any bytes. Where cmf writes JSON that another cmf reads
// back (segments, exports, the command column of the store), a string whose
// bytes are not valid UTF-8 is written as the object {"hex": "<its bytes in
// lowercase hex>"}, and read back byte for byte. Valid UTF-8 is written as a
// plain string, so that records of ordinary names look as they always did.
// EscapeForDisplay shows such bytes to a person. Free functions over values;
// thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace cmf {

// True when TEXT is well-formed UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF): what nlohmann::json accepts and writes.
bool IsUtf8(std::string_view text);

// Replaces every string value inside J that is not UTF-8 by its {"hex": …}
// object and returns how many it replaced. Object keys are left as they are:
// whoever makes a key from outside bytes must refuse one that is not UTF-8.
int EncodeByteStrings(nlohmann::json& j);

// The bytes J stands for: a string's own, or those of a {"hex": H} object
// whose H is an even number of lowercase hex digits. Empty when J is neither.
std::optional<std::string> DecodeByteString(const nlohmann::json& j);

// TEXT for a person, as git quotes a path: unchanged when it is valid UTF-8
// without control characters, backslashes or double quotes (almost every
// name); otherwise in double quotes, with C escapes for those (\n, \t, \\,
// \") and for bytes that are not UTF-8 (\xe9). Two names that differ in bytes
// never look alike.
std::string EscapeForDisplay(std::string_view text);

}  // namespace cmf
