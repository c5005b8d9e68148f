// Versioned schema of the SQLite store. Migrations are an ordered list of steps in code; each
// is applied once, in its own transaction, and recorded in
// schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER) with the time it ran.
// A database whose recorded version is higher than the last step known here was written by a
// newer keygate and is refused rather than misread.
//
// Also owns the knowledge of which constraint guards which wire field, so that a UNIQUE
// violation becomes a Conflict naming that field (spec §1: names unique in the org).
//
// Thread safety: ApplyMigrations runs on one connection, before the store serves anything.
#pragma once

#include <cstdint>
#include <span>

#include "common/clock.h"
#include "common/status.h"
#include "store/sqlite/sqlite_connection.h"

namespace keygate::store::sqlite {

struct Migration {
  int64_t version;          // strictly increasing, from 1, no gaps
  const char* description;  // one line, for operators
  const char* sql;          // statements run inside the migration's transaction
};

// Every migration keygate knows, oldest first.
std::span<const Migration> Migrations();
// The version the newest known migration brings a database to.
int64_t LatestSchemaVersion();

// Brings the database on `conn` up to LatestSchemaVersion(), stamping each applied step with
// `clock.NowMs()`. Safe to run again: applied steps are skipped. Returns Unavailable naming
// both versions if the database is newer than this keygate, or the mapped Error of a failing
// step (that step is rolled back; earlier steps stay applied).
// REQUIRES: `conn` is writable.
Status ApplyMigrations(Connection& conn, const Clock& clock);

// The highest version recorded in schema_migrations, 0 for a fresh database.
// REQUIRES: schema_migrations exists.
Result<int64_t> CurrentSchemaVersion(Connection& conn);

// OK, or Unavailable naming both versions if the database's schema is newer than this keygate
// knows. Reads only. REQUIRES: schema_migrations exists.
Status CheckSchemaNotNewer(Connection& conn);

// Turns the Conflict/NotFound of a violated constraint into one that names the wire field
// ("name" for provisioning keys, "project_name" for projects, ...). Other errors pass
// through unchanged.
Error DescribeConstraintError(const Error& error);

}  // namespace keygate::store::sqlite
