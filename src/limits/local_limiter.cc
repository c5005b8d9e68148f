#include "limits/local_limiter.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "limits/period.h"

namespace keygate::limits {
namespace {

constexpr int64_t kUnlimited = std::numeric_limits<int64_t>::max();
// A seed is dropped only if the period turns, or the lineage is evicted and re-created, while
// the store is read; a few tries always suffice in practice.
constexpr int kMaxSeedAttempts = 3;

std::optional<WindowFigures> FiguresOf(RateWindow& window, std::optional<int64_t> limit,
                                       UnixMillis now) {
  if (!limit.has_value()) return std::nullopt;
  return WindowFigures{*limit, window.Remaining(now, *limit), window.ResetMs(now)};
}

BudgetState StateOf(const BudgetFigures& figures) {
  return {figures.limit, figures.spend, figures.reserved, figures.resets_at};
}

Error StoreUnavailable(const Error& cause) {
  return Error::Unavailable("spend store unavailable: " + cause.message);
}

}  // namespace

LocalLimiter::LocalLimiter(SpendLoader loader, LocalLimiterOptions options)
    : loader_(std::move(loader)), options_(options) {}

LocalLimiter::Shard& LocalLimiter::ShardFor(std::string_view lineage) {
  return shards_[DigestHash{}(lineage) % kShardCount];
}

LocalLimiter::Shard* LocalLimiter::ShardOf(const Ticket& ticket) {
  if (!ticket.valid()) return nullptr;
  return &shards_[ticket.id & (kShardCount - 1)];
}

LocalLimiter::LineageState& LocalLimiter::StateFor(Shard& shard, std::string_view lineage,
                                                   UnixMillis now) {
  auto it = shard.lineages.find(lineage);
  if (it == shard.lineages.end()) {
    it = shard.lineages.try_emplace(std::string(lineage), options_.window_ms).first;
    it->second.last_activity_ms = now;
  }
  return it->second;
}

void LocalLimiter::RestoreCall(std::string_view lineage, UnixMillis at, int64_t tokens) {
  Shard& shard = ShardFor(lineage);
  std::lock_guard<std::mutex> lock(shard.mu);
  LineageState& state = StateFor(shard, lineage, at);
  (void)state.requests.TryAdd(at, 1, kUnlimited);
  (void)state.tokens.TryAdd(at, std::max<int64_t>(tokens, 0), kUnlimited);
  state.last_activity_ms = std::max(state.last_activity_ms, at);
}

Status LocalLimiter::EnsureSeeded(Shard& shard, std::unique_lock<std::mutex>& lock,
                                  std::string_view lineage, keys::ResetInterval interval,
                                  UnixMillis now) {
  for (int attempt = 0; attempt < kMaxSeedAttempts; ++attempt) {
    Budget& budget = StateFor(shard, lineage, now).budget;
    if (budget.Roll(interval, now)) return OkStatus();
    const SeedRequest seed = budget.BeginSeed();
    // Never hold a shard across a store read: it would stall every lineage of the shard.
    lock.unlock();
    Result<MicroUsd> stored = loader_(std::string(lineage), seed.period_start);
    lock.lock();
    if (!stored.ok()) return StoreUnavailable(stored.error());
    StateFor(shard, lineage, now).budget.SeedSpend(seed, *stored);
  }
  if (StateFor(shard, lineage, now).budget.Roll(interval, now)) return OkStatus();
  return Error::Unavailable("spend of the budget period could not be loaded consistently");
}

Decision LocalLimiter::Admit(const AdmitRequest& request) {
  Shard& shard = ShardFor(request.lineage);
  std::unique_lock<std::mutex> lock(shard.mu);
  LineageState* state = &StateFor(shard, request.lineage, request.now);
  // The budget is known for the period (the common case) unless Roll() says otherwise; then
  // EnsureSeeded() may unlock to read the store, and the state is looked up again.
  if (request.credit_limit.has_value() &&
      !state->budget.Roll(request.reset_interval, request.now)) {
    if (!EnsureSeeded(shard, lock, request.lineage, request.reset_interval, request.now).ok()) {
      Decision decision;
      decision.outcome = LimitOutcome::kStoreUnavailable;
      return decision;
    }
    state = &StateFor(shard, request.lineage, request.now);
  }
  return AdmitLocked(shard, *state, request);
}

Decision LocalLimiter::AdmitLocked(Shard& shard, LineageState& state, const AdmitRequest& request) {
  const UnixMillis now = request.now;
  const int64_t tokens = std::max<int64_t>(request.worst_case_tokens, 0);
  const int64_t tpm = request.tpm_limit.value_or(kUnlimited);
  state.last_activity_ms = std::max(state.last_activity_ms, now);
  Decision decision;
  // Fills the header figures as they stand once this decision has taken effect.
  auto finish = [&](LimitOutcome outcome) {
    decision.outcome = outcome;
    decision.requests = FiguresOf(state.requests, request.rpm_limit, now);
    decision.tokens = FiguresOf(state.tokens, request.tpm_limit, now);
    return std::move(decision);
  };
  // A request larger than the whole TPM limit never fits: say so rather than name a wait.
  if (tokens > tpm) return finish(LimitOutcome::kRejectTpmNeverFits);
  // spec §3: RPM, then TPM, then budget; a later refusal undoes the earlier reservations.
  const WindowDecision slot = state.requests.TryAdd(now, 1, request.rpm_limit.value_or(kUnlimited));
  if (!slot.admitted()) {
    // Honest for the whole request: at the later of the two waits both windows hold it.
    // A limit below one request (outside the contract) names a whole window, not "never".
    const int64_t rpm_wait =
        slot.outcome == WindowOutcome::kFull ? slot.retry_after_ms : options_.window_ms;
    decision.retry_after_ms =
        std::max(rpm_wait, state.tokens.FitsAfterMs(now, tokens, tpm).value_or(0));
    return finish(LimitOutcome::kRejectRpm);
  }
  const WindowDecision reserved_tokens = state.tokens.TryAdd(now, tokens, tpm);
  if (!reserved_tokens.admitted()) {
    state.requests.Remove(slot.entry, 1);
    decision.retry_after_ms = reserved_tokens.retry_after_ms;
    return finish(LimitOutcome::kRejectTpm);
  }
  BudgetReservation reservation;
  if (request.credit_limit.has_value()) {
    const BudgetDecision budget =
        state.budget.TryReserve(now, std::max<MicroUsd>(request.worst_case_cost, 0),
                                *request.credit_limit, request.reset_interval);
    decision.budget = StateOf(budget.figures);
    if (!budget.reserved()) {
      state.tokens.Remove(reserved_tokens.entry, tokens);
      state.requests.Remove(slot.entry, 1);
      return finish(budget.outcome == BudgetOutcome::kExceeded ? LimitOutcome::kRejectBudget
                                                               : LimitOutcome::kStoreUnavailable);
    }
    reservation = budget.reservation;
  }
  const auto shard_index = static_cast<uint64_t>(&shard - shards_.data());
  const uint64_t id = shard.next_ticket++ << kShardBits | shard_index;
  shard.open.emplace(id,
                     OpenTicket{slot.entry, reserved_tokens.entry, tokens, reservation, &state});
  ++state.open_tickets;
  decision.ticket = Ticket{id};
  return finish(LimitOutcome::kAllow);
}

LocalLimiter::LineageState* LocalLimiter::TakeTicket(Shard& shard, const Ticket& ticket,
                                                     OpenTicket* taken) {
  auto open = shard.open.find(ticket.id);
  // Already settled or released: closing twice must not return anything twice.
  if (open == shard.open.end()) return nullptr;
  *taken = open->second;
  shard.open.erase(open);
  --taken->state->open_tickets;
  return taken->state;
}

void LocalLimiter::Settle(const Ticket& ticket, int64_t actual_tokens, MicroUsd actual_cost,
                          UnixMillis now) {
  Shard* shard = ShardOf(ticket);
  if (shard == nullptr) return;
  std::lock_guard<std::mutex> lock(shard->mu);
  OpenTicket taken;
  LineageState* state = TakeTicket(*shard, ticket, &taken);
  if (state == nullptr) return;
  state->tokens.Adjust(taken.token_entry, taken.reserved_tokens,
                       std::max<int64_t>(actual_tokens, 0));
  state->budget.Settle(taken.budget, std::max<MicroUsd>(actual_cost, 0), now);
  state->last_activity_ms = std::max(state->last_activity_ms, now);
}

void LocalLimiter::Release(const Ticket& ticket) {
  Shard* shard = ShardOf(ticket);
  if (shard == nullptr) return;
  std::lock_guard<std::mutex> lock(shard->mu);
  OpenTicket taken;
  LineageState* state = TakeTicket(*shard, ticket, &taken);
  if (state == nullptr) return;
  // The request slot stays taken: the call was admitted (see Limiter::Release).
  state->tokens.Remove(taken.token_entry, taken.reserved_tokens);
  state->budget.Release(taken.budget);
}

WindowPair LocalLimiter::Windows(std::string_view lineage, UnixMillis now,
                                 std::optional<int64_t> rpm_limit,
                                 std::optional<int64_t> tpm_limit) {
  Shard& shard = ShardFor(lineage);
  std::lock_guard<std::mutex> lock(shard.mu);
  const auto it = shard.lineages.find(lineage);
  if (it == shard.lineages.end()) {
    auto whole = [now](std::optional<int64_t> limit) -> std::optional<WindowFigures> {
      if (!limit.has_value()) return std::nullopt;
      return WindowFigures{*limit, *limit, now};
    };
    return WindowPair{whole(rpm_limit), whole(tpm_limit)};
  }
  LineageState& state = it->second;
  return WindowPair{FiguresOf(state.requests, rpm_limit, now),
                    FiguresOf(state.tokens, tpm_limit, now)};
}

WindowUse LocalLimiter::Use(std::string_view lineage, UnixMillis now) {
  Shard& shard = ShardFor(lineage);
  std::lock_guard<std::mutex> lock(shard.mu);
  const auto it = shard.lineages.find(lineage);
  if (it == shard.lineages.end()) return {};
  return WindowUse{it->second.requests.Used(now), it->second.tokens.Used(now)};
}

Result<LimiterSnapshot> LocalLimiter::Snapshot(const std::string& lineage, UnixMillis now,
                                               keys::ResetInterval interval) {
  Shard& shard = ShardFor(lineage);
  std::unique_lock<std::mutex> lock(shard.mu);
  if (shard.lineages.count(lineage) == 0) {
    lock.unlock();
    LimiterSnapshot snapshot;
    snapshot.period_start = PeriodStart(interval, now);
    snapshot.resets_at_ms = NextReset(interval, now);
    Result<MicroUsd> stored = loader_(lineage, snapshot.period_start);
    if (!stored.ok()) return StoreUnavailable(stored.error());
    snapshot.spend = *stored;
    return snapshot;
  }
  KG_RETURN_IF_ERROR(EnsureSeeded(shard, lock, lineage, interval, now));
  LineageState& state = StateFor(shard, lineage, now);
  LimiterSnapshot snapshot;
  snapshot.requests_in_window = state.requests.Used(now);
  snapshot.tokens_in_window = state.tokens.Used(now);
  snapshot.spend = state.budget.spend();
  snapshot.reserved = state.budget.reserved();
  snapshot.period_start = state.budget.period_start();
  snapshot.resets_at_ms = state.budget.resets_at();
  return snapshot;
}

size_t LocalLimiter::EvictIdle(UnixMillis now) {
  size_t evicted = 0;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    for (auto it = shard.lineages.begin(); it != shard.lineages.end();) {
      LineageState& state = it->second;
      const bool idle = state.open_tickets == 0 &&
                        now - state.last_activity_ms >= options_.idle_eviction_ms &&
                        state.requests.Empty(now) && state.tokens.Empty(now);
      if (idle) {
        it = shard.lineages.erase(it);
        ++evicted;
      } else {
        ++it;
      }
    }
  }
  return evicted;
}

size_t LocalLimiter::LineageCount() const {
  size_t count = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    count += shard.lineages.size();
  }
  return count;
}

}  // namespace keygate::limits
