#include "sqlite_util.h"

#include <cmath>
#include <limits>
#include <mutex>

namespace cmf::sql {

void ConfigureOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    // SQLITE_MISUSE when SQLite is already initialised: its defaults stay.
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  });
}

Status Error(sqlite3* db, int rc, const std::string& what) {
  std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string msg = what + ": " + detail;
  switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(msg);
    case SQLITE_CONSTRAINT:
      return Status::AlreadyExists(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Conflict(msg);
    default:
      return Status::IOError(msg);
  }
}

Stmt& Stmt::Bind(int index, double v) {
  if (std::isnan(v)) {
    sqlite3_bind_null(stmt_, index);
  } else {
    sqlite3_bind_double(stmt_, index, v);
  }
  return *this;
}

Stmt& Stmt::BindValue(int index, const Value& v) {
  if (auto* i = std::get_if<std::int64_t>(&v)) return Bind(index, *i);
  if (auto* d = std::get_if<double>(&v)) return Bind(index, *d);
  if (auto* b = std::get_if<bool>(&v))
    return Bind(index, static_cast<std::int64_t>(*b ? 1 : 0));
  return Bind(index, std::get<std::string>(v));
}

bool Stmt::Step(Status* st) {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) *st = Error(db_, rc, "metadata store");
  return false;
}

Status Stmt::Run() {
  Status st;
  while (Step(&st)) {
  }
  Reset();
  return st;
}

double Stmt::Real(int col) const {
  if (IsNull(col)) return std::numeric_limits<double>::quiet_NaN();
  return sqlite3_column_double(stmt_, col);
}

Value Stmt::ValueAs(int col, std::string_view type) const {
  if (type == "int") return Int(col);
  if (type == "real") return Real(col);
  if (type == "bool") return Int(col) != 0;
  return Text(col);
}

}  // namespace cmf::sql
