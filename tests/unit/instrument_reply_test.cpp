// The replies of an instrument controller (plugins/dkl/instrument_reply.h):
// torch-free, so tested here whether or not the plugins are built.
#include "../../plugins/dkl/instrument_reply.h"

#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <string>

using cmf::dkl::CheckGreetingReply;
using cmf::dkl::ParseSpectrumReply;

namespace {

// The message CALL throws ("" when it throws nothing).
template <typename F>
std::string Thrown(F&& call) {
  try {
    call();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// A JSON array nested DEPTH deep.
std::string Nested(int depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

}  // namespace

TEST_CASE(
    "instrument: a reply gives its spectrum, or a message that says what is "
    "wrong") {
  CHECK(ParseSpectrumReply(R"({"spectrum":[2.5,-1,0]})", 3, 1, 2) ==
        std::vector<float>{2.5f, -1.0f, 0.0f});
  CHECK_NOTHROW(CheckGreetingReply(R"({"ready":{"protocol":1}})"));
  CHECK(Thrown([] { CheckGreetingReply("not json"); }) ==
        "the instrument controller answered something that is not a JSON "
        "object: 'not json'");
  CHECK(
      Thrown([] {
        ParseSpectrumReply(R"({"error":"beam blanked"})", 3, 27, 47);
      }) ==
      "the instrument controller reported an error at (27, 47): beam blanked");
  CHECK(Thrown([] {
          ParseSpectrumReply(R"({"spectrum":[1,2]})", 3, 0, 0);
        }).find("a spectrum of 2 values; the energy axis has 3") !=
        std::string::npos);
  CHECK(Thrown([] {
          ParseSpectrumReply(R"({"spectrum":[1,null]})", 2, 0, 0);
        }).find("not a finite number") != std::string::npos);
}

TEST_CASE(
    "instrument: a spectrum value beyond a float's range is refused, not kept "
    "as infinity (found by tests/fuzz instrument_reply)") {
  for (const std::string big : {"1e39", "-1e39", "3.5e38", "1e308"}) {
    CAPTURE(big);
    CHECK(Thrown([&] {
            ParseSpectrumReply(R"({"spectrum":[1,)" + big + "]}", 2, 0, 0);
          }).find("not a finite number") != std::string::npos);
  }
  std::vector<float> edge =
      ParseSpectrumReply(R"({"spectrum":[3.4e38,-3.4e38]})", 2, 0, 0);
  CHECK(std::isfinite(edge[0]));
  CHECK(std::isfinite(edge[1]));
}

TEST_CASE(
    "instrument: a reply nested 200,000 deep is refused with a message, "
    "without overflowing the stack (found by tests/fuzz instrument_reply)") {
  const std::string deep = Nested(200000);
  std::string greeting =
      Thrown([&] { CheckGreetingReply(R"({"x":)" + deep + "}"); });
  CHECK(greeting.find("did not answer the greeting") != std::string::npos);
  CHECK(greeting.size() < 300);  // the line's first characters only
  CHECK(Thrown([&] {
          ParseSpectrumReply(R"({"error":)" + deep + "}", 3, 1, 2);
        }).find("reported an error at (1, 2): {\"error\":[[[") !=
        std::string::npos);
  CHECK(Thrown([&] {
          ParseSpectrumReply(R"({"other":)" + deep + "}", 3, 1, 2);
        }).find("answered without a spectrum") != std::string::npos);
}
