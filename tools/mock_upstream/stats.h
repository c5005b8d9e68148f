// Request accounting for tests (GET /mock/stats, POST /mock/reset): counters and a copy of the
// last request's Authorization, headers and body.
//
// Built not to slow the server down: every io thread owns one Slot (its own mutex, counters and
// last-request copy, reused so that recording allocates nothing once warm). Threads never
// contend with each other; only a stats snapshot or reset takes every slot's lock. "Last" is
// decided by a global sequence number stamped on each record.
//
// Thread safety: Record(slot, ...) may be called concurrently for distinct slots and is safe
// for the same slot too (serialised by the slot's mutex); Snapshot and Reset from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mock_upstream {

// What a request was, for the counters.
enum class RequestKind {
  kChat,        // POST /v1/chat/completions, not streamed
  kChatStream,  // POST /v1/chat/completions with "stream": true
  kEmbeddings,  // POST /v1/embeddings
  kOther,       // any other /v1 request, including 404s
  kControl,     // /mock/*: not recorded at all
};

// A copy of one request, reused between records.
struct LastRequest {
  uint64_t sequence = 0;  // 0 = nothing recorded in this slot since the last reset
  bool has_authorization = false;
  std::string authorization;                                 // as received, when has_authorization
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names; [0, header_count)
  size_t header_count = 0;
  std::string body;

  // Sets header `header_count` (reusing the storage of a previous record) and advances.
  void AddHeader(std::string_view name, std::string_view value);
};

struct Counters {
  uint64_t requests = 0;
  uint64_t chat = 0;  // streamed or not
  uint64_t embeddings = 0;
  uint64_t streams = 0;
  uint64_t connections = 0;  // accepted (a client that pools its connections opens few)
  uint64_t strays = 0;  // unasked answers written whole (x-mock-stray-after)
};

class Stats {
 public:
  // REQUIRES: slot_count >= 1 (one per io thread).
  explicit Stats(size_t slot_count);

  // Counts a request of `kind` in slot `slot` and lets `fill` copy it into the slot's
  // LastRequest (whose sequence is already stamped, header_count 0 and has_authorization
  // false). Does nothing
  // for kControl. REQUIRES: slot < slot_count. `fill` runs under the slot's lock: keep it short.
  template <class Fill>
  void Record(size_t slot, RequestKind kind, Fill&& fill) {
    if (kind == RequestKind::kControl) return;
    Slot& s = *slots_[slot];
    std::lock_guard<std::mutex> lock(s.mu);
    Count(kind, &s.counters);
    s.last.sequence = next_sequence_.fetch_add(1, std::memory_order_relaxed) + 1;
    s.last.header_count = 0;
    s.last.has_authorization = false;
    fill(&s.last);
  }

  // Counts a connection accepted for slot `slot`. REQUIRES: slot < slot_count.
  void CountConnection(size_t slot) { Increment(slot, &Counters::connections); }
  // Counts an unasked answer written whole (a test waits for it before its next request).
  void CountStray(size_t slot) { Increment(slot, &Counters::strays); }

  // The GET /mock/stats body: {"requests", "chat", "embeddings", "streams", "connections",
  // "strays",
  // "last_authorization", "last_headers", "last_body"} as compact JSON. last_authorization is
  // null and last_headers {} when nothing was recorded; last_body is the body parsed as JSON,
  // the raw text as a JSON string when it is not JSON, or null when empty.
  std::string SnapshotJson() const;

  // Zeroes every counter and forgets the last request.
  void Reset();

 private:
  struct Slot {
    mutable std::mutex mu;
    Counters counters;
    LastRequest last;
  };

  static void Count(RequestKind kind, Counters* counters);
  void Increment(size_t slot, uint64_t Counters::*counter) {
    Slot& s = *slots_[slot];
    std::lock_guard<std::mutex> lock(s.mu);
    ++(s.counters.*counter);
  }

  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<uint64_t> next_sequence_{0};
};

}  // namespace mock_upstream
