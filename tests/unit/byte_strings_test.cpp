// Strings that are not UTF-8 in JSON and on the terminal
// (cmf/byte_strings.h).
#include "cmf/byte_strings.h"

#include <doctest/doctest.h>

#include <vector>

using nlohmann::json;

TEST_CASE("bytes: UTF-8 is told from other bytes as nlohmann::json tells it") {
  for (const std::string& ok : std::vector<std::string>{
           "", "plain", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x94\xac",
           "\xf4\x8f\xbf\xbf", std::string("nul\0inside", 10)}) {
    CAPTURE(ok);
    CHECK(cmf::IsUtf8(ok));
    CHECK_NOTHROW((void)json(ok).dump());
  }
  for (const std::string& bad : std::vector<std::string>{
           "caf\xe9", "\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
           "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\x80", "\xff",
           "ok\xe2\x82"}) {
    CAPTURE(bad);
    CHECK_FALSE(cmf::IsUtf8(bad));
    CHECK_THROWS((void)json(bad).dump());
  }
}

TEST_CASE(
    "bytes: strings that are not UTF-8 become {\"hex\"} objects and come "
    "back byte for byte") {
  json j = {{"path", "f\xe9"},
            {"name", "plain"},
            {"command", {"echo", "caf\xe9", "ok"}},
            {"n", 3}};
  CHECK(cmf::EncodeByteStrings(j) == 2);
  const std::string text = j.dump();  // no longer throws
  CHECK(text.find(R"("path":{"hex":"66e9"})") != std::string::npos);
  CHECK(j["name"] == "plain");
  json back = json::parse(text);
  CHECK(cmf::DecodeByteString(back["path"]) == "f\xe9");
  CHECK(cmf::DecodeByteString(back["name"]) == "plain");
  CHECK(cmf::DecodeByteString(back["command"][1]) == "caf\xe9");
  // Anything else is not a byte string.
  for (const json& no : {json(3), json(nullptr), json{{"hex", "6"}},
                         json{{"hex", "6G"}}, json{{"hex", "66E9"}},
                         json{{"hex", "66"}, {"more", 1}}, json::array()}) {
    CAPTURE(no.dump());
    CHECK_FALSE(cmf::DecodeByteString(no).has_value());
  }
}

TEST_CASE(
    "bytes: names are shown unchanged, or quoted with escapes when they "
    "hold what a terminal would hide") {
  CHECK(cmf::EscapeForDisplay("data/run 3.h5") == "data/run 3.h5");
  CHECK(cmf::EscapeForDisplay("caf\xc3\xa9") == "caf\xc3\xa9");
  CHECK(cmf::EscapeForDisplay("f\xe9") == "\"f\\xe9\"");
  CHECK(cmf::EscapeForDisplay("a\nb") == "\"a\\nb\"");
  CHECK(cmf::EscapeForDisplay("back\\slash") == "\"back\\\\slash\"");
  CHECK(cmf::EscapeForDisplay("say \"hi\"\x7f") == "\"say \\\"hi\\\"\\x7f\"");
  // Different bytes never look alike.
  CHECK(cmf::EscapeForDisplay("f\\xe9") != cmf::EscapeForDisplay("f\xe9"));
}
