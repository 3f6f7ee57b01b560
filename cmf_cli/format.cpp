#include "format.h"

#include <fmt/format.h>

#include <algorithm>

#include "cmf/byte_strings.h"
#include "cmf/clock.h"

namespace cmf::cli {

std::string ShellJoin(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& arg : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !arg.empty() &&
                 arg.find_first_not_of(
                     "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      out += arg;
      continue;
    }
    const bool control = std::any_of(arg.begin(), arg.end(), [](char c) {
      return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
    });
    if (control || !IsUtf8(arg)) {
      // Control characters or bytes that are not UTF-8: bash's $'…' form,
      // which a person can paste back.
      out += "$'";
      for (unsigned char c : arg) {
        if (c == '\\' || c == '\'') {
          (out += '\\') += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
          out += static_cast<char>(c);
        } else {
          out += fmt::format("\\x{:02x}", c);
        }
      }
      out += '\'';
      continue;
    }
    out += '\'';
    for (char c : arg)
      out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

namespace {

std::string StatusText(const ExecutionRecord& r) {
  std::string text(ToString(r.status));
  if (r.exit_code) text += fmt::format(" (exit {})", *r.exit_code);
  if (!r.message.empty() && r.status != ExecStatus::kOk)
    text += ": " + r.message;
  return text;
}

}  // namespace

std::string ExecutionSummary(const ExecutionRecord& r) {
  std::string out = fmt::format("execution {}\n", r.id);
  out += fmt::format("Stage:    {}/{}\n", r.pipeline, r.stage);
  out += fmt::format("Status:   {}\n", StatusText(r));
  out += fmt::format("Started:  {} UTC", FormatHumanUtc(r.started_ms));
  if (r.ended_ms)
    out += fmt::format(", took {}", FormatDuration(*r.ended_ms - r.started_ms));
  out += "\n";
  if (!r.command.empty())
    out += fmt::format("Command:  {}\n", ShellJoin(r.command));
  return out;
}

std::string ExecutionOneLine(const ExecutionRecord& r) {
  return fmt::format("{} {:<11} {}/{}  {}  {}", ShortId(r.id),
                     ToString(r.status), r.pipeline, r.stage,
                     FormatHumanUtc(r.started_ms), ShellJoin(r.command));
}

std::string HumanSize(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes) / 1024.0;
  int unit = 0;
  while (value >= 1024.0 && unit < 4) {
    value /= 1024.0;
    ++unit;
  }
  return fmt::format("{:.1f} {}", value, kUnits[unit]);
}

}  // namespace cmf::cli
