#include "store/sqlite/group_commit_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "store/sqlite/sqlite_connection.h"
#include "store/store_contract.h"

namespace keygate::store::sqlite {
namespace {

using store::testing::MakeTempDir;

// Holds the writer thread inside a write until Open() is called, so that the test can queue
// more writes behind it and know they will form one batch.
class Gate {
 public:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    entered_ = true;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
  }
  void WaitUntilEntered() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return entered_; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

class GroupCommitWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    path_ = dir_ + "/writer.db";
    auto conn = Connection::Open(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, 1000);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    ASSERT_TRUE((*conn)
                    ->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                           "PRAGMA foreign_keys=ON;"
                           "CREATE TABLE t (name TEXT PRIMARY KEY);"
                           "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
                           "CREATE TABLE child (pid INTEGER REFERENCES parent(id) "
                           "DEFERRABLE INITIALLY DEFERRED);")
                    .ok());
    writer_ = std::make_unique<GroupCommitWriter>(std::move(*conn), 512);
  }
  void TearDown() override {
    writer_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static GroupCommitWriter::WriteFn Insert(const std::string& name) {
    return [name](Connection& conn) -> Status {
      auto stmt = conn.Prepare("INSERT INTO t (name) VALUES (?1)");
      if (!stmt.ok()) return stmt.error();
      stmt->Bind(1, std::string_view(name));
      return stmt->Run();
    };
  }

  // Names committed so far, read through a separate connection.
  std::vector<std::string> CommittedNames() {
    std::vector<std::string> names;
    auto conn = Connection::Open(path_, SQLITE_OPEN_READONLY, 1000);
    if (!conn.ok()) return names;
    auto stmt = (*conn)->Prepare("SELECT name FROM t ORDER BY name");
    if (!stmt.ok()) return names;
    while (*stmt->Step()) names.push_back(stmt->ColumnText(0));
    return names;
  }

  // Starts a write that blocks the writer on `gate`, then `writes` in other threads, and
  // returns once all of those are queued behind it as one batch.
  void QueueBehindGate(Gate* gate, const std::vector<GroupCommitWriter::WriteFn>& writes,
                       std::vector<Status>* results, std::vector<std::thread>* threads) {
    results->resize(writes.size() + 1);
    threads->emplace_back([this, gate, results] {
      (*results)[0] = writer_->Submit([gate](Connection&) -> Status {
        gate->Wait();
        return OkStatus();
      });
    });
    gate->WaitUntilEntered();
    for (size_t i = 0; i < writes.size(); ++i) {
      threads->emplace_back(
          [this, write = writes[i], results, i] { (*results)[i + 1] = writer_->Submit(write); });
    }
    while (writer_->QueueDepth() < writes.size()) std::this_thread::yield();
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<GroupCommitWriter> writer_;
};

TEST_F(GroupCommitWriterTest, FailingWriteInABatchDoesNotFailItsNeighbours) {
  ASSERT_TRUE(writer_->Submit(Insert("taken")).ok());
  Gate gate;
  std::vector<Status> results;
  std::vector<std::thread> threads;
  const std::vector<GroupCommitWriter::WriteFn> writes = {Insert("a"), Insert("taken"),
                                                          Insert("b")};
  QueueBehindGate(&gate, writes, &results, &threads);
  const int64_t batches_before = writer_->GetStats().batches;
  gate.Open();
  for (std::thread& thread : threads) thread.join();

  EXPECT_TRUE(results[0].ok());
  EXPECT_TRUE(results[1].ok());
  ASSERT_FALSE(results[2].ok());
  EXPECT_EQ(results[2].error().code, ErrorCode::kConflict);
  EXPECT_TRUE(results[3].ok());
  // The gate's batch, then the three queued writes together.
  EXPECT_EQ(writer_->GetStats().batches - batches_before, 1);
  EXPECT_EQ(CommittedNames(), (std::vector<std::string>{"a", "b", "taken"}));
}

TEST_F(GroupCommitWriterTest, WriteThatFailsHalfwayIsRolledBackToItsSavepoint) {
  auto status = writer_->Submit([](Connection& conn) -> Status {
    KG_RETURN_IF_ERROR(Insert("first half")(conn));
    return Error::Internal("second half failed");
  });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().message, "second half failed");
  EXPECT_TRUE(writer_->Submit(Insert("next")).ok());
  EXPECT_EQ(CommittedNames(), std::vector<std::string>{"next"});
}

TEST_F(GroupCommitWriterTest, FailedCommitFailsEveryWaiterOfTheBatch) {
  Gate gate;
  std::vector<Status> results;
  std::vector<std::thread> threads;
  // The orphan passes its own savepoint (the foreign key is deferred) and fails at COMMIT.
  const std::vector<GroupCommitWriter::WriteFn> writes = {
      Insert("innocent"),
      [](Connection& conn) { return conn.Exec("INSERT INTO child VALUES (42)"); }};
  QueueBehindGate(&gate, writes, &results, &threads);
  gate.Open();
  for (std::thread& thread : threads) thread.join();

  ASSERT_FALSE(results[1].ok());
  EXPECT_EQ(results[1].error().code, ErrorCode::kUnavailable);
  ASSERT_FALSE(results[2].ok());
  EXPECT_EQ(results[2].error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(writer_->GetStats().failed_batches, 1);
  EXPECT_TRUE(CommittedNames().empty());
  // The writer recovers: the next batch commits.
  EXPECT_TRUE(writer_->Submit(Insert("after")).ok());
  EXPECT_EQ(CommittedNames(), std::vector<std::string>{"after"});
}

TEST_F(GroupCommitWriterTest, ThrowingWriteBecomesInternalError) {
  Status status = writer_->Submit([](Connection&) -> Status { throw std::runtime_error("boom"); });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kInternal);
  EXPECT_TRUE(writer_->Submit(Insert("fine")).ok());
}

TEST_F(GroupCommitWriterTest, StopRunsQueuedWritesThenRefusesNewOnes) {
  Gate gate;
  std::vector<Status> results;
  std::vector<std::thread> threads;
  QueueBehindGate(&gate, {Insert("q1"), Insert("q2")}, &results, &threads);
  std::thread stopper([this] { writer_->Stop(); });
  gate.Open();
  stopper.join();
  for (std::thread& thread : threads) thread.join();
  for (const Status& status : results) EXPECT_TRUE(status.ok());
  EXPECT_EQ(CommittedNames(), (std::vector<std::string>{"q1", "q2"}));
  Status late = writer_->Submit(Insert("late"));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kUnavailable);
}

// Every waiter of a batch is released (the writer wakes two, each woken waiter two more),
// and after_batch runs once per batch, on the writer thread, after its waiters are released.
TEST_F(GroupCommitWriterTest, AfterBatchRunsOncePerBatchAfterEveryWaiterIsReleased) {
  writer_.reset();
  auto conn = Connection::Open(path_, SQLITE_OPEN_READWRITE, 1000);
  ASSERT_TRUE(conn.ok()) << conn.error().message;
  std::atomic<int> after_batches{0};
  writer_ = std::make_unique<GroupCommitWriter>(
      std::move(*conn), 512, [&after_batches](Connection&) { after_batches.fetch_add(1); });
  Gate gate;
  std::vector<Status> results;
  std::vector<std::thread> threads;
  std::vector<GroupCommitWriter::WriteFn> writes;
  for (int i = 0; i < 37; ++i) writes.push_back(Insert("w" + std::to_string(i)));
  QueueBehindGate(&gate, writes, &results, &threads);
  gate.Open();
  for (std::thread& thread : threads) thread.join();
  for (const Status& status : results) EXPECT_TRUE(status.ok());
  EXPECT_EQ(CommittedNames().size(), 37u);
  writer_->Stop();
  EXPECT_EQ(after_batches.load(), writer_->GetStats().batches);
  EXPECT_EQ(writer_->GetStats().batches, 2);  // the gate's, then the 37 queued together
}

// SQLite abandoning a batch's transaction (an I/O error or a full disk does; here a write that
// rolls it back) fails every write of the batch, and none of them is in the store: the writes
// after the abandoned one would otherwise run in autocommit and commit, while their callers are
// told they failed (audit Y: a retried usage batch would count twice).
TEST_F(GroupCommitWriterTest, AnAbandonedTransactionCommitsNothingOfItsBatch) {
  Gate gate;
  std::vector<Status> results;
  std::vector<std::thread> threads;
  const std::vector<GroupCommitWriter::WriteFn> writes = {
      Insert("before"), [](Connection& conn) { return conn.Exec("ROLLBACK"); },
      Insert("after")};
  QueueBehindGate(&gate, writes, &results, &threads);
  gate.Open();
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 1; i < results.size(); ++i) EXPECT_FALSE(results[i].ok()) << i;
  EXPECT_TRUE(CommittedNames().empty());
  EXPECT_TRUE(writer_->Submit(Insert("next")).ok());  // the writer goes on
  EXPECT_EQ(CommittedNames(), std::vector<std::string>{"next"});
}

// A write submitted alone (the store's checkpoint) runs outside any transaction, between the
// batch before it and the one after: the writes queued on either side do not share a batch.
TEST_F(GroupCommitWriterTest, AWriteSubmittedAloneRunsOutsideAnyTransactionBetweenBatches) {
  Gate gate;
  std::vector<Status> results;
  std::vector<std::thread> threads;
  QueueBehindGate(&gate, {Insert("before")}, &results, &threads);
  std::atomic<int> autocommit{-1};
  std::atomic<size_t> names_seen{0};
  threads.emplace_back([this, &autocommit, &names_seen] {
    EXPECT_TRUE(writer_
                    ->SubmitAlone([&](Connection& conn) -> Status {
                      autocommit = sqlite3_get_autocommit(conn.db());
                      names_seen = CommittedNames().size();
                      return OkStatus();
                    })
                    .ok());
  });
  while (writer_->QueueDepth() < 2) std::this_thread::yield();
  threads.emplace_back([this] { EXPECT_TRUE(writer_->Submit(Insert("after")).ok()); });
  while (writer_->QueueDepth() < 3) std::this_thread::yield();
  const int64_t batches_before = writer_->GetStats().batches;
  gate.Open();
  for (std::thread& thread : threads) thread.join();
  for (const Status& status : results) EXPECT_TRUE(status.ok());
  EXPECT_EQ(autocommit.load(), 1);   // no transaction open around it
  EXPECT_EQ(names_seen.load(), 1u);  // "before" committed, "after" not yet
  EXPECT_EQ(writer_->GetStats().batches - batches_before, 2);  // "before", then "after"
  EXPECT_EQ(CommittedNames(), (std::vector<std::string>{"after", "before"}));
}

class VerifiedWriterTest : public GroupCommitWriterTest {
 protected:
  void SetUp() override {
    GroupCommitWriterTest::SetUp();
    writer_.reset();
    auto conn = Connection::Open(path_, SQLITE_OPEN_READWRITE, 1000);
    ASSERT_TRUE(conn.ok()) << conn.error().message;
    writer_ = std::make_unique<GroupCommitWriter>(std::move(*conn), 512, nullptr, [this] {
      if (files_gone_.load()) return Status(Error::Unavailable("keygate.db was removed"));
      return OkStatus();
    });
  }
  static void ExpectAllFailedWith(const std::vector<Status>& results, const std::string& text) {
    for (const Status& status : results) {
      ASSERT_FALSE(status.ok());
      EXPECT_EQ(status.error().code, ErrorCode::kUnavailable);
      EXPECT_NE(status.error().message.find(text), std::string::npos) << status.error().message;
      EXPECT_NE(status.error().message.find("keygate.db was removed"), std::string::npos);
    }
  }
  std::atomic<bool> files_gone_{false};
};

// Audit V: a batch refused for files removed must not be in them either: the checkpoint at
// close would copy it into the database a restart reads.
TEST_F(VerifiedWriterTest, ABatchIsNotRunOnceTheFilesAreGone) {
  EXPECT_TRUE(writer_->Submit(Insert("before")).ok());
  files_gone_ = true;
  std::vector<Status> results = {writer_->Submit(Insert("a")), writer_->Submit(Insert("b"))};
  ExpectAllFailedWith(results, "not applied");
  EXPECT_EQ(CommittedNames(), std::vector<std::string>{"before"});
  // A checkpoint submitted alone still runs: it is what saves "before" (SqliteStore).
  bool ran = false;
  EXPECT_TRUE(writer_->SubmitAlone([&ran](Connection&) -> Status {
    ran = true;
    return OkStatus();
  }).ok());
  EXPECT_TRUE(ran);
}

TEST_F(VerifiedWriterTest, FilesGoneDuringABatchFailEveryWaiterOfIt) {
  Gate gate;
  std::vector<Status> results;
  std::vector<std::thread> threads;
  QueueBehindGate(&gate, {}, &results, &threads);
  files_gone_ = true;  // after the check before the batch, before its commit
  gate.Open();
  for (std::thread& thread : threads) thread.join();
  ExpectAllFailedWith(results, "may or may not");
}

}  // namespace
}  // namespace keygate::store::sqlite
