#include "proxy/usage_writer.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "common/digest_hash.h"
#include "common/saturating.h"
#include "common/thread_name.h"

namespace keygate::proxy {
namespace {

using SteadyClock = std::chrono::steady_clock;

}  // namespace

store::UsageRecord OpenCallInfo::Record() const {
  store::UsageRecord record;
  if (key != nullptr) {
    record.key_hash = key->hash;
    record.lineage = keys::LineageOf(*key);
    record.org_id = key->org_id;
  }
  if (model != nullptr) {
    record.model = model->id;
    record.provider = model->provider;
  }
  record.request_id = request_id;
  record.at = at;
  record.prompt_tokens = prompt_tokens;
  record.completion_tokens = completion_tokens;
  record.cost = cost;
  return record;
}

UsageWriter::UsageWriter(store::UsageStore& store, Logger& log, UsageWriterOptions options)
    : store_(store), log_(log), options_(options) {
  // 4,096 ids a millisecond: a process never opens calls faster, so its ids stay above those
  // of any process before it.
  constexpr int kIdBitsPerMs = 12;
  next_open_id_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count())
                  << kIdBitsPerMs;
}

UsageWriter::~UsageWriter() { Stop(); }

void UsageWriter::Start(std::function<void()> task) {
  thread_ = std::thread([this, task = std::move(task)]() mutable { Loop(std::move(task)); });
}

uint64_t UsageWriter::Open(OpenCallInfo call) {
  const auto now = SteadyClock::now();
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = ++next_open_id_;
  open_.emplace(id, OpenEntry{std::move(call), now, false});
  unstored_.push_back(id);
  // The loop must look at it within an interval, should it last. Under traffic its wait is
  // that short already; after a quiet spell (or a failed write's pause) it is woken once.
  if (loop_wakes_at_ > std::max(now + options_.flush_interval, retry_at_)) {
    loop_wakes_at_ = now;
    cv_.notify_all();
  }
  return id;
}

size_t UsageWriter::open_calls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_.size();
}

void UsageWriter::Append(store::UsageRecord record, uint64_t open_id) {
  PendingCost cost{DigestHash{}(record.lineage), record.at, record.cost, 0};
  decltype(open_)::node_type closed;  // destroyed after the lock is released
  std::lock_guard<std::mutex> lock(mu_);
  if (open_id != 0) {
    if (auto it = open_.find(open_id); it != open_.end()) {
      // A stored call is forgotten once this record is committed (WriteBatch).
      if (it->second.stored) cost.closes = open_id;
      closed = open_.extract(it);
    }
  }
  if (pending_.size() >= options_.max_pending) {
    // The store has been down for long: keep memory bounded, losing the oldest usage.
    const size_t dropped = std::max<size_t>(options_.max_pending / 10, 1);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(dropped));
    pending_costs_.erase(pending_costs_.begin(),
                         pending_costs_.begin() + static_cast<std::ptrdiff_t>(dropped));
    log_.Error("usage.dropped", {{"records", static_cast<uint64_t>(dropped)}});
  }
  cost.seq = appended_++;
  const bool was_empty = pending_.empty();
  pending_.push_back(std::move(record));
  pending_costs_.push_back(cost);
  if (was_empty) {
    oldest_pending_ = SteadyClock::now();
    // Nothing was waiting for the store (the only time the lag's start is unset): it starts.
    if (unstored_since_.load(std::memory_order_relaxed) == 0) {
      unstored_since_.store(oldest_pending_.time_since_epoch().count(), std::memory_order_relaxed);
    }
    cv_.notify_all();
  }
}

void UsageWriter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
  } else if (Status flushed = Flush(); !flushed.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    CountLostAtStop();
    log_.Error("usage.final_flush_failed",
               {{"error", flushed.error().message}, {"lost", lost_at_stop_.records}});
  }
}

Status UsageWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  return WriteBatch(lock);
}

Status UsageWriter::WriteBatch(std::unique_lock<std::mutex>& lock) {
  // One batch at a time, in order: a Flush() waits for the thread's write to finish. None while
  // SpendSince() holds batches off.
  cv_.wait(lock, [this] { return !writing_now_ && readers_ == 0; });
  if (pending_.empty()) return OkStatus();
  writing_now_ = true;
  ++batches_begun_;
  writing_.swap(pending_);
  writing_costs_.swap(pending_costs_);
  pending_.reserve(writing_.size());
  pending_costs_.reserve(writing_costs_.size());
  lock.unlock();
  Status status = store_.AppendUsage(writing_);
  std::vector<store::UsageRecord> written;  // freed with the lock released
  lock.lock();
  writing_now_ = false;
  if (status.ok()) {
    // What waits now is what arrived during the write, if anything.
    unstored_since_.store(pending_.empty() ? 0 : oldest_pending_.time_since_epoch().count(),
                          std::memory_order_relaxed);
    written.swap(writing_);
    for (OpenSeed* seed : open_seeds_) {
      ForEachCost(writing_costs_, written, [seed](const PendingCost& c, const auto& record) {
        if (c.seq >= seed->mark && c.at >= seed->period_start &&
            c.lineage_hash == seed->lineage_hash && record.lineage == seed->lineage) {
          seed->committed_after_mark = SaturatingAdd(seed->committed_after_mark, c.cost);
        }
      });
    }
    // Their records committed, the stored calls they closed may be forgotten. (A record
    // dropped past max_pending leaves its call stored: charged at its reservation later.)
    for (const PendingCost& cost : writing_costs_) {
      if (cost.closes != 0) closed_stored_.push_back(cost.closes);
    }
    writing_costs_.clear();
  } else {
    // Keep the failed batch ahead of what arrived meanwhile, and try again later.
    writing_.insert(writing_.end(), std::make_move_iterator(pending_.begin()),
                    std::make_move_iterator(pending_.end()));
    writing_costs_.insert(writing_costs_.end(), pending_costs_.begin(), pending_costs_.end());
    pending_.swap(writing_);
    pending_costs_.swap(writing_costs_);
    writing_.clear();
    writing_costs_.clear();
    log_.Warn("usage.write_failed", {{"error", status.error().message},
                                     {"pending", static_cast<uint64_t>(pending_.size())}});
  }
  cv_.notify_all();
  if (!written.empty()) {
    // Calls appending meanwhile do not wait for the batch's strings to be freed.
    lock.unlock();
    written = {};
    lock.lock();
  }
  return status;
}

SteadyClock::time_point UsageWriter::NextOpenCallDue() {
  while (!unstored_.empty()) {
    auto it = open_.find(unstored_.front());
    if (it != open_.end() && !it->second.stored) return it->second.opened + options_.flush_interval;
    unstored_.pop_front();  // closed before it was due, or stored
  }
  return SteadyClock::time_point::max();
}

Status UsageWriter::WriteOpenCalls(std::unique_lock<std::mutex>& lock, bool all) {
  cv_.wait(lock, [this] { return !writing_now_; });
  const auto now = SteadyClock::now();
  std::vector<store::OpenCall> opened;
  std::vector<uint64_t> ids;
  // NextOpenCallDue() first: it drops the closed calls from the front.
  while (NextOpenCallDue() <= now || (all && !unstored_.empty())) {
    const uint64_t id = unstored_.front();
    unstored_.pop_front();
    open_.at(id).stored = true;
    ids.push_back(id);
  }
  std::vector<uint64_t> closed;
  closed.swap(closed_stored_);
  if (ids.empty() && closed.empty()) return OkStatus();
  writing_now_ = true;
  // Made under the lock: an entry's key and model live as long as it is in open_ (its call
  // closes it before letting them go, which takes the lock). Only calls being stored pay.
  opened.reserve(ids.size());
  for (uint64_t id : ids) opened.push_back({id, open_.at(id).call.Record()});
  lock.unlock();
  Status status = store_.UpdateOpenCalls(opened, closed);
  opened = {};  // freed before the lock the hot path takes
  lock.lock();
  writing_now_ = false;
  if (!status.ok()) {
    // Tried again later: the still open ones back at the front, in order; the closed kept.
    for (auto id = ids.rbegin(); id != ids.rend(); ++id) {
      if (auto it = open_.find(*id); it != open_.end()) {
        it->second.stored = false;
        unstored_.push_front(*id);
      }
    }
    // Closed meanwhile after being marked: their rows may not exist; deleting is harmless.
    closed_stored_.insert(closed_stored_.end(), closed.begin(), closed.end());
    log_.Warn("usage.open_calls_write_failed", {{"error", status.error().message}});
  }
  cv_.notify_all();
  return status;
}

void UsageWriter::Loop(std::function<void()> task) {
  NameThisThread("kg-usage");
  std::unique_lock<std::mutex> lock(mu_);
  auto next_task = SteadyClock::now() + options_.task_interval;
  while (!stopping_) {
    const auto now = SteadyClock::now();
    const auto flush_at = std::max(oldest_pending_ + options_.flush_interval, retry_at_);
    if (!pending_.empty() && now >= flush_at) {
      if (!WriteBatch(lock).ok()) {
        retry_at_ = SteadyClock::now() + options_.retry_interval;
        continue;
      }
      // The settled records first, then the open calls they close: a crash between the two
      // charges such a call twice (settled, and at its reservation), never not at all.
      if (!WriteOpenCalls(lock).ok()) retry_at_ = SteadyClock::now() + options_.retry_interval;
      continue;
    }
    // Calls in flight: the oldest not stored is due an interval after it opened.
    auto open_due = std::min(NextOpenCallDue(), closed_stored_.empty()
                                                    ? SteadyClock::time_point::max()
                                                    : now);
    if (open_due != SteadyClock::time_point::max()) open_due = std::max(open_due, retry_at_);
    if (now >= open_due) {
      if (!WriteOpenCalls(lock).ok()) retry_at_ = SteadyClock::now() + options_.retry_interval;
      continue;
    }
    if (task && now >= next_task) {
      lock.unlock();
      task();
      lock.lock();
      next_task = SteadyClock::now() + options_.task_interval;
      continue;
    }
    auto deadline = std::min(task ? next_task : now + options_.task_interval, open_due);
    if (!pending_.empty()) deadline = std::min(deadline, flush_at);
    loop_wakes_at_ = deadline;
    cv_.wait_until(lock, deadline);
  }
  // spec §6: SIGTERM settles and flushes before exit. A store that refuses (its lock held by
  // another process, a full disk) is given stop_retry_for to come back: records not stored are
  // spend a restart would not see. (An attempt may itself wait for the store's busy timeout.)
  const auto give_up_at = SteadyClock::now() + options_.stop_retry_for;
  while (!pending_.empty()) {
    Status status = WriteBatch(lock);
    if (status.ok()) continue;
    if (SteadyClock::now() + options_.retry_interval > give_up_at) {
      // A record whose call was kept as open is still charged, at its reservation, by the next
      // start; the calls open and never kept are lost with the rest (the store refuses them too).
      CountLostAtStop();
      CountOpenCallsLostAtStop();
      log_.Error("usage.final_flush_failed",
                 {{"error", status.error().message},
                  {"lost", lost_at_stop_.records},
                  {"lost_cost_micro_usd", lost_at_stop_.cost},
                  {"open_calls_lost", lost_at_stop_.open_calls},
                  {"why", "the store refused the last usage records until the stop gave up; "
                          "their keys' spend does not include them"}});
      return;
    }
    lock.unlock();
    std::this_thread::sleep_for(options_.retry_interval);
    lock.lock();
  }
  // The stored calls that closed are forgotten (the next start would charge them again), and
  // every call still open (cut by the drain deadline) is kept: the next start charges it at
  // its reservation.
  if (Status status = WriteOpenCalls(lock, /*all=*/true); !status.ok()) {
    CountOpenCallsLostAtStop();
    log_.Error("usage.final_flush_failed", {{"error", status.error().message},
                                            {"open_calls_lost", lost_at_stop_.open_calls}});
  }
}

void UsageWriter::AddToBuckets(const PendingCost& c, UnixMillis day_start, UnixMillis week_start,
                               UnixMillis month_start, UnflushedSpend* spend) {
  spend->total = SaturatingAdd(spend->total, c.cost);
  if (c.at >= day_start) spend->since_day = SaturatingAdd(spend->since_day, c.cost);
  if (c.at >= week_start) spend->since_week = SaturatingAdd(spend->since_week, c.cost);
  if (c.at >= month_start) spend->since_month = SaturatingAdd(spend->since_month, c.cost);
}

template <class F>
void UsageWriter::ForEachCost(const std::vector<PendingCost>& costs,
                              const std::vector<store::UsageRecord>& records, F&& f) const {
  // In step by construction; never read past the records if they were not.
  const size_t count = std::min(costs.size(), records.size());
  if (costs.size() != records.size()) {
    log_.Error("usage.pending_costs_out_of_step",
               {{"costs", static_cast<uint64_t>(costs.size())},
                {"records", static_cast<uint64_t>(records.size())}});
  }
  for (size_t i = 0; i < count; ++i) f(costs[i], records[i]);
}

template <class F>
void UsageWriter::ForEachUnflushed(F&& f) const {
  ForEachCost(writing_costs_, writing_, f);
  ForEachCost(pending_costs_, pending_, f);
}

template <class F>
void UsageWriter::ForEachUnflushed(const std::string& lineage, F&& f) const {
  const size_t hash = DigestHash{}(lineage);
  ForEachUnflushed([&](const PendingCost& c, const store::UsageRecord& record) {
    if (c.lineage_hash == hash && record.lineage == lineage) f(c);
  });
}

UnflushedSpend UsageWriter::Unflushed(const std::string& lineage, UnixMillis day_start,
                                      UnixMillis week_start, UnixMillis month_start,
                                      UnixMillis period_start) const {
  UnflushedSpend spend;
  std::lock_guard<std::mutex> lock(mu_);
  ForEachUnflushed(lineage, [&](const PendingCost& c) {
    AddToBuckets(c, day_start, week_start, month_start, &spend);
    if (c.at >= period_start) spend.since_period = SaturatingAdd(spend.since_period, c.cost);
  });
  return spend;
}

size_t UsageWriter::seeds_in_progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_seeds_.size();
}

Status UsageWriter::ReadBetweenBatches(std::unique_lock<std::mutex>& lock,
                                       const std::function<Status()>& read_store, Reader reader) {
  constexpr int kTriesBeforeHolding = 3;
  constexpr auto kLongestWaitOfAView = std::chrono::milliseconds(200);
  const bool exact = reader == Reader::kSeed;
  const auto view_deadline = std::chrono::steady_clock::now() + kLongestWaitOfAView;
  for (int attempt = 1;; ++attempt) {
    // A batch being committed is in the store or not depending on when the read lands: wait.
    // A view waits a little only: a commit may hang for seconds (another process holding the
    // store's write lock) while the store still answers reads.
    bool between = true;
    if (exact) {
      cv_.wait(lock, [this] { return !writing_now_; });
    } else {
      between = cv_.wait_until(lock, view_deadline, [this] { return !writing_now_; });
    }
    const uint64_t batches = batches_begun_;
    // Read without holding the writer off; for a seed, after a few reads that a batch crossed
    // (a store slower than the flush interval), with it held off. (It can begin only once the
    // lock is released, after the caller's memory read.) A view never holds the writer off.
    const bool hold = exact && attempt > kTriesBeforeHolding;
    struct Reading {
      UsageWriter& writer;
      std::unique_lock<std::mutex>& lock;
      bool hold;
      ~Reading() {
        if (!lock.owns_lock()) lock.lock();
        if (hold) {
          --writer.readers_;
          writer.cv_.notify_all();
        }
      }
    };
    Status status = OkStatus();
    {
      Reading reading{*this, lock, hold};
      if (hold) ++readers_;
      lock.unlock();
      status = read_store();
    }
    if (!status.ok()) return status;
    // A batch begun meanwhile may or may not be in the store's answer: read again (a view, at
    // most three times, then it takes its last read).
    if (between && batches_begun_ == batches) return status;
    if (!exact && attempt >= kTriesBeforeHolding) return status;
  }
}

Result<MicroUsd> UsageWriter::SpendSince(const std::string& lineage, UnixMillis period_start,
                                         const std::function<Result<MicroUsd>()>& read_store) {
  std::unique_lock<std::mutex> lock(mu_);
  // Records appended from here on are the budget's: their calls settle after the seed began.
  OpenSeed seed{lineage, DigestHash{}(lineage), period_start, appended_};
  struct Registration {  // until the end, however read_store ends
    UsageWriter& writer;
    std::unique_lock<std::mutex>& lock;
    OpenSeed* seed;
    ~Registration() {
      if (!lock.owns_lock()) lock.lock();
      auto& seeds = writer.open_seeds_;
      seeds.erase(std::find(seeds.begin(), seeds.end(), seed));
    }
  } registration{*this, lock, &seed};
  open_seeds_.push_back(&seed);
  MicroUsd stored = 0;
  KG_RETURN_IF_ERROR(ReadBetweenBatches(
      lock,
      [&]() -> Status {
        Result<MicroUsd> read = read_store();
        if (!read.ok()) return read.error();
        stored = *read;
        return OkStatus();
      },
      Reader::kSeed));
  MicroUsd total = stored - seed.committed_after_mark;
  ForEachUnflushed(lineage, [&](const PendingCost& c) {
    if (c.seq < seed.mark && c.at >= period_start) total = SaturatingAdd(total, c.cost);
  });
  return total;
}

Result<std::unordered_map<std::string, UnflushedSpend>> UsageWriter::ReadWithUnflushed(
    const std::vector<std::string>& lineages, UnixMillis day_start, UnixMillis week_start,
    UnixMillis month_start, const std::function<Status()>& read_store) {
  std::unique_lock<std::mutex> lock(mu_);
  KG_RETURN_IF_ERROR(ReadBetweenBatches(lock, read_store, Reader::kView));
  std::unordered_map<std::string, UnflushedSpend> out;
  // The walk reads each record's 24-byte entry and compares a lineage only where its hash is
  // one of those asked for.
  std::unordered_map<size_t, std::vector<const std::string*>> wanted;
  for (const std::string& lineage : lineages) wanted[DigestHash{}(lineage)].push_back(&lineage);
  ForEachUnflushed([&](const PendingCost& c, const store::UsageRecord& record) {
    const auto it = wanted.find(c.lineage_hash);
    if (it == wanted.end()) return;
    for (const std::string* lineage : it->second) {
      if (record.lineage == *lineage) {
        AddToBuckets(c, day_start, week_start, month_start, &out[*lineage]);
      }
    }
  });
  return out;
}

std::chrono::nanoseconds UsageWriter::Lag(SteadyClock::time_point now) const {
  const int64_t since = unstored_since_.load(std::memory_order_relaxed);
  if (since == 0) return std::chrono::nanoseconds(0);
  return std::max(now.time_since_epoch() - SteadyClock::duration(since),
                  SteadyClock::duration(0));
}

void UsageWriter::CountLostAtStop() {
  lost_at_stop_ = {pending_.size(), 0, 0};
  for (const PendingCost& cost : pending_costs_) {
    lost_at_stop_.cost = SaturatingAdd(lost_at_stop_.cost, cost.cost);
  }
}

void UsageWriter::CountOpenCallsLostAtStop() {
  lost_at_stop_.open_calls = 0;
  for (const auto& [id, entry] : open_) lost_at_stop_.open_calls += entry.stored ? 0 : 1;
}

UnstoredUsage UsageWriter::LostAtStop() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lost_at_stop_;
}

size_t UsageWriter::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size() + writing_.size();
}

}  // namespace keygate::proxy
