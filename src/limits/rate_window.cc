#include "limits/rate_window.h"

#include <algorithm>
#include <utility>

namespace keygate::limits {
namespace {

// Smallest ring worth allocating, and the point below which it is never shrunk again.
constexpr size_t kMinCapacity = 8;
// Shrink when at most a quarter full, so that a steady rate does not grow and shrink in turn.
constexpr size_t kShrinkFactor = 4;

}  // namespace

RateWindow::RateWindow(int64_t window_ms) : window_ms_(window_ms) {}

UnixMillis RateWindow::Advance(UnixMillis now) {
  if (size_ > 0) now = std::max(now, At(size_ - 1).at_ms);
  // Strict `<=`: an entry at t has left the window at t + window_ms exactly.
  while (size_ > 0 && (At(0).admissions == 0 || At(0).at_ms <= now - window_ms_)) PopFront();
  if (ring_.size() > kMinCapacity && size_ <= ring_.size() / kShrinkFactor) {
    Resize(ring_.size() / 2);
  }
  return now;
}

WindowDecision RateWindow::TryAdd(UnixMillis now, int64_t amount, int64_t limit) {
  now = Advance(now);
  amount = std::max<int64_t>(amount, 0);
  if (amount > limit) return {WindowOutcome::kNeverFits, kNoWindowEntry, 0};
  if (amount > limit - used_) {
    return {WindowOutcome::kFull, kNoWindowEntry, WaitMs(now, amount, limit)};
  }
  used_ += amount;
  if (size_ > 0 && At(size_ - 1).at_ms == now && At(size_ - 1).admissions > 0) {
    Entry& slot = At(size_ - 1);  // the same millisecond: the same slot
    slot.amount += amount;
    ++slot.admissions;
    return {WindowOutcome::kAdmitted, slot.id, 0};
  }
  const WindowEntryId id = next_id_++;
  PushBack({now, amount, id, 1});
  return {WindowOutcome::kAdmitted, id, 0};
}

std::optional<int64_t> RateWindow::FitsAfterMs(UnixMillis now, int64_t amount, int64_t limit) {
  now = Advance(now);
  amount = std::max<int64_t>(amount, 0);
  if (amount > limit) return std::nullopt;
  if (amount <= limit - used_) return 0;
  return WaitMs(now, amount, limit);
}

int64_t RateWindow::WaitMs(UnixMillis now, int64_t amount, int64_t limit) const {
  // Slots leave oldest first; find the first instant by which enough of them have left.
  const int64_t must_free = used_ - (limit - amount);
  int64_t freed = 0;
  for (size_t i = 0; i < size_; ++i) {
    const Entry& entry = At(i);
    freed += entry.amount;
    if (freed >= must_free) return entry.at_ms + window_ms_ - now;
  }
  // Unreachable while amount <= limit: once every entry has left, used is 0. Answer the
  // most conservative honest wait all the same.
  return size_ > 0 ? At(size_ - 1).at_ms + window_ms_ - now : 0;
}

RateWindow::Entry* RateWindow::Find(WindowEntryId id) {
  if (size_ == 0 || id < At(0).id || id > At(size_ - 1).id) return nullptr;
  // Ids are dense unless undone entries were dropped from the back, so try the direct
  // position first and fall back to a binary search over the increasing ids.
  const uint64_t offset = id - At(0).id;
  size_t index = offset < size_ ? static_cast<size_t>(offset) : size_ - 1;
  if (At(index).id != id) {
    size_t low = 0;
    size_t high = size_;
    while (low < high) {
      const size_t mid = low + (high - low) / 2;
      if (At(mid).id < id) {
        low = mid + 1;
      } else {
        high = mid;
      }
    }
    index = low;
  }
  Entry& entry = At(index);
  return entry.id == id && entry.admissions > 0 ? &entry : nullptr;
}

void RateWindow::Adjust(WindowEntryId id, int64_t from, int64_t to) {
  Entry* slot = Find(id);
  if (slot == nullptr) return;
  // Never below zero, even for a caller that got `from` wrong.
  const int64_t amount = std::max<int64_t>(slot->amount + std::max<int64_t>(to, 0) - from, 0);
  used_ += amount - slot->amount;
  slot->amount = amount;
}

void RateWindow::Remove(WindowEntryId id, int64_t amount) {
  Entry* slot = Find(id);
  if (slot == nullptr) return;
  const int64_t left = --slot->admissions == 0 ? 0 : std::max<int64_t>(slot->amount - amount, 0);
  used_ -= slot->amount - left;
  slot->amount = left;
  // An undo in the same admission empties the newest slot: give it back at once, so that a
  // flood of refused requests leaves nothing behind.
  while (size_ > 0 && At(size_ - 1).admissions == 0) PopBack();
}

int64_t RateWindow::Used(UnixMillis now) {
  Advance(now);
  return used_;
}

int64_t RateWindow::Remaining(UnixMillis now, int64_t limit) {
  Advance(now);
  return used_ >= limit ? 0 : limit - used_;
}

UnixMillis RateWindow::ResetMs(UnixMillis now) {
  now = Advance(now);
  // Advance leaves a slot holding an admission in front whenever the window is not empty.
  return size_ == 0 ? now : At(0).at_ms + window_ms_;
}

bool RateWindow::Empty(UnixMillis now) {
  Advance(now);
  return size_ == 0;
}

void RateWindow::PushBack(const Entry& entry) {
  if (size_ == ring_.size()) Resize(std::max(kMinCapacity, ring_.size() * 2));
  At(size_) = entry;
  ++size_;
}

void RateWindow::PopFront() {
  used_ -= At(0).amount;
  head_ = (head_ + 1) & (ring_.size() - 1);
  --size_;
}

void RateWindow::PopBack() {
  used_ -= At(size_ - 1).amount;
  --size_;
}

void RateWindow::Resize(size_t capacity) {
  std::vector<Entry> resized(capacity);
  for (size_t i = 0; i < size_; ++i) resized[i] = At(i);
  ring_ = std::move(resized);
  head_ = 0;
}

}  // namespace keygate::limits
