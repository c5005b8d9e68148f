// The data plane's guardrail gate (spec §3, steps 3 to 5): one Admit per model call before it is
// forwarded, then exactly one Settle (with the upstream's real usage) or Release (failed,
// cancelled or timed out) per admitted call.
//
// Answers are values, not errors (style: Envoy's LimitStatus): a refusal is an ordinary
// Decision carrying everything the HTTP layer needs for its 429 or 402 and for the
// x-ratelimit-* headers. What kStoreUnavailable turns into (fail closed by default) is the
// caller's setting, like Envoy's failure_mode_deny.
//
// Limits are counted per lineage (keys::ServiceKey::lineage), so a rotated key shares its
// predecessor's windows and budget. Guardrails travel with each request, so a changed limit
// takes effect on the next call.
//
// The promise (spec §3): under any concurrency, no rolling window of 60 s holds more admitted
// requests than the RPM limit or more tokens than the TPM limit, and spend + open reservations
// of a lineage in a budget period never pass its credit limit, provided each worst case given to
// Admit is at least the real figure later given to Settle.
//
// Implementations: LocalLimiter (in process, limits/local_limiter.h). One shared between
// replicas (spec §5: Redis) is not built yet.
//
// Thread safety: implementations are safe to call from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/money.h"
#include "common/status.h"
#include "keys/model.h"

namespace keygate::limits {

// One model call asking to go upstream.
struct AdmitRequest {
  // Whose limits; never empty. A view: the caller keeps the text alive during Admit() (the
  // admission path copies no lineage unless it is new).
  std::string_view lineage;
  UnixMillis now = 0;                    // from the caller's Clock (system time)
  std::optional<int64_t> rpm_limit;      // nullopt: unlimited
  std::optional<int64_t> tpm_limit;      // nullopt: unlimited
  std::optional<MicroUsd> credit_limit;  // nullopt: unlimited
  keys::ResetInterval reset_interval = keys::ResetInterval::kNever;
  // Upper bounds that must never be below the real figures (spec §3 steps 3 and 4): prompt
  // estimate plus max_tokens (or the model's maximum output), and their cost.
  int64_t worst_case_tokens = 0;
  MicroUsd worst_case_cost = 0;
};

enum class LimitOutcome {
  kAllow,               // admitted: forward, then Settle or Release the ticket
  kRejectRpm,           // 429: the requests window is full; retry after retry_after_ms
  kRejectTpm,           // 429: the tokens window cannot hold the reservation yet
  kRejectTpmNeverFits,  // 429: the reservation is larger than the whole TPM limit
  kRejectBudget,        // 402 budget_exceeded: spend + reserved + cost would pass the limit
  kStoreUnavailable,    // the stored spend could not be read: the caller's failure mode decides
};

// A window's figures for the x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers.
struct WindowFigures {
  int64_t limit = 0;
  int64_t remaining = 0;
  UnixMillis reset_at_ms = 0;  // when the oldest entry leaves the window (now if none)
};

// The budget's figures for a 402 and for usage reads.
struct BudgetState {
  MicroUsd limit = 0;
  MicroUsd spend = 0;                      // settled in the current period
  MicroUsd reserved = 0;                   // open reservations
  std::optional<UnixMillis> resets_at_ms;  // nullopt: never resets
};

// Identifies the reservations of one admitted call. Opaque to callers: copy it, keep it until
// the call ends, hand it to Settle or Release once.
struct Ticket {
  uint64_t id = 0;  // 0: no ticket (the call was not admitted); the limiter knows the rest

  bool valid() const { return id != 0; }
};

struct Decision {
  LimitOutcome outcome = LimitOutcome::kAllow;
  // For kRejectRpm and kRejectTpm: both windows can hold the request at now + retry_after_ms
  // if nothing else changes, and not a millisecond earlier. 0 otherwise.
  int64_t retry_after_ms = 0;
  // Present only where the lineage has that limit; as of after this decision.
  std::optional<WindowFigures> requests;
  std::optional<WindowFigures> tokens;
  std::optional<BudgetState> budget;
  Ticket ticket;  // valid only for kAllow

  bool allowed() const { return outcome == LimitOutcome::kAllow; }
};

// Both windows' figures, where the lineage has those limits.
struct WindowPair {
  std::optional<WindowFigures> requests;
  std::optional<WindowFigures> tokens;
};

// The requests and tokens a lineage's windows hold at an instant.
struct WindowUse {
  int64_t requests = 0;
  int64_t tokens = 0;
};

// What a lineage has consumed, for the management answers (v2's
// requests_per_minute_consumption, token_consumption and consumption).
struct LimiterSnapshot {
  int64_t requests_in_window = 0;
  int64_t tokens_in_window = 0;
  MicroUsd spend = 0;     // settled in the current period
  MicroUsd reserved = 0;  // open reservations
  UnixMillis period_start = 0;
  std::optional<UnixMillis> resets_at_ms;
};

class Limiter {
 public:
  virtual ~Limiter() = default;

  // spec §3: RPM, then TPM, then budget. Reserves one request slot, worst_case_tokens and
  // worst_case_cost, all or nothing: a refusal at a later stage undoes the earlier ones.
  // Returns kAllow with a valid ticket, or the first refusal (see LimitOutcome) with its
  // figures; kStoreUnavailable if the spend of the period had to be read and could not be.
  // REQUIRES: request.lineage non-empty; worst cases >= 0; limits > 0 where set (a credit
  // limit may be 0).
  virtual Decision Admit(const AdmitRequest& request) = 0;

  // Replaces the ticket's reservations by the real `actual_tokens` and `actual_cost` (spec §3
  // step 5), both charged at `now`: the cost to the budget period containing `now`, the tokens
  // to the window in place of the reservation (while it is still in the window).
  // A ticket settled or released before, or not valid, is ignored.
  // REQUIRES: actual_tokens >= 0, actual_cost >= 0.
  virtual void Settle(const Ticket& ticket, int64_t actual_tokens, MicroUsd actual_cost,
                      UnixMillis now) = 0;

  // Drops the ticket's token and cost reservations without charge. The request itself stays
  // counted in the requests window: it was admitted. A ticket settled or released before, or
  // not valid, is ignored.
  virtual void Release(const Ticket& ticket) = 0;

  // The x-ratelimit-* figures of the lineage's windows at `now` under these limits (nullopt
  // where a limit is unset), for answers that are not model calls: nothing is admitted, no
  // state is made and the store is not read. A lineage not held has its whole limits left.
  virtual WindowPair Windows(std::string_view lineage, UnixMillis now,
                             std::optional<int64_t> rpm_limit,
                             std::optional<int64_t> tpm_limit) = 0;

  // What the lineage's windows hold at `now`, for the management answers (v2's
  // requests_per_minute_consumption, token_consumption): nothing is made, the store is not
  // read, and a lineage not held has used nothing.
  virtual WindowUse Use(std::string_view lineage, UnixMillis now) = 0;

  // Returns the lineage's consumption at `now` for budget period `interval`.
  // Returns Unavailable if the spend of the period had to be read and could not be.
  virtual Result<LimiterSnapshot> Snapshot(const std::string& lineage, UnixMillis now,
                                           keys::ResetInterval interval) = 0;
};

}  // namespace keygate::limits
