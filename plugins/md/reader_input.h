// The input side of the trajectory readers (readers.h), private to
// plugins/md: a source's lines, numbered for messages, the strict parsers of
// tokens and numbers, and the checks that every format shares. A fault throws
// std::runtime_error with a message that names the file and line.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "readers.h"

namespace cmf::md::reader_input {

// Throws std::runtime_error(MESSAGE).
[[noreturn]] void Fail(const std::string& message);

// TEXT for a message: at most 40 bytes, anything but printable ASCII as \xNN.
std::string Quote(std::string_view text);

// The whole of S as a finite number (an integer), a leading '+' allowed;
// false when it is not one.
bool ParseDouble(std::string_view s, double* v);
bool ParseInt(std::string_view s, long long* v);

// The tokens of LINE, separated by spaces and tabs.
std::vector<std::string_view> Split(std::string_view line);

bool StartsWith(std::string_view s, std::string_view prefix);

// S without its leading and trailing spaces and tabs.
std::string_view Trim(std::string_view s);

// The lines of a source, numbered from 1, each without its line ending.
class Lines {
 public:
  explicit Lines(const Source& s) : name_(s.name), text_(s.text) {}

  bool Next(std::string_view* line) {
    if (pos_ >= text_.size()) return false;
    std::size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    *line = text_.substr(pos_, end - pos_);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    unterminated_ = end == text_.size();
    pos_ = end + 1;
    ++number_;
    return true;
  }
  // The next line that is not blank.
  bool NextNonBlank(std::string_view* line) {
    while (Next(line))
      if (!Trim(*line).empty()) return true;
    return false;
  }
  // The next line, which must exist: WHAT says what was expected.
  std::string_view Require(const std::string& what) {
    std::string_view line;
    if (!Next(&line)) FailEnd(what);
    return line;
  }
  long long number() const { return number_; }
  const std::string& name() const { return name_; }

  [[noreturn]] void FailHere(const std::string& message) const {
    // A last line without its newline is most often a file cut short.
    Fail(name_ + ":" + std::to_string(number_) + ": " + message +
         (unterminated_ ? " (the file ends in this line: truncated?)" : ""));
  }
  [[noreturn]] void FailEnd(const std::string& what) const {
    Fail(name_ + ":" + std::to_string(number_) + ": the file ends where " +
         what + " should be (truncated?)");
  }

  double Double(std::string_view token, const std::string& what) const {
    double v;
    if (!ParseDouble(token, &v))
      FailHere(what + " " + Quote(token) + " is not a finite number");
    return v;
  }
  long long Int(std::string_view token, const std::string& what) const {
    long long v;
    if (!ParseInt(token, &v))
      FailHere(what + " " + Quote(token) + " is not an integer");
    return v;
  }
  // Reads K numbers from LINE's first K tokens (at least K tokens).
  void Numbers(std::string_view line, int k, double* out,
               const std::string& what) const {
    std::vector<std::string_view> t = Split(line);
    if (static_cast<int>(t.size()) < k)
      FailHere(what + ": " + std::to_string(k) + " numbers expected, found " +
               std::to_string(t.size()));
    for (int i = 0; i < k; ++i) out[i] = Double(t[i], what);
  }

 private:
  std::string name_;
  std::string_view text_;
  std::size_t pos_ = 0;
  long long number_ = 0;
  bool unterminated_ = false;
};

// SYMBOL as a string; fails at IN's line when it is not an element symbol.
std::string CheckedSymbol(const Lines& in, std::string_view symbol);

// The determinant of the 3 x 3 matrix M (row-major).
double Det(const double* m);

// Cartesian position of fractional F in the cell M (rows are vectors).
void ToCartesian(const double* m, const double* f, float* out);

// Fails at IN's line when a frame of N atoms is empty or larger than
// O.max_atoms.
void CheckAtoms(const Lines& in, long long n, const ReadOptions& o);

}  // namespace cmf::md::reader_input
