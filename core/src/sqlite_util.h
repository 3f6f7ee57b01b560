// Internal: a thin layer over the SQLite C API that turns its return codes into
// cmf::Status.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cmf/records.h"
#include "cmf/status.h"

namespace cmf::sql {

// Sets SQLite's process-wide options once, before the first connection: no
// memory statistics (cmf reads none, and keeping them takes a global mutex on
// every allocation: a sixth of the time of a batch of metrics). Does nothing
// when SQLite was started already (by another library in the process, such
// as Python's sqlite3 module).
void ConfigureOnce();

// A Status for the last error on DB, prefixed with WHAT.
Status Error(sqlite3* db, int rc, const std::string& what);

// A prepared statement. Owned by the cache in Db (not finalized by this
// wrapper) or by itself.
class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  Stmt& Bind(int index, std::int64_t v) {
    sqlite3_bind_int64(stmt_, index, v);
    return *this;
  }
  Stmt& Bind(int index, int v) {
    return Bind(index, static_cast<std::int64_t>(v));
  }
  Stmt& Bind(int index, double v);
  Stmt& Bind(int index, std::string_view v) {
    sqlite3_bind_text(stmt_, index, v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int index, const char* v) {
    return Bind(index, std::string_view(v));
  }
  Stmt& Bind(int index, const std::string& v) {
    return Bind(index, std::string_view(v));
  }
  Stmt& BindBlob(int index, std::string_view v) {
    sqlite3_bind_blob64(stmt_, index, v.data(), v.size(), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& BindNull(int index) {
    sqlite3_bind_null(stmt_, index);
    return *this;
  }
  template <typename T>
  Stmt& Bind(int index, const std::optional<T>& v) {
    if (v) return Bind(index, *v);
    return BindNull(index);
  }
  // Binds a Value by its type (bool as 0/1).
  Stmt& BindValue(int index, const Value& v);

  // Steps once. Returns true for a row, false when done; ST receives any error.
  bool Step(Status* st);
  // Steps to completion of a statement that returns no rows.
  Status Run();

  int ColumnCount() const { return sqlite3_column_count(stmt_); }
  std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Real(int col) const;  // NULL reads as NaN
  // A column that cannot hold NULL (one call where Real makes two).
  double RealNotNull(int col) const {
    return sqlite3_column_double(stmt_, col);
  }
  bool IsNull(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(
                   reinterpret_cast<const char*>(p),
                   static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  // The bytes of a BLOB (or TEXT) column.
  std::string_view Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_, col);
    return p ? std::string_view(
                   static_cast<const char*>(p),
                   static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string_view();
  }
  // Reads a Value stored with BindValue whose type name is TYPE.
  Value ValueAs(int col, std::string_view type) const;

  // Resets the statement and clears its bindings so that it can be reused.
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace cmf::sql
