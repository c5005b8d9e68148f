// How the model's structs map to SQLite rows: the column lists, the readers that turn a row
// into a struct, the binders for the mutable columns of a service key, and the small JSON
// codec for the string lists kept as JSON text (models, tags).
//
// Rows hold INTEGER micro-dollars and INTEGER ms since the epoch; NULL stands for an unset
// optional and for an empty optional-like string (project_id, metadata, creator_user_id...).
//
// Thread safety: pure functions over a Statement owned by the caller.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "keys/model.h"
#include "store/audit_log.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/usage_store.h"

namespace keygate::store::sqlite {

// ["a","b"] with RFC 8259 string escaping.
std::string EncodeStringArray(const std::vector<std::string>& values);
// Parses a JSON array of strings (as written by EncodeStringArray, or any valid equivalent).
// Returns Internal for anything else: the column was written by keygate, so a bad value is
// corruption, not bad input.
Result<std::vector<std::string>> DecodeStringArray(std::string_view json);

// Days since the epoch (UTC) of an instant, rounding towards the past.
int64_t DayOf(UnixMillis at);

// --- service keys ---
// SELECT list of a service key row; the FROM clause aliases service_keys as k and joins its
// project as p (project_name is denormalised on read, so a renamed project shows its name).
extern const char* const kServiceKeyColumns;
extern const char* const kServiceKeyFrom;
// Reads the current row of a statement selecting kServiceKeyColumns. Internal for a
// corrupt enum or JSON column.
Result<keys::ServiceKey> ReadServiceKey(const Statement& stmt);

// Number of parameters BindMutableServiceKeyFields binds.
inline constexpr int kMutableServiceKeyFieldCount = 16;
// Binds, from parameter `first`, in this order: name, project_id, models_json, credit_limit,
// reset_interval, rpm_limit, tpm_limit, expires_at, disabled, metadata_json, tags_json,
// include_byok_in_limit, creator_user_id, external_user, updated_at, revoke_at.
void BindMutableServiceKeyFields(Statement& stmt, int first, const keys::ServiceKey& key);

// --- other rows ---
// Column lists and readers; each reader expects its own column list, in order.
extern const char* const kProvisioningKeyColumns;
keys::ProvisioningKey ReadProvisioningKey(const Statement& stmt);
extern const char* const kAuditColumns;
keys::AuditEntry ReadAuditEntry(const Statement& stmt);
// A usage record (schema version 5): the FROM clause joins a lineage root l to its chunks c,
// each chunk to its records r (json_each over c.records) and each record to its key k, so that
// a filter on l.key_hash selects one lineage.
extern const char* const kUsageColumns;
extern const char* const kUsageFrom;
UsageRecord ReadUsageRecord(const Statement& stmt);

}  // namespace keygate::store::sqlite
