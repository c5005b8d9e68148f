// An exact rolling window (spec §3 RPM and TPM): a sliding log of admitted amounts, so that no
// window of `window_ms` consecutive milliseconds ever holds more than the limit. Unlike a fixed
// bucket, two bursts either side of a minute boundary cannot add up to twice the limit.
//
// An entry admitted at time t counts in every window containing t and leaves the window at
// t + window_ms exactly: at instant `now` the window holds the entries with
// now - window_ms < t <= now. The amounts admitted in one millisecond share one slot (they
// leave together anyway), so a window holds at most window_ms slots however busy its key: a
// key at 25,000 requests/s keeps 60,000 slots, not 1.5 million entries. Each admission is told
// its slot's id, so that its amount can later be adjusted (a reservation of worst-case tokens
// settled to the real count) or removed (released); the caller says which amount it admitted.
//
// Time never runs backwards inside a window: a `now` earlier than the newest entry (a caller
// that read its clock before a concurrent caller) is taken as the newest entry's time. That only
// keeps entries longer than their true age, so the limit still holds; after a backward step of
// the system clock the window drains that much later.
//
// Memory is bounded by the milliseconds inside the window that saw an admission: every call
// first drops the slots that have left it.
//
// Thread safety: not thread-safe; callers serialize access (LocalLimiter holds a shard mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/clock.h"

namespace keygate::limits {

inline constexpr int64_t kDefaultWindowMs = 60'000;

// Identifies one admitted amount of one RateWindow. 0 is never a valid id.
using WindowEntryId = uint64_t;
inline constexpr WindowEntryId kNoWindowEntry = 0;

enum class WindowOutcome {
  kAdmitted,   // the amount was added; `entry` identifies it
  kFull,       // the window cannot hold it now; it fits after `retry_after_ms`
  kNeverFits,  // the amount is above the limit itself; no wait helps
};

struct WindowDecision {
  WindowOutcome outcome = WindowOutcome::kAdmitted;
  WindowEntryId entry = kNoWindowEntry;  // set only when kAdmitted
  // Only for kFull: with no other change to the window, the amount fits at
  // now + retry_after_ms and not one millisecond earlier. Always > 0.
  int64_t retry_after_ms = 0;

  bool admitted() const { return outcome == WindowOutcome::kAdmitted; }
};

class RateWindow {
 public:
  // REQUIRES: window_ms > 0.
  explicit RateWindow(int64_t window_ms = kDefaultWindowMs);

  RateWindow(RateWindow&&) noexcept = default;
  RateWindow& operator=(RateWindow&&) noexcept = default;
  RateWindow(const RateWindow&) = delete;
  RateWindow& operator=(const RateWindow&) = delete;

  // Adds `amount` at `now` if the window then holds at most `limit`.
  // Returns kAdmitted with the id of the slot that holds it on success; kNeverFits when
  // amount > limit; kFull with an honest retry_after_ms otherwise (the window is left
  // unchanged).
  // REQUIRES: amount >= 0.
  WindowDecision TryAdd(UnixMillis now, int64_t amount, int64_t limit);

  // Returns how long from `now` until `amount` fits under `limit` without adding it: 0 if it
  // fits now, the honest wait (as TryAdd's retry_after_ms) if not, nullopt if amount > limit.
  // REQUIRES: amount >= 0.
  std::optional<int64_t> FitsAfterMs(UnixMillis now, int64_t amount, int64_t limit);

  // One admission of slot `id`, which counts `from` now, counts `to` instead (smaller or
  // larger: the real usage counts). Does nothing if the slot has left the window.
  // REQUIRES: from and to >= 0; `from` is what the admission counts (TryAdd's amount or the
  // `to` of its last Adjust); the admission was not removed.
  void Adjust(WindowEntryId id, int64_t from, int64_t to);

  // Takes one admission counting `amount` out of slot `id`, as if it had never been admitted.
  // Does nothing if the slot has left the window.
  // REQUIRES: as for Adjust; each admission is removed at most once.
  void Remove(WindowEntryId id, int64_t amount);

  // Returns the sum of the amounts in the window at `now`.
  int64_t Used(UnixMillis now);

  // Returns limit - Used(now), or 0 if the window holds more than `limit` (a lowered limit).
  int64_t Remaining(UnixMillis now, int64_t limit);

  // Returns when the oldest entry still in the window leaves it, freeing room; `now` if the
  // window is empty.
  UnixMillis ResetMs(UnixMillis now);

  // Returns true if no entry is in the window at `now`.
  bool Empty(UnixMillis now);

  // Slots held, emptied ones awaiting their turn to leave included.
  size_t entry_count() const { return size_; }
  int64_t window_ms() const { return window_ms_; }

 private:
  struct Entry {  // one millisecond's slot
    UnixMillis at_ms = 0;
    int64_t amount = 0;
    WindowEntryId id = kNoWindowEntry;  // strictly increasing from the front to the back
    // Admissions not removed; 0: the slot counts for nothing and waits to reach the front.
    int64_t admissions = 0;
  };

  // Clamps `now` to the newest entry, drops what has left the window; returns the clamped now.
  UnixMillis Advance(UnixMillis now);
  // Honest wait for `amount` at clamped time `now`. REQUIRES: amount <= limit.
  int64_t WaitMs(UnixMillis now, int64_t amount, int64_t limit) const;
  // The slot with id `id`, or nullptr if it is not held or holds no admission.
  Entry* Find(WindowEntryId id);
  Entry& At(size_t index) { return ring_[(head_ + index) & (ring_.size() - 1)]; }
  const Entry& At(size_t index) const { return ring_[(head_ + index) & (ring_.size() - 1)]; }
  void PushBack(const Entry& entry);
  void PopFront();
  void PopBack();
  void Resize(size_t capacity);

  int64_t window_ms_;
  std::vector<Entry> ring_;  // circular buffer; size is 0 or a power of two
  size_t head_ = 0;          // index in ring_ of the oldest entry
  size_t size_ = 0;
  WindowEntryId next_id_ = 1;  // never reused, so a stale id can never reach a newer entry
  int64_t used_ = 0;           // sum of the amounts held
};

}  // namespace keygate::limits
