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

// Tag rows are keyed by the key's creation position (so a new key's rows are appended, not
// scattered by its hash) and carry its org, so that a tag filter can page through
// (org_id, tag, seq). Repeated tags are stored once.
Status InsertTags(Connection& conn, const keys::ServiceKey& key, int64_t seq) {
  for (const std::string& tag : key.tags) {
    KG_RETURN_IF_ERROR(RunSql(conn,
                              "INSERT OR IGNORE INTO service_key_tags (hash, tag, org_id, seq) "
                              "VALUES (?1, ?2, ?3, ?4)",
                              {key.hash, tag, key.org_id, seq}));
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

// The project of a write that named one by a name unknown when it was read (spec dialects.md:
// an unknown project_name creates the project). Writes are serialized, so if another one
// created it meanwhile (two calls racing with the same new name), `key` joins that project
// rather than failing on the duplicate name.
Status InsertProjectIfNew(Connection& conn, const std::optional<keys::Project>& project,
                          keys::ServiceKey* key) {
  if (!project.has_value()) return OkStatus();
  std::string existing;
  KG_RETURN_IF_ERROR(sqlite::ForEachRow(
      conn, "SELECT id FROM projects WHERE org_id = ?1 AND name = ?2",
      {project->org_id, project->name}, [&existing](const Statement& row) {
        existing = row.ColumnText(0);
        return OkStatus();
      }));
  if (!existing.empty()) {
    if (key->project_id == project->id) key->project_id = existing;
    return OkStatus();
  }
  return RunSql(conn, "INSERT INTO projects (id, org_id, name, created_at) VALUES (?1, ?2, ?3, ?4)",
                {project->id, project->org_id, project->name, project->created_at});
}

// `audit` as it should read once InsertProjectIfNew has run: a key that joined a project
// created meanwhile names that project's id, not the one it would have created (ids are
// random and unique, so the text holds the unused one only where it names the project).
keys::AuditEntry AuditWithProject(const keys::AuditEntry& audit,
                                  const std::optional<keys::Project>& new_project,
                                  const keys::ServiceKey& key) {
  keys::AuditEntry out = audit;
  if (!new_project.has_value() || key.project_id == new_project->id) return out;
  std::string& changes = out.changes_json;
  for (size_t at = changes.find(new_project->id); at != std::string::npos;
       at = changes.find(new_project->id, at + key.project_id.size())) {
    changes.replace(at, new_project->id.size(), key.project_id);
  }
  return out;
}

// The service keys an org holds at `now` for its quota: those never revoked (service_key_counts,
// kept by triggers; disabled and expired ones included) and those in a rotation's grace period
// (which still authenticate: audit AA rotated one key a thousand times with a long grace, each
// successor uncounted). A deleted key, or one past its grace, no longer counts. Without a
// quota (0) nothing is read: 0.
Result<int64_t> KeysHeld(Connection& conn, const std::string& org_id, UnixMillis now,
                         int64_t quota) {
  int64_t held = 0;
  if (quota <= 0) return held;
  KG_RETURN_IF_ERROR(sqlite::ForEachRow(
      conn,
      "SELECT (SELECT COALESCE(SUM(unrevoked), 0) FROM service_key_counts WHERE org_id = ?1) + "
      "(SELECT COUNT(*) FROM service_keys WHERE org_id = ?1 AND revoke_at > ?2)",
      {org_id, now}, [&held](const Statement& row) {
        held = row.ColumnInt(0);
        return OkStatus();
      }));
  return held;
}

// The quota of service keys per organization (0: none), checked once a write has made its key:
// refused only if the write raised the count past the quota, so that a rotation without grace
// (one key for one) works even in an org above a quota lowered since (the review). How many
// keys the org holds is not said: a provisioning key cannot see them all.
Status CheckKeyQuota(int64_t quota, int64_t before, int64_t after) {
  if (quota <= 0 || after <= quota || after <= before) return OkStatus();
  return Error{ErrorCode::kPermissionDenied,
               "this organization holds the most service keys this gateway allows it "
               "(limits.max_service_keys_per_org, counting keys in a rotation's grace period); "
               "delete keys it no longer needs",
               {},
               "key_quota_exceeded"};
}

// The one key SelectKeys(where) finds, into `key`; NotFound if none.
Status ReadOneKey(Connection& conn, const std::string& where,
                  std::initializer_list<sqlite::SqlValue> params, keys::ServiceKey* key) {
  return sqlite::ReadOneRow(conn, SelectKeys(where), params, "service key not found",
                            [key](const Statement& row) -> Status {
                              auto read = sqlite::ReadServiceKey(row);
                              if (!read.ok()) return read.error();
                              *key = std::move(*read);
                              return OkStatus();
                            });
}

// Inserts the row and its tags. Returns the version it was given.
Result<int64_t> InsertKeyRow(Connection& conn, const keys::ServiceKey& key) {
  KG_RETURN_IF_ERROR(CheckProjectInOrg(conn, key));
  auto positions = sqlite::NextSequenceValues(conn, kSeqSequence, kVersionSequence);
  if (!positions.ok()) return positions.error();
  const auto [seq, version] = *positions;
  auto stmt = conn.Prepare(kInsertServiceKeySql);
  if (!stmt.ok()) return stmt.error();
  stmt->BindAll({key.hash, seq, version, key.org_id, key.masked, keys::ToString(key.source),
                 key.created_by, key.lineage, key.created_at, key.last_used_at});
  sqlite::BindMutableServiceKeyFields(*stmt, kFirstMutableInsertParam, key);
  if (Status inserted = stmt->Run(); !inserted.ok()) {
    return sqlite::DescribeConstraintError(inserted.error());
  }
  KG_RETURN_IF_ERROR(InsertTags(conn, key, seq));
  return version;
}

// What an update needs of the stored row: its creation position and its tags.
struct StoredKey {
  int64_t seq = 0;
  std::string tags_json;
  int64_t version = 0;
};

// NotFound if the org has no key with this hash.
Result<StoredKey> ReadStoredKey(Connection& conn, const keys::ServiceKey& key) {
  StoredKey stored;
  KG_RETURN_IF_ERROR(sqlite::ReadOneRow(
      conn, "SELECT seq, tags_json, version FROM service_keys WHERE hash = ?1 AND org_id = ?2",
      {key.hash, key.org_id}, "service key not found", [&](const Statement& row) {
        stored.seq = row.ColumnInt(0);
        stored.tags_json = row.ColumnText(1);
        stored.version = row.ColumnInt(2);
        return OkStatus();
      }));
  return stored;
}

// Replaces the mutable columns, and the tag rows if the tags changed. Returns the version it
// was given; NotFound if the org has no key with this hash; Conflict (kStaleWrite) if `key`
// was read at another version than the stored one.
Result<int64_t> UpdateKeyRow(Connection& conn, const keys::ServiceKey& key) {
  KG_RETURN_IF_ERROR(CheckProjectInOrg(conn, key));
  auto stored = ReadStoredKey(conn, key);
  if (!stored.ok()) return stored.error();
  if (key.version != 0 && stored->version != key.version) {
    return Error{ErrorCode::kConflict, "the service key changed since it was read", "",
                 store::kStaleWrite};
  }
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
  // Tag rows are the set of tags_json, so equal JSON means equal rows: most updates (limits,
  // disabling, revoking) leave them alone.
  if (stored->tags_json == sqlite::EncodeStringArray(key.tags)) return *version;
  KG_RETURN_IF_ERROR(RunSql(conn, "DELETE FROM service_key_tags WHERE seq = ?1", {stored->seq}));
  KG_RETURN_IF_ERROR(InsertTags(conn, key, stored->seq));
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
    KG_RETURN_IF_ERROR(InsertProjectIfNew(conn, new_project, key));
    auto inserted = InsertKeyRow(conn, *key);
    if (!inserted.ok()) return inserted.error();
    // On the writer thread, in the write's transaction: concurrent creates cannot pass it (a
    // refusal rolls the write back). A create adds one key.
    auto held = KeysHeld(conn, key->org_id, key->created_at, max_service_keys_per_org_);
    if (!held.ok()) return held.error();
    KG_RETURN_IF_ERROR(CheckKeyQuota(max_service_keys_per_org_, *held - 1, *held));
    version = *inserted;
    return sqlite::InsertAuditEntry(conn, AuditWithProject(audit, new_project, *key));
  }));
  key->version = version;
  return OkStatus();
}

Status SqliteStore::UpdateServiceKey(keys::ServiceKey* key,
                                     const std::optional<keys::Project>& new_project,
                                     const keys::AuditEntry& audit) {
  int64_t version = 0;
  KG_RETURN_IF_ERROR(Write([&](Connection& conn) -> Status {
    KG_RETURN_IF_ERROR(InsertProjectIfNew(conn, new_project, key));
    auto updated = UpdateKeyRow(conn, *key);
    if (!updated.ok()) return updated.error();
    version = *updated;
    return sqlite::InsertAuditEntry(conn, AuditWithProject(audit, new_project, *key));
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
    auto held_before =
        KeysHeld(conn, new_key->org_id, new_key->created_at, max_service_keys_per_org_);
    if (!held_before.ok()) return held_before.error();
    auto updated = UpdateKeyRow(conn, *old_key);
    if (!updated.ok()) return updated.error();
    auto inserted = InsertKeyRow(conn, *new_key);
    if (!inserted.ok()) return inserted.error();
    // The old key counts while in its grace period: a rotation with one adds a key; one
    // without replaces a key one for one, and is never refused.
    auto held = KeysHeld(conn, new_key->org_id, new_key->created_at, max_service_keys_per_org_);
    if (!held.ok()) return held.error();
    KG_RETURN_IF_ERROR(CheckKeyQuota(max_service_keys_per_org_, *held_before, *held));
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
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return ReadOneKey(conn, "WHERE k.hash = ?1", {hash}, &key);
  }));
  return key;
}

Result<keys::ServiceKey> SqliteStore::GetServiceKeyOfOrg(const std::string& org_id,
                                                         const std::string& hash) {
  keys::ServiceKey key;
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return ReadOneKey(conn, "WHERE k.hash = ?1 AND k.org_id = ?2", {hash, org_id}, &key);
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

std::vector<std::string> DistinctTags(std::vector<std::string> tags) {
  std::sort(tags.begin(), tags.end());
  tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
  return tags;
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

// The filters on a key's disabled flag and expiry (include_disabled and status).
void AddStateFilters(const ServiceKeyQuery& query, WhereClause* where) {
  if (!query.include_disabled) where->Add("k.disabled = 0");
  if (query.status.has_value()) AddStatusFilter(*query.status, query.now, where);
}

// The keys a counter row stands for: the org's, of the query's source if it names one, with
// `tag` if it is not empty.
void AddScopeFilters(const ServiceKeyQuery& query, const std::string& tag, WhereClause* where) {
  where->Add("k.org_id = ?", {query.org_id});
  if (query.source.has_value()) where->Add("k.source = ?", {keys::ToString(*query.source)});
  if (!tag.empty()) {
    where->Add("EXISTS (SELECT 1 FROM service_key_tags o WHERE o.seq = k.seq AND o.tag = ?)",
               {tag});
  }
}

// Every filter on the key row except tags. Revoked keys never show (deleted, or past their
// rotation grace period).
void AddKeyFilters(const ServiceKeyQuery& query, WhereClause* where) {
  AddScopeFilters(query, "", where);
  where->Add("(k.revoke_at IS NULL OR k.revoke_at > ?)", {query.now});
  if (!query.project_id.empty()) where->Add("k.project_id = ?", {query.project_id});
  AddStateFilters(query, where);
  if (!query.search.empty()) {
    // SQLite's LIKE is case-insensitive (for ASCII) by default.
    where->Add("k.name LIKE ? ESCAPE '\\'", {ContainsPattern(query.search)});
  }
}

// How the keys of a query are found, in creation order.
struct KeyScan {
  std::string from;        // FROM clause, without the project join; the key is aliased k
  std::string seq_column;  // the creation position the scan is ordered by
  WhereClause where;       // every filter of the query
  // Every filter reads columns of a covering index ordered by seq ((org_id, seq, ...) or
  // (project_id, org_id, seq, ...)), so rows can be skipped without being loaded.
  bool filters_in_index = false;
};

// Without tags the scan walks (org_id, seq). With tags it walks the rows of one of them
// (`driving_tag`) through (org_id, tag, seq), so a page stops after `limit` matches instead
// of first collecting every key that has the tags; the other tags are checked per key.
KeyScan BuildScan(const ServiceKeyQuery& query, const std::vector<std::string>& tags,
                  const std::string& driving_tag) {
  KeyScan scan;
  if (tags.empty()) {
    scan.from = "service_keys k";
    scan.seq_column = "k.seq";
    AddKeyFilters(query, &scan.where);
    scan.filters_in_index = query.search.empty();
    return scan;
  }
  // CROSS JOIN keeps the tag rows as the outer loop, whatever the planner would guess.
  scan.from = "service_key_tags t CROSS JOIN service_keys k ON k.seq = t.seq";
  scan.seq_column = "t.seq";
  scan.where.Add("t.org_id = ? AND t.tag = ?", {query.org_id, driving_tag});
  AddKeyFilters(query, &scan.where);
  for (const std::string& tag : tags) {
    if (tag == driving_tag) continue;
    scan.where.Add("EXISTS (SELECT 1 FROM service_key_tags o WHERE o.seq = k.seq AND o.tag = ?)",
                   {tag});
  }
  return scan;
}

Result<int64_t> CountMatching(Connection& conn, const std::string& from, const WhereClause& where) {
  auto stmt = conn.Prepare("SELECT COUNT(*) FROM " + from + " " + where.sql());
  if (!stmt.ok()) return stmt.error();
  where.BindTo(*stmt, 1);
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  return *row ? stmt->ColumnInt(0) : 0;
}

// Of several tags, the one fewest live keys have: the cheapest to drive a scan with.
Result<std::string> RarestTag(Connection& conn, const ServiceKeyQuery& query,
                              const std::vector<std::string>& tags) {
  std::string rarest = tags.front();
  int64_t fewest = -1;
  for (const std::string& tag : tags) {
    int64_t live = 0;
    KG_RETURN_IF_ERROR(sqlite::ReadOneRow(
        conn,
        "SELECT COALESCE(SUM(unrevoked), 0) FROM service_key_tag_counts "
        "WHERE org_id = ?1 AND tag = ?2",
        {query.org_id, tag}, "no count", [&](const Statement& row) {
          live = row.ColumnInt(0);
          return OkStatus();
        }));
    if (fewest < 0 || live < fewest) {
      fewest = live;
      rarest = tag;
    }
  }
  return rarest;
}

// Counters of service_key_counts or service_key_tag_counts for the query's scope.
struct LiveCounts {
  int64_t unrevoked = 0;
  int64_t unrevoked_enabled = 0;
};

Result<LiveCounts> ReadCounters(Connection& conn, const ServiceKeyQuery& query,
                                const std::string& tag) {
  const SqlValue source =
      query.source.has_value() ? SqlValue(keys::ToString(*query.source)) : SqlValue(nullptr);
  LiveCounts counts;
  auto read = [&](const Statement& row) {
    counts.unrevoked = row.ColumnInt(0);
    counts.unrevoked_enabled = row.ColumnInt(1);
    return OkStatus();
  };
  if (tag.empty()) {
    KG_RETURN_IF_ERROR(sqlite::ReadOneRow(
        conn,
        "SELECT COALESCE(SUM(unrevoked), 0), COALESCE(SUM(unrevoked_enabled), 0) "
        "FROM service_key_counts WHERE org_id = ?1 AND (?2 IS NULL OR source = ?2)",
        {query.org_id, source}, "no count", read));
    return counts;
  }
  KG_RETURN_IF_ERROR(sqlite::ReadOneRow(
      conn,
      "SELECT COALESCE(SUM(unrevoked), 0), COALESCE(SUM(unrevoked_enabled), 0) "
      "FROM service_key_tag_counts WHERE org_id = ?1 AND tag = ?2 AND (?3 IS NULL OR source = ?3)",
      {query.org_id, tag, source}, "no count", read));
  return counts;
}

// True when the total is a counter plus corrections: filters on nothing but the org,
// liveness, source, disabled, status and at most one tag.
bool IsCountedByCounters(const ServiceKeyQuery& query, const std::vector<std::string>& tags) {
  return query.project_id.empty() && query.search.empty() && tags.size() <= 1;
}

// The visible keys of the scope are those never revoked (the counters) and those in a grace
// period (revoke_at > now, found through service_keys_in_grace). Of the never-revoked ones,
// the counters tell the enabled from the disabled; an active or expired status also needs
// the enabled ones already past their expiry, found through service_keys_expiring. Both
// corrections are index ranges over the few keys revoked later than now or expired.
Result<int64_t> CountFromCounters(Connection& conn, const ServiceKeyQuery& query,
                                  const std::string& tag) {
  auto counts = ReadCounters(conn, query, tag);
  if (!counts.ok()) return counts.error();
  WhereClause in_grace;
  AddScopeFilters(query, tag, &in_grace);
  in_grace.Add("k.revoke_at > ?", {query.now});
  AddStateFilters(query, &in_grace);
  auto grace = CountMatching(conn, "service_keys k", in_grace);
  if (!grace.ok()) return grace.error();

  auto expired_unrevoked = [&]() -> Result<int64_t> {
    WhereClause expired;
    AddScopeFilters(query, tag, &expired);
    expired.Add("k.revoke_at IS NULL AND k.disabled = 0 AND k.expires_at <= ?", {query.now});
    return CountMatching(conn, "service_keys k", expired);
  };
  const int64_t enabled = counts->unrevoked_enabled;
  const int64_t all = query.include_disabled ? counts->unrevoked : enabled;
  if (!query.status.has_value()) return all + *grace;
  switch (*query.status) {
    case keys::KeyStatus::kDisabled:
      return (query.include_disabled ? counts->unrevoked - enabled : 0) + *grace;
    case keys::KeyStatus::kActive: {
      auto expired = expired_unrevoked();
      if (!expired.ok()) return expired.error();
      return enabled - *expired + *grace;
    }
    case keys::KeyStatus::kExpired: {
      auto expired = expired_unrevoked();
      if (!expired.ok()) return expired.error();
      return *expired + *grace;
    }
  }
  return Error::Internal("unknown key status");
}

Result<int64_t> CountKeys(Connection& conn, const ServiceKeyQuery& query,
                          const std::vector<std::string>& tags, const KeyScan& scan) {
  if (IsCountedByCounters(query, tags)) {
    return CountFromCounters(conn, query, tags.empty() ? std::string() : tags.front());
  }
  return CountMatching(conn, scan.from, scan.where);
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

// The position of the first key of the page, found by skipping `offset` matches inside the
// covering index (no row is loaded); nullopt when the offset is past the last match.
Result<std::optional<int64_t>> SeekPastOffset(Connection& conn, const KeyScan& scan,
                                              const WhereClause& where, const char* order,
                                              int64_t offset) {
  auto stmt = conn.Prepare("SELECT " + scan.seq_column + " FROM " + scan.from + " " +
                           where.sql() + " ORDER BY " + scan.seq_column + " " + order +
                           " LIMIT 1 OFFSET ?");
  if (!stmt.ok()) return stmt.error();
  stmt->Bind(where.BindTo(*stmt, 1), offset);
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<int64_t>();
  return std::optional<int64_t>(stmt->ColumnInt(0));
}

// The most keys in a grace period that SeekInLiveKeys merges; past that, SeekPastOffset.
constexpr int64_t kMaxGraceKeysToMerge = 1000;

// True when the query's matches are exactly the visible keys of one org and source (after the
// cursor): the keys never revoked, all in service_key_live under one scope, and those in a
// rotation's grace period. Disabled and expired keys are matches too (include_disabled, no
// status).
bool MatchesLiveScope(const ServiceKeyQuery& query, const std::vector<std::string>& tags) {
  return query.source.has_value() && tags.empty() && query.project_id.empty() &&
         query.search.empty() && query.include_disabled && !query.status.has_value();
}

// Positions (seq) in scan order, from service_key_live for `scope`: `limit` of them after
// skipping `skip`, and after the cursor if any. Without a cursor the range has only its
// lower end ("scope >= ?", or "<=" newest first), so SQLite skips index entries without
// comparing each to an upper end; the rows of later scopes are cut off here.
Result<std::vector<int64_t>> LivePositions(Connection& conn, const std::string& scope,
                                           std::optional<int64_t> cursor_seq, bool desc,
                                           int64_t skip, int64_t limit) {
  std::string sql;
  if (cursor_seq.has_value()) {
    sql = std::string("SELECT scope, seq FROM service_key_live WHERE scope = ?1 AND seq ") +
          (desc ? "< ?4 ORDER BY seq DESC" : "> ?4 ORDER BY seq") + " LIMIT ?2 OFFSET ?3";
  } else {
    sql = desc ? "SELECT scope, seq FROM service_key_live WHERE scope <= ?1 "
                 "ORDER BY scope DESC, seq DESC LIMIT ?2 OFFSET ?3"
               : "SELECT scope, seq FROM service_key_live WHERE scope >= ?1 "
                 "ORDER BY scope, seq LIMIT ?2 OFFSET ?3";
  }
  auto stmt = conn.Prepare(sql);
  if (!stmt.ok()) return stmt.error();
  stmt->Bind(1, scope);
  stmt->Bind(2, limit);
  stmt->Bind(3, skip);
  if (cursor_seq.has_value()) stmt->Bind(4, *cursor_seq);
  std::vector<int64_t> out;
  while (true) {
    auto row = stmt->Step();
    if (!row.ok()) return row.error();
    if (!*row || stmt->ColumnText(0) != scope) break;
    out.push_back(stmt->ColumnInt(1));
  }
  return out;
}

// The position of the match at `offset` (0-based) for a query MatchesLiveScope() accepts:
// the matches are the never-revoked keys A (service_key_live) merged with the few keys in a
// grace period G (revoke_at > now). The match at `offset` has at most |G| of G before it, so
// it is at or after A[offset - |G|]: one skip inside the narrow index to there, then a merge
// of at most |G| + 1 entries of A with G. nullopt (as the outer optional) when G is too big
// to merge, so that the caller scans instead; an empty inner optional when the offset is past
// the last match.
Result<std::optional<std::optional<int64_t>>> SeekInLiveKeys(Connection& conn,
                                                             const ServiceKeyQuery& query,
                                                             std::optional<int64_t> cursor_seq,
                                                             int64_t offset) {
  using Found = std::optional<std::optional<int64_t>>;
  const bool desc = query.newest_first;
  const std::string source = keys::ToString(*query.source);
  std::vector<int64_t> grace;
  {
    WhereClause where;
    where.Add("k.org_id = ? AND k.revoke_at > ? AND k.source = ?",
              {query.org_id, query.now, source});
    if (cursor_seq.has_value()) where.Add(desc ? "k.seq < ?" : "k.seq > ?", {*cursor_seq});
    auto stmt = conn.Prepare("SELECT k.seq FROM service_keys k " + where.sql() + " LIMIT ?");
    if (!stmt.ok()) return stmt.error();
    stmt->Bind(where.BindTo(*stmt, 1), kMaxGraceKeysToMerge + 1);
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      grace.push_back(stmt->ColumnInt(0));
    }
  }
  const auto g = static_cast<int64_t>(grace.size());
  if (g > kMaxGraceKeysToMerge) return Found();
  // In scan order: ascending, or descending newest first.
  auto before = [desc](int64_t a, int64_t b) { return desc ? a > b : a < b; };
  std::sort(grace.begin(), grace.end(), before);

  const int64_t first_live = offset > g ? offset - g : 0;
  auto live = LivePositions(conn, query.org_id + "/" + source, cursor_seq, desc, first_live,
                            g + 1);
  if (!live.ok()) return live.error();
  // Walk the merged sequence from A[first_live] (or from the very start), counting matches.
  size_t a = 0;
  size_t j = 0;
  int64_t rank = 0;
  if (first_live > 0) {
    // Fewer than first_live + 1 never-revoked keys: at most offset matches in all.
    if (live->empty()) return Found(std::optional<int64_t>());
    while (j < grace.size() && before(grace[j], live->front())) ++j;
    rank = first_live + static_cast<int64_t>(j);
  }
  while (true) {
    const bool has_a = a < live->size();
    const bool has_g = j < grace.size();
    if (!has_a && !has_g) return Found(std::optional<int64_t>());
    const bool take_a = has_a && (!has_g || before((*live)[a], grace[j]));
    const int64_t seq = take_a ? (*live)[a++] : grace[j++];
    if (rank == offset) return Found(std::optional<int64_t>(seq));
    ++rank;
  }
}

// One page in creation order (or its reverse), after the cursor and the offset. Reads one row
// more than asked to learn has_more.
Status FetchPage(Connection& conn, const KeyScan& scan, const ServiceKeyQuery& query,
                 const std::vector<std::string>& tags, std::optional<int64_t> cursor_seq,
                 ServiceKeyPage* page) {
  WhereClause where = scan.where;
  const bool desc = query.newest_first;
  if (cursor_seq.has_value()) where.Add(scan.seq_column + (desc ? " < ?" : " > ?"), {*cursor_seq});
  int64_t offset = query.offset;
  if (offset > 0 && scan.filters_in_index) {
    std::optional<std::optional<int64_t>> first;
    if (MatchesLiveScope(query, tags)) {
      auto found = SeekInLiveKeys(conn, query, cursor_seq, offset);
      if (!found.ok()) return found.error();
      first = std::move(*found);
    }
    if (!first.has_value()) {
      auto found = SeekPastOffset(conn, scan, where, desc ? "DESC" : "ASC", offset);
      if (!found.ok()) return found.error();
      first = std::move(*found);
    }
    if (!first->has_value()) return OkStatus();
    where.Add(scan.seq_column + (desc ? " <= ?" : " >= ?"), {**first});
    offset = 0;
  }
  auto stmt = conn.Prepare(std::string("SELECT ") + sqlite::kServiceKeyColumns + " FROM " +
                           scan.from + " LEFT JOIN projects p ON p.id = k.project_id " +
                           where.sql() + " ORDER BY " + scan.seq_column +
                           (desc ? " DESC" : " ASC") + " LIMIT ? OFFSET ?");
  if (!stmt.ok()) return stmt.error();
  const int next = where.BindTo(*stmt, 1);
  stmt->Bind(next, query.limit + 1);
  stmt->Bind(next + 1, offset);
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
  const std::vector<std::string> tags = DistinctTags(query.tags);
  ServiceKeyPage page;
  // One read transaction: the total and the page come from the same snapshot.
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    std::optional<int64_t> cursor_seq;
    if (!query.starting_after.empty()) {
      auto seq = CursorSeq(conn, query);
      if (!seq.ok()) return seq.error();
      cursor_seq = *seq;
    }
    std::string driving_tag;
    if (!tags.empty()) {
      auto rarest = tags.size() == 1 ? Result<std::string>(tags.front())
                                     : RarestTag(conn, query, tags);
      if (!rarest.ok()) return rarest.error();
      driving_tag = std::move(*rarest);
    }
    const KeyScan scan = BuildScan(query, tags, driving_tag);
    auto total = CountKeys(conn, query, tags, scan);
    if (!total.ok()) return total.error();
    page.total = *total;
    return FetchPage(conn, scan, query, tags, cursor_seq, &page);
  }));
  return page;
}

}  // namespace keygate::store
