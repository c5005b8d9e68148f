// The in-process Limiter: exact rolling windows and budgets for every lineage this process
// serves, held in memory. Right for a single replica (replicas that share keys need a limiter
// they share, which this build does not have yet).
//
// State lives in a hash map split into kShardCount shards, each behind its own mutex, so calls
// for different lineages rarely contend; one Admit is a single critical section on one shard,
// which makes each admission all-or-nothing under any concurrency.
//
// Windows survive restarts when the owner gives RestoreCall the calls of the last window before
// serving. Budgets survive restarts: the first time a lineage with a credit limit is seen in a
// budget period, the SpendLoader reads what the store recorded from the period's start. The
// read runs outside every lock. Idle lineages (empty windows, no open ticket, quiet for
// idle_eviction_ms) can be dropped by EvictIdle and are re-seeded from the store when next seen;
// the default quiet time is far longer than the usage writer's flush delay, so the store has
// every settled cost by then. Calls without a credit limit never read the store on Admit. When a
// lineage first gains a credit limit, or changes interval so that its period must be read
// again, the store may not yet hold the costs settled within the usage writer's flush delay:
// the owner's loader adds them (UsageWriter::SpendSince, decision 0007).
//
// Thread safety: every public method is safe to call from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "common/digest_hash.h"
#include "common/money.h"
#include "common/status.h"
#include "limits/budget.h"
#include "limits/limiter.h"
#include "limits/rate_window.h"

namespace keygate::limits {

// Reads the spend a lineage has recorded from `period_start` (inclusive) onwards.
// Returns the spend in micro-dollars, or an error if the store cannot answer.
using SpendLoader =
    std::function<Result<MicroUsd>(const std::string& lineage, UnixMillis period_start)>;

struct LocalLimiterOptions {
  int64_t window_ms = kDefaultWindowMs;  // rolling window of RPM and TPM
  // How long a lineage must have had no call before EvictIdle may drop it.
  int64_t idle_eviction_ms = kDefaultWindowMs;
};

class LocalLimiter final : public Limiter {
 public:
  static constexpr size_t kShardCount = 64;

  // `loader` is called concurrently from any thread, with no lock held.
  // REQUIRES: loader non-empty; options.window_ms > 0; options.idle_eviction_ms >= 0.
  explicit LocalLimiter(SpendLoader loader, LocalLimiterOptions options = {});

  LocalLimiter(const LocalLimiter&) = delete;
  LocalLimiter& operator=(const LocalLimiter&) = delete;

  // Limiter
  Decision Admit(const AdmitRequest& request) override;
  void Settle(const Ticket& ticket, int64_t actual_tokens, MicroUsd actual_cost,
              UnixMillis now) override;
  void Release(const Ticket& ticket) override;
  // A lineage this limiter does not hold is answered from the loader alone, without keeping
  // any state for it.
  Result<LimiterSnapshot> Snapshot(const std::string& lineage, UnixMillis now,
                                   keys::ResetInterval interval) override;
  WindowPair Windows(std::string_view lineage, UnixMillis now, std::optional<int64_t> rpm_limit,
                     std::optional<int64_t> tpm_limit) override;
  WindowUse Use(std::string_view lineage, UnixMillis now) override;

  // Puts a call made before this process started back into its lineage's RPM and TPM windows
  // (one request and `tokens` at `at`), so that the windows a restart would otherwise empty
  // still hold it until it leaves them. The budget is untouched (it is seeded from the store).
  // A lineage's calls are best given in ascending `at`: one earlier than the lineage's newest
  // entry counts from that entry's time (longer, never shorter).
  // REQUIRES: called before the first Admit; tokens >= 0.
  void RestoreCall(std::string_view lineage, UnixMillis at, int64_t tokens);

  // Drops the state of every lineage whose windows are empty at `now`, that has no open ticket,
  // and whose last call is at least idle_eviction_ms before `now`. Returns how many were
  // dropped. Meant to be called periodically (for example once a minute).
  size_t EvictIdle(UnixMillis now);

  // Lineages currently held.
  size_t LineageCount() const;

  // The rolling window of RPM and TPM, in milliseconds.
  int64_t window_ms() const { return options_.window_ms; }

 private:
  struct LineageState;
  // The reservations of one admitted call.
  struct OpenTicket {
    WindowEntryId request_entry = kNoWindowEntry;
    WindowEntryId token_entry = kNoWindowEntry;
    int64_t reserved_tokens = 0;  // what token_entry's admission counts
    BudgetReservation budget;
    LineageState* state = nullptr;  // never evicted while it has open tickets
  };

  struct LineageState {
    explicit LineageState(int64_t window_ms) : requests(window_ms), tokens(window_ms) {}
    RateWindow requests;
    RateWindow tokens;
    Budget budget;
    int64_t open_tickets = 0;
    UnixMillis last_activity_ms = 0;  // newest admit or settle
  };

  struct alignas(64) Shard {
    mutable std::mutex mu;
    // Looked up by string_view (transparent hash): an admission allocates no key.
    // (A map's elements stay where they are: OpenTicket::state may point at them.)
    std::unordered_map<std::string, LineageState, DigestHash, std::equal_to<>>
        lineages;  // guarded by mu
    // By ticket id, whose low bits name the shard: settling needs no lineage.
    std::unordered_map<uint64_t, OpenTicket> open;  // guarded by mu
    uint64_t next_ticket = 1;                        // guarded by mu
  };
  static constexpr int kShardBits = 6;
  static_assert(kShardCount == size_t{1} << kShardBits);

  Shard& ShardFor(std::string_view lineage);
  // The lineage's state, created if absent. REQUIRES: shard.mu held.
  LineageState& StateFor(Shard& shard, std::string_view lineage, UnixMillis now);
  // Makes sure the lineage's budget is seeded for the period of `interval` containing `now`,
  // reading the store with `lock` released if needed; `lock` is held again on return.
  // Returns OK, or Unavailable if the store could not answer.
  // REQUIRES: `lock` holds shard.mu.
  Status EnsureSeeded(Shard& shard, std::unique_lock<std::mutex>& lock, std::string_view lineage,
                      keys::ResetInterval interval, UnixMillis now);
  // RPM, then TPM, then budget, in one critical section. REQUIRES: shard.mu held, budget seeded
  // when request.credit_limit is set.
  Decision AdmitLocked(Shard& shard, LineageState& state, const AdmitRequest& request);
  // The shard holding `ticket`, or nullptr for an invalid ticket.
  Shard* ShardOf(const Ticket& ticket);
  // Closes the ticket: moves its reservations to `*taken` and returns its lineage's state, or
  // returns nullptr if the ticket is not open. REQUIRES: shard.mu held.
  LineageState* TakeTicket(Shard& shard, const Ticket& ticket, OpenTicket* taken);

  const SpendLoader loader_;
  const LocalLimiterOptions options_;
  std::array<Shard, kShardCount> shards_;
};

}  // namespace keygate::limits
