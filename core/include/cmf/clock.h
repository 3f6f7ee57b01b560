// Time and identity for records: a Clock seam, UUIDv7 execution ids (and
// their short form) and timestamps as text.
//
// Clock is an interface so that tests can fix time; SystemClock is the real one
// and is thread-safe. NewUuidV7 draws its random bits from the kernel
// (getrandom) and is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "cmf/status.h"

namespace cmf {

class Clock {
 public:
  virtual ~Clock() = default;
  // Unix time in milliseconds.
  virtual std::int64_t NowMs() const = 0;
};

class SystemClock : public Clock {
 public:
  std::int64_t NowMs() const override;
  // The process-wide instance.
  static std::shared_ptr<Clock> Get();
};

// A UUID version 7 (RFC 9562) for the given Unix time in milliseconds: 48 bits
// of time, then 74 random bits, as 36 lowercase characters with dashes. Ids
// made later sort after earlier ones. IOError when the kernel gives no random
// bytes.
Result<std::string> NewUuidV7(std::int64_t unix_ms);

// The short form of execution id ID that people read and type: its last 12
// hex digits, which are random (48 bits: among a million executions, the
// chance that any two share them is about 0.2 %), where a prefix of a UUIDv7
// is its time, shared by every run of the same minute. An ID that is not a
// 36-character UUID comes back whole. Store::ResolveExecution accepts it, or
// any leading part of it of at least kShortIdMinimum digits.
inline constexpr std::size_t kShortIdLength = 12;
inline constexpr std::size_t kShortIdMinimum = 4;
std::string ShortId(std::string_view id);

// Random bytes as lowercase hex (2 * BYTES characters), from the kernel.
// IOError when it gives none.
Result<std::string> RandomHex(int bytes);

// "2026-11-27T10:41:02.123Z".
std::string FormatIsoUtc(std::int64_t unix_ms);

// "2026-01-01", "2026-01-01T12:30" or "2026-01-01T12:30:05Z" (UTC; a space
// may stand for the T) as Unix milliseconds; absent when TEXT is none of them.
std::optional<std::int64_t> ParseDateUtc(const std::string& text);

// "2026-11-27 10:41:02" in UTC, for people.
std::string FormatHumanUtc(std::int64_t unix_ms);

// "850 ms", "3.2 s", "4 min 12 s", "2 h 03 min".
std::string FormatDuration(std::int64_t ms);

}  // namespace cmf
