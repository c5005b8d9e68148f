#include "store/sqlite/schema.h"

#include <array>
#include <string>
#include <string_view>

#include "store/usage_store.h"

namespace keygate::store::sqlite {
namespace {

// Version 1: the whole model of spec §1 plus usage and the audit log. Money is INTEGER
// micro-dollars and times INTEGER ms since the epoch throughout.
constexpr const char* kInitialSchema = R"sql(
CREATE TABLE organizations (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

CREATE TABLE owner_credentials (
  hash TEXT PRIMARY KEY,
  org_id TEXT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  masked TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX owner_credentials_by_org ON owner_credentials(org_id);

CREATE TABLE provisioning_keys (
  hash TEXT PRIMARY KEY,
  org_id TEXT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  masked TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  last_used_at INTEGER,
  UNIQUE (org_id, name)
);

CREATE TABLE projects (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (org_id, name)
);

-- Counters bumped inside write transactions, so they are right even if another process
-- (the CLI) writes the same file, and never go back when rows are removed.
CREATE TABLE sequences (
  name TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO sequences (name, value) VALUES ('service_key_seq', 0), ('service_key_version', 0);

CREATE TABLE service_keys (
  hash TEXT PRIMARY KEY,
  seq INTEGER NOT NULL UNIQUE,
  version INTEGER NOT NULL,
  org_id TEXT NOT NULL REFERENCES organizations(id),
  name TEXT NOT NULL,
  masked TEXT NOT NULL,
  project_id TEXT REFERENCES projects(id),
  source TEXT NOT NULL CHECK (source IN ('router', 'workspace')),
  models_json TEXT,
  credit_limit INTEGER,
  reset_interval TEXT CHECK (reset_interval IN ('daily', 'weekly', 'monthly')),
  rpm_limit INTEGER,
  tpm_limit INTEGER,
  expires_at INTEGER,
  disabled INTEGER NOT NULL DEFAULT 0,
  metadata_json TEXT,
  tags_json TEXT NOT NULL DEFAULT '[]',
  include_byok_in_limit INTEGER NOT NULL DEFAULT 0,
  creator_user_id TEXT,
  external_user TEXT,
  created_by TEXT NOT NULL,
  lineage TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER,
  last_used_at INTEGER,
  revoke_at INTEGER
);
-- Pages: a range of (org_id, seq), in creation order or its reverse, after a cursor.
CREATE INDEX service_keys_by_org_seq ON service_keys(org_id, seq);
-- Counts of filtered lists read this index alone; it also finds keys in a grace period.
CREATE INDEX service_keys_by_org_state
  ON service_keys(org_id, revoke_at, disabled, expires_at, source);
CREATE INDEX service_keys_by_version ON service_keys(version);
CREATE INDEX service_keys_by_project ON service_keys(project_id);

-- Keys never revoked, and those of them not disabled, per org; kept by triggers in the
-- writing transaction, so that the total of a list filtered by nothing but liveness (and
-- perhaps disabled) is a counter plus the few keys still in a grace period, rather than a
-- scan of every key of the org.
CREATE TABLE org_key_counts (
  org_id TEXT PRIMARY KEY,
  unrevoked INTEGER NOT NULL,
  unrevoked_enabled INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER service_keys_count_insert AFTER INSERT ON service_keys
BEGIN
  INSERT INTO org_key_counts (org_id, unrevoked, unrevoked_enabled)
  VALUES (NEW.org_id, NEW.revoke_at IS NULL, NEW.revoke_at IS NULL AND NEW.disabled = 0)
  ON CONFLICT (org_id) DO UPDATE SET
    unrevoked = unrevoked + excluded.unrevoked,
    unrevoked_enabled = unrevoked_enabled + excluded.unrevoked_enabled;
END;
CREATE TRIGGER service_keys_count_update AFTER UPDATE OF revoke_at, disabled ON service_keys
WHEN (OLD.revoke_at IS NULL) != (NEW.revoke_at IS NULL) OR OLD.disabled != NEW.disabled
BEGIN
  UPDATE org_key_counts SET
    unrevoked = unrevoked - (OLD.revoke_at IS NULL) + (NEW.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (OLD.revoke_at IS NULL AND OLD.disabled = 0)
                        + (NEW.revoke_at IS NULL AND NEW.disabled = 0)
  WHERE org_id = NEW.org_id;
END;
CREATE TRIGGER service_keys_count_delete AFTER DELETE ON service_keys
BEGIN
  UPDATE org_key_counts SET
    unrevoked = unrevoked - (OLD.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (OLD.revoke_at IS NULL AND OLD.disabled = 0)
  WHERE org_id = OLD.org_id;
END;

CREATE TABLE service_key_tags (
  hash TEXT NOT NULL REFERENCES service_keys(hash),
  tag TEXT NOT NULL,
  PRIMARY KEY (hash, tag)
) WITHOUT ROWID;
CREATE INDEX service_key_tags_by_tag ON service_key_tags(tag, hash);

CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  org_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  actor_name TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  changes_json TEXT NOT NULL,
  request_id TEXT NOT NULL
);
CREATE INDEX audit_log_by_org ON audit_log(org_id, id);
CREATE INDEX audit_log_by_actor ON audit_log(org_id, actor, id);
CREATE INDEX audit_log_by_target ON audit_log(org_id, target, id);

CREATE TABLE usage_records (
  id INTEGER PRIMARY KEY,
  key_hash TEXT NOT NULL,
  lineage TEXT NOT NULL,
  org_id TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cost INTEGER NOT NULL,
  status INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  ttfb_ms INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  at INTEGER NOT NULL
);
CREATE INDEX usage_records_by_lineage ON usage_records(lineage, at);

CREATE TABLE usage_daily (
  lineage TEXT NOT NULL,
  day INTEGER NOT NULL,
  cost INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  requests INTEGER NOT NULL,
  PRIMARY KEY (lineage, day)
) WITHOUT ROWID;
)sql";

// Version 2 (issue 2): list pages and their totals at 100,000 keys per org.
// - The live-key counters are kept per (org, source), and per (org, tag, source), because a
//   provisioning key's list always filters on source and the per-org counter could not answer
//   it; a total is then a counter plus the few keys in a grace period or past their expiry.
// - Tag rows carry their key's org and creation position, so a tag filter pages through
//   (org_id, tag, seq) and stops after one page instead of grouping every tag row.
// - (org_id, seq) becomes a covering index of every column a filter without search or tags
//   reads, so an offset is skipped inside the index without loading a row; the state index
//   is split into two partial indexes that hold only keys with a revocation or an expiry, and
//   the project index holds only keys in a project, so a plain create updates fewer indexes.
constexpr const char* kListAtScaleSchema = R"sql(
DROP TRIGGER service_keys_count_insert;
DROP TRIGGER service_keys_count_update;
DROP TRIGGER service_keys_count_delete;
DROP TABLE org_key_counts;

-- Keys never revoked, and those of them not disabled, per org and source, and per org, tag
-- and source; kept by triggers in the writing transaction.
CREATE TABLE service_key_counts (
  org_id TEXT NOT NULL,
  source TEXT NOT NULL,
  unrevoked INTEGER NOT NULL,
  unrevoked_enabled INTEGER NOT NULL,
  PRIMARY KEY (org_id, source)
) WITHOUT ROWID;
INSERT INTO service_key_counts (org_id, source, unrevoked, unrevoked_enabled)
SELECT org_id, source, SUM(revoke_at IS NULL), SUM(revoke_at IS NULL AND disabled = 0)
FROM service_keys GROUP BY org_id, source;

CREATE TABLE service_key_tag_counts (
  org_id TEXT NOT NULL,
  tag TEXT NOT NULL,
  source TEXT NOT NULL,
  unrevoked INTEGER NOT NULL,
  unrevoked_enabled INTEGER NOT NULL,
  PRIMARY KEY (org_id, tag, source)
) WITHOUT ROWID;
INSERT INTO service_key_tag_counts (org_id, tag, source, unrevoked, unrevoked_enabled)
SELECT k.org_id, t.tag, k.source, SUM(k.revoke_at IS NULL),
       SUM(k.revoke_at IS NULL AND k.disabled = 0)
FROM service_key_tags t JOIN service_keys k ON k.hash = t.hash
GROUP BY k.org_id, t.tag, k.source;

ALTER TABLE service_key_tags ADD COLUMN org_id TEXT NOT NULL DEFAULT '';
ALTER TABLE service_key_tags ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
UPDATE service_key_tags AS t SET org_id = k.org_id, seq = k.seq
FROM service_keys k WHERE k.hash = t.hash;
DROP INDEX service_key_tags_by_tag;
CREATE INDEX service_key_tags_by_org_tag ON service_key_tags(org_id, tag, seq);

DROP INDEX service_keys_by_org_seq;
CREATE INDEX service_keys_by_org_seq
  ON service_keys(org_id, seq, source, revoke_at, disabled, expires_at);
DROP INDEX service_keys_by_org_state;
CREATE INDEX service_keys_in_grace ON service_keys(org_id, revoke_at, source, disabled, expires_at)
  WHERE revoke_at IS NOT NULL;
CREATE INDEX service_keys_expiring ON service_keys(org_id, expires_at, revoke_at, disabled, source)
  WHERE expires_at IS NOT NULL;
DROP INDEX service_keys_by_project;
CREATE INDEX service_keys_by_project
  ON service_keys(project_id, org_id, seq, source, revoke_at, disabled, expires_at)
  WHERE project_id IS NOT NULL;

CREATE TRIGGER service_keys_count_insert AFTER INSERT ON service_keys
BEGIN
  INSERT INTO service_key_counts (org_id, source, unrevoked, unrevoked_enabled)
  VALUES (NEW.org_id, NEW.source, NEW.revoke_at IS NULL,
          NEW.revoke_at IS NULL AND NEW.disabled = 0)
  ON CONFLICT (org_id, source) DO UPDATE SET
    unrevoked = unrevoked + excluded.unrevoked,
    unrevoked_enabled = unrevoked_enabled + excluded.unrevoked_enabled;
END;
-- org_id and source never change; the tag rows of the key follow its state.
CREATE TRIGGER service_keys_count_update AFTER UPDATE OF revoke_at, disabled ON service_keys
WHEN (OLD.revoke_at IS NULL) != (NEW.revoke_at IS NULL) OR OLD.disabled != NEW.disabled
BEGIN
  UPDATE service_key_counts SET
    unrevoked = unrevoked - (OLD.revoke_at IS NULL) + (NEW.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (OLD.revoke_at IS NULL AND OLD.disabled = 0)
                        + (NEW.revoke_at IS NULL AND NEW.disabled = 0)
  WHERE org_id = NEW.org_id AND source = NEW.source;
  UPDATE service_key_tag_counts SET
    unrevoked = unrevoked - (OLD.revoke_at IS NULL) + (NEW.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (OLD.revoke_at IS NULL AND OLD.disabled = 0)
                        + (NEW.revoke_at IS NULL AND NEW.disabled = 0)
  WHERE org_id = NEW.org_id AND source = NEW.source
    AND tag IN (SELECT tag FROM service_key_tags WHERE hash = NEW.hash);
END;
CREATE TRIGGER service_keys_count_delete AFTER DELETE ON service_keys
BEGIN
  UPDATE service_key_counts SET
    unrevoked = unrevoked - (OLD.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (OLD.revoke_at IS NULL AND OLD.disabled = 0)
  WHERE org_id = OLD.org_id AND source = OLD.source;
END;

-- A tag row counts with its key's state at the moment it is written or removed (the key row
-- exists then: tags are written after their key and, by the foreign key, removed before it).
CREATE TRIGGER service_key_tags_count_insert AFTER INSERT ON service_key_tags
BEGIN
  INSERT INTO service_key_tag_counts (org_id, tag, source, unrevoked, unrevoked_enabled)
  SELECT k.org_id, NEW.tag, k.source, k.revoke_at IS NULL,
         k.revoke_at IS NULL AND k.disabled = 0
  FROM service_keys k WHERE k.hash = NEW.hash
  ON CONFLICT (org_id, tag, source) DO UPDATE SET
    unrevoked = unrevoked + excluded.unrevoked,
    unrevoked_enabled = unrevoked_enabled + excluded.unrevoked_enabled;
END;
CREATE TRIGGER service_key_tags_count_delete AFTER DELETE ON service_key_tags
BEGIN
  UPDATE service_key_tag_counts SET
    unrevoked = unrevoked - (k.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (k.revoke_at IS NULL AND k.disabled = 0)
  FROM (SELECT org_id, source, revoke_at, disabled FROM service_keys WHERE hash = OLD.hash) AS k
  WHERE service_key_tag_counts.org_id = k.org_id AND service_key_tag_counts.tag = OLD.tag
    AND service_key_tag_counts.source = k.source;
END;
)sql";

// Version 3 (management throughput, docs/decisions/0012-management-throughput.md):
// - Tag rows are keyed by their key's creation position, (seq, tag), instead of (hash, tag):
//   a new key's tag rows are appended at the end of the table instead of landing on a random
//   page (its hash), so a group commit of many creates rewrites a page or two of tag rows
//   rather than one page per key. Lookups of a key's tags go by its seq.
// - service_key_live holds the creation position of every key never revoked, under one text
//   scope per organization and source ("<org_id>/<source>"), kept by triggers. A list page
//   deep in the default filter (visible keys of one source) skips its offset in this narrow
//   index with no per-row filter, then merges the few keys in a rotation's grace period.
constexpr const char* kThroughputSchema = R"sql(
DROP TRIGGER service_keys_count_update;
DROP TRIGGER service_key_tags_count_insert;
DROP TRIGGER service_key_tags_count_delete;

CREATE TABLE service_key_tags_by_seq (
  seq INTEGER NOT NULL,
  tag TEXT NOT NULL,
  hash TEXT NOT NULL REFERENCES service_keys(hash),
  org_id TEXT NOT NULL,
  PRIMARY KEY (seq, tag)
) WITHOUT ROWID;
INSERT INTO service_key_tags_by_seq (seq, tag, hash, org_id)
SELECT seq, tag, hash, org_id FROM service_key_tags;
DROP TABLE service_key_tags;
ALTER TABLE service_key_tags_by_seq RENAME TO service_key_tags;
CREATE INDEX service_key_tags_by_org_tag ON service_key_tags(org_id, tag, seq);

-- As in version 2, with the key's tag rows found by its seq.
CREATE TRIGGER service_keys_count_update AFTER UPDATE OF revoke_at, disabled ON service_keys
WHEN (OLD.revoke_at IS NULL) != (NEW.revoke_at IS NULL) OR OLD.disabled != NEW.disabled
BEGIN
  UPDATE service_key_counts SET
    unrevoked = unrevoked - (OLD.revoke_at IS NULL) + (NEW.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (OLD.revoke_at IS NULL AND OLD.disabled = 0)
                        + (NEW.revoke_at IS NULL AND NEW.disabled = 0)
  WHERE org_id = NEW.org_id AND source = NEW.source;
  UPDATE service_key_tag_counts SET
    unrevoked = unrevoked - (OLD.revoke_at IS NULL) + (NEW.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (OLD.revoke_at IS NULL AND OLD.disabled = 0)
                        + (NEW.revoke_at IS NULL AND NEW.disabled = 0)
  WHERE org_id = NEW.org_id AND source = NEW.source
    AND tag IN (SELECT tag FROM service_key_tags WHERE seq = NEW.seq);
END;
CREATE TRIGGER service_key_tags_count_insert AFTER INSERT ON service_key_tags
BEGIN
  INSERT INTO service_key_tag_counts (org_id, tag, source, unrevoked, unrevoked_enabled)
  SELECT k.org_id, NEW.tag, k.source, k.revoke_at IS NULL,
         k.revoke_at IS NULL AND k.disabled = 0
  FROM service_keys k WHERE k.hash = NEW.hash
  ON CONFLICT (org_id, tag, source) DO UPDATE SET
    unrevoked = unrevoked + excluded.unrevoked,
    unrevoked_enabled = unrevoked_enabled + excluded.unrevoked_enabled;
END;
CREATE TRIGGER service_key_tags_count_delete AFTER DELETE ON service_key_tags
BEGIN
  UPDATE service_key_tag_counts SET
    unrevoked = unrevoked - (k.revoke_at IS NULL),
    unrevoked_enabled = unrevoked_enabled - (k.revoke_at IS NULL AND k.disabled = 0)
  FROM (SELECT org_id, source, revoke_at, disabled FROM service_keys WHERE hash = OLD.hash) AS k
  WHERE service_key_tag_counts.org_id = k.org_id AND service_key_tag_counts.tag = OLD.tag
    AND service_key_tag_counts.source = k.source;
END;

-- org_id, source and seq of a key never change; revoke_at goes from NULL to a time.
CREATE TABLE service_key_live (
  scope TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (scope, seq)
) WITHOUT ROWID;
INSERT INTO service_key_live (scope, seq)
SELECT org_id || '/' || source, seq FROM service_keys WHERE revoke_at IS NULL;
CREATE TRIGGER service_keys_live_insert AFTER INSERT ON service_keys
WHEN NEW.revoke_at IS NULL
BEGIN
  INSERT INTO service_key_live (scope, seq) VALUES (NEW.org_id || '/' || NEW.source, NEW.seq);
END;
CREATE TRIGGER service_keys_live_revoke AFTER UPDATE OF revoke_at ON service_keys
WHEN OLD.revoke_at IS NULL AND NEW.revoke_at IS NOT NULL
BEGIN
  DELETE FROM service_key_live WHERE scope = OLD.org_id || '/' || OLD.source AND seq = OLD.seq;
END;
CREATE TRIGGER service_keys_live_unrevoke AFTER UPDATE OF revoke_at ON service_keys
WHEN OLD.revoke_at IS NOT NULL AND NEW.revoke_at IS NULL
BEGIN
  INSERT OR IGNORE INTO service_key_live (scope, seq)
  VALUES (NEW.org_id || '/' || NEW.source, NEW.seq);
END;
CREATE TRIGGER service_keys_live_delete AFTER DELETE ON service_keys
WHEN OLD.revoke_at IS NULL
BEGIN
  DELETE FROM service_key_live WHERE scope = OLD.org_id || '/' || OLD.source AND seq = OLD.seq;
END;
)sql";

// Version 4 (compact usage rows): a usage row refers to its key and to its lineage root by
// integer id instead of carrying two 64-character digests and the org id, so a row and its
// lineage index entry are a fraction of the size and cheaper to insert (25,000 rows/s under
// load). usage_keys holds one row per key with usage and one per lineage root (a row whose
// key_hash is the lineage); ids never change and rows are never removed. Existing rows keep
// their ids. The view usage_records answers with the old columns, for raw readers.
constexpr const char* kCompactUsageSchema = R"sql(
CREATE TABLE usage_keys (
  id INTEGER PRIMARY KEY,
  key_hash TEXT NOT NULL UNIQUE,
  lineage TEXT NOT NULL,
  org_id TEXT NOT NULL
);
-- Each key as its earliest row describes it, then the lineage roots without rows of their own.
INSERT INTO usage_keys (key_hash, lineage, org_id)
SELECT key_hash, lineage, org_id
FROM (SELECT key_hash, lineage, org_id, MIN(id) AS first_id FROM usage_records GROUP BY key_hash)
ORDER BY first_id;
INSERT INTO usage_keys (key_hash, lineage, org_id)
SELECT lineage, lineage, org_id
FROM (SELECT lineage, org_id, MIN(id) AS first_id FROM usage_records
      WHERE lineage NOT IN (SELECT key_hash FROM usage_keys) GROUP BY lineage)
ORDER BY first_id;

CREATE TABLE usage_rows (
  id INTEGER PRIMARY KEY,
  key_id INTEGER NOT NULL,
  lineage_id INTEGER NOT NULL,
  model TEXT NOT NULL,
  provider TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cost INTEGER NOT NULL,
  status INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL,
  ttfb_ms INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  at INTEGER NOT NULL
);
INSERT INTO usage_rows (id, key_id, lineage_id, model, provider, prompt_tokens,
                        completion_tokens, cost, status, latency_ms, ttfb_ms, request_id, at)
SELECT u.id, k.id, l.id, u.model, u.provider, u.prompt_tokens, u.completion_tokens, u.cost,
       u.status, u.latency_ms, u.ttfb_ms, u.request_id, u.at
FROM usage_records u
JOIN usage_keys k ON k.key_hash = u.key_hash
JOIN usage_keys l ON l.key_hash = u.lineage
ORDER BY u.id;
DROP TABLE usage_records;
CREATE INDEX usage_rows_by_lineage ON usage_rows(lineage_id, at);

-- A row's lineage is its lineage root's key_hash; org_id is its key's.
CREATE VIEW usage_records AS
SELECT r.id AS id, k.key_hash AS key_hash, l.key_hash AS lineage, k.org_id AS org_id,
       r.model AS model, r.provider AS provider, r.prompt_tokens AS prompt_tokens,
       r.completion_tokens AS completion_tokens, r.cost AS cost, r.status AS status,
       r.latency_ms AS latency_ms, r.ttfb_ms AS ttfb_ms, r.request_id AS request_id, r.at AS at
FROM usage_rows r
JOIN usage_keys k ON k.id = r.key_id
JOIN usage_keys l ON l.id = r.lineage_id;
)sql";

// Version 5 (usage chunks): the records of one lineage written by one usage batch are one row,
// a JSON array of records, instead of one row each. The data plane leaves a record per call,
// and a row per call cost the store writer more CPU than the rest of the call's usage path
// (decision 0016). A record's id is its chunk's first_id plus its position in the chunk; ids
// stay unique and increasing. newest_at (the chunk's latest `at`) orders a lineage's chunks
// for "latest calls". Each existing row becomes a chunk of one record, keeping its id. The
// view usage_records still answers with one row per record, for raw readers.
constexpr const char* kUsageChunksSchema = R"sql(
CREATE TABLE usage_chunks (
  id INTEGER PRIMARY KEY,
  lineage_id INTEGER NOT NULL,
  first_id INTEGER NOT NULL,
  records_count INTEGER NOT NULL,
  newest_at INTEGER NOT NULL,
  -- [[key_id, model, provider, prompt_tokens, completion_tokens, cost, status, latency_ms,
  --   ttfb_ms, request_id, at], ...]
  records TEXT NOT NULL
);
INSERT INTO usage_chunks (lineage_id, first_id, records_count, newest_at, records)
SELECT lineage_id, id, 1, at,
       json_array(json_array(key_id, model, provider, prompt_tokens, completion_tokens, cost,
                             status, latency_ms, ttfb_ms, request_id, at))
FROM usage_rows ORDER BY id;
DROP VIEW usage_records;
DROP TABLE usage_rows;
CREATE INDEX usage_chunks_by_lineage ON usage_chunks(lineage_id, newest_at);

CREATE VIEW usage_records AS
SELECT c.first_id + r.key AS id, k.key_hash AS key_hash, l.key_hash AS lineage,
       k.org_id AS org_id, r.value ->> 1 AS model, r.value ->> 2 AS provider,
       r.value ->> 3 AS prompt_tokens, r.value ->> 4 AS completion_tokens, r.value ->> 5 AS cost,
       r.value ->> 6 AS status, r.value ->> 7 AS latency_ms, r.value ->> 8 AS ttfb_ms,
       r.value ->> 9 AS request_id, r.value ->> 10 AS at
FROM usage_chunks c
JOIN json_each(c.records) r
JOIN usage_keys k ON k.id = r.value ->> 0
JOIN usage_keys l ON l.id = c.lineage_id;
)sql";

// Version 6 (windows across a restart): chunks by their newest record, so that a process
// starting up finds the calls of the last minute (SqliteStore::ForEachCallBetween) without a
// scan.
constexpr const char* kChunksByTimeSchema = R"sql(
CREATE INDEX usage_chunks_by_time ON usage_chunks(newest_at);
)sql";

// Version 7 (a crash forgets no call in flight, decision 0011): the calls admitted and not yet
// settled that have lasted longer than a usage flush interval, each at its reservation.
constexpr const char* kOpenCallsSchema = R"sql(
CREATE TABLE open_calls (
  id INTEGER PRIMARY KEY,
  key_hash TEXT NOT NULL,
  lineage TEXT NOT NULL,
  org_id TEXT NOT NULL,
  model TEXT NOT NULL,
  provider TEXT NOT NULL,
  request_id TEXT NOT NULL,
  at INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  cost INTEGER NOT NULL
);
)sql";

// Version 8 (audit, 2026-12-07): an audit entry's id is its place in its own organization's
// log, not in every organization's: ids from one sequence for all let an owner count another
// org's management actions between two of its own. `org_seq` is numbered by a trigger, one
// past the org's greatest (its unique index finds that), and the entries already there in the
// order they were written.
constexpr const char* kAuditPerOrgSchema = R"sql(
ALTER TABLE audit_log ADD COLUMN org_seq INTEGER NOT NULL DEFAULT 0;
UPDATE audit_log SET org_seq = numbered.n
  FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY org_id ORDER BY id) AS n FROM audit_log)
       AS numbered
  WHERE audit_log.id = numbered.id;
CREATE UNIQUE INDEX audit_log_by_org_seq ON audit_log(org_id, org_seq);
CREATE INDEX audit_log_by_actor_seq ON audit_log(org_id, actor, org_seq);
CREATE INDEX audit_log_by_target_seq ON audit_log(org_id, target, org_seq);
DROP INDEX audit_log_by_org;
DROP INDEX audit_log_by_actor;
DROP INDEX audit_log_by_target;
CREATE TRIGGER audit_log_numbered AFTER INSERT ON audit_log WHEN NEW.org_seq = 0
BEGIN
  UPDATE audit_log
     SET org_seq = (SELECT COALESCE(MAX(org_seq), 0) + 1 FROM audit_log
                     WHERE org_id = NEW.org_id)
   WHERE id = NEW.id;
END;
)sql";

// Daily usage totals written before their sums saturated (audit Z, session 21): an upstream's
// absurd usage could leave one negative (wrapped in keygate) or a REAL (SQLite's own sum past
// int64), which a budget read as no spend at all, and two such days made SUM() fail. Each is
// brought into 0..kMostUsageOfADay (2^49 - 1), as totals are kept from now on.
constexpr const char* kClampDailyTotalsSchema = R"sql(
UPDATE usage_daily SET
  cost = CAST(MAX(0, MIN(cost, 562949953421311)) AS INTEGER),
  prompt_tokens = CAST(MAX(0, MIN(prompt_tokens, 562949953421311)) AS INTEGER),
  completion_tokens = CAST(MAX(0, MIN(completion_tokens, 562949953421311)) AS INTEGER),
  requests = CAST(MAX(0, MIN(requests, 562949953421311)) AS INTEGER)
WHERE typeof(cost) != 'integer' OR typeof(prompt_tokens) != 'integer'
   OR typeof(completion_tokens) != 'integer' OR typeof(requests) != 'integer'
   OR MIN(cost, prompt_tokens, completion_tokens, requests) < 0
   OR MAX(cost, prompt_tokens, completion_tokens, requests) > 562949953421311;
)sql";

static_assert(kMostUsageOfADay == 562949953421311, "kClampDailyTotalsSchema's bound");

constexpr std::array kMigrations = {
    Migration{1, "initial schema: organizations, keys, projects, audit log, usage", kInitialSchema},
    Migration{2, "list at scale: counters per source and tag, tag rows by org and position, "
                 "covering and partial indexes",
              kListAtScaleSchema},
    Migration{3, "management throughput: tag rows by creation position, live keys by scope",
              kThroughputSchema},
    Migration{4, "compact usage rows: keys by integer id", kCompactUsageSchema},
    Migration{5, "usage chunks: a batch's records of one lineage in one row", kUsageChunksSchema},
    Migration{6, "usage chunks by their newest record, for the windows after a restart",
              kChunksByTimeSchema},
    Migration{7, "open calls: the calls in flight, which a crash must not forget",
              kOpenCallsSchema},
    Migration{8, "audit ids numbered per organization", kAuditPerOrgSchema},
    Migration{9, "daily usage totals brought into their saturating range",
              kClampDailyTotalsSchema},
};

constexpr const char* kCreateMigrationsTable =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)";

// Applies one step in its own transaction. Re-reads the version under the write lock, so two
// processes opening the same fresh file do not both apply it.
Status ApplyOne(Connection& conn, const Migration& migration, const Clock& clock) {
  Transaction tx(conn);
  KG_RETURN_IF_ERROR(tx.Begin("BEGIN IMMEDIATE"));
  auto current = CurrentSchemaVersion(conn);
  if (!current.ok()) return current.error();
  if (*current >= migration.version) return tx.Commit();
  KG_RETURN_IF_ERROR(conn.Exec(migration.sql));
  auto record = conn.Prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)");
  if (!record.ok()) return record.error();
  record->Bind(1, migration.version);
  record->Bind(2, clock.NowMs());
  KG_RETURN_IF_ERROR(record->Run());
  return tx.Commit();
}

struct ConstraintField {
  std::string_view column;  // as SQLite names it in "UNIQUE constraint failed: <column>"
  const char* message;
  const char* param;
};

constexpr std::array kUniqueFields = {
    ConstraintField{"provisioning_keys.name",
                    "a provisioning key with this name already exists in the organization", "name"},
    ConstraintField{"projects.name", "a project with this name already exists in the organization",
                    "project_name"},
    ConstraintField{"service_keys.hash", "a service key with this hash already exists", "hash"},
    ConstraintField{"provisioning_keys.hash", "a provisioning key with this hash already exists",
                    "hash"},
    ConstraintField{"owner_credentials.hash", "an owner credential with this hash already exists",
                    "hash"},
    ConstraintField{"organizations.id", "an organization with this id already exists", "org_id"},
    ConstraintField{"projects.id", "a project with this id already exists", "project_id"},
};

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

int64_t LatestSchemaVersion() { return kMigrations.back().version; }

Result<int64_t> CurrentSchemaVersion(Connection& conn) {
  auto stmt = conn.Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  if (!stmt.ok()) return stmt.error();
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  return *row ? stmt->ColumnInt(0) : 0;
}

namespace {

// OK, or Unavailable naming both versions if `version` (the file's) is newer than this build's.
Status RefuseNewer(const Connection& conn, int64_t version) {
  if (version <= LatestSchemaVersion()) return OkStatus();
  return Error::Unavailable(
      "sqlite database " + conn.path() + " has schema version " + std::to_string(version) +
      ", but this keygate knows versions up to " + std::to_string(LatestSchemaVersion()) +
      "; it was written by a newer keygate: upgrade keygate to open it");
}

}  // namespace

Status CheckSchemaNotNewer(Connection& conn) {
  auto current = CurrentSchemaVersion(conn);
  if (!current.ok()) return current.error();
  return RefuseNewer(conn, *current);
}

Status ApplyMigrations(Connection& conn, const Clock& clock) {
  KG_RETURN_IF_ERROR(conn.Exec(kCreateMigrationsTable));
  auto current = CurrentSchemaVersion(conn);
  if (!current.ok()) return current.error();
  KG_RETURN_IF_ERROR(RefuseNewer(conn, *current));
  for (const Migration& migration : kMigrations) {
    if (migration.version <= *current) continue;
    Status applied = ApplyOne(conn, migration, clock);
    if (!applied.ok()) {
      const Error& e = applied.error();
      return Error{e.code,
                   "schema migration " + std::to_string(migration.version) + " (" +
                       migration.description + ") failed: " + e.message,
                   {},
                   {}};
    }
  }
  return OkStatus();
}

Error DescribeConstraintError(const Error& error) {
  if (error.code == ErrorCode::kNotFound &&
      error.message.find("FOREIGN KEY") != std::string::npos) {
    return Error::NotFound("the organization or project referred to does not exist");
  }
  if (error.code != ErrorCode::kConflict) return error;
  for (const ConstraintField& field : kUniqueFields) {
    if (error.message.find(field.column) != std::string::npos) {
      return Error::Conflict(field.message, field.param);
    }
  }
  return error;
}

}  // namespace keygate::store::sqlite
