#include "limits/budget.h"

#include <algorithm>

#include "common/saturating.h"
#include "limits/period.h"

namespace keygate::limits {

bool Budget::Roll(keys::ResetInterval interval, UnixMillis now) {
  now = std::max(now, latest_ms_);
  latest_ms_ = now;
  // Still inside the period computed last time (the common case, on every call): nothing to
  // recompute. `now` never goes back, so only its reaching the reset can end the period.
  if (started_ && interval == interval_ && period_start_ <= now &&
      (!resets_at_.has_value() || now < *resets_at_)) {
    return seeded_;
  }
  interval_ = interval;
  resets_at_ = NextReset(interval, now);
  const UnixMillis start = PeriodStart(interval, now);
  if (started_ && start == period_start_) return seeded_;
  // A later start with no charge since it: spend of the new period is 0, known locally. This is
  // the plain rollover, and also a narrower interval on a lineage idle since the new start.
  const bool known_zero =
      started_ && seeded_ && start > period_start_ && (spend_ == 0 || last_charge_ms_ < start);
  if (known_zero) {
    period_start_ = start;
    spend_ = 0;
    return true;
  }
  Unseed(start);
  return false;
}

void Budget::Unseed(UnixMillis period_start) {
  started_ = true;
  seeded_ = false;
  ++epoch_;
  period_start_ = period_start;
  spend_ = 0;
}

SeedRequest Budget::BeginSeed() const { return {period_start_, epoch_, spend_}; }

bool Budget::SeedSpend(const SeedRequest& request, MicroUsd stored_spend) {
  if (!started_ || seeded_ || request.epoch != epoch_) return false;
  spend_ = SaturatingAdd(std::max<MicroUsd>(stored_spend, 0), spend_ - request.local_mark);
  seeded_ = true;
  // The stored spend happened at some instant up to now; assume the latest.
  last_charge_ms_ = latest_ms_;
  return true;
}

BudgetDecision Budget::TryReserve(UnixMillis now, MicroUsd amount, MicroUsd limit,
                                  keys::ResetInterval interval) {
  BudgetDecision decision;
  if (!Roll(interval, now)) {
    decision.outcome = BudgetOutcome::kUnseeded;
    decision.figures = Figures(limit);
    return decision;
  }
  amount = std::max<MicroUsd>(amount, 0);
  // A sum past int64 is certainly past any limit.
  MicroUsd total = 0;
  const bool fits = !__builtin_add_overflow(spend_, reserved_, &total) &&
                    !__builtin_add_overflow(total, amount, &total) && total <= limit;
  if (!fits) {
    decision.outcome = BudgetOutcome::kExceeded;
    decision.figures = Figures(limit);
    return decision;
  }
  reserved_ += amount;
  decision.reservation.amount = amount;
  decision.figures = Figures(limit);
  return decision;
}

void Budget::Settle(const BudgetReservation& reservation, MicroUsd actual_cost, UnixMillis now) {
  Roll(interval_, now);
  Release(reservation);
  if (actual_cost <= 0) return;
  spend_ = SaturatingAdd(spend_, actual_cost);
  last_charge_ms_ = latest_ms_;
}

void Budget::Release(const BudgetReservation& reservation) {
  // Never below 0: a negative total would let later requests past the limit.
  reserved_ = std::max<MicroUsd>(reserved_ - std::max<MicroUsd>(reservation.amount, 0), 0);
}

BudgetFigures Budget::Figures(MicroUsd limit) const {
  return {limit, spend(), reserved_, period_start_, resets_at_};
}

}  // namespace keygate::limits
