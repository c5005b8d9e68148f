// The credit-limit guardrail of one lineage (spec §3 steps 4 and 5): the spend settled in the
// current budget period plus the reservations still open, so that spend + reserved never passes
// the limit however many requests run at once.
//
// Period rollover: when a call's `now` reaches the next reset, spend starts again at 0 while
// open reservations stay open. A reservation made before a reset and settled after it is
// charged to the period in which it settles (the usage record carries the settle time too, so
// the store agrees after a restart). That can only make a new period look busier than it was,
// never let an old one pass its limit.
//
// Seeding: a budget does not know the spend a store recorded before this process saw the
// lineage. Until it is seeded for the current period, TryReserve answers kUnseeded. The owner
// calls BeginSeed, reads the spend of `period_start` onwards from the store (without holding
// its lock), then SeedSpend; costs settled while the store was read are added on top. Once
// seeded, a budget stays seeded across rollovers (the new period's spend is 0, known locally).
// It needs a new seed only when its interval changes so that the new period starts earlier
// than the old one, or starts later but after some of the spend counted locally.
//
// Time never runs backwards inside a budget: a `now` older than one already seen is taken as
// the newest seen.
//
// Thread safety: not thread-safe; callers serialize access (LocalLimiter holds a shard mutex).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

#include "common/clock.h"
#include "common/money.h"
#include "keys/model.h"

namespace keygate::limits {

// One open reservation, held by the caller until it settles or releases it.
struct BudgetReservation {
  MicroUsd amount = 0;
};

enum class BudgetOutcome {
  kReserved,  // the reservation was made
  kExceeded,  // spend + reserved + amount would pass the limit (a 402)
  kUnseeded,  // the spend of the current period is not known yet: seed first
};

// The figures for a 402 `budget_exceeded` answer and for usage reads.
struct BudgetFigures {
  MicroUsd limit = 0;
  MicroUsd spend = 0;     // settled in the current period (0 if not seeded)
  MicroUsd reserved = 0;  // open reservations
  UnixMillis period_start = 0;
  std::optional<UnixMillis> resets_at;  // nullopt: the budget never resets
};

struct BudgetDecision {
  BudgetOutcome outcome = BudgetOutcome::kReserved;
  BudgetReservation reservation;  // set only when kReserved
  BudgetFigures figures;          // as of after the decision

  bool reserved() const { return outcome == BudgetOutcome::kReserved; }
};

// A pending read of stored spend, from BeginSeed to SeedSpend.
struct SeedRequest {
  UnixMillis period_start = 0;  // read the spend recorded from this instant on
  uint64_t epoch = 0;           // which unseeded stretch this read belongs to
  MicroUsd local_mark = 0;      // local settles counted when the read began
};

class Budget {
 public:
  Budget() = default;

  // Moves the budget to the period of `interval` containing `now` (spend 0 after a rollover).
  // Returns true if the spend of that period is known, false if it must be seeded first.
  bool Roll(keys::ResetInterval interval, UnixMillis now);

  // Returns what to read from the store to seed the current period.
  // REQUIRES: Roll() was called and returned false.
  SeedRequest BeginSeed() const;

  // Sets the period's spend to `stored_spend` plus whatever settled since BeginSeed.
  // Returns true on success; false, changing nothing, if the budget is already seeded or has
  // moved to another period since `request` was made (read again after a new Roll).
  // REQUIRES: stored_spend >= 0.
  bool SeedSpend(const SeedRequest& request, MicroUsd stored_spend);

  // Rolls (as Roll), then reserves `amount` if spend + reserved + amount <= limit.
  // Returns kReserved with the reservation on success; kExceeded when it would pass the limit
  // (nothing reserved); kUnseeded when the period's spend is unknown (nothing reserved).
  // REQUIRES: amount >= 0.
  BudgetDecision TryReserve(UnixMillis now, MicroUsd amount, MicroUsd limit,
                            keys::ResetInterval interval);

  // Replaces `reservation` by the real `actual_cost`, charged to the period containing `now`
  // (rolling first, with the interval of the last Roll). `actual_cost` may exceed the
  // reservation; the real charge is what counts.
  // REQUIRES: `reservation` came from this budget and is settled or released at most once;
  // actual_cost >= 0. A default BudgetReservation records spend without a reservation.
  void Settle(const BudgetReservation& reservation, MicroUsd actual_cost, UnixMillis now);

  // Drops `reservation` without any charge (a failed or cancelled request).
  // REQUIRES: as for Settle.
  void Release(const BudgetReservation& reservation);

  bool seeded() const { return seeded_; }
  // Settled spend of the current period; meaningful only when seeded().
  MicroUsd spend() const { return seeded_ ? spend_ : 0; }
  MicroUsd reserved() const { return reserved_; }
  UnixMillis period_start() const { return period_start_; }
  std::optional<UnixMillis> resets_at() const { return resets_at_; }
  // The current figures against `limit`.
  BudgetFigures Figures(MicroUsd limit) const;

 private:
  static constexpr UnixMillis kBeforeAnyTime = std::numeric_limits<UnixMillis>::min();

  // Forgets the period's spend: it must be read from the store again.
  void Unseed(UnixMillis period_start);

  keys::ResetInterval interval_ = keys::ResetInterval::kNever;
  bool started_ = false;  // Roll has run at least once
  bool seeded_ = false;
  uint64_t epoch_ = 0;  // bumped by every Unseed, so a slow read cannot seed a later stretch
  UnixMillis period_start_ = 0;
  std::optional<UnixMillis> resets_at_;
  UnixMillis latest_ms_ = kBeforeAnyTime;       // newest `now` seen
  UnixMillis last_charge_ms_ = kBeforeAnyTime;  // when spend_ last grew or was seeded
  // Seeded: spend of the current period. Unseeded: costs settled since the last Unseed, so that
  // SeedSpend can add those settled while the store was being read.
  MicroUsd spend_ = 0;
  MicroUsd reserved_ = 0;
};

}  // namespace keygate::limits
