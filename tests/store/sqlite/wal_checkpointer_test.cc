#include "store/sqlite/wal_checkpointer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "store/sqlite/group_commit_writer.h"
#include "store/sqlite/sqlite_connection.h"
#include "store/store_contract.h"

namespace keygate::store::sqlite {
namespace {

using store::testing::MakeTempDir;

constexpr int64_t kBackgroundFrames = 50;
constexpr int64_t kWriterFrames = 200;
constexpr int kPageBytes = 4096;

class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    path_ = dir_ + "/checkpointed.db";
    auto conn = Connection::Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 1000);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE((*conn)
                    ->Exec("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; "
                           "PRAGMA synchronous=FULL; CREATE TABLE t (body BLOB)")
                    .ok());
    auto own = Connection::Open(path_, SQLITE_OPEN_READWRITE, 1000);
    ASSERT_TRUE(own.ok()) << own.error().message;
    checkpointer_ =
        std::make_unique<WalCheckpointer>(std::move(*own), kBackgroundFrames, kWriterFrames);
    checkpointer_->Attach(**conn);
    writer_ = std::make_unique<GroupCommitWriter>(
        std::move(*conn), 64, [this](Connection& c) { checkpointer_->AfterBatch(c); });
  }
  void TearDown() override {
    if (writer_ != nullptr) writer_->Stop();
    if (checkpointer_ != nullptr) checkpointer_->Stop();
    writer_.reset();
    checkpointer_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Commits one row of about `pages` pages.
  Status Append(int pages) {
    return writer_->Submit([pages](Connection& conn) {
      auto stmt = conn.Prepare("INSERT INTO t (body) VALUES (randomblob(?1))");
      if (!stmt.ok()) return Status(stmt.error());
      stmt->Bind(1, int64_t{pages} * (kPageBytes - 100));
      return stmt->Run();
    });
  }

  int64_t WalPages() {
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path_ + "-wal", ec);
    return ec ? 0 : static_cast<int64_t>(bytes / kPageBytes);
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<WalCheckpointer> checkpointer_;
  std::unique_ptr<GroupCommitWriter> writer_;
};

// Without the automatic checkpoint, the WAL is still copied back and started over: by the
// background thread past kBackgroundFrames, and by the writer past kWriterFrames. So it never
// grows much beyond kWriterFrames, however much is written.
TEST_F(WalCheckpointerTest, WalIsCheckpointedAndReusedUnderSteadyWrites) {
  for (int i = 0; i < 400; ++i) ASSERT_TRUE(Append(5).ok()) << i;  // ~2,000 pages
  EXPECT_GT(checkpointer_->background_checkpoints() + checkpointer_->writer_checkpoints(), 0);
  EXPECT_LT(WalPages(), 2 * kWriterFrames + 64) << "the WAL kept growing";
  // Everything committed is in the file, whatever was copied when.
  auto reader = Connection::Open(path_, SQLITE_OPEN_READONLY, 1000);
  ASSERT_TRUE(reader.ok());
  auto count = (*reader)->Prepare("SELECT COUNT(*) FROM t");
  ASSERT_TRUE(count.ok());
  ASSERT_TRUE(*count->Step());
  EXPECT_EQ(count->ColumnInt(0), 400);
}

TEST_F(WalCheckpointerTest, StopIsIdempotentAndLaterCommitsStillWork) {
  checkpointer_->Stop();
  checkpointer_->Stop();
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(Append(5).ok()) << i;
  // Only the writer checkpoints now.
  EXPECT_GT(checkpointer_->writer_checkpoints(), 0);
  EXPECT_LT(WalPages(), 2 * kWriterFrames + 64);
}

}  // namespace
}  // namespace keygate::store::sqlite
