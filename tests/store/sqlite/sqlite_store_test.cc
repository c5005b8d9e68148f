#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite/schema.h"
#include "store/store_contract.h"
#include "testing/manual_clock.h"

namespace keygate::store {
namespace {

using keygate::testing::ManualClock;
using store::testing::kT0;
using store::testing::MakeTempDir;

// Test-side access to the file, bypassing the store (to inspect or to plant rows).
class RawDb {
 public:
  explicit RawDb(const std::string& path) { sqlite3_open(path.c_str(), &db_); }
  ~RawDb() { sqlite3_close(db_); }
  bool Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK;
  }
  // Column `col` of each row, as text.
  std::vector<std::string> Column(const std::string& sql, int col = 0) {
    std::vector<std::string> out;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) return out;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, col));
      out.push_back(text != nullptr ? text : "NULL");
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    path_ = dir_ + "/data/keygate.db";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<SqliteStore> OpenOrDie(SqliteOptions options = {}) {
    auto store = SqliteStore::Open(path_, options);
    EXPECT_TRUE(store.ok()) << store.error().message;
    return store.ok() ? std::move(*store) : nullptr;
  }

  static keys::AuditEntry Audit(const std::string& org_id) {
    keys::AuditEntry entry;
    entry.org_id = org_id;
    entry.actor = "owner:abc";
    entry.action = "test";
    return entry;
  }

  static void CreateOrg(SqliteStore& store, const std::string& org_id) {
    keys::OwnerCredential owner{"owner-" + org_id, org_id, "owner", "ok-kg-••••0000", kT0};
    ASSERT_TRUE(store.CreateOrganization({org_id, org_id, kT0}, owner, Audit(org_id)).ok());
  }

  static keys::ServiceKey Key(const std::string& org_id, const std::string& hash) {
    keys::ServiceKey key;
    key.hash = hash;
    key.org_id = org_id;
    key.name = "key " + hash;
    key.masked = "sk-kg-••••" + hash.substr(0, 4);
    key.created_by = "owner:abc";
    key.created_at = kT0;
    return key;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(SqliteStoreTest, OpenCreatesFileAndParentDirectoryInWalMode) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(std::filesystem::exists(path_));
  EXPECT_EQ(RawDb(path_).Column("PRAGMA journal_mode"), std::vector<std::string>{"wal"});
  EXPECT_EQ(store->path(), path_);
}

TEST_F(SqliteStoreTest, OpenOfNonDatabaseFileIsUnavailableNamingThePath) {
  std::filesystem::create_directories(dir_ + "/data");
  std::ofstream(path_) << "this is not a database, just some text that is long enough";
  auto store = SqliteStore::Open(path_, {});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(store.error().message.find(path_), std::string::npos) << store.error().message;
}

TEST_F(SqliteStoreTest, OpenOfDirectoryIsUnavailable) {
  std::filesystem::create_directories(path_);
  auto store = SqliteStore::Open(path_, {});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(store.error().message.find(path_), std::string::npos) << store.error().message;
}

TEST_F(SqliteStoreTest, OpenRejectsBadOptionsAndPaths) {
  SqliteOptions options;
  options.read_connections = 0;
  EXPECT_EQ(SqliteStore::Open(path_, options).error().param, "read_connections");
  options = {};
  options.max_batch_writes = 0;
  EXPECT_EQ(SqliteStore::Open(path_, options).error().param, "max_batch_writes");
  options = {};
  options.busy_timeout_ms = -1;
  EXPECT_EQ(SqliteStore::Open(path_, options).error().param, "busy_timeout_ms");
  EXPECT_EQ(SqliteStore::Open(":memory:", {}).error().param, "path");
  EXPECT_EQ(SqliteStore::Open("", {}).error().param, "path");
}

TEST_F(SqliteStoreTest, MigrationsAreRecordedOnceAndNotReapplied) {
  ManualClock clock(kT0);
  SqliteOptions options;
  options.clock = &clock;
  OpenOrDie(options).reset();
  clock.AdvanceMs(60'000);
  auto store = OpenOrDie(options);
  CreateOrg(*store, "org_a");
  store.reset();
  OpenOrDie(options).reset();
  RawDb raw(path_);
  // Every step once, each stamped when the file was first opened.
  std::vector<std::string> versions;
  for (int64_t v = 1; v <= SqliteStore::SchemaVersion(); ++v) versions.push_back(std::to_string(v));
  EXPECT_EQ(raw.Column("SELECT version FROM schema_migrations ORDER BY version"), versions);
  EXPECT_EQ(raw.Column("SELECT DISTINCT applied_at FROM schema_migrations"),
            std::vector<std::string>{std::to_string(kT0)});
  EXPECT_EQ(raw.Column("SELECT id FROM organizations"), std::vector<std::string>{"org_a"});
}

TEST_F(SqliteStoreTest, DatabaseFromNewerKeygateIsRefused) {
  OpenOrDie().reset();
  ASSERT_TRUE(
      RawDb(path_).Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)"));
  auto store = SqliteStore::Open(path_, {});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(store.error().message.find("999"), std::string::npos) << store.error().message;
  EXPECT_NE(store.error().message.find("newer keygate"), std::string::npos);
}

TEST_F(SqliteStoreTest, EveryCallAfterCloseIsUnavailable) {
  auto store = OpenOrDie();
  CreateOrg(*store, "org_a");
  store->Close();
  store->Close();  // idempotent
  EXPECT_EQ(store->GetOrganization("org_a").error().code, ErrorCode::kUnavailable);
  keys::ServiceKey key = Key("org_a", "h1");
  EXPECT_EQ(store->InsertServiceKey(&key, std::nullopt, Audit("org_a")).error().code,
            ErrorCode::kUnavailable);
  EXPECT_EQ(store->AppendUsage({UsageRecord{}}).error().code, ErrorCode::kUnavailable);
}

TEST_F(SqliteStoreTest, ConcurrentInsertsAreGroupCommitted) {
  constexpr int kThreads = 64;
  constexpr int kPerThread = 50;
  auto store = OpenOrDie();
  CreateOrg(*store, "org_a");
  const SqliteStore::WriteStats before = store->GetWriteStats();
  std::atomic<int> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        keys::ServiceKey key = Key("org_a", "t" + std::to_string(t) + "-" + std::to_string(i));
        if (!store->InsertServiceKey(&key, std::nullopt, Audit("org_a")).ok()) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const SqliteStore::WriteStats after = store->GetWriteStats();
  const int64_t writes = after.writes - before.writes;
  const int64_t batches = after.batches - before.batches;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(writes, kThreads * kPerThread);
  EXPECT_EQ(after.failed_batches, 0);
  // A measurement for the record, not an assertion (timings belong in bench/).
  std::printf(
      "[ measure  ] %d durable inserts from %d threads in %.3f s: %.0f writes/s, "
      "%lld batches (%.1f writes per fsync)\n",
      kThreads * kPerThread, kThreads, seconds, writes / seconds, static_cast<long long>(batches),
      static_cast<double>(writes) / batches);
  EXPECT_EQ(RawDb(path_).Column("SELECT COUNT(*) FROM service_keys"),
            std::vector<std::string>{std::to_string(kThreads * kPerThread)});
}

// The child of KillNineLosesNoAcknowledgedWrite: inserts keys from several threads and
// reports each acknowledged one on `ack_fd`, until it is killed.
[[noreturn]] void InsertUntilKilled(const std::string& path, int ack_fd) {
  constexpr int kThreads = 8;
  auto store = SqliteStore::Open(path, {});
  if (!store.ok()) _exit(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int32_t i = t;; i += kThreads) {
        keys::ServiceKey key;
        key.hash = "k" + std::to_string(i);
        key.org_id = "org_a";
        key.name = key.hash;
        key.created_by = "owner:abc";
        keys::AuditEntry audit;
        audit.org_id = "org_a";
        if (!(*store)->InsertServiceKey(&key, std::nullopt, audit).ok()) _exit(3);
        if (write(ack_fd, &i, sizeof(i)) != sizeof(i)) _exit(4);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  _exit(0);
}

// spec §5: a kill -9 at any moment loses no acknowledged write.
TEST_F(SqliteStoreTest, KillNineLosesNoAcknowledgedWrite) {
  constexpr size_t kAcksBeforeKill = 300;
  {
    auto store = OpenOrDie();
    CreateOrg(*store, "org_a");
  }
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    InsertUntilKilled(path_, fds[1]);
  }
  close(fds[1]);
  std::vector<int32_t> acked;
  int32_t id = 0;
  while (acked.size() < kAcksBeforeKill && read(fds[0], &id, sizeof(id)) == sizeof(id)) {
    acked.push_back(id);
  }
  kill(child, SIGKILL);
  int wait_status = 0;
  waitpid(child, &wait_status, 0);
  // Acknowledgements already in the pipe count too.
  while (read(fds[0], &id, sizeof(id)) == sizeof(id)) acked.push_back(id);
  close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(wait_status)) << "child exited early with " << WEXITSTATUS(wait_status);
  ASSERT_GE(acked.size(), kAcksBeforeKill);

  auto store = OpenOrDie();
  int missing = 0;
  for (int32_t acked_id : acked) {
    if (!store->GetServiceKey("k" + std::to_string(acked_id)).ok()) ++missing;
  }
  EXPECT_EQ(missing, 0) << "of " << acked.size() << " acknowledged inserts";
}

// Loads `count` keys of one org straight into the file, in one transaction, the way the store
// would have written them.
void BulkLoadKeys(const std::string& path, int count) {
  RawDb raw(path);
  ASSERT_TRUE(raw.Exec("BEGIN"));
  ASSERT_TRUE(raw.Exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
      std::to_string(count) +
      ") INSERT INTO service_keys (hash, seq, version, org_id, name, masked, source, "
      "tags_json, created_by, lineage, created_at, disabled, expires_at, revoke_at) "
      "SELECT printf('%064d', i), i, i, 'org_big', 'key ' || i, 'sk-kg-••••' || i, 'router', "
      "'[]', 'owner:abc', printf('%064d', i), 0, i % 2, "
      "CASE WHEN i % 10 = 0 THEN 1 ELSE NULL END, "
      "CASE WHEN i % 100 = 0 THEN 1 ELSE NULL END FROM n"));
  ASSERT_TRUE(raw.Exec("UPDATE sequences SET value = " + std::to_string(count)));
  ASSERT_TRUE(raw.Exec("COMMIT"));
}

TEST_F(SqliteStoreTest, ListPageAmongHundredThousandKeysUsesTheOrgSeqIndex) {
  constexpr int kKeys = 100'000;
  auto store = OpenOrDie();
  CreateOrg(*store, "org_big");
  BulkLoadKeys(path_, kKeys);

  ServiceKeyQuery query;
  query.org_id = "org_big";
  query.now = kT0;
  query.limit = 100;
  auto first = store->ListServiceKeys(query);  // warms the cache and the statements
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->keys.size(), 100u);
  EXPECT_EQ(first->total, kKeys - kKeys / 100);
  EXPECT_TRUE(first->has_more);

  constexpr int kRounds = 20;
  auto timed = [&](const ServiceKeyQuery& q) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) EXPECT_TRUE(store->ListServiceKeys(q).ok());
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
               .count() /
           kRounds;
  };
  const double offset_ms = timed(query);
  query.starting_after = first->keys.back().hash;
  const double cursor_ms = timed(query);
  query.starting_after.clear();
  query.newest_first = true;
  const double newest_ms = timed(query);
  query.newest_first = false;
  query.include_disabled = false;
  const double filtered_ms = timed(query);
  query.include_disabled = true;
  query.source = keys::KeySource::kRouter;
  query.offset = kKeys / 2;
  auto deep = store->ListServiceKeys(query);
  ASSERT_TRUE(deep.ok()) << deep.error().message;
  ASSERT_EQ(deep->keys.size(), 100u);
  // Every 100th key is deleted (revoke_at 1, before now): the page starts at the key with
  // seq 50505 (the 50,000th visible key, 0-based, skipping 505 deleted ones).
  EXPECT_EQ(deep->keys.front().name, "key 50506");
  const double deep_ms = timed(query);
  query.newest_first = true;
  const double deep_newest_ms = timed(query);
  std::printf(
      "[ measure  ] page of 100 among %d keys (with total): offset 0 %.2f ms, "
      "cursor %.2f ms, newest first %.2f ms; hiding disabled (a counted filter) %.2f ms; "
      "offset %d %.2f ms, newest first %.2f ms\n",
      kKeys, offset_ms, cursor_ms, newest_ms, filtered_ms, kKeys / 2, deep_ms, deep_newest_ms);

  // Structure, not timing: the page is a range scan of the (org_id, seq) index, in seq
  // order, with no sort step.
  constexpr int kDetailColumn = 3;
  std::string plan;
  for (const std::string& line :
       RawDb(path_).Column("EXPLAIN QUERY PLAN SELECT k.hash FROM service_keys k "
                           "WHERE k.org_id = 'org_big' AND (k.revoke_at IS NULL OR "
                           "k.revoke_at > 0) AND k.seq > 5 ORDER BY k.seq LIMIT 101",
                           kDetailColumn)) {
    plan += line + "; ";
  }
  EXPECT_NE(plan.find("service_keys_by_org_seq"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  // Hiding disabled keys still pages through the same index.
  plan.clear();
  for (const std::string& line :
       RawDb(path_).Column("EXPLAIN QUERY PLAN SELECT k.hash FROM service_keys k "
                           "WHERE k.org_id = 'org_big' AND (k.revoke_at IS NULL OR "
                           "k.revoke_at > 0) AND k.disabled = 0 ORDER BY k.seq LIMIT 101",
                           kDetailColumn)) {
    plan += line + "; ";
  }
  EXPECT_NE(plan.find("service_keys_by_org_seq"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  // A deep offset skips through the never-revoked keys of one scope from the lower end of the
  // range only, in index order; the keys in a grace period come from the partial index.
  plan.clear();
  for (const std::string& line : RawDb(path_).Column(
           "EXPLAIN QUERY PLAN SELECT scope, seq FROM service_key_live WHERE scope >= "
           "'org_big/router' ORDER BY scope, seq LIMIT 1 OFFSET 50000",
           kDetailColumn)) {
    plan += line + "; ";
  }
  EXPECT_NE(plan.find("PRIMARY KEY (scope>?)"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  plan.clear();
  for (const std::string& line : RawDb(path_).Column(
           "EXPLAIN QUERY PLAN SELECT k.seq FROM service_keys k WHERE k.org_id = 'org_big' AND "
           "k.revoke_at > 5 AND k.source = 'router' LIMIT 1001",
           kDetailColumn)) {
    plan += line + "; ";
  }
  EXPECT_NE(plan.find("service_keys_in_grace"), std::string::npos) << plan;
}

// A file written by the previous keygate (schema version 2: tag rows keyed by hash, no table
// of live keys) is upgraded when opened and keeps its keys, tags, counters and order.
TEST_F(SqliteStoreTest, Version2DatabaseUpgradesAndKeepsItsKeys) {
  std::filesystem::create_directories(dir_ + "/data");
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.Exec("PRAGMA journal_mode=WAL"));
    ASSERT_TRUE(raw.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                         "applied_at INTEGER NOT NULL)"));
    for (const sqlite::Migration& migration : sqlite::Migrations()) {
      if (migration.version > 2) break;
      ASSERT_TRUE(raw.Exec(migration.sql)) << migration.version;
      ASSERT_TRUE(raw.Exec("INSERT INTO schema_migrations VALUES (" +
                           std::to_string(migration.version) + ", 0)"));
    }
    ASSERT_TRUE(raw.Exec("INSERT INTO organizations VALUES ('org_a', 'a', 0)"));
    // k1..k4 in org_a (k3 in a grace period until kT0 + 100, k4 deleted), z in org_z.
    ASSERT_TRUE(raw.Exec("INSERT INTO organizations VALUES ('org_z', 'z', 0)"));
    const char* rows[][5] = {{"h1", "1", "org_a", "[\"red\",\"blue\"]", "NULL"},
                             {"h2", "2", "org_a", "[\"red\"]", "NULL"},
                             {"h3", "3", "org_a", "[\"red\"]", "kT0+100"},
                             {"h4", "4", "org_a", "[\"blue\"]", "1"},
                             {"hz", "5", "org_z", "[\"red\"]", "NULL"}};
    for (const auto& row : rows) {
      std::string revoke = row[4];
      if (revoke == "kT0+100") revoke = std::to_string(kT0 + 100);
      ASSERT_TRUE(raw.Exec(std::string("INSERT INTO service_keys (hash, seq, version, org_id, "
                                       "name, masked, source, tags_json, created_by, lineage, "
                                       "created_at, revoke_at) VALUES ('") +
                           row[0] + "', " + row[1] + ", " + row[1] + ", '" + row[2] + "', 'k" +
                           row[1] + "', 'sk-kg-••••', 'router', '" + row[3] +
                           "', 'owner:abc', '" + row[0] + "', 0, " + revoke + ")"))
          << row[0];
    }
    ASSERT_TRUE(raw.Exec(
        "INSERT INTO service_key_tags (hash, tag, org_id, seq) "
        "SELECT k.hash, j.value, k.org_id, k.seq FROM service_keys k, json_each(k.tags_json) j"));
    ASSERT_TRUE(raw.Exec("UPDATE sequences SET value = 5"));
  }

  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawDb(path_).Column("SELECT MAX(version) FROM schema_migrations"),
            std::vector<std::string>{std::to_string(SqliteStore::SchemaVersion())});
  // The tag rows moved to the new key (seq, tag), and the live keys were recorded.
  EXPECT_EQ(RawDb(path_).Column("SELECT seq || ':' || tag || ':' || hash || ':' || org_id "
                                "FROM service_key_tags ORDER BY seq, tag"),
            (std::vector<std::string>{"1:blue:h1:org_a", "1:red:h1:org_a", "2:red:h2:org_a",
                                      "3:red:h3:org_a", "4:blue:h4:org_a", "5:red:hz:org_z"}));
  EXPECT_EQ(RawDb(path_).Column("SELECT scope || ':' || seq FROM service_key_live"),
            (std::vector<std::string>{"org_a/router:1", "org_a/router:2", "org_z/router:5"}));

  auto key = store->GetServiceKey("h2");
  ASSERT_TRUE(key.ok()) << key.error().message;
  EXPECT_EQ(key->tags, std::vector<std::string>{"red"});

  ServiceKeyQuery query;
  query.org_id = "org_a";
  query.now = kT0;
  query.limit = 10;
  query.source = keys::KeySource::kRouter;
  auto names = [&](const ServiceKeyQuery& q) {
    std::vector<std::string> out;
    auto page = store->ListServiceKeys(q);
    EXPECT_TRUE(page.ok()) << page.error().message;
    if (!page.ok()) return out;
    out.push_back(std::to_string(page->total));
    for (const keys::ServiceKey& k : page->keys) out.push_back(k.name);
    return out;
  };
  EXPECT_EQ(names(query), (std::vector<std::string>{"3", "k1", "k2", "k3"}));
  query.offset = 1;
  EXPECT_EQ(names(query), (std::vector<std::string>{"3", "k2", "k3"}));
  query.offset = 0;
  query.tags = {"red"};
  EXPECT_EQ(names(query), (std::vector<std::string>{"3", "k1", "k2", "k3"}));
  query.tags = {"red", "blue"};
  EXPECT_EQ(names(query), (std::vector<std::string>{"1", "k1"}));

  // Writes after the upgrade keep the tag rows and the counters right.
  keys::ServiceKey k2 = *key;
  k2.tags = {"blue"};
  ASSERT_TRUE(store->UpdateServiceKey(&k2, std::nullopt, Audit("org_a")).ok());
  keys::ServiceKey k1 = *store->GetServiceKey("h1");
  k1.revoke_at = kT0;
  ASSERT_TRUE(store->UpdateServiceKey(&k1, std::nullopt, Audit("org_a")).ok());
  keys::ServiceKey k5 = Key("org_a", "h5");
  k5.tags = {"blue"};
  ASSERT_TRUE(store->InsertServiceKey(&k5, std::nullopt, Audit("org_a")).ok());
  query.tags = {"blue"};
  EXPECT_EQ(names(query), (std::vector<std::string>{"2", "k2", "key h5"}));
  query.tags = {"red"};
  EXPECT_EQ(names(query), (std::vector<std::string>{"1", "k3"}));
  query.tags.clear();
  query.offset = 2;
  EXPECT_EQ(names(query), (std::vector<std::string>{"3", "key h5"}));
}

}  // namespace
}  // namespace keygate::store
