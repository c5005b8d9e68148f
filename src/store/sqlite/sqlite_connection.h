// A thin RAII layer over one sqlite3 connection for the SQLite store: opening with flags and
// pragmas, a per-connection cache of prepared statements, borrowed statements that reset
// themselves, and the one mapping from SQLite result codes to keygate Errors.
//
// Error policy (shared/style.md "Errors"): storage faults (I/O, disk full, busy, corrupt,
// cannot open) are Unavailable; a UNIQUE or PRIMARY KEY violation is Conflict and a FOREIGN
// KEY violation NotFound (callers refine both with the field at fault); a malformed statement
// or any other misuse is Internal. Never InvalidArgument.
//
// Thread safety: a Connection (and every Statement borrowed from it) is used by one thread at
// a time; connections are opened SQLITE_OPEN_NOMUTEX. The store hands each connection to one
// owner at a time (the writer thread, or one read lease).
#pragma once

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace keygate::store::sqlite {

// Maps a SQLite (extended) result code and message to a keygate Error, following the policy
// in the file comment. `context` says what was being done ("insert provisioning key").
Error ErrorFromSqlite(int extended_rc, std::string_view sqlite_message, std::string_view context);

// SQLite keeps memory statistics by default, behind one process-wide mutex that every
// allocation of every connection takes. Switches them off, once, before SQLite initializes;
// anything that may initialize SQLite (opening a connection, finding a VFS) calls this first.
// The call is refused, harmlessly, if something else in the process initialized SQLite.
void DisableSqliteMemoryStatistics();

class Connection;

// One value to bind: NULL, an integer or text. Implicit from the C++ types the store binds,
// so that a statement's parameters can be listed in one braced list.
// Text is borrowed: the referenced characters must outlive the Bind call (SQLite copies).
class SqlValue {
 public:
  enum class Kind {
    kNull,     // SQL NULL
    kInteger,  // INTEGER
    kText,     // TEXT
  };
  SqlValue(std::nullptr_t) {}                                               // NOLINT
  SqlValue(int64_t value) : kind_(Kind::kInteger), integer_(value) {}       // NOLINT
  SqlValue(int value) : kind_(Kind::kInteger), integer_(value) {}           // NOLINT
  SqlValue(std::string_view value) : kind_(Kind::kText), text_(value) {}    // NOLINT
  SqlValue(const std::string& value) : kind_(Kind::kText), text_(value) {}  // NOLINT
  SqlValue(const char* value) : kind_(Kind::kText), text_(value) {}         // NOLINT
  SqlValue(const std::optional<int64_t>& value)                             // NOLINT
      : kind_(value ? Kind::kInteger : Kind::kNull), integer_(value.value_or(0)) {}
  // 1 or 0.
  static SqlValue Bool(bool value) { return SqlValue(int64_t{value ? 1 : 0}); }
  // NULL for "", else the text.
  static SqlValue TextOrNull(std::string_view value) {
    return value.empty() ? SqlValue(nullptr) : SqlValue(value);
  }

  Kind kind() const { return kind_; }
  int64_t integer() const { return integer_; }
  std::string_view text() const { return text_; }

 private:
  Kind kind_ = Kind::kNull;
  int64_t integer_ = 0;
  std::string_view text_;
};

// A cached prepared statement borrowed from its Connection. Bind errors are remembered and
// reported by the next Step()/Run(). Destruction resets the statement and clears its
// bindings, so the next borrower finds it fresh.
// Thread safety: as its Connection.
class Statement {
 public:
  Statement(Connection* conn, sqlite3_stmt* stmt) : conn_(conn), stmt_(stmt) {}
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in sqlite3_bind_*.
  void Bind(int index, int64_t value);
  void Bind(int index, std::string_view value);
  // As Bind, without a copy: `value` must stay valid until this Statement is destroyed (which
  // clears its bindings). For hot batch inserts.
  void BindUnowned(int index, std::string_view value);
  void Bind(int index, const std::optional<int64_t>& value);  // nullopt binds NULL
  void BindNull(int index);
  // Binds NULL for an empty string, else the text.
  void BindTextOrNull(int index, std::string_view value);
  void BindValue(int index, const SqlValue& value);
  // Binds `values` to parameters 1, 2, ...
  void BindAll(std::initializer_list<SqlValue> values);

  // Advances one row. Returns true when a row is ready, false when the statement is done, or
  // the mapped Error (see ErrorFromSqlite) on failure, including an earlier bind failure.
  Result<bool> Step();
  // Steps until done, discarding rows. Returns the mapped Error on failure.
  Status Run();

  // Column accessors for the current row; 0-based. NULL reads as 0, nullopt or "".
  int64_t ColumnInt(int col) const;
  std::optional<int64_t> ColumnOptionalInt(int col) const;
  std::string ColumnText(int col) const;
  bool ColumnIsNull(int col) const;

 private:
  Connection* conn_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

class Connection {
 public:
  // Opens `path` with sqlite3_open_v2(`flags` | SQLITE_OPEN_NOMUTEX) through the VFS named
  // `vfs` (nullptr: the default one) and sets busy_timeout. Returns Unavailable naming the
  // path and SQLite's message if it cannot be opened.
  static Result<std::unique_ptr<Connection>> Open(const std::string& path, int flags,
                                                  int busy_timeout_ms, const char* vfs = nullptr);
  // Finalizes every cached statement and closes the connection.
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  sqlite3* db() const { return db_; }
  const std::string& path() const { return path_; }

  // Runs `sql` (one or more statements, no results). Returns the mapped Error on failure.
  Status Exec(const std::string& sql);
  // Runs a PRAGMA that answers one value and returns that value as text.
  Result<std::string> PragmaValue(const std::string& pragma);
  // The cached prepared statement for `sql`, prepared on first use. Returns the mapped Error
  // (Internal for a malformed statement) if it cannot be prepared.
  // REQUIRES: the same statement is not borrowed twice at once.
  Result<Statement> Prepare(const std::string& sql);
  // The Error for a result code just returned by this connection, with SQLite's message.
  Error LastError(int rc, std::string_view context) const;

 private:
  Connection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  sqlite3* db_;
  std::string path_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

// An explicit transaction on one connection: Begin() starts it, Commit() ends it, and
// destruction without Commit() rolls it back. Used for consistent multi-statement reads.
class Transaction {
 public:
  explicit Transaction(Connection& conn) : conn_(conn) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // `begin_sql` is "BEGIN", "BEGIN IMMEDIATE"... Returns the mapped Error on failure.
  Status Begin(const std::string& begin_sql = "BEGIN");
  Status Commit();

 private:
  Connection& conn_;
  bool open_ = false;
};

}  // namespace keygate::store::sqlite
