#include "store/sqlite/wal_write_buffer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "store/sqlite/sqlite_connection.h"
#include "store/store_contract.h"

namespace keygate::store::sqlite {
namespace {

using store::testing::MakeTempDir;

class WalWriteBufferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    path_ = dir_ + "/buffered.db";
    ASSERT_NE(WalWriteBufferVfsName(), nullptr);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::unique_ptr<Connection> OpenBuffered() {
    auto conn = Connection::Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 1000,
                                 WalWriteBufferVfsName());
    EXPECT_TRUE(conn.ok()) << conn.error().message;
    if (!conn.ok()) return nullptr;
    EXPECT_TRUE((*conn)->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL").ok());
    return std::move(*conn);
  }

  // `sql`'s single integer, read through a connection of the default VFS.
  int64_t ReadInt(const std::string& sql) {
    auto conn = Connection::Open(path_, SQLITE_OPEN_READONLY, 1000);
    if (!conn.ok()) return -1;
    auto stmt = (*conn)->Prepare(sql);
    if (!stmt.ok()) return -2;
    auto row = stmt->Step();
    if (!row.ok() || !*row) return -3;
    return stmt->ColumnInt(0);
  }

  std::string ReadText(const std::string& sql) {
    auto conn = Connection::Open(path_, SQLITE_OPEN_READONLY, 1000);
    if (!conn.ok()) return "cannot open";
    auto stmt = (*conn)->Prepare(sql);
    if (!stmt.ok()) return "cannot prepare";
    auto row = stmt->Step();
    if (!row.ok() || !*row) return "no row";
    return stmt->ColumnText(0);
  }

  std::string dir_;
  std::string path_;
};

TEST_F(WalWriteBufferTest, NameIsStable) {
  EXPECT_STREQ(WalWriteBufferVfsName(), WalWriteBufferVfsName());
  EXPECT_NE(sqlite3_vfs_find(WalWriteBufferVfsName()), nullptr);
  // Not the default VFS: other connections are unaffected.
  EXPECT_NE(sqlite3_vfs_find(nullptr), sqlite3_vfs_find(WalWriteBufferVfsName()));
}

// Commits of every size (one page; many pages; more than the buffer holds) are readable by
// another connection as soon as COMMIT returns, and after the writer closes.
TEST_F(WalWriteBufferTest, CommittedWritesAreVisibleToOtherConnections) {
  auto writer = OpenBuffered();
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)").ok());
  ASSERT_TRUE(writer->Exec("INSERT INTO t (body) VALUES (zeroblob(10))").ok());
  EXPECT_EQ(ReadInt("SELECT COUNT(*) FROM t"), 1);
  // About 300 pages in one commit.
  ASSERT_TRUE(writer
                  ->Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                         "WHERE i < 300) INSERT INTO t (body) SELECT randomblob(3000) FROM n")
                  .ok());
  EXPECT_EQ(ReadInt("SELECT COUNT(*) FROM t"), 301);
  // About 8 MB in one commit: several times the buffer.
  ASSERT_TRUE(writer
                  ->Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                         "WHERE i < 2000) INSERT INTO t (body) SELECT randomblob(4000) FROM n")
                  .ok());
  EXPECT_EQ(ReadInt("SELECT COUNT(*) FROM t"), 2301);
  EXPECT_EQ(ReadInt("SELECT SUM(length(body)) FROM t"), 10 + 300 * 3000 + 2000 * 4000);
  writer.reset();
  EXPECT_EQ(ReadInt("SELECT COUNT(*) FROM t"), 2301);
  EXPECT_EQ(ReadText("PRAGMA integrity_check"), "ok");
}

// A transaction bigger than the page cache spills pages to the WAL before COMMIT and reads
// them back; rewriting a page already in the WAL goes back to an earlier offset. Both must
// see the bytes still in the buffer.
TEST_F(WalWriteBufferTest, SpilledPagesAreReadBackAndRewritten) {
  auto writer = OpenBuffered();
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->Exec("PRAGMA cache_size=10").ok());
  ASSERT_TRUE(writer->Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, body BLOB)").ok());
  ASSERT_TRUE(writer->Exec("BEGIN").ok());
  ASSERT_TRUE(writer
                  ->Exec("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                         "WHERE i < 500) INSERT INTO t (n, body) SELECT i, randomblob(2000) FROM n")
                  .ok());
  ASSERT_TRUE(writer->Exec("UPDATE t SET n = n * 2").ok());
  ASSERT_TRUE(writer->Exec("UPDATE t SET n = n + 1 WHERE id % 7 = 0").ok());
  ASSERT_TRUE(writer->Exec("COMMIT").ok());
  EXPECT_EQ(ReadInt("SELECT SUM(n) FROM t"), 500 * 501 + 500 / 7);
  EXPECT_EQ(ReadText("PRAGMA integrity_check"), "ok");
  ASSERT_TRUE(writer->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  writer.reset();
  EXPECT_EQ(ReadInt("SELECT SUM(n) FROM t"), 500 * 501 + 500 / 7);
}

}  // namespace
}  // namespace keygate::store::sqlite
