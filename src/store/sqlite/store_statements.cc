#include "store/sqlite/store_statements.h"

#include "store/sqlite/schema.h"

namespace keygate::store::sqlite {

Status RunSql(Connection& conn, const std::string& sql, std::initializer_list<SqlValue> params) {
  auto stmt = conn.Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  stmt->BindAll(params);
  Status status = stmt->Run();
  if (!status.ok()) return DescribeConstraintError(status.error());
  return OkStatus();
}

Result<int64_t> RunSqlCountingChanges(Connection& conn, const std::string& sql,
                                      std::initializer_list<SqlValue> params) {
  KG_RETURN_IF_ERROR(RunSql(conn, sql, params));
  return static_cast<int64_t>(sqlite3_changes64(conn.db()));
}

Status ForEachRow(Connection& conn, const std::string& sql, std::initializer_list<SqlValue> params,
                  const RowFn& on_row) {
  auto stmt = conn.Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  stmt->BindAll(params);
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.error();
    if (!*row) return OkStatus();
    KG_RETURN_IF_ERROR(on_row(*stmt));
  }
}

Status ReadOneRow(Connection& conn, const std::string& sql, std::initializer_list<SqlValue> params,
                  const std::string& not_found_message, const RowFn& on_row) {
  auto stmt = conn.Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  stmt->BindAll(params);
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  if (!*row) return Error::NotFound(not_found_message);
  return on_row(*stmt);
}

// UPDATE ... RETURNING would do it in one statement, but SQLite buffers RETURNING rows in an
// ephemeral table, which costs more than a second statement on the row just updated.
Result<int64_t> NextSequenceValue(Connection& conn, const char* name) {
  auto values = NextSequenceValues(conn, name, name);
  if (!values.ok()) return values.error();
  return values->first;
}

Result<std::pair<int64_t, int64_t>> NextSequenceValues(Connection& conn, const char* first,
                                                       const char* second) {
  KG_RETURN_IF_ERROR(RunSql(conn, "UPDATE sequences SET value = value + 1 WHERE name IN (?1, ?2)",
                            {first, second}));
  auto stmt = conn.Prepare(
      "SELECT (SELECT value FROM sequences WHERE name = ?1), "
      "(SELECT value FROM sequences WHERE name = ?2)");
  if (!stmt.ok()) return stmt.error();
  stmt->BindAll({first, second});
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  if (!*row || stmt->ColumnIsNull(0) || stmt->ColumnIsNull(1)) {
    return Error::Internal(std::string("sequence ") + first + " or " + second + " is missing");
  }
  return std::make_pair(stmt->ColumnInt(0), stmt->ColumnInt(1));
}

void WhereClause::Add(const std::string& condition, std::vector<Value> values) {
  sql_ += sql_.empty() ? "WHERE " : " AND ";
  sql_ += condition;
  for (Value& value : values) values_.push_back(std::move(value));
}

int WhereClause::BindTo(Statement& stmt, int first) const {
  for (const Value& value : values_) {
    if (const auto* integer = std::get_if<int64_t>(&value)) {
      stmt.Bind(first++, *integer);
    } else {
      stmt.Bind(first++, std::string_view(std::get<std::string>(value)));
    }
  }
  return first;
}

Status InsertAuditEntry(Connection& conn, const keys::AuditEntry& entry) {
  return RunSql(conn,
                "INSERT INTO audit_log (org_id, at, actor, actor_name, action, target, "
                "changes_json, request_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                {entry.org_id, entry.at, entry.actor, entry.actor_name, entry.action, entry.target,
                 entry.changes_json, entry.request_id});
}

}  // namespace keygate::store::sqlite
