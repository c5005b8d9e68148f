#include "store/sqlite/sqlite_store.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite/row_codec.h"
#include "store/sqlite/schema.h"
#include "store/store_contract.h"
#include "testing/manual_clock.h"

namespace keygate::store {
namespace {

using keygate::testing::ManualClock;
using store::testing::HexId;
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

// Creates the file at `path` as a keygate of schema version `version` left it, with no rows.
void CreateDatabaseAtVersion(const std::string& path, int64_t version) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  RawDb raw(path);
  ASSERT_TRUE(raw.Exec("PRAGMA journal_mode=WAL"));
  ASSERT_TRUE(
      raw.Exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
               "applied_at INTEGER NOT NULL)"));
  for (const sqlite::Migration& migration : sqlite::Migrations()) {
    if (migration.version > version) break;
    ASSERT_TRUE(raw.Exec(migration.sql)) << migration.version;
    ASSERT_TRUE(raw.Exec("INSERT INTO schema_migrations VALUES (" +
                         std::to_string(migration.version) + ", 0)"));
  }
}

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

// Audit V: a -wal or -shm this user cannot write (a failed start under another user left them
// so) let the store open, answer reads and /readyz, and refuse every write. Open refuses it.
// A -wal or -shm left unwritable (audit V) or unreadable (audit X: SQLite's "unable to open
// database file" named neither) by a start under another user is refused, naming the file.
TEST_F(SqliteStoreTest, OpenRefusesAStoreWhoseCompanionFilesItCannotUse) {
  OpenOrDie({}).reset();
  // Root reads and writes any file whatever its mode: the store is opened as another user then.
  constexpr uid_t kNobody = 65534;
  const bool as_root = ::geteuid() == 0;
  for (const mode_t mode : {0400, 0200, 0000}) {
    for (const char* suffix : {"-wal", "-shm"}) {
      std::ofstream(path_ + suffix).flush();
      ASSERT_EQ(::chmod((path_ + suffix).c_str(), mode), 0);
    }
    if (as_root) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_)) {
        ASSERT_EQ(::chown(entry.path().c_str(), kNobody, kNobody), 0) << entry.path();
      }
      ASSERT_EQ(::chown(dir_.c_str(), kNobody, kNobody), 0);
    }
    int out[2];
    ASSERT_EQ(::pipe(out), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(out[0]);
      if (as_root && (::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)) ::_exit(2);
      auto store = SqliteStore::Open(path_, {});
      const std::string message = store.ok() ? "opened" : store.error().message;
      (void)!::write(out[1], message.data(), message.size());
      ::_exit(store.ok() ? 0 : 1);
    }
    ::close(out[1]);
    std::string message;
    char buffer[512];
    for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) message.append(buffer, n);
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 1) << std::oct << mode << " " << message;
    EXPECT_NE(message.find(path_ + "-wal cannot be read and written by this user"),
              std::string::npos)
        << std::oct << mode << " " << message;
  }
}

// Audit AA: a -wal or -shm that is a directory or a symbolic link (SQLite follows none, even
// to a file) gave SQLite's bare "unable to open database file". Open names the file and what
// it is; once it is moved away, the store opens.
TEST_F(SqliteStoreTest, OpenRefusesCompanionsThatAreNoFiles) {
  namespace fs = std::filesystem;
  OpenOrDie({}).reset();
  std::ofstream(dir_ + "/a-file").flush();
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string file = path_ + suffix;
    const struct {
      std::function<void()> make;
      std::string said;
    } cases[] = {
        {[&] { fs::create_directory(file); }, " is a directory"},
        {[&] { fs::create_symlink(dir_ + "/nowhere/at-all", file); }, " is a symbolic link"},
        {[&] { fs::create_symlink(dir_ + "/a-file", file); }, " is a symbolic link"},
        {[&] { ASSERT_EQ(::mkfifo(file.c_str(), 0600), 0); }, " is not a regular file"},
    };
    for (const auto& c : cases) {
      fs::remove(file);
      c.make();
      auto store = SqliteStore::Open(path_, {});
      ASSERT_FALSE(store.ok()) << file << c.said;
      EXPECT_EQ(store.error().code, ErrorCode::kUnavailable);
      EXPECT_NE(store.error().message.find(file + c.said), std::string::npos)
          << store.error().message;
    }
    fs::remove(file);
  }
  EXPECT_NE(OpenOrDie({}), nullptr);
}

// The review: SQLite follows a symbolic link to the database and keeps the -wal and -shm beside
// the file it points to, so the store looks there, and names that file.
TEST_F(SqliteStoreTest, ADatabaseReachedThroughALinkHasItsCompanionsBesideItsFile) {
  namespace fs = std::filesystem;
  OpenOrDie({}).reset();
  const std::string link = dir_ + "/elsewhere/link.db";
  fs::create_directories(dir_ + "/elsewhere");
  fs::create_symlink(path_, link);
  EXPECT_EQ(DatabaseFileOf(link), fs::canonical(path_).string());
  EXPECT_EQ(DatabaseFileOf(path_), path_);
  fs::create_directory(link + "-wal");  // beside the link: SQLite never looks at it
  {
    auto store = SqliteStore::Open(link, {});
    ASSERT_TRUE(store.ok()) << store.error().message;
    EXPECT_EQ((*store)->path(), fs::canonical(path_).string());
    EXPECT_TRUE(fs::exists(path_ + "-wal"));
  }
  fs::remove(path_ + "-wal");
  fs::create_directory(path_ + "-wal");  // beside the file: refused
  auto store = SqliteStore::Open(link, {});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find(fs::canonical(path_).string() + "-wal is a directory"),
            std::string::npos)
      << store.error().message;
}

// A file found removed or replaced stays so (audit AA: a -wal put back made the store healthy
// again); a file that cannot be looked at for a moment (its directory unreachable) is no
// verdict: the check fails then and passes again after (the review).
TEST_F(SqliteStoreTest, StoreFilesLatchWhatWentButNotWhatCouldNotBeSeen) {
  namespace fs = std::filesystem;
  const std::string dir = dir_ + "/files";
  fs::create_directories(dir);
  auto id_of = [](const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return StoreFileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
  };
  for (const char* name : {"db", "db-wal", "db-shm"}) std::ofstream(dir + "/" + name).flush();
  StoreFiles files(dir + "/db", id_of(dir + "/db"), id_of(dir + "/db-wal"),
                   id_of(dir + "/db-shm"));
  EXPECT_TRUE(files.Check().ok());
  // The directory out of reach (a file where it was: ENOTDIR), then back.
  fs::rename(dir, dir + ".away");
  std::ofstream(dir).flush();
  Status unreachable = files.Check();
  ASSERT_FALSE(unreachable.ok());
  EXPECT_NE(unreachable.error().message.find("cannot look at"), std::string::npos)
      << unreachable.error().message;
  fs::remove(dir);
  fs::rename(dir + ".away", dir);
  EXPECT_TRUE(files.Check().ok());
  // Removed, then put back: gone for good.
  fs::remove(dir + "/db-wal");
  EXPECT_NE(files.Check().error().message.find("db-wal was removed"), std::string::npos);
  std::ofstream(dir + "/db-wal").flush();
  EXPECT_FALSE(files.Check().ok());
}

// Schema 9: daily totals a keygate before session 21 wrapped negative, or SQLite turned into a
// REAL past int64, are brought into 0..kMostUsageOfADay: a budget read a negative sum as no
// spend at all (the review), and two such days made SUM() fail.
TEST_F(SqliteStoreTest, MigrationNineBringsDailyTotalsIntoTheirRange) {
  OpenOrDie({}).reset();
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.Exec(
        "INSERT INTO usage_daily (lineage, day, cost, prompt_tokens, completion_tokens, requests) "
        "VALUES ('lin', 1, -8446744073709551376, 5, 5, 1), ('lin', 2, 1.0e30, 7, -3, 2), "
        "('lin', 3, 9223372036854775807, 9223372036854775807, 0, 3), ('ok', 1, 42, 1, 2, 1);"
        "DELETE FROM schema_migrations WHERE version = 9;"));
  }
  auto store = OpenOrDie();
  auto series = store->DailySeries("lin", 0);
  ASSERT_TRUE(series.ok()) << series.error().message;
  ASSERT_EQ(series->size(), 3u);
  EXPECT_EQ((*series)[0].cost, 0);
  EXPECT_EQ((*series)[1].cost, kMostUsageOfADay);
  EXPECT_EQ((*series)[1].tokens, 7);
  EXPECT_EQ((*series)[2].cost, kMostUsageOfADay);
  EXPECT_EQ((*series)[2].tokens, kMostUsageOfADay);
  auto since = store->SpendSince("lin", 0);
  ASSERT_TRUE(since.ok()) << since.error().message;
  EXPECT_EQ(*since, 2 * kMostUsageOfADay);
  EXPECT_EQ(store->DailySeries("ok", 0)->at(0).cost, 42);
  RawDb raw(path_);
  EXPECT_EQ(raw.Column("SELECT DISTINCT typeof(cost) FROM usage_daily"),
            std::vector<std::string>{"integer"});
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

// Audit, 2026-12-06: another program's database was adopted, keygate's 18 tables written in
// beside its own; a refused newer store had been switched to WAL first.
TEST_F(SqliteStoreTest, AnotherProgramsDatabaseIsRefusedUntouched) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  ASSERT_TRUE(RawDb(path_).Exec("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"));
  auto store = SqliteStore::Open(path_, {});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("is not a keygate store"), std::string::npos)
      << store.error().message;
  EXPECT_NE(store.error().message.find("customers"), std::string::npos);
  RawDb raw(path_);
  EXPECT_EQ(raw.Column("SELECT name FROM sqlite_master WHERE type = 'table'"),
            std::vector<std::string>{"customers"});
  EXPECT_EQ(raw.Column("PRAGMA journal_mode"), std::vector<std::string>{"delete"});
}

// The audit's re-test: other programs keep a schema_migrations table too (golang-migrate's
// version and dirty, Rails' string versions), and one empty beside another program's tables
// let keygate write its schema in. Each is refused, the file byte for byte as it was.
TEST_F(SqliteStoreTest, AnotherProgramsMigrationsTableIsNotKeygates) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  for (const char* schema :
       {"CREATE TABLE schema_migrations (version uint64, dirty bool);"
        "INSERT INTO schema_migrations VALUES (3, 0); CREATE TABLE users (id INTEGER);",
        "CREATE TABLE schema_migrations (version varchar NOT NULL PRIMARY KEY);"
        "INSERT INTO schema_migrations VALUES ('20240101000000');",
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT "
        "NULL); CREATE TABLE foo (x);",
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT "
        "NULL); INSERT INTO schema_migrations VALUES (1, 0); CREATE TABLE foo (x);",
        "CREATE VIEW v AS SELECT 1;", "PRAGMA user_version = 7;"}) {
    std::filesystem::remove(path_);
    ASSERT_TRUE(RawDb(path_).Exec(schema)) << schema;
    const auto before = std::filesystem::file_size(path_);
    auto store = SqliteStore::Open(path_, {});
    ASSERT_FALSE(store.ok()) << schema;
    EXPECT_NE(store.error().message.find("is not a keygate store"), std::string::npos)
        << schema << ": " << store.error().message;
    EXPECT_EQ(std::filesystem::file_size(path_), before) << schema;
    EXPECT_EQ(RawDb(path_).Column("PRAGMA journal_mode"), std::vector<std::string>{"delete"});
  }
}

TEST_F(SqliteStoreTest, ANewerStoreIsRefusedWithoutSwitchingItToWal) {
  OpenOrDie().reset();
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.Exec("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)"));
    ASSERT_TRUE(raw.Exec("PRAGMA journal_mode=DELETE"));
  }
  ASSERT_FALSE(SqliteStore::Open(path_, {}).ok());
  EXPECT_EQ(RawDb(path_).Column("PRAGMA journal_mode"), std::vector<std::string>{"delete"});
}

// Audit, 2026-12-06: a failed migration's message held its whole SQL (~170 lines) before the
// cause.
TEST_F(SqliteStoreTest, AFailedMigrationNamesItsCauseBriefly) {
  CreateDatabaseAtVersion(path_, 3);
  ASSERT_TRUE(RawDb(path_).Exec("CREATE TABLE usage_keys (x)"));  // what migration 4 creates
  auto store = SqliteStore::Open(path_, {});
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.error().message.find("already exists"), std::string::npos)
      << store.error().message;
  EXPECT_LT(store.error().message.size(), 500u) << store.error().message;
}

TEST_F(SqliteStoreTest, AnEmptyFileIsANewStore) {
  std::filesystem::create_directories(std::filesystem::path(path_).parent_path());
  { std::ofstream touch(path_); }
  ASSERT_EQ(std::filesystem::file_size(path_), 0u);
  auto store = OpenOrDie();
  CreateOrg(*store, "org_a");
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

// What keygate creates (the data directory, the database, its -wal and -shm) its owner alone
// may read (audit, 2026-12-07: the store was world-readable); what the operator made keeps
// the modes they gave it.
TEST_F(SqliteStoreTest, WhatTheStoreCreatesOnlyItsOwnerMayRead) {
  namespace fs = std::filesystem;
  {
    auto store = OpenOrDie();
    ASSERT_NE(store, nullptr);
    const fs::perms others = fs::perms::group_all | fs::perms::others_all;
    EXPECT_EQ(fs::status(fs::path(path_).parent_path()).permissions() & others, fs::perms::none);
    for (const char* suffix : {"", "-wal", "-shm"}) {
      ASSERT_TRUE(fs::exists(path_ + suffix)) << suffix;
      EXPECT_EQ(fs::status(path_ + suffix).permissions() & others, fs::perms::none) << suffix;
    }
  }
  const std::string shared = dir_ + "/shared";
  fs::create_directories(shared);
  fs::permissions(shared, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  ASSERT_TRUE(SqliteStore::CreateDirectoryFor(shared + "/keygate.db").ok());
  EXPECT_EQ(fs::status(shared).permissions() & fs::perms::group_read, fs::perms::group_read);
}

// A file of schema version 7, whose audit ids were one sequence for every organization, is
// numbered per organization when opened, in the order the entries were written; new entries
// follow.
TEST_F(SqliteStoreTest, Version7AuditLogIsNumberedPerOrganization) {
  ASSERT_NO_FATAL_FAILURE(CreateDatabaseAtVersion(path_, 7));
  {
    RawDb raw(path_);
    ASSERT_TRUE(raw.Exec("INSERT INTO organizations VALUES ('org_a', 'a', 0)"));
    ASSERT_TRUE(raw.Exec("INSERT INTO organizations VALUES ('org_b', 'b', 0)"));
    for (const char* org : {"org_a", "org_b", "org_a", "org_a", "org_b"}) {
      ASSERT_TRUE(raw.Exec(std::string("INSERT INTO audit_log (org_id, at, actor, actor_name, "
                                       "action, target, changes_json, request_id) VALUES ('") +
                           org + "', 0, 'owner:x', 'x', 'a', '', '{}', 'r')"));
    }
  }
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawDb(path_).Column("SELECT org_id || ':' || org_seq FROM audit_log ORDER BY id"),
            (std::vector<std::string>{"org_a:1", "org_b:1", "org_a:2", "org_a:3", "org_b:2"}));
  keys::AuditEntry next;
  next.org_id = "org_b";
  next.actor = "owner:x";
  next.action = "organization.rename";
  keys::ProvisioningKey pk;
  pk.hash = "pk1";
  pk.org_id = "org_b";
  pk.name = "p";
  ASSERT_TRUE(store->InsertProvisioningKey(pk, next).ok());
  store::AuditQuery query;
  query.org_id = "org_b";
  query.limit = 10;
  auto page = store->ListAudit(query);
  ASSERT_TRUE(page.ok()) << page.error().message;
  ASSERT_EQ(page->entries.size(), 3u);
  EXPECT_EQ(page->entries[0].id, 3);
  EXPECT_EQ(page->entries[0].action, "organization.rename");
}

// A file written by the previous keygate (schema version 2: tag rows keyed by hash, no table
// of live keys) is upgraded when opened and keeps its keys, tags, counters and order.
TEST_F(SqliteStoreTest, Version2DatabaseUpgradesAndKeepsItsKeys) {
  ASSERT_NO_FATAL_FAILURE(CreateDatabaseAtVersion(path_, 2));
  {
    RawDb raw(path_);
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

// ---------------------------------------------------------------- usage (schema version 4)

UsageRecord Usage(const std::string& key_hash, const std::string& lineage,
                  const std::string& org_id, UnixMillis at, const std::string& request_id) {
  UsageRecord record;
  record.key_hash = key_hash;
  record.lineage = lineage;
  record.org_id = org_id;
  record.model = "gpt-4o";
  record.provider = "openai";
  record.prompt_tokens = 10;
  record.completion_tokens = 5;
  record.cost = 7;
  record.status = 200;
  record.latency_ms = 120;
  record.ttfb_ms = 30;
  record.request_id = request_id;
  record.at = at;
  return record;
}

// Every field of a record, in the column order of usage_records (without id).
std::string Describe(const UsageRecord& r) {
  return r.key_hash + "|" + r.lineage + "|" + r.org_id + "|" + r.model + "|" + r.provider + "|" +
         std::to_string(r.prompt_tokens) + "|" + std::to_string(r.completion_tokens) + "|" +
         std::to_string(r.cost) + "|" + std::to_string(r.status) + "|" +
         std::to_string(r.latency_ms) + "|" + std::to_string(r.ttfb_ms) + "|" + r.request_id + "|" +
         std::to_string(r.at);
}

// The same, from a row of usage_records (SQL).
constexpr const char* kDescribeUsageRow =
    "key_hash || '|' || lineage || '|' || org_id || '|' || model || '|' || provider || '|' || "
    "prompt_tokens || '|' || completion_tokens || '|' || cost || '|' || status || '|' || "
    "latency_ms || '|' || ttfb_ms || '|' || request_id || '|' || at";

std::vector<std::string> Describe(const Result<std::vector<UsageRecord>>& records) {
  std::vector<std::string> out;
  EXPECT_TRUE(records.ok()) << records.error().message;
  if (!records.ok()) return out;
  for (const UsageRecord& r : *records) out.push_back(Describe(r));
  return out;
}

// A file written by the previous keygate (schema version 3: usage_records rows carrying both
// digests) is upgraded when opened: every reader answers as before, and new usage lands.
TEST_F(SqliteStoreTest, Version3DatabaseUpgradesAndKeepsItsUsage) {
  // Lineage a: root ka1 and its rotation ka2, in org_a. Lineage b: kb2 in org_b, whose root
  // kb1 made no calls. Ids have gaps, and rows 11 and 20 share a time.
  const std::string ka1 = HexId("ka1"), ka2 = HexId("ka2"), kb1 = HexId("kb1"), kb2 = HexId("kb2"),
                    ka3 = HexId("ka3");
  const std::vector<std::pair<int64_t, UsageRecord>> old_rows = {
      {10, Usage(ka1, ka1, "org_a", kT0, "r10")},
      {11, Usage(ka1, ka1, "org_a", kT0 + 1000, "r11")},
      {20, Usage(ka2, ka1, "org_a", kT0 + 1000, "r20")},
      {21, Usage(kb2, kb1, "org_b", kT0 + 500, "r21")},
      {35, Usage(ka2, ka1, "org_a", kT0 + 2000, "r35")},
      {36, Usage(kb2, kb1, "org_b", kT0 + 3000, "r36")},
  };
  ASSERT_NO_FATAL_FAILURE(CreateDatabaseAtVersion(path_, 3));
  const std::string all_rows =
      std::string("SELECT id || '|' || ") + kDescribeUsageRow + " FROM usage_records ORDER BY id";
  const std::string daily =
      "SELECT lineage || '|' || day || '|' || cost || '|' || requests "
      "FROM usage_daily ORDER BY lineage, day";
  // What the version 3 reader answered: RecentUsage's own query then.
  auto recent_before = [](const std::string& lineage) {
    return std::string("SELECT ") + kDescribeUsageRow + " FROM usage_records WHERE lineage = '" +
           lineage + "' ORDER BY at DESC, id DESC";
  };
  std::vector<std::string> rows_before, daily_before, recent_a_before, recent_b_before;
  {
    RawDb raw(path_);
    for (const auto& [id, r] : old_rows) {
      ASSERT_TRUE(raw.Exec(
          "INSERT INTO usage_records (id, key_hash, lineage, org_id, model, provider, "
          "prompt_tokens, completion_tokens, cost, status, latency_ms, ttfb_ms, request_id, "
          "at) VALUES (" +
          std::to_string(id) + ", '" + r.key_hash + "', '" + r.lineage + "', '" + r.org_id +
          "', 'gpt-4o', 'openai', 10, 5, 7, 200, 120, 30, '" + r.request_id + "', " +
          std::to_string(r.at) + ")"));
    }
    ASSERT_TRUE(raw.Exec("INSERT INTO usage_daily VALUES ('" + ka1 + "', " +
                         std::to_string(sqlite::DayOf(kT0)) + ", 28, 40, 20, 4), ('" + kb1 + "', " +
                         std::to_string(sqlite::DayOf(kT0)) + ", 14, 20, 10, 2)"));
    rows_before = raw.Column(all_rows);
    daily_before = raw.Column(daily);
    recent_a_before = raw.Column(recent_before(ka1));
    recent_b_before = raw.Column(recent_before(kb1));
  }
  ASSERT_EQ(rows_before.size(), old_rows.size());
  ASSERT_EQ(recent_a_before.size(), 4u);

  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  RawDb raw(path_);
  EXPECT_EQ(raw.Column("SELECT MAX(version) FROM schema_migrations"),
            std::vector<std::string>{std::to_string(SqliteStore::SchemaVersion())});
  EXPECT_EQ(raw.Column("SELECT type FROM sqlite_master WHERE name = 'usage_records'"),
            std::vector<std::string>{"view"});
  // One row per key with usage, plus kb1 as a lineage root.
  EXPECT_EQ(raw.Column("SELECT key_hash FROM usage_keys ORDER BY id"),
            (std::vector<std::string>{ka1, ka2, kb2, kb1}));
  // Raw readers see the same rows, ids included, and the same totals.
  EXPECT_EQ(raw.Column(all_rows), rows_before);
  EXPECT_EQ(raw.Column(daily), daily_before);
  EXPECT_EQ(Describe(store->RecentUsage(ka1, 100)), recent_a_before);
  EXPECT_EQ(Describe(store->RecentUsage(kb1, 100)), recent_b_before);
  auto newest = store->RecentUsage(ka1, 3);
  ASSERT_TRUE(newest.ok()) << newest.error().message;
  ASSERT_EQ(newest->size(), 3u);
  EXPECT_EQ((*newest)[0].request_id, "r35");
  EXPECT_EQ((*newest)[1].request_id, "r20");  // same time as r11: the later id first
  EXPECT_EQ((*newest)[2].request_id, "r11");
  EXPECT_TRUE(store->RecentUsage(ka2, 10)->empty());  // a key that is not a lineage root
  EXPECT_EQ(*store->SpendSince(ka1, 0), 28);
  EXPECT_EQ(*store->SpendSince(kb1, 0), 14);

  // New usage after the upgrade: known keys, and a new key of an old lineage.
  const std::vector<UsageRecord> fresh = {Usage(ka2, ka1, "org_a", kT0 + 5000, "new1"),
                                          Usage(ka3, ka1, "org_a", kT0 + 4000, "new2"),
                                          Usage(kb2, kb1, "org_b", kT0 + 4000, "new3")};
  ASSERT_TRUE(store->AppendUsage(fresh).ok());
  std::vector<std::string> want_a = {Describe(fresh[0]), Describe(fresh[1])};
  want_a.insert(want_a.end(), recent_a_before.begin(), recent_a_before.end());
  EXPECT_EQ(Describe(store->RecentUsage(ka1, 100)), want_a);
  std::vector<std::string> want_b = {Describe(fresh[2])};
  want_b.insert(want_b.end(), recent_b_before.begin(), recent_b_before.end());
  EXPECT_EQ(Describe(store->RecentUsage(kb1, 100)), want_b);
  EXPECT_EQ(raw.Column("SELECT id > 36 FROM usage_records WHERE request_id LIKE 'new%'"),
            (std::vector<std::string>{"1", "1", "1"}));
  EXPECT_EQ(raw.Column("SELECT key_hash FROM usage_keys ORDER BY id"),
            (std::vector<std::string>{ka1, ka2, kb2, kb1, ka3}));
  EXPECT_EQ(*store->SpendSince(ka1, 0), 28 + 14);
  // The data-plane tests' raw reader: one key's rows in id order.
  EXPECT_EQ(
      raw.Column("SELECT request_id FROM usage_records WHERE key_hash = '" + ka2 + "' ORDER BY id"),
      (std::vector<std::string>{"r20", "r35", "new1"}));
}

// A key's usage_keys id must not outlive the transaction that inserted it: after a rollback,
// SQLite hands the same id to the next new key. Checks that `x`, whose first usage row was
// rolled back, then gets rows of its own.
void ExpectRolledBackKeyIdIsNotReused(SqliteStore& store, const std::string& path,
                                      const std::string& x) {
  const std::string y = HexId("y");
  EXPECT_TRUE(RawDb(path).Column("SELECT id FROM usage_keys").empty());
  ASSERT_TRUE(store.AppendUsage({Usage(y, y, "org_b", kT0 + 1, "y-1")}).ok());
  // y has the id x had; a stale cache would file x's next row under y.
  ASSERT_TRUE(store.AppendUsage({Usage(x, x, "org_a", kT0 + 2, "x-1")}).ok());
  EXPECT_EQ(Describe(store.RecentUsage(x, 10)),
            std::vector<std::string>{Describe(Usage(x, x, "org_a", kT0 + 2, "x-1"))});
  EXPECT_EQ(Describe(store.RecentUsage(y, 10)),
            std::vector<std::string>{Describe(Usage(y, y, "org_b", kT0 + 1, "y-1"))});
  EXPECT_EQ(RawDb(path).Column("SELECT key_hash FROM usage_keys ORDER BY id"),
            (std::vector<std::string>{y, x}));
}

TEST_F(SqliteStoreTest, AppendUsageAfterAFailedWriteDoesNotReuseItsKeyIds) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  // Fails the row insert after the write has added its key to usage_keys.
  ASSERT_TRUE(RawDb(path_).Exec(
      "CREATE TRIGGER fail_write BEFORE INSERT ON usage_chunks "
      "WHEN NEW.records LIKE '%\"fail\"%' "
      "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"));
  const std::string x = HexId("x");
  const int64_t failed_batches = store->GetWriteStats().failed_batches;
  EXPECT_FALSE(store->AppendUsage({Usage(x, x, "org_a", kT0, "fail")}).ok());
  EXPECT_EQ(store->GetWriteStats().failed_batches, failed_batches);  // only its savepoint
  ExpectRolledBackKeyIdIsNotReused(*store, path_, x);
}

TEST_F(SqliteStoreTest, AppendUsageAfterAFailedCommitDoesNotReuseItsKeyIds) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  // The write succeeds but leaves a deferred foreign key broken, so its batch's COMMIT fails.
  ASSERT_TRUE(RawDb(path_).Exec(
      "CREATE TABLE fault_parent (id INTEGER PRIMARY KEY);"
      "CREATE TABLE fault_child (parent_id INTEGER "
      "REFERENCES fault_parent(id) DEFERRABLE INITIALLY DEFERRED);"
      "CREATE TRIGGER fail_commit AFTER INSERT ON usage_chunks "
      "WHEN NEW.records LIKE '%\"fail\"%' "
      "BEGIN INSERT INTO fault_child (parent_id) VALUES (1); END"));
  const std::string x = HexId("x");
  const int64_t failed_batches = store->GetWriteStats().failed_batches;
  Status failed = store->AppendUsage({Usage(x, x, "org_a", kT0, "fail")});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(store->GetWriteStats().failed_batches, failed_batches + 1);  // the whole batch
  ExpectRolledBackKeyIdIsNotReused(*store, path_, x);
}

// The records' text as schema version 5 reads it, escapes included (written by hand, not by
// JsonWriter: the readers, json_each in the usage_records view, must find the same JSON).
TEST_F(SqliteStoreTest, UsageChunksHoldTheRecordsAsJsonArrays) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::string key = HexId("chunk-key");
  UsageRecord odd = Usage(key, key, "org_a", kT0 + 1, "re\"q\\\x01");
  odd.model = "m\nodel";
  odd.prompt_tokens = -3;
  ASSERT_TRUE(store->AppendUsage({Usage(key, key, "org_a", kT0, "r1"), odd}).ok());
  RawDb raw(path_);
  EXPECT_EQ(raw.Column("SELECT records FROM usage_chunks"),
            std::vector<std::string>{
                "[[1,\"gpt-4o\",\"openai\",10,5,7,200,120,30,\"r1\"," + std::to_string(kT0) +
                "],[1,\"m\\nodel\",\"openai\",-3,5,7,200,120,30,\"re\\\"q\\\\\\u0001\"," +
                std::to_string(kT0 + 1) + "]]"});
  auto recent = store->RecentUsage(key, 10);
  ASSERT_TRUE(recent.ok()) << recent.error().message;
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].request_id, "re\"q\\\x01");
  EXPECT_EQ((*recent)[0].model, "m\nodel");
  EXPECT_EQ((*recent)[0].prompt_tokens, -3);
}

// A batch's records of one lineage are one usage_chunks row (at most 256 records each); the
// latest calls come from the lineage's chunks newest first, including a later chunk that holds
// a record older than the newest of the chunk before it.
TEST_F(SqliteStoreTest, RecentUsageWalksTheLineageChunksNewestFirst) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  std::vector<UsageRecord> batch;
  for (int i = 0; i < 6000; ++i) {
    const std::string lineage = HexId("lineage-" + std::to_string(i % 10));
    batch.push_back(Usage(HexId("key-" + std::to_string(i % 30)), lineage, "org_a", kT0 + i,
                          "req-" + std::to_string(i)));
  }
  ASSERT_TRUE(store->AppendUsage(batch).ok());
  const std::string lineage = HexId("lineage-3");
  const std::string key = HexId("key-3");
  // Appended later: one call between req-5983 and req-5993, and one older than them all.
  ASSERT_TRUE(store
                  ->AppendUsage({Usage(key, lineage, "org_a", kT0 + 5990, "late"),
                                 Usage(key, lineage, "org_a", kT0 + 1, "old")})
                  .ok());
  RawDb raw(path_);
  EXPECT_EQ(raw.Column("SELECT records_count FROM usage_chunks WHERE lineage_id = "
                       "(SELECT id FROM usage_keys WHERE key_hash = '" +
                       lineage + "') ORDER BY id"),
            (std::vector<std::string>{"256", "256", "88", "2"}));
  EXPECT_EQ(raw.Column("SELECT COUNT(DISTINCT id) || '/' || COUNT(*) FROM usage_records"),
            std::vector<std::string>{"6002/6002"});

  auto ids = [](const Result<std::vector<UsageRecord>>& records) {
    std::vector<std::string> out;
    EXPECT_TRUE(records.ok()) << records.error().message;
    if (records.ok()) {
      for (const UsageRecord& r : *records) out.push_back(r.request_id);
    }
    return out;
  };
  EXPECT_EQ(ids(store->RecentUsage(lineage, 1)), std::vector<std::string>{"req-5993"});
  EXPECT_EQ(ids(store->RecentUsage(lineage, 3)),
            (std::vector<std::string>{"req-5993", "late", "req-5983"}));
  const std::vector<std::string> all = ids(store->RecentUsage(lineage, 1000));
  ASSERT_EQ(all.size(), 602u);
  EXPECT_EQ(all[3], "req-5973");
  EXPECT_EQ(all[600], "req-3");
  EXPECT_EQ(all[601], "old");
  auto full = store->RecentUsage(lineage, 1);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(Describe((*full)[0]), Describe(Usage(HexId("key-23"), lineage, "org_a", kT0 + 5993,
                                                 "req-5993")));

  // RecentUsage's statement (sqlite_audit_usage.cc): one index range of the lineage's chunks,
  // backwards, no sort.
  constexpr int kDetailColumn = 3;
  std::string plan;
  for (const std::string& line : raw.Column(
           std::string("EXPLAIN QUERY PLAN SELECT ") + sqlite::kUsageColumns +
               ", c.id, c.first_id + r.key, c.newest_at FROM " + sqlite::kUsageFrom +
               " WHERE l.key_hash = ?1 ORDER BY c.newest_at DESC, c.id DESC",
           kDetailColumn)) {
    plan += line + "; ";
  }
  EXPECT_NE(plan.find("SEARCH c USING INDEX usage_chunks_by_lineage (lineage_id=?)"),
            std::string::npos)
      << plan;
  EXPECT_EQ(plan.find("TEMP B-TREE"), std::string::npos) << plan;
  EXPECT_EQ(plan.find("SCAN c"), std::string::npos) << plan;
}

// usage.retention_days: stored batches whose every record is older than the cut are forgotten,
// oldest first and at most as many as asked in one write; the totals keep counting them; the
// newest batch stays whatever its age, so that a record's id is never given twice.
TEST_F(SqliteStoreTest, PruneUsageBeforeForgetsOldRecordsAndKeepsTheTotals) {
  auto store = OpenOrDie();
  ASSERT_NE(store, nullptr);
  const std::string a = HexId("lineage-a");
  const std::string b = HexId("lineage-b");
  constexpr int64_t kDay = 86'400'000;
  // Three stored batches in the first append (a: 3 records, b: 2), one a second later (a: 1),
  // one ten days on (b: 1).
  ASSERT_TRUE(store
                  ->AppendUsage({Usage(a, a, "org_a", kT0, "a1"),
                                 Usage(a, a, "org_a", kT0 + 1, "a2"),
                                 Usage(a, a, "org_a", kT0 + 2, "a3"),
                                 Usage(b, b, "org_a", kT0 + 500, "b1"),
                                 Usage(b, b, "org_a", kT0 + 501, "b2")})
                  .ok());
  ASSERT_TRUE(store->AppendUsage({Usage(a, a, "org_a", kT0 + 1000, "a4")}).ok());
  ASSERT_TRUE(store->AppendUsage({Usage(b, b, "org_a", kT0 + 10 * kDay, "b3")}).ok());
  auto totals = [&] {
    return std::to_string(*store->SpendSince(a, 0)) + "/" +
           std::to_string(*store->SpendSince(b, 0));
  };
  const std::string before = totals();
  EXPECT_EQ(before, "28/21");
  auto recent = [&](const std::string& lineage) {
    std::vector<std::string> out;
    auto records = store->RecentUsage(lineage, 100);
    EXPECT_TRUE(records.ok()) << records.error().message;
    if (records.ok()) {
      for (const UsageRecord& r : *records) out.push_back(r.request_id);
    }
    return out;
  };

  // Nothing is older than the first record.
  auto none = store->PruneUsageBefore(kT0, 100);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_EQ(none->batches, 0);
  // The oldest batch first (a's, whose newest record is kT0 + 2), one at a time when asked so.
  auto one = store->PruneUsageBefore(kT0 + 1001, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->batches, 1);  // a write stops at the records asked for, one batch at least
  EXPECT_EQ(one->records, 3);
  EXPECT_TRUE(one->more);
  EXPECT_EQ(recent(a), std::vector<std::string>{"a4"});
  EXPECT_EQ(recent(b), (std::vector<std::string>{"b3", "b2", "b1"}));
  // A batch with a record at or after the cut stays whole (b's first ends at kT0 + 501).
  auto partial = store->PruneUsageBefore(kT0 + 501, 100);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->batches, 0);
  auto rest = store->PruneUsageBefore(kT0 + 1001, 100);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->batches, 2);
  EXPECT_EQ(rest->records, 3);
  EXPECT_FALSE(rest->more);
  EXPECT_TRUE(recent(a).empty());
  EXPECT_EQ(recent(b), std::vector<std::string>{"b3"});
  EXPECT_EQ(totals(), before);
  auto series = store->DailySeries(a, 0);
  ASSERT_TRUE(series.ok());
  ASSERT_EQ(series->size(), 1u);
  EXPECT_EQ((*series)[0].requests, 4);

  // The newest batch stays, however old: the next record's id follows it. Nothing due, nothing
  // written (a write is a commit and its disk sync).
  const int64_t writes = store->GetWriteStats().writes;
  auto newest = store->PruneUsageBefore(kT0 + 100 * kDay, 100);
  ASSERT_TRUE(newest.ok());
  EXPECT_EQ(newest->batches, 0);
  EXPECT_EQ(store->GetWriteStats().writes, writes);
  RawDb raw(path_);
  const std::vector<std::string> last_id = raw.Column("SELECT MAX(id) FROM usage_records");
  ASSERT_TRUE(store->AppendUsage({Usage(a, a, "org_a", kT0 + 11 * kDay, "a5")}).ok());
  EXPECT_EQ(raw.Column("SELECT id FROM usage_records WHERE request_id = 'a5'"),
            std::vector<std::string>{std::to_string(std::stoll(last_id[0]) + 1)});
  auto last = store->PruneUsageBefore(kT0 + 100 * kDay, 100);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->batches, 1);  // b3's; a5's is now the newest
  EXPECT_EQ(recent(a), std::vector<std::string>{"a5"});
  EXPECT_TRUE(recent(b).empty());
  EXPECT_EQ(*store->SpendSince(b, 0), 21);
}

}  // namespace
}  // namespace keygate::store
