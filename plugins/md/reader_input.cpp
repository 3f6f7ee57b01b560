// The input side of the trajectory readers: the helpers of reader_input.h,
// and ReadSource (readers.h), which holds a file whole.
#include "reader_input.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include "readers.h"
#include "trajectory.h"

namespace cmf::md {
namespace reader_input {

[[noreturn]] void Fail(const std::string& message) {
  throw std::runtime_error(message);
}

std::string Quote(std::string_view text) {
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < 40; ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (text.size() > 40) out += "...";
  return out + "'";
}

bool ParseDouble(std::string_view s, double* v) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(*v);
}

bool ParseInt(std::string_view s, long long* v) {
  if (!s.empty() && s[0] == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size();
}

std::vector<std::string_view> Split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string CheckedSymbol(const Lines& in, std::string_view symbol) {
  std::string s(symbol);
  if (AtomicNumber(s) == 0)
    in.FailHere(Quote(symbol) + " is not an element symbol");
  return s;
}

double Det(const double* m) {
  return m[0] * (m[4] * m[8] - m[5] * m[7]) -
         m[1] * (m[3] * m[8] - m[5] * m[6]) +
         m[2] * (m[3] * m[7] - m[4] * m[6]);
}

void ToCartesian(const double* m, const double* f, float* out) {
  for (int k = 0; k < 3; ++k)
    out[k] =
        static_cast<float>(f[0] * m[k] + f[1] * m[3 + k] + f[2] * m[6 + k]);
}

void CheckAtoms(const Lines& in, long long n, const ReadOptions& o) {
  if (n <= 0) in.FailHere("a frame of " + std::to_string(n) + " atoms");
  if (static_cast<unsigned long long>(n) > o.max_atoms)
    in.FailHere(std::to_string(n) + " atoms is more than the limit of " +
                std::to_string(o.max_atoms));
}

}  // namespace reader_input

using reader_input::Fail;

Source ReadSource(const std::string& path, std::size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail("cannot open '" + path + "'");
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) Fail("cannot read '" + path + "'");
  if (static_cast<unsigned long long>(size) > max_bytes)
    Fail("'" + path + "' is " + std::to_string(size) +
         " bytes, more than the limit of " + std::to_string(max_bytes));
  in.seekg(0);
  Source s{path, std::string(static_cast<std::size_t>(size), '\0')};
  if (size > 0 && !in.read(s.text.data(), size))
    Fail("cannot read '" + path + "'");
  return s;
}

}  // namespace cmf::md
