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

Result<int64_t> NextSequenceValue(Connection& conn, const char* name) {
  auto stmt =
      conn.Prepare("UPDATE sequences SET value = value + 1 WHERE name = ?1 RETURNING value");
  if (!stmt.ok()) return stmt.error();
  stmt->Bind(1, std::string_view(name));
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  if (!*row) return Error::Internal(std::string("sequence ") + name + " is missing");
  const int64_t value = stmt->ColumnInt(0);
  // RETURNING rows are produced after the update ran; finish the statement before reuse.
  KG_RETURN_IF_ERROR(stmt->Run());
  return value;
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
