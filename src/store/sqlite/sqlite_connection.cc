#include "store/sqlite/sqlite_connection.h"

#include <mutex>
#include <utility>

namespace keygate::store::sqlite {
namespace {

// SQL named in an error by its start: a whole script (a schema migration) or a query grown by
// its filters buried the cause, and filled the log.
std::string ShownSql(const std::string& sql) {
  constexpr size_t kShownSql = 80;
  if (sql.size() <= kShownSql) return sql;
  return sql.substr(0, kShownSql) + "... (" + std::to_string(sql.size()) + " bytes of SQL)";
}

std::string Describe(std::string_view context, std::string_view sqlite_message) {
  std::string out(context);
  out += ": ";
  out += sqlite_message;
  return out;
}

// Result codes that mean the SQL itself (or our use of the API) is wrong: keygate's own
// fault, so Internal rather than a storage fault.
bool IsMisuse(int primary_rc) {
  switch (primary_rc) {
    case SQLITE_ERROR:
    case SQLITE_INTERNAL:
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_TOOBIG:
    case SQLITE_SCHEMA:
    case SQLITE_FORMAT:
    case SQLITE_AUTH:
      return true;
    default:
      return false;
  }
}

}  // namespace

// SQLite keeps memory statistics by default, behind one process-wide mutex that every
// allocation of every connection takes: the writer and the readers then queue on it. The
// store reads no statistics, so they are switched off, once, before SQLite initializes (the
// call is refused, harmlessly, if something in the process initialized SQLite first).
void DisableSqliteMemoryStatistics() {
  static std::once_flag once;
  std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

Error ErrorFromSqlite(int extended_rc, std::string_view sqlite_message, std::string_view context) {
  const int primary_rc = extended_rc & 0xff;
  std::string message = Describe(context, sqlite_message);
  if (primary_rc == SQLITE_CONSTRAINT) {
    switch (extended_rc) {
      case SQLITE_CONSTRAINT_UNIQUE:
      case SQLITE_CONSTRAINT_PRIMARYKEY:
        return Error::Conflict(std::move(message));
      case SQLITE_CONSTRAINT_FOREIGNKEY:
        return Error::NotFound(std::move(message));
      default:
        // NOT NULL and CHECK violations mean keygate built a bad row.
        return Error::Internal(std::move(message));
    }
  }
  if (IsMisuse(primary_rc)) return Error::Internal(std::move(message));
  // Everything else is the storage failing us: I/O, disk full, busy, locked, corrupt, out of
  // memory, read-only file, cannot open.
  return Error::Unavailable("sqlite " + message);
}

// ---------------------------------------------------------------- Statement

Statement::Statement(Statement&& other) noexcept
    : conn_(other.conn_), stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void Statement::Bind(int index, int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

void Statement::Bind(int index, std::string_view value) {
  const int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

void Statement::BindUnowned(int index, std::string_view value) {
  const int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_STATIC, SQLITE_UTF8);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

void Statement::Bind(int index, const std::optional<int64_t>& value) {
  if (value.has_value()) {
    Bind(index, *value);
  } else {
    BindNull(index);
  }
}

void Statement::BindNull(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

void Statement::BindTextOrNull(int index, std::string_view value) {
  if (value.empty()) {
    BindNull(index);
  } else {
    Bind(index, value);
  }
}

void Statement::BindValue(int index, const SqlValue& value) {
  switch (value.kind()) {
    case SqlValue::Kind::kNull:
      BindNull(index);
      return;
    case SqlValue::Kind::kInteger:
      Bind(index, value.integer());
      return;
    case SqlValue::Kind::kText:
      Bind(index, value.text());
      return;
  }
}

void Statement::BindAll(std::initializer_list<SqlValue> values) {
  int index = 1;
  for (const SqlValue& value : values) BindValue(index++, value);
}

Result<bool> Statement::Step() {
  if (bind_rc_ != SQLITE_OK) {
    return ErrorFromSqlite(bind_rc_, sqlite3_errstr(bind_rc_), "bind parameter");
  }
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return conn_->LastError(rc, sqlite3_sql(stmt_));
}

Status Statement::Run() {
  while (true) {
    auto row = Step();
    if (!row.ok()) return row.error();
    if (!*row) return OkStatus();
  }
}

int64_t Statement::ColumnInt(int col) const { return sqlite3_column_int64(stmt_, col); }

std::optional<int64_t> Statement::ColumnOptionalInt(int col) const {
  if (ColumnIsNull(col)) return std::nullopt;
  return ColumnInt(col);
}

std::string Statement::ColumnText(int col) const {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (text == nullptr) return {};
  return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

// ---------------------------------------------------------------- Connection

Result<std::unique_ptr<Connection>> Connection::Open(const std::string& path, int flags,
                                                     int busy_timeout_ms, const char* vfs) {
  DisableSqliteMemoryStatistics();
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, vfs);
  if (rc != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return Error::Unavailable("cannot open sqlite database " + path + ": " + message);
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  auto conn = std::unique_ptr<Connection>(new Connection(db, path));
  // Ephemeral tables and statement journals otherwise go to a file in /var/tmp that SQLite
  // creates and unlinks per statement: a create, an unlink and their file-system journal
  // commit on every write, which also lengthens the next fsync.
  KG_RETURN_IF_ERROR(conn->Exec("PRAGMA temp_store=MEMORY"));
  return conn;
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

Status Connection::Exec(const std::string& sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message);
  if (rc == SQLITE_OK) return OkStatus();
  std::string text = message != nullptr ? message : sqlite3_errstr(rc);
  sqlite3_free(message);
  return ErrorFromSqlite(sqlite3_extended_errcode(db_), text, ShownSql(sql));
}

Result<std::string> Connection::PragmaValue(const std::string& pragma) {
  auto stmt = Prepare(pragma);
  if (!stmt.ok()) return stmt.error();
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  if (!*row) return Error::Internal(pragma + " returned no value");
  return stmt->ColumnText(0);
}

Result<Statement> Connection::Prepare(const std::string& sql) {
  if (auto it = statements_.find(sql); it != statements_.end()) {
    return Statement(this, it->second);
  }
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size() + 1),
                                    SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return LastError(rc, "prepare " + ShownSql(sql));
  }
  statements_.emplace(sql, stmt);
  return Statement(this, stmt);
}

Error Connection::LastError(int rc, std::string_view context) const {
  // The connection's extended code is more precise than the primary `rc` a call returned.
  const int extended = sqlite3_extended_errcode(db_);
  const int code = (extended & 0xff) == (rc & 0xff) ? extended : rc;
  return ErrorFromSqlite(code, sqlite3_errmsg(db_), context);
}

// ---------------------------------------------------------------- Transaction

Transaction::~Transaction() {
  if (!open_) return;
  // Nothing to report to: a failed rollback leaves SQLite to roll back on the next BEGIN.
  (void)conn_.Exec("ROLLBACK");
}

Status Transaction::Begin(const std::string& begin_sql) {
  auto stmt = conn_.Prepare(begin_sql);
  if (!stmt.ok()) return stmt.error();
  KG_RETURN_IF_ERROR(stmt->Run());
  open_ = true;
  return OkStatus();
}

Status Transaction::Commit() {
  auto stmt = conn_.Prepare("COMMIT");
  if (!stmt.ok()) return stmt.error();
  Status status = stmt->Run();
  if (status.ok()) open_ = false;
  return status;
}

}  // namespace keygate::store::sqlite
