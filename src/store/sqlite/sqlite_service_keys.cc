// SqliteStore: service keys (insert, update, rotate, reads, the filtered and paged list).
#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "store/sqlite/row_codec.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/store_statements.h"

namespace keygate::store {

using sqlite::Connection;
using sqlite::RunSql;
using sqlite::SqlValue;
using sqlite::Statement;
using sqlite::WhereClause;

namespace {

constexpr int64_t kMaxPageSize = 1000;
constexpr const char* kSeqSequence = "service_key_seq";
constexpr const char* kVersionSequence = "service_key_version";

// Immutable columns at ?1..?10; the mutable ones follow from ?11 (row_codec.h order).
constexpr int kFirstMutableInsertParam = 11;
constexpr const char* kInsertServiceKeySql =
    "INSERT INTO service_keys (hash, seq, version, org_id, masked, source, created_by, lineage, "
    "created_at, last_used_at, name, project_id, models_json, credit_limit, reset_interval, "
    "rpm_limit, tpm_limit, expires_at, disabled, metadata_json, tags_json, "
    "include_byok_in_limit, creator_user_id, external_user, updated_at, revoke_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, "
    "?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

// The mutable columns at ?1..?16, then version, hash and org_id.
constexpr int kUpdateVersionParam = sqlite::kMutableServiceKeyFieldCount + 1;
constexpr const char* kUpdateServiceKeySql =
    "UPDATE service_keys SET name = ?1, project_id = ?2, models_json = ?3, credit_limit = ?4, "
    "reset_interval = ?5, rpm_limit = ?6, tpm_limit = ?7, expires_at = ?8, disabled = ?9, "
    "metadata_json = ?10, tags_json = ?11, include_byok_in_limit = ?12, creator_user_id = ?13, "
    "external_user = ?14, updated_at = ?15, revoke_at = ?16, version = ?17 "
    "WHERE hash = ?18 AND org_id = ?19";

std::string SelectKeys(const std::string& rest) {
  return std::string("SELECT ") + sqlite::kServiceKeyColumns + " FROM " + sqlite::kServiceKeyFrom +
         " " + rest;
}

Status InsertTags(Connection& conn, const std::string& hash, const std::vector<std::string>& tags) {
  for (const std::string& tag : tags) {
    KG_RETURN_IF_ERROR(RunSql(
        conn, "INSERT OR IGNORE INTO service_key_tags (hash, tag) VALUES (?1, ?2)", {hash, tag}));
  }
  return OkStatus();
}

// A key may only sit in a project of its own organization.
Status CheckProjectInOrg(Connection& conn, const keys::ServiceKey& key) {
  if (key.project_id.empty()) return OkStatus();
  return sqlite::ReadOneRow(conn, "SELECT 1 FROM projects WHERE id = ?1 AND org_id = ?2",
                            {key.project_id, key.org_id}, "project not found",
                            [](const Statement&) { return OkStatus(); });
}

Status InsertProjectIfNew(Connection& conn, const std::optional<keys::Project>& project) {
  if (!project.has_value()) return OkStatus();
  return RunSql(conn, "INSERT INTO projects (id, org_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                {project->id, project->org_id, project->name, project->created_at});
}

// Inserts the row and its tags. Returns the version it was given.
Result<int64_t> InsertKeyRow(Connection& conn, const keys::ServiceKey& key) {
  KG_RETURN_IF_ERROR(CheckProjectInOrg(conn, key));
  auto seq = sqlite::NextSequenceValue(conn, kSeqSequence);
  if (!seq.ok()) return seq.error();
  auto version = sqlite::NextSequenceValue(conn, kVersionSequence);
  if (!version.ok()) return version.error();
  auto stmt = conn.Prepare(kInsertServiceKeySql);
  if (!stmt.ok()) return stmt.error();
  stmt->BindAll({key.hash, *seq, *version, key.org_id, key.masked, keys::ToString(key.source),
                 key.created_by, key.lineage, key.created_at, key.last_used_at});
  sqlite::BindMutableServiceKeyFields(*stmt, kFirstMutableInsertParam, key);
  if (Status inserted = stmt->Run(); !inserted.ok()) {
    return sqlite::DescribeConstraintError(inserted.error());
  }
  KG_RETURN_IF_ERROR(InsertTags(conn, key.hash, key.tags));
  return *version;
}

// Replaces the mutable columns and the tags. Returns the version it was given; NotFound if
// the org has no key with this hash.
Result<int64_t> UpdateKeyRow(Connection& conn, const keys::ServiceKey& key) {
  KG_RETURN_IF_ERROR(CheckProjectInOrg(conn, key));
  auto version = sqlite::NextSequenceValue(conn, kVersionSequence);
  if (!version.ok()) return version.error();
  auto stmt = conn.Prepare(kUpdateServiceKeySql);
  if (!stmt.ok()) return stmt.error();
  sqlite::BindMutableServiceKeyFields(*stmt, 1, key);
  stmt->Bind(kUpdateVersionParam, *version);
  stmt->Bind(kUpdateVersionParam + 1, key.hash);
  stmt->Bind(kUpdateVersionParam + 2, key.org_id);
  if (Status updated = stmt->Run(); !updated.ok()) {
    return sqlite::DescribeConstraintError(updated.error());
  }
  if (sqlite3_changes64(conn.db()) == 0) return Error::NotFound("service key not found");
  KG_RETURN_IF_ERROR(RunSql(conn, "DELETE FROM service_key_tags WHERE hash = ?1", {key.hash}));
  KG_RETURN_IF_ERROR(InsertTags(conn, key.hash, key.tags));
  return *version;
}

Status CollectKeys(Connection& conn, const std::string& sql, std::initializer_list<SqlValue> params,
                   std::vector<keys::ServiceKey>* out) {
  return sqlite::ForEachRow(conn, sql, params, [out](const Statement& row) -> Status {
    auto key = sqlite::ReadServiceKey(row);
    if (!key.ok()) return key.error();
    out->push_back(std::move(*key));
    return OkStatus();
  });
}

}  // namespace

// ---------------------------------------------------------------- writes

Status SqliteStore::InsertServiceKey(keys::ServiceKey* key,
                                     const std::optional<keys::Project>& new_project,
                                     const keys::AuditEntry& audit) {
  // An original key is its own lineage (keys/model.h).
  if (key->lineage.empty()) key->lineage = key->hash;
  int64_t version = 0;
  KG_RETURN_IF_ERROR(Write([&](Connection& conn) -> Status {
    KG_RETURN_IF_ERROR(InsertProjectIfNew(conn, new_project));
    auto inserted = InsertKeyRow(conn, *key);
    if (!inserted.ok()) return inserted.error();
    version = *inserted;
    return sqlite::InsertAuditEntry(conn, audit);
  }));
  key->version = version;
  return OkStatus();
}

Status SqliteStore::UpdateServiceKey(keys::ServiceKey* key,
                                     const std::optional<keys::Project>& new_project,
                                     const keys::AuditEntry& audit) {
  int64_t version = 0;
  KG_RETURN_IF_ERROR(Write([&](Connection& conn) -> Status {
    KG_RETURN_IF_ERROR(InsertProjectIfNew(conn, new_project));
    auto updated = UpdateKeyRow(conn, *key);
    if (!updated.ok()) return updated.error();
    version = *updated;
    return sqlite::InsertAuditEntry(conn, audit);
  }));
  key->version = version;
  return OkStatus();
}

Status SqliteStore::RotateServiceKey(keys::ServiceKey* old_key, keys::ServiceKey* new_key,
                                     const keys::AuditEntry& audit) {
  if (new_key->lineage.empty()) new_key->lineage = old_key->lineage;
  int64_t old_version = 0;
  int64_t new_version = 0;
  // spec §3 rotation: both rows in one savepoint, so the old key is never revoked without its
  // replacement existing, nor the other way round.
  KG_RETURN_IF_ERROR(Write([&](Connection& conn) -> Status {
    auto updated = UpdateKeyRow(conn, *old_key);
    if (!updated.ok()) return updated.error();
    auto inserted = InsertKeyRow(conn, *new_key);
    if (!inserted.ok()) return inserted.error();
    old_version = *updated;
    new_version = *inserted;
    return sqlite::InsertAuditEntry(conn, audit);
  }));
  old_key->version = old_version;
  new_key->version = new_version;
  return OkStatus();
}

// ---------------------------------------------------------------- point reads

Result<keys::ServiceKey> SqliteStore::GetServiceKey(const std::string& hash) {
  keys::ServiceKey key;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return sqlite::ReadOneRow(conn, SelectKeys("WHERE k.hash = ?1"), {hash},
                              "service key not found", [&](const Statement& row) -> Status {
                                auto read = sqlite::ReadServiceKey(row);
                                if (!read.ok()) return read.error();
                                key = std::move(*read);
                                return OkStatus();
                              });
  }));
  return key;
}

Result<std::vector<keys::ServiceKey>> SqliteStore::ServiceKeysChangedSince(int64_t after_version,
                                                                           int64_t max) {
  if (max < 1) return Error::InvalidArgument("max must be at least 1", "max");
  std::vector<keys::ServiceKey> out;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return CollectKeys(conn, SelectKeys("WHERE k.version > ?1 ORDER BY k.version LIMIT ?2"),
                       {after_version, max}, &out);
  }));
  return out;
}

Result<std::vector<keys::ServiceKey>> SqliteStore::AllLiveServiceKeys(UnixMillis now) {
  std::vector<keys::ServiceKey> out;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return CollectKeys(conn,
                       SelectKeys("WHERE k.revoke_at IS NULL OR k.revoke_at > ?1 ORDER BY k.seq"),
                       {now}, &out);
  }));
  return out;
}

// ---------------------------------------------------------------- the list

namespace {

Status ValidateQuery(const ServiceKeyQuery& query) {
  if (query.org_id.empty()) return Error::InvalidArgument("org_id is required", "org_id");
  if (query.limit < 1 || query.limit > kMaxPageSize) {
    return Error::InvalidArgument("limit must be between 1 and 1000", "limit");
  }
  if (query.offset < 0) return Error::InvalidArgument("offset must be >= 0", "offset");
  return OkStatus();
}

// LIKE pattern matching `text` anywhere, with its own % and _ taken literally.
std::string ContainsPattern(std::string_view text) {
  std::string pattern = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') pattern.push_back('\\');
    pattern.push_back(c);
  }
  pattern.push_back('%');
  return pattern;
}

// spec §1 status at `now`; disabled wins over expired.
void AddStatusFilter(keys::KeyStatus status, UnixMillis now, WhereClause* where) {
  switch (status) {
    case keys::KeyStatus::kActive:
      where->Add("k.disabled = 0 AND (k.expires_at IS NULL OR k.expires_at > ?)", {now});
      return;
    case keys::KeyStatus::kDisabled:
      where->Add("k.disabled = 1");
      return;
    case keys::KeyStatus::kExpired:
      where->Add("k.disabled = 0 AND k.expires_at <= ?", {now});
      return;
  }
}

void AddTagsFilter(std::vector<std::string> tags, WhereClause* where) {
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  // All of them: the keys that have as many of the (distinct) tags as were asked for.
  where->Add(
      "k.hash IN (SELECT t.hash FROM service_key_tags t "
      "WHERE t.tag IN (SELECT value FROM json_each(?)) GROUP BY t.hash HAVING COUNT(*) = ?)",
      {sqlite::EncodeStringArray(tags), static_cast<int64_t>(tags.size())});
}

// Every filter of the query except paging. Revoked keys never show (deleted, or past their
// rotation grace period).
WhereClause BuildKeyFilter(const ServiceKeyQuery& query) {
  WhereClause where;
  where.Add("k.org_id = ?", {query.org_id});
  where.Add("(k.revoke_at IS NULL OR k.revoke_at > ?)", {query.now});
  if (query.source.has_value()) where.Add("k.source = ?", {keys::ToString(*query.source)});
  if (!query.project_id.empty()) where.Add("k.project_id = ?", {query.project_id});
  if (!query.include_disabled) where.Add("k.disabled = 0");
  if (query.status.has_value()) AddStatusFilter(*query.status, query.now, &where);
  if (!query.search.empty()) {
    // SQLite's LIKE is case-insensitive (for ASCII) by default.
    where.Add("k.name LIKE ? ESCAPE '\\'", {ContainsPattern(query.search)});
  }
  if (!query.tags.empty()) AddTagsFilter(query.tags, &where);
  return where;
}

// The creation position of the cursor key; it must be a key of the org (in any state).
Result<int64_t> CursorSeq(Connection& conn, const ServiceKeyQuery& query) {
  int64_t seq = 0;
  Status found = sqlite::ReadOneRow(
      conn, "SELECT seq FROM service_keys WHERE hash = ?1 AND org_id = ?2",
      {query.starting_after, query.org_id}, "cursor not found", [&](const Statement& row) {
        seq = row.ColumnInt(0);
        return OkStatus();
      });
  if (found.ok()) return seq;
  if (found.error().code != ErrorCode::kNotFound) return found.error();
  return Error::InvalidArgument("starting_after does not name a key of this organization",
                                "starting_after");
}

// True when the query filters on nothing but its org, liveness and perhaps disabled.
bool IsCountedByTriggers(const ServiceKeyQuery& query) {
  return !query.source.has_value() && query.project_id.empty() && !query.status.has_value() &&
         query.search.empty() && query.tags.empty();
}

// Keys never revoked (counters kept by triggers) plus those still in a grace period: two
// index lookups instead of a scan of the whole org.
Result<int64_t> CountFromCounters(Connection& conn, const ServiceKeyQuery& query) {
  const std::string sql =
      query.include_disabled
          ? "SELECT (SELECT COALESCE(SUM(unrevoked), 0) FROM org_key_counts WHERE org_id = ?1) + "
            "(SELECT COUNT(*) FROM service_keys WHERE org_id = ?1 AND revoke_at > ?2)"
          : "SELECT (SELECT COALESCE(SUM(unrevoked_enabled), 0) FROM org_key_counts "
            "WHERE org_id = ?1) + (SELECT COUNT(*) FROM service_keys "
            "WHERE org_id = ?1 AND revoke_at > ?2 AND disabled = 0)";
  int64_t total = 0;
  KG_RETURN_IF_ERROR(sqlite::ReadOneRow(conn, sql, {query.org_id, query.now}, "no count",
                                        [&](const Statement& row) {
                                          total = row.ColumnInt(0);
                                          return OkStatus();
                                        }));
  return total;
}

Result<int64_t> CountKeys(Connection& conn, const ServiceKeyQuery& query,
                          const WhereClause& where) {
  if (IsCountedByTriggers(query)) return CountFromCounters(conn, query);
  auto stmt = conn.Prepare("SELECT COUNT(*) FROM service_keys k " + where.sql());
  if (!stmt.ok()) return stmt.error();
  where.BindTo(*stmt, 1);
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  return *row ? stmt->ColumnInt(0) : 0;
}

// One page in creation order (or its reverse), after the cursor and the offset. Reads one row
// more than asked to learn has_more.
Status FetchPage(Connection& conn, WhereClause where, const ServiceKeyQuery& query,
                 std::optional<int64_t> cursor_seq, ServiceKeyPage* page) {
  if (cursor_seq.has_value()) {
    where.Add(query.newest_first ? "k.seq < ?" : "k.seq > ?", {*cursor_seq});
  }
  auto stmt = conn.Prepare(SelectKeys(where.sql() + " ORDER BY k.seq " +
                                      (query.newest_first ? "DESC" : "ASC") + " LIMIT ? OFFSET ?"));
  if (!stmt.ok()) return stmt.error();
  const int next = where.BindTo(*stmt, 1);
  stmt->Bind(next, query.limit + 1);
  stmt->Bind(next + 1, query.offset);
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    auto key = sqlite::ReadServiceKey(*stmt);
    if (!key.ok()) return key.error();
    page->keys.push_back(std::move(*key));
  }
  page->has_more = static_cast<int64_t>(page->keys.size()) > query.limit;
  if (page->has_more) page->keys.pop_back();
  return OkStatus();
}

}  // namespace

Result<ServiceKeyPage> SqliteStore::ListServiceKeys(const ServiceKeyQuery& query) {
  KG_RETURN_IF_ERROR(ValidateQuery(query));
  const WhereClause filter = BuildKeyFilter(query);
  ServiceKeyPage page;
  // One read transaction: the total and the page come from the same snapshot.
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    std::optional<int64_t> cursor_seq;
    if (!query.starting_after.empty()) {
      auto seq = CursorSeq(conn, query);
      if (!seq.ok()) return seq.error();
      cursor_seq = *seq;
    }
    auto total = CountKeys(conn, query, filter);
    if (!total.ok()) return total.error();
    page.total = *total;
    return FetchPage(conn, filter, query, cursor_seq, &page);
  }));
  return page;
}

}  // namespace keygate::store
