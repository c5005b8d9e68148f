// SqliteStore: reading the audit log, and usage (raw records plus per-lineage daily totals).
// Raw records are JSON arrays in usage_chunks rows, one row per lineage and batch, referring to
// usage_keys by id (schema version 5).
#include "store/sqlite/sqlite_store.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <numeric>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "common/log.h"
#include "common/saturating.h"
#include "common/text_writer.h"
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
  // Ids are numbered per organization (schema version 8).
  if (query.before_id > 0) where.Add("org_seq < ?", {query.before_id});
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
  // A run of one lineage's records (a busy key's calls, appended one after another) adds to
  // the same delta without a key made and searched (map nodes stay put).
  DailyDelta* last = nullptr;
  const UsageRecord* last_record = nullptr;
  int64_t last_day = 0;
  for (const UsageRecord& record : records) {
    const int64_t day = sqlite::DayOf(record.at);
    if (last == nullptr || day != last_day || record.lineage != last_record->lineage) {
      last = &deltas[{record.lineage, day}];
      last_day = day;
    }
    last_record = &record;
    DailyDelta& delta = *last;
    delta.cost = SaturatingAdd(delta.cost, record.cost);
    delta.prompt_tokens = SaturatingAdd(delta.prompt_tokens, record.prompt_tokens);
    delta.completion_tokens = SaturatingAdd(delta.completion_tokens, record.completion_tokens);
    delta.requests += 1;
  }
  return deltas;
}

// Most records in one usage_chunks row: a lineage with more records in one batch gets several
// rows, so that no row's text grows without bound (~100 bytes per record).
constexpr size_t kMaxRecordsPerChunk = 256;
// Most key_hash -> id entries kept; past it the cache starts again empty (bounded memory).
constexpr size_t kMaxCachedUsageKeys = 1 << 16;

// The usage_keys ids a usage record refers to.
struct UsageKeyIds {
  int64_t key_id = 0;
  int64_t lineage_id = 0;
};

// The id the next record gets: one past the last chunk's records (ids only grow; a chunk's
// records take first_id, first_id + 1, ...). Read per batch, inside its transaction, so a
// rolled-back batch leaves nothing to forget.
Result<int64_t> NextUsageRecordId(Connection& conn) {
  auto stmt = conn.Prepare(
      "SELECT first_id + records_count FROM usage_chunks ORDER BY id DESC LIMIT 1");
  if (!stmt.ok()) return stmt.error();
  auto row = stmt->Step();
  if (!row.ok()) return row.error();
  return *row ? stmt->ColumnInt(0) : 1;
}

// One record as the JSON array usage_chunks.records holds (schema version 5), written by hand
// rather than through JsonWriter: a batch encodes hundreds of records on the store writer's
// thread, beside the io threads, and JsonWriter's bookkeeping per value took a batch from
// ~3,100 to ~4,200 instructions a record (callgrind on bench/usage_write_bench).
void AppendChunkRecord(TextWriter& out, const UsageRecord& r, int64_t key_id) {
  out.push_back('[');
  AppendDecimal(key_id, &out);
  out.push_back(',');
  AppendJsonString(&out, r.model);
  out.push_back(',');
  AppendJsonString(&out, r.provider);
  for (const int64_t value : {r.prompt_tokens, r.completion_tokens, r.cost,
                              static_cast<int64_t>(r.status), r.latency_ms, r.ttfb_ms}) {
    out.push_back(',');
    AppendDecimal(value, &out);
  }
  out.push_back(',');
  AppendJsonString(&out, r.request_id);
  out.push_back(',');
  AppendDecimal(r.at, &out);
  out.push_back(']');
}

// Writes the records as usage_chunks rows: per lineage, in record order, at most
// kMaxRecordsPerChunk per row.
Status InsertUsageChunks(Connection& conn, const std::vector<UsageRecord>& records,
                         const std::vector<UsageKeyIds>& ids) {
  auto next_id = NextUsageRecordId(conn);
  if (!next_id.ok()) return next_id.error();
  // Record positions grouped by lineage id, each group in record order.
  std::vector<size_t> order(records.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ids[a].lineage_id < ids[b].lineage_id; });
  for (size_t first = 0; first < order.size();) {
    const int64_t lineage_id = ids[order[first]].lineage_id;
    size_t end = first;
    while (end < order.size() && end - first < kMaxRecordsPerChunk &&
           ids[order[end]].lineage_id == lineage_id) {
      ++end;
    }
    std::string json;
    {
      constexpr size_t kRecordBytes = 96;  // a typical record, to make room once
      TextWriter out(&json, kRecordBytes * (end - first));
      out.push_back('[');
      for (size_t i = first; i < end; ++i) {
        if (i != first) out.push_back(',');
        AppendChunkRecord(out, records[order[i]], ids[order[i]].key_id);
      }
      out.push_back(']');
    }
    UnixMillis newest = records[order[first]].at;
    for (size_t i = first; i < end; ++i) newest = std::max(newest, records[order[i]].at);
    auto stmt = conn.Prepare(
        "INSERT INTO usage_chunks (lineage_id, first_id, records_count, newest_at, records) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (!stmt.ok()) return stmt.error();
    const auto count = static_cast<int64_t>(end - first);
    stmt->Bind(1, lineage_id);
    stmt->Bind(2, *next_id);
    stmt->Bind(3, count);
    stmt->Bind(4, newest);
    stmt->BindUnowned(5, json);
    if (Status status = stmt->Run(); !status.ok()) {
      return sqlite::DescribeConstraintError(status.error());
    }
    *next_id += count;
    first = end;
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
    // Runs of one key's calls (the usual batch) reuse the ids without hashing the digests.
    if (i > 0 && r.key_hash == records[i - 1].key_hash && r.lineage == records[i - 1].lineage &&
        r.org_id == records[i - 1].org_id) {
      ids[i] = ids[i - 1];
      continue;
    }
    auto key_id = UsageKeyId(conn, cache, r.key_hash, r.lineage, r.org_id);
    if (!key_id.ok()) return key_id.error();
    // A lineage root is the first key of its chain: its own lineage, of the same org.
    auto lineage_id = UsageKeyId(conn, cache, r.lineage, r.lineage, r.org_id);
    if (!lineage_id.ok()) return lineage_id.error();
    ids[i] = UsageKeyIds{*key_id, *lineage_id};
  }
  return ids;
}

// Each total saturates at kMostUsageOfADay (a sum past int64 is a REAL in SQLite, which MIN
// brings back to the integer bound).
Status AddToDaily(Connection& conn, const std::string& lineage, int64_t day,
                  const DailyDelta& delta) {
  auto bounded = [](int64_t value) { return std::clamp<int64_t>(value, 0, kMostUsageOfADay); };
  return RunSql(
      conn,
      "INSERT INTO usage_daily (lineage, day, cost, prompt_tokens, completion_tokens, "
      "requests) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
      "ON CONFLICT (lineage, day) DO UPDATE SET cost = MIN(cost + excluded.cost, ?7), "
      "prompt_tokens = MIN(prompt_tokens + excluded.prompt_tokens, ?7), "
      "completion_tokens = MIN(completion_tokens + excluded.completion_tokens, ?7), "
      "requests = MIN(requests + excluded.requests, ?7)",
      {lineage, day, bounded(delta.cost), bounded(delta.prompt_tokens),
       bounded(delta.completion_tokens), bounded(delta.requests), kMostUsageOfADay});
}

}  // namespace

// ---------------------------------------------------------------- audit log

Result<AuditPage> SqliteStore::ListAudit(const AuditQuery& query) {
  KG_RETURN_IF_ERROR(ValidateAuditQuery(query));
  const WhereClause where = BuildAuditFilter(query);
  AuditPage page;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    auto stmt = conn.Prepare(std::string("SELECT ") + sqlite::kAuditColumns + " FROM audit_log " +
                             where.sql() + " ORDER BY org_seq DESC LIMIT ?");
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
  // Raw records and daily totals in one savepoint: the totals never disagree with the records
  // (until usage.retention_days removes the records: PruneUsageBefore).
  auto append = [&](Connection& conn) -> Status {
    auto ids = ResolveUsageKeyIds(conn, usage_keys_.ids, records);
    if (!ids.ok()) return ids.error();
    KG_RETURN_IF_ERROR(InsertUsageChunks(conn, records, *ids));
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

Status SqliteStore::ForEachCallBetween(UnixMillis since, UnixMillis until,
                                       const std::function<void(const CallInWindow&)>& fn) {
  // A chunk's newest_at bounds every `at` it holds: the index finds the chunks that may hold a
  // call since `since`, in its order (then by id: a lineage's batches follow one another), and
  // the records are filtered one by one, in their chunk's order. The index gives the order, so
  // SQLite sorts nothing and holds nothing (EXPLAIN QUERY PLAN: no temp B-tree).
  return Read([&](Connection& conn) {
    return sqlite::ForEachRow(
        conn,
        "SELECT l.key_hash, r.value ->> 10, (r.value ->> 3) + (r.value ->> 4) "
        "FROM usage_chunks c JOIN json_each(c.records) r JOIN usage_keys l ON l.id = c.lineage_id "
        "WHERE c.newest_at >= ?1 AND r.value ->> 10 BETWEEN ?1 AND ?2 ORDER BY c.newest_at",
        {since, until}, [&](const Statement& row) {
          const std::string lineage = row.ColumnText(0);
          fn(CallInWindow{lineage, row.ColumnInt(1), row.ColumnInt(2)});
          return OkStatus();
        });
  });
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

Status SqliteStore::UpdateOpenCalls(const std::vector<OpenCall>& opened,
                                    const std::vector<uint64_t>& closed) {
  if (opened.empty() && closed.empty()) return OkStatus();
  return Write([&](Connection& conn) -> Status {
    for (const OpenCall& open : opened) {
      const UsageRecord& c = open.call;
      KG_RETURN_IF_ERROR(RunSql(
          conn,
          "INSERT OR REPLACE INTO open_calls (id, key_hash, lineage, org_id, model, provider, "
          "request_id, at, prompt_tokens, completion_tokens, cost) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
          {static_cast<int64_t>(open.id), c.key_hash, c.lineage, c.org_id, c.model, c.provider,
           c.request_id, c.at, c.prompt_tokens, c.completion_tokens, c.cost}));
    }
    for (uint64_t id : closed) {
      KG_RETURN_IF_ERROR(
          RunSql(conn, "DELETE FROM open_calls WHERE id = ?1", {static_cast<int64_t>(id)}));
    }
    return OkStatus();
  });
}

Result<std::vector<OpenCall>> SqliteStore::OpenCalls() {
  std::vector<OpenCall> out;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return sqlite::ForEachRow(
        conn,
        "SELECT id, key_hash, lineage, org_id, model, provider, request_id, at, prompt_tokens, "
        "completion_tokens, cost FROM open_calls ORDER BY id",
        {}, [&](const Statement& row) {
          OpenCall open;
          open.id = static_cast<uint64_t>(row.ColumnInt(0));
          UsageRecord& c = open.call;
          c.key_hash = row.ColumnText(1);
          c.lineage = row.ColumnText(2);
          c.org_id = row.ColumnText(3);
          c.model = row.ColumnText(4);
          c.provider = row.ColumnText(5);
          c.request_id = row.ColumnText(6);
          c.at = row.ColumnInt(7);
          c.prompt_tokens = row.ColumnInt(8);
          c.completion_tokens = row.ColumnInt(9);
          c.cost = row.ColumnInt(10);
          out.push_back(std::move(open));
          return OkStatus();
        });
  }));
  return out;
}

Result<PrunedUsage> SqliteStore::PruneUsageBefore(UnixMillis before, int64_t max_records) {
  PrunedUsage pruned;
  if (max_records < 1) return pruned;
  // A chunk's newest_at bounds every record it holds, and usage_chunks_by_time orders them by
  // it. The newest chunk stays: the next record's id is read from it (InsertUsageChunks).
  constexpr const char* kDue =
      "FROM usage_chunks WHERE newest_at < ?1 AND id < (SELECT MAX(id) FROM usage_chunks)";
  // Read first: a write is a commit with its disk sync, and most passes find nothing due.
  bool due = false;
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return sqlite::ForEachRow(conn, std::string("SELECT EXISTS (SELECT 1 ") + kDue + ")",
                              {before}, [&](const Statement& row) {
                                due = row.ColumnInt(0) != 0;
                                return OkStatus();
                              });
  }));
  if (!due) return pruned;
  // The oldest due chunks while the records before each are under `max_records` (a full chunk
  // is ~25 KB, which SQLite's secure_delete also zeroes: bounded by records, one write stays a
  // few MB whatever the chunks hold). Each chunk holds a record at least, so no more than
  // `max_records` chunks are read for it, however long the backlog.
  const std::string sql =
      std::string("DELETE FROM usage_chunks WHERE id IN (SELECT id FROM (SELECT id, ") +
      "SUM(records_count) OVER (ORDER BY newest_at, id) - records_count AS before_it FROM " +
      "(SELECT id, records_count, newest_at " + kDue + " ORDER BY newest_at, id LIMIT ?2)) " +
      "WHERE before_it < ?2) RETURNING records_count";
  KG_RETURN_IF_ERROR(Write([&](Connection& conn) {
    return sqlite::ForEachRow(conn, sql, {before, max_records}, [&](const Statement& row) {
      ++pruned.batches;
      pruned.records += row.ColumnInt(0);
      return OkStatus();
    });
  }));
  // Stopped by the bound (or exactly at it): another write may find more.
  pruned.more = pruned.records >= max_records;
  return pruned;
}

Result<std::vector<UsageRecord>> SqliteStore::RecentUsage(const std::string& lineage,
                                                          int64_t limit) {
  if (limit < 1 || limit > kMaxPageSize) {
    return Error::InvalidArgument("limit must be between 1 and 1000", "limit");
  }
  struct Recent {
    UsageRecord record;
    int64_t id = 0;
  };
  auto newer = [](const Recent& a, const Recent& b) {
    return a.record.at != b.record.at ? a.record.at > b.record.at : a.id > b.id;
  };
  const auto wanted = static_cast<size_t>(limit);
  std::vector<Recent> found;
  // Keeps the `wanted` newest records found so far, newest first.
  auto keep_newest = [&] {
    std::sort(found.begin(), found.end(), newer);
    if (found.size() > wanted) found.resize(wanted);
  };
  // The lineage's chunks from the newest `at` down (one index range, backwards), with their
  // records. A chunk may hold records older than the next chunk's newest, so the walk stops
  // only once `wanted` records are all newer than everything a later chunk can hold.
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) -> Status {
    auto stmt = conn.Prepare(std::string("SELECT ") + sqlite::kUsageColumns +
                             ", c.id, c.first_id + r.key, c.newest_at FROM " + sqlite::kUsageFrom +
                             " WHERE l.key_hash = ?1 ORDER BY c.newest_at DESC, c.id DESC");
    if (!stmt.ok()) return stmt.error();
    stmt->Bind(1, lineage);
    int64_t chunk = -1;
    while (true) {
      auto row = stmt->Step();
      if (!row.ok()) return row.error();
      if (!*row) break;
      if (stmt->ColumnInt(13) != chunk) {
        chunk = stmt->ColumnInt(13);
        keep_newest();
        if (found.size() == wanted && found.back().record.at > stmt->ColumnInt(15)) break;
      }
      found.push_back(Recent{sqlite::ReadUsageRecord(*stmt), stmt->ColumnInt(14)});
    }
    return OkStatus();
  }));
  keep_newest();
  std::vector<UsageRecord> out;
  out.reserve(found.size());
  for (Recent& recent : found) out.push_back(std::move(recent.record));
  return out;
}

}  // namespace keygate::store
