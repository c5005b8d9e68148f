#include "proxy/usage_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace keygate::proxy {
namespace {

// A UsageStore that keeps what it is given and fails on command.
class RecordingUsageStore final : public store::UsageStore {
 public:
  Status AppendUsage(const std::vector<store::UsageRecord>& records) override {
    if (hold_) {
      entered_.set_value();
      release_.get_future().wait();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_ || fail_append_) return Error::Unavailable("disk full");
    batches_.push_back(records);
    return OkStatus();
  }
  Result<std::map<std::string, store::SpendSums>> SpendFor(const std::vector<std::string>&,
                                                           const store::DayBounds&) override {
    return std::map<std::string, store::SpendSums>{};
  }
  Result<MicroUsd> SpendSince(const std::string&, int64_t) override { return MicroUsd{0}; }
  Result<std::vector<store::DailyUsage>> DailySeries(const std::string&, int64_t) override {
    return std::vector<store::DailyUsage>{};
  }
  Status ForEachCallBetween(UnixMillis, UnixMillis,
                            const std::function<void(const store::CallInWindow&)>&) override {
    return OkStatus();
  }
  Result<std::vector<store::UsageRecord>> RecentUsage(const std::string&, int64_t) override {
    return std::vector<store::UsageRecord>{};
  }
  Status UpdateOpenCalls(const std::vector<store::OpenCall>& opened,
                         const std::vector<uint64_t>& closed) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_) return Error::Unavailable("disk full");
    for (const store::OpenCall& call : opened) open_[call.id] = call.call;
    for (uint64_t id : closed) open_.erase(id);
    ++open_updates_;
    return OkStatus();
  }
  // The open calls kept, by id.
  std::map<uint64_t, store::UsageRecord> open() const {
    std::lock_guard<std::mutex> lock(mu_);
    return open_;
  }
  int open_updates() const {
    std::lock_guard<std::mutex> lock(mu_);
    return open_updates_;
  }

  void set_fail(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_ = fail;
  }
  // Fails AppendUsage alone (UpdateOpenCalls still works).
  void set_fail_append(bool fail) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_append_ = fail;
  }
  // The next AppendUsage waits, once it has begun (entered()), until release().
  void HoldNextWrite() { hold_ = true; }
  std::future<void> entered() { return entered_.get_future(); }
  void release() {
    hold_ = false;
    release_.set_value();
  }
  size_t records() const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& batch : batches_) n += batch.size();
    return n;
  }
  size_t batches() const {
    std::lock_guard<std::mutex> lock(mu_);
    return batches_.size();
  }
  // The committed cost of `lineage`'s records at or after `from`.
  MicroUsd Spend(const std::string& lineage, UnixMillis from) const {
    std::lock_guard<std::mutex> lock(mu_);
    MicroUsd spend = 0;
    for (const auto& batch : batches_) {
      for (const store::UsageRecord& record : batch) {
        if (record.lineage == lineage && record.at >= from) spend += record.cost;
      }
    }
    return spend;
  }

 private:
  mutable std::mutex mu_;
  bool fail_ = false;
  bool fail_append_ = false;
  std::atomic<bool> hold_{false};
  std::promise<void> entered_;
  std::promise<void> release_;
  std::vector<std::vector<store::UsageRecord>> batches_;
  std::map<uint64_t, store::UsageRecord> open_;
  int open_updates_ = 0;
};

store::UsageRecord Record(const std::string& lineage, MicroUsd cost, UnixMillis at) {
  store::UsageRecord record;
  record.lineage = lineage;
  record.key_hash = lineage;
  record.cost = cost;
  record.at = at;
  return record;
}

// The unflushed total of each of `lineages`, in order.
std::vector<MicroUsd> Totals(const UsageWriter& writer,
                             std::initializer_list<const char*> lineages) {
  std::vector<MicroUsd> totals;
  for (const char* lineage : lineages) {
    totals.push_back(writer.Unflushed(lineage, 0, 0, 0, 0).total);
  }
  return totals;
}

// Starts a Flush() on another thread and returns once its write has reached the store, where
// it waits until `store.release()`.
std::future<Status> FlushHeldAtTheStore(UsageWriter& writer, RecordingUsageStore& store) {
  store.HoldNextWrite();
  std::future<void> entered = store.entered();
  std::future<Status> flushed =
      std::async(std::launch::async, [&writer] { return writer.Flush(); });
  EXPECT_EQ(entered.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  return flushed;
}

class UsageWriterTest : public ::testing::Test {
 protected:
  Logger log_{stderr, LogLevel::kError};
  RecordingUsageStore store_;
};

TEST_F(UsageWriterTest, StopWritesEverythingPendingInOneBatch) {
  UsageWriter writer(store_, log_, UsageWriterOptions{std::chrono::hours(1)});
  writer.Start();
  for (int i = 0; i < 100; ++i) writer.Append(Record("a", 1, 0));
  writer.Stop();
  EXPECT_EQ(store_.records(), 100u);
  EXPECT_EQ(store_.batches(), 1u);
  EXPECT_EQ(writer.pending(), 0u);
}

TEST_F(UsageWriterTest, AFailedBatchStaysPendingAndIsWrittenLater) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 5, 0));
  store_.set_fail(true);
  EXPECT_FALSE(writer.Flush().ok());
  writer.Append(Record("a", 7, 0));
  writer.Append(Record("b", 11, 0));
  EXPECT_EQ(writer.pending(), 3u);
  // The failed batch, put back ahead of the later records, still counts, with each lineage's
  // own (the costs kept beside the records follow them).
  EXPECT_EQ(writer.Unflushed("a", 0, 0, 0, 0).total, 12);
  EXPECT_EQ(writer.Unflushed("b", 0, 0, 0, 0).total, 11);
  EXPECT_FALSE(writer.Flush().ok());
  EXPECT_EQ(writer.Unflushed("a", 0, 0, 0, 0).total, 12);
  store_.set_fail(false);
  EXPECT_TRUE(writer.Flush().ok());
  EXPECT_EQ(store_.records(), 3u);
  EXPECT_EQ(writer.Unflushed("a", 0, 0, 0, 0).total, 0);
}

// While a batch is being written, records appended meanwhile and the batch itself both count;
// a failed batch goes back ahead of them and every cost stays with its record.
TEST_F(UsageWriterTest, UnflushedCountsTheBatchInFlightAndWhatCameMeanwhile) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 1, 0));
  writer.Append(Record("b", 10, 0));
  store_.HoldNextWrite();
  store_.set_fail(true);
  std::future<void> entered = store_.entered();
  std::future<Status> flushed =
      std::async(std::launch::async, [&writer] { return writer.Flush(); });
  ASSERT_EQ(entered.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  writer.Append(Record("a", 100, 0));
  writer.Append(Record("c", 1000, 0));
  const std::vector<MicroUsd> expected = {101, 10, 1000};
  EXPECT_EQ(Totals(writer, {"a", "b", "c"}), expected);
  store_.release();
  EXPECT_FALSE(flushed.get().ok());
  EXPECT_EQ(writer.pending(), 4u);
  EXPECT_EQ(Totals(writer, {"a", "b", "c"}), expected);
  store_.set_fail(false);
  ASSERT_TRUE(writer.Flush().ok());
  EXPECT_EQ(store_.records(), 4u);
  EXPECT_EQ(writer.Unflushed("a", 0, 0, 0, 0).total, 0);
}

// Audit Z: calls charged the most a cost can be (an absurd usage at an absurd price) wrapped
// the unflushed spend negative. It saturates.
TEST_F(UsageWriterTest, UnflushedSpendSaturatesInsteadOfWrapping) {
  UsageWriter writer(store_, log_);
  constexpr MicroUsd kMax = std::numeric_limits<MicroUsd>::max();
  for (int i = 0; i < 3; ++i) writer.Append(Record("a", kMax, 0));
  const UnflushedSpend spend = writer.Unflushed("a", 0, 0, 0, 0);
  EXPECT_EQ(spend.total, kMax);
  EXPECT_EQ(spend.since_day, kMax);
  EXPECT_EQ(spend.since_week, kMax);
  EXPECT_EQ(spend.since_month, kMax);
  EXPECT_EQ(spend.since_period, kMax);
}

// A budget's seed (decision 0007): the store's answer plus the records not committed yet, each
// counted once, none appended after the seed began.
TEST_F(UsageWriterTest, SpendSinceCountsEachRecordOnceAndLeavesOutWhatCameAfter) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 1, 100));
  ASSERT_TRUE(writer.Flush().ok());  // committed: the store's
  writer.Append(Record("a", 5, 100));
  writer.Append(Record("a", 7, 50));  // before the period
  writer.Append(Record("b", 11, 100));
  int reads = 0;
  const Result<MicroUsd> spend = writer.SpendSince("a", 60, [&]() -> Result<MicroUsd> {
    ++reads;
    writer.Append(Record("a", 1000, 100));  // settled after the seed began: the limiter's
    return store_.Spend("a", 60);
  });
  ASSERT_TRUE(spend.ok());
  EXPECT_EQ(*spend, 1 + 5);
  EXPECT_EQ(reads, 1);
}

// A batch committed while the store is read may or may not be in its answer: the read is made
// again. What the batch committed of records appended after the seed began is then in the
// store's answer, and taken off again: the budget counts those calls itself.
TEST_F(UsageWriterTest, SpendSinceReadsAgainWhenABatchCrossesTheRead) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 5, 100));
  int reads = 0;
  const Result<MicroUsd> spend = writer.SpendSince("a", 0, [&]() -> Result<MicroUsd> {
    const MicroUsd before = store_.Spend("a", 0);  // the read lands before the batch
    if (++reads == 1) {
      writer.Append(Record("a", 1000, 100));
      EXPECT_TRUE(writer.Flush().ok());
    }
    return before;
  });
  ASSERT_TRUE(spend.ok());
  EXPECT_EQ(reads, 2);
  EXPECT_EQ(*spend, 5);  // without the second read: 0 (the 5 in neither); 1005 if not taken off
}

// The batch in flight when a seed begins ends; another, with a record appended meanwhile, may
// begin and commit before the seed reads (review, 2026-12-07): that record is still the
// budget's, not the seed's.
TEST_F(UsageWriterTest, SpendSinceLeavesOutWhatABatchCommittedAfterItBegan) {
  for (int round = 0; round < 50; ++round) {
    RecordingUsageStore store;
    UsageWriter writer(store, log_);
    writer.Append(Record("a", 5, 100));
    std::future<Status> first = FlushHeldAtTheStore(writer, store);
    std::future<Result<MicroUsd>> spend = std::async(std::launch::async, [&] {
      return writer.SpendSince("a", 0, [&]() -> Result<MicroUsd> { return store.Spend("a", 0); });
    });
    while (writer.seeds_in_progress() == 0) std::this_thread::yield();  // waiting for the batch
    writer.Append(Record("a", 1000, 100));
    std::future<Status> second =
        std::async(std::launch::async, [&writer] { return writer.Flush(); });
    store.release();
    ASSERT_TRUE(first.get().ok());
    ASSERT_TRUE(second.get().ok());
    const Result<MicroUsd> seeded = spend.get();
    ASSERT_TRUE(seeded.ok());
    ASSERT_EQ(*seeded, 5) << "round " << round;
  }
}

// A store slower than the batches: after three crossed reads, batches wait for the fourth.
TEST_F(UsageWriterTest, SpendSinceHoldsBatchesOffAfterThreeCrossedReads) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 5, 100));
  int reads = 0;
  std::future<Status> flushed;
  const Result<MicroUsd> spend = writer.SpendSince("a", 0, [&]() -> Result<MicroUsd> {
    if (++reads <= 3) {
      writer.Append(Record("b", 1, 100));
      EXPECT_TRUE(writer.Flush().ok());
    } else {
      writer.Append(Record("a", 1000, 100));
      flushed = std::async(std::launch::async, [&writer] { return writer.Flush(); });
      EXPECT_EQ(flushed.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
    }
    return store_.Spend("a", 0);
  });
  ASSERT_TRUE(spend.ok());
  EXPECT_EQ(reads, 4);
  EXPECT_EQ(*spend, 5);
  ASSERT_TRUE(flushed.get().ok());
  EXPECT_EQ(store_.Spend("a", 0), 1005);
}

TEST_F(UsageWriterTest, SpendSinceWaitsForTheBatchBeingCommitted) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 5, 100));
  std::future<Status> flushed = FlushHeldAtTheStore(writer, store_);
  std::future<Result<MicroUsd>> spend = std::async(std::launch::async, [&] {
    return writer.SpendSince("a", 0, [&]() -> Result<MicroUsd> { return store_.Spend("a", 0); });
  });
  EXPECT_EQ(spend.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  // Settled while the seed waits: after it began, so the budget's, not the seed's.
  writer.Append(Record("a", 1000, 100));
  store_.release();
  ASSERT_TRUE(flushed.get().ok());
  const Result<MicroUsd> seeded = spend.get();
  ASSERT_TRUE(seeded.ok());
  EXPECT_EQ(*seeded, 5);
}

// The management answers' totals (audit K saw them run ahead of every call made, by a batch,
// then drop back): the store and the records not in it yet, each record counted once.
TEST_F(UsageWriterTest, ReadWithUnflushedCountsEachRecordOnceWhenABatchCrossesTheRead) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 5, 100));
  writer.Append(Record("b", 7, 100));
  MicroUsd stored = 0;
  int reads = 0;
  auto unflushed = writer.ReadWithUnflushed({"a", "c"}, 0, 0, 0, [&]() -> Status {
    stored = store_.Spend("a", 0);
    if (++reads == 1) {
      writer.Append(Record("a", 1000, 100));
      EXPECT_TRUE(writer.Flush().ok());  // both records of a leave memory for the store
    }
    return OkStatus();
  });
  ASSERT_TRUE(unflushed.ok());
  EXPECT_EQ(reads, 2);
  const MicroUsd pending = unflushed->count("a") ? unflushed->at("a").total : 0;
  EXPECT_EQ(stored + pending, 1005);
  EXPECT_EQ(unflushed->count("b"), 0u);  // not asked for
  EXPECT_EQ(unflushed->count("c"), 0u);  // nothing pending
  writer.Append(Record("a", 1, 100));
  auto later = writer.ReadWithUnflushed({"a"}, 0, 0, 0, [] { return OkStatus(); });
  ASSERT_TRUE(later.ok());
  EXPECT_EQ(later->at("a").total, 1);
  EXPECT_EQ(later->at("a").since_day, 1);
}

// A view never waits on a commit that hangs (another process holding the store's write lock:
// reads still work), nor holds batches off (review, 2026-12-07).
TEST_F(UsageWriterTest, ReadWithUnflushedDoesNotWaitForAHangingCommit) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 5, 100));
  std::future<Status> flushed = FlushHeldAtTheStore(writer, store_);
  std::future<bool> viewed = std::async(std::launch::async, [&] {
    return writer.ReadWithUnflushed({"a"}, 0, 0, 0, [] { return OkStatus(); }).ok();
  });
  EXPECT_EQ(viewed.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  store_.release();
  ASSERT_TRUE(flushed.get().ok());
  EXPECT_TRUE(viewed.get());
  // Batches crossing every read: the view takes its third.
  int reads = 0;
  auto crossed = writer.ReadWithUnflushed({"a"}, 0, 0, 0, [&]() -> Status {
    ++reads;
    writer.Append(Record("b", 1, 100));
    return writer.Flush();
  });
  ASSERT_TRUE(crossed.ok());
  EXPECT_EQ(reads, 3);
}

TEST_F(UsageWriterTest, RecordsDroppedPastTheBoundNoLongerCount) {
  UsageWriterOptions options;
  options.max_pending = 10;
  UsageWriter writer(store_, log_, options);
  for (int i = 0; i < 10; ++i) writer.Append(Record(i < 5 ? "old" : "a", 1, 0));
  writer.Append(Record("a", 100, 0));  // drops the oldest one
  EXPECT_EQ(writer.pending(), 10u);
  EXPECT_EQ(writer.Unflushed("old", 0, 0, 0, 0).total, 4);
  EXPECT_EQ(writer.Unflushed("a", 0, 0, 0, 0).total, 105);
}

TEST_F(UsageWriterTest, LagGrowsWhileTheStoreFailsAndIsZeroOnceItTakesTheBatch) {
  using std::chrono::seconds;
  UsageWriter writer(store_, log_);
  const auto later = [] { return std::chrono::steady_clock::now() + seconds(5); };
  EXPECT_EQ(writer.Lag(later()).count(), 0);  // nothing waits
  writer.Append(Record("a", 5, 0));
  // Counted from the record's arrival, whether or not a write has begun (a writer blocked in
  // the store, on anything, must still show it).
  EXPECT_GE(writer.Lag(later()), seconds(4));
  store_.set_fail(true);
  EXPECT_FALSE(writer.Flush().ok());
  writer.Append(Record("a", 7, 0));
  EXPECT_FALSE(writer.Flush().ok());  // still counted from the first record
  EXPECT_GE(writer.Lag(later()), seconds(4));
  EXPECT_LT(writer.Lag(later()), seconds(6));
  store_.set_fail(false);
  EXPECT_TRUE(writer.Flush().ok());
  EXPECT_EQ(writer.Lag(later()).count(), 0);
}

TEST_F(UsageWriterTest, AStopRetriesAStoreThatRefusesAndGivesUpSayingWhatWasLost) {
  UsageWriterOptions options{std::chrono::hours(1)};
  options.retry_interval = std::chrono::milliseconds(5);
  options.stop_retry_for = std::chrono::milliseconds(50);
  {
    UsageWriter writer(store_, log_, options);
    writer.Start();
    writer.Append(Record("a", 5, 0));
    writer.Append(Record("b", 7, 0));
    store_.set_fail(true);
    writer.Open(OpenCallInfo{});  // in flight, never kept: lost too
    writer.Stop();
    EXPECT_EQ(writer.LostAtStop().records, 2u);
    EXPECT_EQ(writer.LostAtStop().cost, 12);
    EXPECT_EQ(writer.LostAtStop().open_calls, 1u);
  }
  // A store that comes back while the stop retries loses nothing.
  store_.set_fail(true);
  options.stop_retry_for = std::chrono::seconds(30);
  UsageWriter writer(store_, log_, options);
  writer.Start();
  writer.Append(Record("a", 5, 0));
  std::thread heal([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    store_.set_fail(false);
  });
  writer.Stop();
  heal.join();
  EXPECT_EQ(writer.LostAtStop().records, 0u);
  EXPECT_EQ(store_.records(), 1u);
}

TEST_F(UsageWriterTest, TheThreadWritesWithinTheFlushInterval) {
  UsageWriter writer(store_, log_, UsageWriterOptions{std::chrono::milliseconds(5)});
  writer.Start();
  writer.Append(Record("a", 1, 0));
  // Bounded wait: far longer than the interval, so a slow machine does not fail the test.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store_.records() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(store_.records(), 1u);
  writer.Stop();
}

TEST_F(UsageWriterTest, UnflushedSpendIsSplitByPeriodAndLineage) {
  UsageWriter writer(store_, log_);
  writer.Append(Record("a", 1, 100));
  writer.Append(Record("a", 10, 200));
  writer.Append(Record("a", 100, 300));
  writer.Append(Record("b", 1000, 300));
  const UnflushedSpend spend = writer.Unflushed("a", 300, 200, 100, 200);
  EXPECT_EQ(spend.total, 111);
  EXPECT_EQ(spend.since_day, 100);
  EXPECT_EQ(spend.since_week, 110);
  EXPECT_EQ(spend.since_month, 111);
  EXPECT_EQ(spend.since_period, 110);
  ASSERT_TRUE(writer.Flush().ok());
  EXPECT_EQ(writer.Unflushed("a", 0, 0, 0, 0).total, 0);
}

TEST_F(UsageWriterTest, ConcurrentAppendsAreAllWritten) {
  UsageWriter writer(store_, log_, UsageWriterOptions{std::chrono::milliseconds(1)});
  writer.Start();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&writer] {
      for (int i = 0; i < 1000; ++i) writer.Append(Record("a", 1, 0));
    });
  }
  for (std::thread& thread : threads) thread.join();
  writer.Stop();
  EXPECT_EQ(store_.records(), 4000u);
}

// Polls `done` (10 s at most).
bool Eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

// A key whose hash and lineage are `name`; it outlives the writer's entries that point at it.
std::shared_ptr<keys::ServiceKey> KeyNamed(const std::string& name) {
  auto key = std::make_shared<keys::ServiceKey>();
  key->hash = key->lineage = name;
  return key;
}

OpenCallInfo Call(const std::shared_ptr<keys::ServiceKey>& key, MicroUsd cost) {
  OpenCallInfo call;
  call.key = key.get();
  call.request_id = "req_1";
  call.at = 1'700'000'000'000;
  call.prompt_tokens = 10;
  call.completion_tokens = 20;
  call.cost = cost;
  return call;
}

// decision 0011, "A crash": a call in flight for longer than an interval is kept in the store
// at its reservation, and forgotten there once its record is written; a call that ends within
// an interval never reaches the store.
TEST_F(UsageWriterTest, CallsInFlightLongerThanAnIntervalAreKeptUntilTheyEnd) {
  auto key = std::make_shared<keys::ServiceKey>();  // outlives the writer's entries
  key->hash = "hash-a";
  key->lineage = "lineage-a";
  key->org_id = "org_a";
  UsageWriter writer(store_, log_, UsageWriterOptions{std::chrono::milliseconds(5)});
  writer.Start();
  // Opened and closed at once: never stored.
  const uint64_t quick = writer.Open(Call(key, 7));
  writer.Append(Record("lineage-a", 5, 0), quick);
  ASSERT_TRUE(Eventually([&] { return store_.records() == 1; }));
  EXPECT_TRUE(store_.open().empty());
  EXPECT_EQ(writer.open_calls(), 0u);

  const uint64_t slow = writer.Open(Call(key, 300));
  ASSERT_TRUE(Eventually([&] { return store_.open().size() == 1; }));
  const store::UsageRecord kept = store_.open().at(slow);
  EXPECT_EQ(kept.key_hash, "hash-a");
  EXPECT_EQ(kept.lineage, "lineage-a");
  EXPECT_EQ(kept.org_id, "org_a");
  EXPECT_EQ(kept.cost, 300);  // its reservation
  EXPECT_EQ(kept.prompt_tokens, 10);
  EXPECT_EQ(kept.completion_tokens, 20);
  EXPECT_EQ(kept.status, 0);
  EXPECT_EQ(kept.request_id, "req_1");
  const int updates = store_.open_updates();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(store_.open_updates(), updates);  // stored once, not again every interval

  writer.Append(Record("lineage-a", 120, 0), slow);
  ASSERT_TRUE(Eventually([&] { return store_.open().empty(); }));
  EXPECT_EQ(store_.records(), 2u);
  writer.Stop();
}

TEST_F(UsageWriterTest, StopKeepsTheCallsStillOpenAndForgetsTheClosedOnes) {
  const auto key = KeyNamed("k");
  UsageWriter writer(store_, log_, UsageWriterOptions{std::chrono::milliseconds(5)});
  writer.Start();
  const uint64_t first = writer.Open(Call(key, 1));
  const uint64_t second = writer.Open(Call(key, 2));
  ASSERT_TRUE(Eventually([&] { return store_.open().size() == 2; }));
  writer.Append(Record("k", 1, 0), first);
  writer.Stop();
  const auto open = store_.open();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open.begin()->first, second);
}

// A stored call is forgotten only once the record that closes it is committed: while the
// record's batch fails, a crash would still find the call, and charge it.
TEST_F(UsageWriterTest, AStoredCallIsKeptUntilItsRecordIsCommitted) {
  const auto key = KeyNamed("k");
  UsageWriterOptions options{std::chrono::milliseconds(5)};
  options.retry_interval = std::chrono::milliseconds(5);
  UsageWriter writer(store_, log_, options);
  writer.Start();
  const uint64_t id = writer.Open(Call(key, 9));
  ASSERT_TRUE(Eventually([&] { return store_.open().size() == 1; }));
  store_.set_fail_append(true);
  writer.Append(Record("k", 4, 0), id);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  EXPECT_EQ(store_.open().size(), 1u);  // its record not committed: the call stays
  EXPECT_EQ(store_.records(), 0u);
  store_.set_fail_append(false);
  ASSERT_TRUE(Eventually([&] { return store_.open().empty(); }));
  EXPECT_EQ(store_.records(), 1u);
  writer.Stop();
}

// A stop keeps every call still open, however young (cut by the drain deadline): the next
// start charges it.
TEST_F(UsageWriterTest, StopKeepsEvenTheYoungestOpenCalls) {
  const auto key = KeyNamed("k");
  UsageWriter writer(store_, log_, UsageWriterOptions{std::chrono::milliseconds(50)});
  writer.Start([] {});  // as in production, with a periodic task
  const uint64_t id = writer.Open(Call(key, 3));
  writer.Stop();
  ASSERT_EQ(store_.open().size(), 1u);
  EXPECT_EQ(store_.open().begin()->first, id);
}

// An open call is stored about an interval after it opened, not much later, even when the
// writer was idle and waiting on its periodic task.
TEST_F(UsageWriterTest, AnOpenCallIsStoredAboutAnIntervalAfterItOpened) {
  const auto key = KeyNamed("k");
  UsageWriter writer(store_, log_, UsageWriterOptions{std::chrono::milliseconds(20)});
  writer.Start([] {});
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // idle: waiting on the task
  const auto opened = std::chrono::steady_clock::now();
  writer.Open(Call(key, 3));
  ASSERT_TRUE(Eventually([&] { return store_.open().size() == 1; }));
  const auto took = std::chrono::steady_clock::now() - opened;
  EXPECT_GE(took, std::chrono::milliseconds(19));
  // Generous for a loaded machine; an idle writer woken only by its task would take 60 s.
  EXPECT_LT(took, std::chrono::seconds(5));
  writer.Stop();
}

TEST_F(UsageWriterTest, OpenCallsAStoreFailedToKeepAreTriedAgain) {
  const auto key = KeyNamed("k");
  UsageWriterOptions options{std::chrono::milliseconds(5)};
  options.retry_interval = std::chrono::milliseconds(5);
  UsageWriter writer(store_, log_, options);
  store_.set_fail(true);
  writer.Start();
  writer.Open(Call(key, 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_TRUE(store_.open().empty());
  store_.set_fail(false);
  EXPECT_TRUE(Eventually([&] { return store_.open().size() == 1; }));
  writer.Stop();
}

}  // namespace
}  // namespace keygate::proxy
