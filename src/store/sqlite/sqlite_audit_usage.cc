// SqliteStore: reading the audit log, and usage (raw records plus per-lineage daily totals).
// Raw records are usage_rows referring to usage_keys by id (schema version 4).
#include "store/sqlite/sqlite_store.h"

#include <iterator>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "store/sqlite/row_codec.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/store_statements.h"

namespace keygate::store {

using sqlite::Connection;
using sqlite::RunSql;
using sqlite::Statement;
using sqlite::WhereClause;

namespace {

constexpr int64_t kMaxPageSize = 1000;

Status ValidateAuditQuery(const AuditQuery& query) {
  if (query.org_id.empty()) return Error::InvalidArgument("org_id is required", "org_id");
  if (query.limit < 1 || query.limit > kMaxPageSize) {
    return Error::InvalidArgument("limit must be between 1 and 1000", "limit");
  }
  if (query.before_id < 0) return Error::InvalidArgument("before_id must be >= 0", "before_id");
  return OkStatus();
}

// The filters map onto the indexes (org_id, id), (org_id, actor, id) and (org_id, target, id),
// so a page is a short index range scan whatever the log's size.
WhereClause BuildAuditFilter(const AuditQuery& query) {
  WhereClause where;
  where.Add("org_id = ?", {query.org_id});
  if (!query.actor.empty()) where.Add("actor = ?", {query.actor});
  if (!query.target.empty()) where.Add("target = ?", {query.target});
  if (query.before_id > 0) where.Add("id < ?", {query.before_id});
  return where;
}

// Usage of one lineage on one UTC day, summed over a batch of records.
struct DailyDelta {
  MicroUsd cost = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t requests = 0;
};
using DailyDeltas = std::map<std::pair<std::string, int64_t>, DailyDelta>;

DailyDeltas SumByLineageAndDay(const std::vector<UsageRecord>& records) {
  DailyDeltas deltas;
  for (const UsageRecord& record : records) {
    DailyDelta& delta = deltas[{record.lineage, sqlite::DayOf(record.at)}];
    delta.cost += record.cost;
    delta.prompt_tokens += record.prompt_tokens;
    delta.completion_tokens += record.completion_tokens;
    delta.requests += 1;
  }
  return deltas;
}

// Rows per INSERT statement: one statement step per 32 records instead of per record (the
// data plane writes one record per call). A batch's remainder goes in statements of 8, then 1,
// so that at most three statements are prepared (and cached) for any batch size.
constexpr size_t kUsageRowsPerInsert[] = {32, 8, 1};
constexpr int kUsageRowColumns = 12;
// Most key_hash -> id entries kept; past it the cache starts again empty (bounded memory).
constexpr size_t kMaxCachedUsageKeys = 1 << 16;

// The usage_keys ids a usage row refers to.
struct UsageKeyIds {
  int64_t key_id = 0;
  int64_t lineage_id = 0;
};

std::string BuildInsertUsageSql(size_t rows) {
  std::string text =
      "INSERT INTO usage_rows (key_id, lineage_id, model, provider, prompt_tokens, "
      "completion_tokens, cost, status, latency_ms, ttfb_ms, request_id, at) VALUES ";
  for (size_t row = 0; row < rows; ++row) {
    text += row == 0 ? "(" : ",(";
    for (int col = 1; col <= kUsageRowColumns; ++col) {
      text += '?';
      text += std::to_string(row * kUsageRowColumns + static_cast<size_t>(col));
      text += col == kUsageRowColumns ? ")" : ",";
    }
  }
  return text;
}

// The statement text for each size of kUsageRowsPerInsert (built once, read only after).
const std::string& InsertUsageSql(size_t rows) {
  static const std::string kSql[] = {BuildInsertUsageSql(kUsageRowsPerInsert[0]),
                                     BuildInsertUsageSql(kUsageRowsPerInsert[1]),
                                     BuildInsertUsageSql(kUsageRowsPerInsert[2])};
  for (size_t i = 0; i < std::size(kUsageRowsPerInsert); ++i) {
    if (kUsageRowsPerInsert[i] == rows) return kSql[i];
  }
  return kSql[std::size(kUsageRowsPerInsert) - 1];
}

// Inserts records[first, first + rows) with one statement (the records outlive it: their text
// is bound without copies).
Status InsertUsageRows(Connection& conn, const std::vector<UsageRecord>& records,
                       const std::vector<UsageKeyIds>& ids, size_t first, size_t rows) {
  auto stmt = conn.Prepare(InsertUsageSql(rows));
  if (!stmt.ok()) return stmt.error();
  for (size_t row = 0; row < rows; ++row) {
    const UsageRecord& r = records[first + row];
    const int base = static_cast<int>(row) * kUsageRowColumns;
    stmt->Bind(base + 1, ids[first + row].key_id);
    stmt->Bind(base + 2, ids[first + row].lineage_id);
    stmt->BindUnowned(base + 3, r.model);
    stmt->BindUnowned(base + 4, r.provider);
    stmt->Bind(base + 5, r.prompt_tokens);
    stmt->Bind(base + 6, r.completion_tokens);
    stmt->Bind(base + 7, r.cost);
    stmt->Bind(base + 8, static_cast<int64_t>(r.status));
    stmt->Bind(base + 9, r.latency_ms);
    stmt->Bind(base + 10, r.ttfb_ms);
    stmt->BindUnowned(base + 11, r.request_id);
    stmt->Bind(base + 12, r.at);
  }
  Status status = stmt->Run();
  if (!status.ok()) return sqlite::DescribeConstraintError(status.error());
  return OkStatus();
}

Status InsertUsageRecords(Connection& conn, const std::vector<UsageRecord>& records,
                          const std::vector<UsageKeyIds>& ids) {
  size_t next = 0;
  for (size_t rows : kUsageRowsPerInsert) {
    while (records.size() - next >= rows) {
      KG_RETURN_IF_ERROR(InsertUsageRows(conn, records, ids, next, rows));
      next += rows;
    }
  }
  return OkStatus();
}

// The id of the usage_keys row of `key_hash`, inserting the row if there is none. An existing
// row is left as it is (the no-op update only makes RETURNING answer its id).
Result<int64_t> UpsertUsageKey(Connection& conn, const std::string& key_hash,
                               const std::string& lineage, const std::string& org_id) {
  auto stmt = conn.Prepare(
      "INSERT INTO usage_keys (key_hash, lineage, org_id) VALUES (?1, ?2, ?3) "
      "ON CONFLICT (key_hash) DO UPDATE SET key_hash = excluded.key_hash RETURNING id");
  if (!stmt.ok()) return stmt.error();
  stmt->BindAll({key_hash, lineage, org_id});
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  if (!*row) return Error::Internal("usage key upsert of " + key_hash + " returned no id");
  const int64_t id = stmt->ColumnInt(0);
  KG_RETURN_IF_ERROR(stmt->Run());
  return id;
}

// The id of `key_hash` from `cache`, or from usage_keys (added to `cache`).
Result<int64_t> UsageKeyId(Connection& conn, std::unordered_map<std::string, int64_t>& cache,
                           const std::string& key_hash, const std::string& lineage,
                           const std::string& org_id) {
  if (auto it = cache.find(key_hash); it != cache.end()) return it->second;
  auto id = UpsertUsageKey(conn, key_hash, lineage, org_id);
  if (!id.ok()) return id.error();
  cache.emplace(key_hash, *id);
  return *id;
}

// The ids of each record's key and lineage root, in record order.
Result<std::vector<UsageKeyIds>> ResolveUsageKeyIds(Connection& conn,
                                                    std::unordered_map<std::string, int64_t>& cache,
                                                    const std::vector<UsageRecord>& records) {
  if (cache.size() >= kMaxCachedUsageKeys) cache.clear();
  std::vector<UsageKeyIds> ids(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const UsageRecord& r = records[i];
    auto key_id = UsageKeyId(conn, cache, r.key_hash, r.lineage, r.org_id);
    if (!key_id.ok()) return key_id.error();
    // A lineage root is the first key of its chain: its own lineage, of the same org.
    auto lineage_id = UsageKeyId(conn, cache, r.lineage, r.lineage, r.org_id);
    if (!lineage_id.ok()) return lineage_id.error();
    ids[i] = UsageKeyIds{*key_id, *lineage_id};
  }
  return ids;
}

Status AddToDaily(Connection& conn, const std::string& lineage, int64_t day,
                  const DailyDelta& delta) {
  return RunSql(
      conn,
      "INSERT INTO usage_daily (lineage, day, cost, prompt_tokens, completion_tokens, "
      "requests) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
      "ON CONFLICT (lineage, day) DO UPDATE SET cost = cost + excluded.cost, "
      "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
      "completion_tokens = completion_tokens + excluded.completion_tokens, "
      "requests = requests + excluded.requests",
      {lineage, day, delta.cost, delta.prompt_tokens, delta.completion_tokens, delta.requests});
}

}  // namespace

// ---------------------------------------------------------------- audit log

Result<AuditPage> SqliteStore::ListAudit(const AuditQuery& query) {
  KG_RETURN_IF_ERROR(ValidateAuditQuery(query));
  const WhereClause where = BuildAuditFilter(query);
  AuditPage page;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    auto stmt = conn.Prepare(std::string("SELECT ") + sqlite::kAuditColumns + " FROM audit_log " +
                             where.sql() + " ORDER BY id DESC LIMIT ?");
    if (!stmt.ok()) return stmt.error();
    // One row more than asked tells whether there is another page.
    stmt->Bind(where.BindTo(*stmt, 1), query.limit + 1);
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      page.entries.push_back(sqlite::ReadAuditEntry(*stmt));
    }
    return OkStatus();
  }));
  page.has_more = static_cast<int64_t>(page.entries.size()) > query.limit;
  if (page.has_more) page.entries.pop_back();
  return page;
}

// ---------------------------------------------------------------- usage

Status SqliteStore::AppendUsage(const std::vector<UsageRecord>& records) {
  if (records.empty()) return OkStatus();
  const DailyDeltas deltas = SumByLineageAndDay(records);
  // Raw rows and daily totals in one savepoint: the totals never disagree with the rows.
  auto append = [&](Connection& conn) -> Status {
    auto ids = ResolveUsageKeyIds(conn, usage_keys_.ids, records);
    if (!ids.ok()) return ids.error();
    KG_RETURN_IF_ERROR(InsertUsageRecords(conn, records, *ids));
    for (const auto& [lineage_day, delta] : deltas) {
      KG_RETURN_IF_ERROR(AddToDaily(conn, lineage_day.first, lineage_day.second, delta));
    }
    return OkStatus();
  };
  // Rollbacks are noticed here, on the writer thread: the caller hears of a failed batch only
  // after the writer may have started the next one, which could reuse a rolled-back id.
  return Write([&](Connection& conn) -> Status {
    // A batch that failed as a whole (its COMMIT, or SQLite abandoning it) took the usage_keys
    // rows of its writes with it; the writer counts it before it runs the next batch.
    const int64_t failed_batches = GetWriteStats().failed_batches;
    if (failed_batches != usage_keys_.failed_batches_seen) {
      usage_keys_.ids.clear();
      usage_keys_.failed_batches_seen = failed_batches;
    }
    // A failing write loses only its savepoint, and with it the ids it added.
    try {
      Status status = append(conn);
      if (!status.ok()) usage_keys_.ids.clear();
      return status;
    } catch (...) {
      usage_keys_.ids.clear();
      throw;
    }
  });
}

Result<std::map<std::string, SpendSums>> SqliteStore::SpendFor(
    const std::vector<std::string>& lineages, const DayBounds& bounds) {
  std::map<std::string, SpendSums> out;
  for (const std::string& lineage : lineages) out[lineage] = SpendSums{};
  if (lineages.empty()) return out;
  auto add_row = [&](const Statement& row) {
    out[row.ColumnText(0)] =
        SpendSums{row.ColumnInt(1), row.ColumnInt(2), row.ColumnInt(3), row.ColumnInt(4)};
    return OkStatus();
  };
  // One query for every lineage and every bound. A single lineage (the answer to a create or
  // an update) is one index range, without the ephemeral table an IN (json_each) list builds.
  if (lineages.size() == 1) {
    KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
      return sqlite::ForEachRow(
          conn,
          "SELECT lineage, SUM(cost), "
          "SUM(CASE WHEN day >= ?2 THEN cost ELSE 0 END), "
          "SUM(CASE WHEN day >= ?3 THEN cost ELSE 0 END), "
          "SUM(CASE WHEN day >= ?4 THEN cost ELSE 0 END) "
          "FROM usage_daily WHERE lineage = ?1 GROUP BY lineage",
          {lineages.front(), bounds.today, bounds.week_start, bounds.month_start}, add_row);
    }));
    return out;
  }
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return sqlite::ForEachRow(
        conn,
        "SELECT lineage, SUM(cost), "
        "SUM(CASE WHEN day >= ?2 THEN cost ELSE 0 END), "
        "SUM(CASE WHEN day >= ?3 THEN cost ELSE 0 END), "
        "SUM(CASE WHEN day >= ?4 THEN cost ELSE 0 END) "
        "FROM usage_daily WHERE lineage IN (SELECT value FROM json_each(?1)) GROUP BY lineage",
        {sqlite::EncodeStringArray(lineages), bounds.today, bounds.week_start, bounds.month_start},
        add_row);
  }));
  return out;
}

Result<MicroUsd> SqliteStore::SpendSince(const std::string& lineage, int64_t from_day) {
  MicroUsd spend = 0;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return sqlite::ForEachRow(
        conn, "SELECT COALESCE(SUM(cost), 0) FROM usage_daily WHERE lineage = ?1 AND day >= ?2",
        {lineage, from_day}, [&](const Statement& row) {
          spend = row.ColumnInt(0);
          return OkStatus();
        });
  }));
  return spend;
}

Result<std::vector<DailyUsage>> SqliteStore::DailySeries(const std::string& lineage,
                                                         int64_t from_day) {
  std::vector<DailyUsage> out;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return sqlite::ForEachRow(
        conn,
        "SELECT day, cost, requests, prompt_tokens + completion_tokens FROM usage_daily "
        "WHERE lineage = ?1 AND day >= ?2 ORDER BY day",
        {lineage, from_day}, [&](const Statement& row) {
          out.push_back(
              DailyUsage{row.ColumnInt(0), row.ColumnInt(1), row.ColumnInt(2), row.ColumnInt(3)});
          return OkStatus();
        });
  }));
  return out;
}

Result<std::vector<UsageRecord>> SqliteStore::RecentUsage(const std::string& lineage,
                                                          int64_t limit) {
  if (limit < 1 || limit > kMaxPageSize) {
    return Error::InvalidArgument("limit must be between 1 and 1000", "limit");
  }
  std::vector<UsageRecord> out;
  // One lookup of the lineage root, then the (lineage_id, at) index backwards: no sort step.
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return sqlite::ForEachRow(conn,
                              std::string("SELECT ") + sqlite::kUsageColumns + " FROM " +
                                  sqlite::kUsageFrom +
                                  " WHERE l.key_hash = ?1 ORDER BY r.at DESC, r.id DESC LIMIT ?2",
                              {lineage, limit}, [&](const Statement& row) {
                                out.push_back(sqlite::ReadUsageRecord(row));
                                return OkStatus();
                              });
  }));
  return out;
}

}  // namespace keygate::store
