// Statement helpers shared by the .cc files of SqliteStore: run a statement with its
// parameters in one call, iterate rows, bump a sequence, append an audit entry. Each runs on
// a connection the caller already holds (the writer's, inside a write; or a read lease).
//
// Errors are those of sqlite_connection.h, with constraint violations described by
// DescribeConstraintError (a Conflict names its field).
//
// Thread safety: as the connection passed in.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/status.h"
#include "keys/model.h"
#include "store/sqlite/sqlite_connection.h"

namespace keygate::store::sqlite {

// Runs `sql` with `params` bound to ?1, ?2, ..., discarding any rows.
Status RunSql(Connection& conn, const std::string& sql, std::initializer_list<SqlValue> params);

// As RunSql; returns how many rows the statement inserted, updated or deleted.
Result<int64_t> RunSqlCountingChanges(Connection& conn, const std::string& sql,
                                      std::initializer_list<SqlValue> params);

// Runs a query and calls `on_row` for each row, in order. Stops at the first error, from
// SQLite or from `on_row`, and returns it.
using RowFn = std::function<Status(const Statement&)>;
Status ForEachRow(Connection& conn, const std::string& sql, std::initializer_list<SqlValue> params,
                  const RowFn& on_row);

// Runs a query expected to answer one row and calls `on_row` with it. Returns NotFound with
// `not_found_message` if there is no row.
Status ReadOneRow(Connection& conn, const std::string& sql, std::initializer_list<SqlValue> params,
                  const std::string& not_found_message, const RowFn& on_row);

// The next value of a row of the `sequences` table ("service_key_seq",
// "service_key_version"). Must run inside a write transaction, which makes it atomic and
// rolls it back with the write. Internal if the row is missing.
Result<int64_t> NextSequenceValue(Connection& conn, const char* name);
// As NextSequenceValue, for two different rows bumped by one statement: their next values,
// in argument order.
Result<std::pair<int64_t, int64_t>> NextSequenceValues(Connection& conn, const char* first,
                                                       const char* second);

// A WHERE clause built from optional filters, with the values its "?" placeholders take, in
// order. Values are owned, so the clause can outlive the query it was built from.
class WhereClause {
 public:
  using Value = std::variant<int64_t, std::string>;

  // Appends `condition` (joined with AND) and the values of its placeholders.
  void Add(const std::string& condition, std::vector<Value> values = {});
  // "" or "WHERE a AND b ...".
  const std::string& sql() const { return sql_; }
  // Binds the values to ?first, ?first+1, ...; returns the next free parameter.
  int BindTo(Statement& stmt, int first) const;

 private:
  std::string sql_;
  std::vector<Value> values_;
};

// Appends `entry` to audit_log; the database assigns its id (entry.id is ignored).
Status InsertAuditEntry(Connection& conn, const keys::AuditEntry& entry);

}  // namespace keygate::store::sqlite
