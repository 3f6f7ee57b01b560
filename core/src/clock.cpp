#include "cmf/clock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace cmf {

std::int64_t SystemClock::NowMs() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch())
      .count();
}

std::shared_ptr<Clock> SystemClock::Get() {
  static std::shared_ptr<Clock> clock = std::make_shared<SystemClock>();
  return clock;
}

namespace {

// SIZE random bytes from the kernel (getrandom; /dev/urandom where the kernel
// is older than getrandom).
Status FillRandom(unsigned char* out, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::getrandom(out, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOSYS) break;
    if (n < 0) {
      return Status::IOError(std::string("no random bytes from the kernel: ") +
                             std::strerror(errno));
    }
    out += n;
    size -= static_cast<std::size_t>(n);
  }
  if (size == 0) return Status::Ok();
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::IOError(std::string("no random bytes from the kernel: ") +
                           "/dev/urandom: " + std::strerror(errno));
  }
  while (size > 0) {
    ssize_t n = ::read(fd, out, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return Status::IOError(std::string("no random bytes from the kernel: ") +
                             "/dev/urandom: " + std::strerror(err));
    }
    out += n;
    size -= static_cast<std::size_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

std::tm UtcParts(std::int64_t unix_ms) {
  std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  if (unix_ms < 0 && unix_ms % 1000 != 0) --seconds;
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  return parts;
}

}  // namespace

Result<std::string> NewUuidV7(std::int64_t unix_ms) {
  unsigned char b[16];
  CMF_RETURN_IF_ERROR(FillRandom(b + 6, 10));
  std::uint64_t ms = static_cast<std::uint64_t>(unix_ms);
  for (int i = 0; i < 6; ++i)
    b[i] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  b[6] = static_cast<unsigned char>(0x70 | (b[6] & 0x0f));  // version 7
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));  // RFC 9562 variant
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 0xf];
  }
  return out;
}

std::string ShortId(std::string_view id) {
  if (id.size() != 36 || id[23] != '-') return std::string(id);
  return std::string(id.substr(36 - kShortIdLength));
}

Result<std::string> RandomHex(int bytes) {
  std::string raw(static_cast<std::size_t>(bytes), '\0');
  CMF_RETURN_IF_ERROR(
      FillRandom(reinterpret_cast<unsigned char*>(raw.data()), raw.size()));
  std::string out;
  for (unsigned char c : raw) out += fmt::format("{:02x}", c);
  return out;
}

std::string FormatIsoUtc(std::int64_t unix_ms) {
  std::tm t = UtcParts(unix_ms);
  int millis = static_cast<int>(((unix_ms % 1000) + 1000) % 1000);
  const int year = t.tm_year + 1900;
  if (year < 0 || year > 9999) {
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", year,
                       t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec,
                       millis);
  }
  // Digits put in place: listings write one or two of these per row, and a
  // formatting call per time was a tenth of a 10,000-row listing.
  char text[] = "0000-00-00T00:00:00.000Z";
  auto put = [&](int at, int value, int digits) {
    for (int i = digits - 1; i >= 0; --i) {
      text[at + i] = static_cast<char>('0' + value % 10);
      value /= 10;
    }
  };
  put(0, year, 4);
  put(5, t.tm_mon + 1, 2);
  put(8, t.tm_mday, 2);
  put(11, t.tm_hour, 2);
  put(14, t.tm_min, 2);
  put(17, t.tm_sec, 2);
  put(20, millis, 3);
  return std::string(text, sizeof text - 1);
}

std::string FormatHumanUtc(std::int64_t unix_ms) {
  std::tm t = UtcParts(unix_ms);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", t.tm_year + 1900,
                     t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
}

std::string FormatDuration(std::int64_t ms) {
  if (ms < 1000) return fmt::format("{} ms", ms);
  if (ms < 60'000)
    return fmt::format("{:.1f} s", static_cast<double>(ms) / 1000.0);
  std::int64_t s = ms / 1000;
  if (s < 3600) return fmt::format("{} min {} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, (s % 3600) / 60);
}

}  // namespace cmf

namespace cmf {

std::optional<std::int64_t> ParseDateUtc(const std::string& text) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  char tail[8] = {};
  int n = std::sscanf(text.c_str(), "%4d-%2d-%2d%*[T ]%2d:%2d:%2d%7s", &y, &mo,
                      &d, &h, &mi, &s, tail);
  if (n < 3) return std::nullopt;
  if (n == 3 && text.size() != 10) return std::nullopt;
  if (n >= 7 && std::string(tail) != "Z") return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return std::nullopt;
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(::timegm(&tm)) * 1000;
}

}  // namespace cmf
