#include "proxy/usage_writer.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "common/digest_hash.h"
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
    : store_(store), log_(log), options_(options) {}

UsageWriter::~UsageWriter() { Stop(); }

void UsageWriter::Start(std::function<void()> task) {
  thread_ = std::thread([this, task = std::move(task)]() mutable { Loop(std::move(task)); });
}

uint64_t UsageWriter::Open(OpenCallInfo call) {
  const auto now = SteadyClock::now();
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = ++next_open_id_;
  open_.emplace(id, OpenEntry{std::move(call), now, false});
  // The loop must look at it within an interval, should it last. Under traffic its wait is
  // that short already; after a quiet spell it is woken once.
  if (loop_wakes_at_ > now + options_.flush_interval) {
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
  const PendingCost cost{DigestHash{}(record.lineage), record.at, record.cost};
  std::lock_guard<std::mutex> lock(mu_);
  if (open_id != 0) {
    if (auto it = open_.find(open_id); it != open_.end()) {
      if (it->second.stored) pending_closes_.push_back(open_id);
      open_.erase(it);
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
  const bool was_empty = pending_.empty();
  pending_.push_back(std::move(record));
  pending_costs_.push_back(cost);
  if (was_empty) {
    oldest_pending_ = SteadyClock::now();
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
    log_.Error("usage.final_flush_failed", {{"error", flushed.error().message}});
  }
}

Status UsageWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  return WriteBatch(lock);
}

Status UsageWriter::WriteBatch(std::unique_lock<std::mutex>& lock) {
  // One batch at a time, in order: a Flush() waits for the thread's write to finish.
  cv_.wait(lock, [this] { return !writing_now_; });
  if (pending_.empty()) return OkStatus();
  writing_now_ = true;
  writing_.swap(pending_);
  writing_costs_.swap(pending_costs_);
  std::vector<uint64_t> closes;
  closes.swap(pending_closes_);
  pending_.reserve(writing_.size());
  pending_costs_.reserve(writing_costs_.size());
  lock.unlock();
  Status status = store_.AppendUsage(writing_);
  std::vector<store::UsageRecord> written;  // freed with the lock released
  lock.lock();
  writing_now_ = false;
  if (status.ok()) {
    written.swap(writing_);
    writing_costs_.clear();
    // Their records committed, the stored calls they closed may be forgotten.
    closed_stored_.insert(closed_stored_.end(), closes.begin(), closes.end());
  } else {
    pending_closes_.insert(pending_closes_.begin(), closes.begin(), closes.end());
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

bool UsageWriter::OpenCallsDue(SteadyClock::time_point now) const {
  if (!closed_stored_.empty()) return true;
  for (const auto& [id, entry] : open_) {
    if (!entry.stored && now - entry.opened >= options_.flush_interval) return true;
  }
  return false;
}

Status UsageWriter::WriteOpenCalls(std::unique_lock<std::mutex>& lock) {
  cv_.wait(lock, [this] { return !writing_now_; });
  const auto due = SteadyClock::now() - options_.flush_interval;
  std::vector<store::OpenCall> opened;
  std::vector<uint64_t> ids;
  for (auto& [id, entry] : open_) {
    if (entry.stored || entry.opened > due) continue;
    entry.stored = true;
    ids.push_back(id);
  }
  std::vector<uint64_t> closed;
  closed.swap(closed_stored_);
  if (ids.empty() && closed.empty()) return OkStatus();
  writing_now_ = true;
  // The records are made with the lock released, from copies of what they need.
  std::vector<OpenCallInfo> calls;
  calls.reserve(ids.size());
  for (uint64_t id : ids) calls.push_back(open_.at(id).call);
  lock.unlock();
  opened.reserve(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) opened.push_back({ids[i], calls[i].Record()});
  Status status = store_.UpdateOpenCalls(opened, closed);
  calls.clear();
  lock.lock();
  writing_now_ = false;
  if (!status.ok()) {
    // Tried again with the next batch: still open ones unmarked, the closed ones kept.
    for (uint64_t id : ids) {
      if (auto it = open_.find(id); it != open_.end()) it->second.stored = false;
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
  auto retry_at = SteadyClock::time_point::min();
  while (!stopping_) {
    const auto now = SteadyClock::now();
    const auto flush_at = std::max(oldest_pending_ + options_.flush_interval, retry_at);
    if (!pending_.empty() && now >= flush_at) {
      if (!WriteBatch(lock).ok()) {
        retry_at = SteadyClock::now() + options_.retry_interval;
        continue;
      }
      // The settled records first, then the open calls they close: a crash between the two
      // charges such a call twice (settled, and at its reservation), never not at all.
      if (!WriteOpenCalls(lock).ok()) retry_at = SteadyClock::now() + options_.retry_interval;
      continue;
    }
    if (now >= retry_at && OpenCallsDue(now)) {
      if (!WriteOpenCalls(lock).ok()) retry_at = SteadyClock::now() + options_.retry_interval;
      continue;
    }
    if (task && now >= next_task) {
      lock.unlock();
      task();
      lock.lock();
      next_task = SteadyClock::now() + options_.task_interval;
      continue;
    }
    auto deadline = task ? next_task : now + options_.task_interval;
    if (!pending_.empty()) deadline = std::min(deadline, flush_at);
    // A call in flight is looked at again once it has lasted an interval.
    if (!open_.empty()) deadline = std::min(deadline, std::max(now, retry_at) +
                                                          options_.flush_interval);
    loop_wakes_at_ = deadline;
    cv_.wait_until(lock, deadline);
  }
  // spec §6: SIGTERM settles and flushes before exit.
  while (!pending_.empty()) {
    if (Status status = WriteBatch(lock); !status.ok()) {
      log_.Error("usage.final_flush_failed", {{"error", status.error().message},
                                              {"lost", static_cast<uint64_t>(pending_.size())}});
      return;
    }
  }
  // The stored calls that closed are forgotten (the next start would charge them again), and
  // those still open after the drain kept.
  if (Status status = WriteOpenCalls(lock); !status.ok()) {
    log_.Error("usage.final_flush_failed", {{"error", status.error().message}});
  }
}

UnflushedSpend UsageWriter::Unflushed(const std::string& lineage, UnixMillis day_start,
                                      UnixMillis week_start, UnixMillis month_start,
                                      UnixMillis period_start) const {
  UnflushedSpend spend;
  const size_t hash = DigestHash{}(lineage);
  auto add = [&](const std::vector<PendingCost>& costs,
                 const std::vector<store::UsageRecord>& records) {
    // In step by construction; never read past the records if they were not.
    const size_t count = std::min(costs.size(), records.size());
    if (costs.size() != records.size()) {
      log_.Error("usage.pending_costs_out_of_step",
                 {{"costs", static_cast<uint64_t>(costs.size())},
                  {"records", static_cast<uint64_t>(records.size())}});
    }
    for (size_t i = 0; i < count; ++i) {
      const PendingCost& c = costs[i];
      if (c.lineage_hash != hash || records[i].lineage != lineage) continue;
      spend.total += c.cost;
      if (c.at >= day_start) spend.since_day += c.cost;
      if (c.at >= week_start) spend.since_week += c.cost;
      if (c.at >= month_start) spend.since_month += c.cost;
      if (c.at >= period_start) spend.since_period += c.cost;
    }
  };
  std::lock_guard<std::mutex> lock(mu_);
  add(writing_costs_, writing_);
  add(pending_costs_, pending_);
  return spend;
}

size_t UsageWriter::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size() + writing_.size();
}

}  // namespace keygate::proxy
