// Status and Result<T>: how errors cross module boundaries in cmf.
//
// A function of a public header reports failure by returning a Status (or a
// Result<T> that holds either a value or a non-ok Status) instead of throwing.
// The code is one of a small, fixed set so that callers can branch on it; the
// message is lowercase, has no final full stop and quotes its subject, ready to
// be printed after "cmf: error: ". SQLite, libgit2 and system errors are
// converted into a Status where they are called.
//
// Status and Result are plain values: copy, move and return them freely. They
// are not synchronised; share one between threads only with external locking.
#pragma once

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace cmf {

enum class Code {
  kOk = 0,
  kNotFound,
  kAlreadyExists,
  kCorruption,
  kInvalidArgument,
  kIOError,
  kConflict,
};

class [[nodiscard]] Status {
 public:
  Status() = default;

  static Status Ok() { return Status(); }
  static Status NotFound(std::string msg) {
    return {Code::kNotFound, std::move(msg)};
  }
  static Status AlreadyExists(std::string msg) {
    return {Code::kAlreadyExists, std::move(msg)};
  }
  static Status Corruption(std::string msg) {
    return {Code::kCorruption, std::move(msg)};
  }
  static Status InvalidArgument(std::string msg) {
    return {Code::kInvalidArgument, std::move(msg)};
  }
  static Status IOError(std::string msg) {
    return {Code::kIOError, std::move(msg)};
  }
  static Status Conflict(std::string msg) {
    return {Code::kConflict, std::move(msg)};
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "CONTEXT: MESSAGE"; an ok status stays ok.
  Status With(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

namespace detail {
// The value of a Result that holds an error was asked for: a bug in the
// caller, never the user's doing. Says so on standard error, with the error
// the Result held, and aborts: in every build, not only where assert() is on.
[[noreturn]] inline void BadResultAccess(const Status& status) {
  std::fprintf(stderr,
               "cmf: internal error: the value of a failed result was used "
               "(%s)\n",
               status.message().c_str());
  std::abort();
}
}  // namespace detail

// Either a T or a non-ok Status. Construct from a T for success, from a Status
// for failure.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status)
      : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "a Result built from a Status must hold an error");
    // In a build without assert(): an error all the same, not a value that
    // is not there.
    if (status_.ok()) {
      status_ = Status::InvalidArgument(
          "internal error: a result was made of a success without a value");
    }
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }

  T& value() & {
    if (!ok()) detail::BadResultAccess(status_);
    return *value_;
  }
  const T& value() const& {
    if (!ok()) detail::BadResultAccess(status_);
    return *value_;
  }
  // On a temporary, moves the value out (by value, so that `for (x :
  // F().value())` is safe).
  T value() && {
    if (!ok()) detail::BadResultAccess(status_);
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace cmf

// Return early from the enclosing function when EXPR yields a non-ok Status.
#define CMF_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::cmf::Status cmf_status_ = (expr);        \
    if (!cmf_status_.ok()) return cmf_status_; \
  } while (0)

#define CMF_CONCAT_INNER_(a, b) a##b
#define CMF_CONCAT_(a, b) CMF_CONCAT_INNER_(a, b)

// Declare LHS from a Result<T> expression, or return its Status from the
// enclosing function.
#define CMF_ASSIGN_OR_RETURN(lhs, expr) \
  CMF_ASSIGN_OR_RETURN_IMPL_(CMF_CONCAT_(cmf_result_, __LINE__), lhs, expr)
#define CMF_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
