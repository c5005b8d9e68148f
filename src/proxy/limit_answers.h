// How the limiter's answers read on the wire (spec §3): the x-ratelimit-* headers every answer
// of a limited key carries, and the 429 and 402 refusals in OpenAI's error shape with an
// honest Retry-After.
//
// Header values follow OpenAI's: x-ratelimit-limit-requests and -tokens (the limits),
// x-ratelimit-remaining-requests and -tokens (room left in the rolling window after this
// call), x-ratelimit-reset-requests and -tokens (how long until the oldest entry leaves the
// window, as a duration like "1s", "6m0s" or "250ms").
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "http/handler.h"
#include "limits/limiter.h"
#include "proxy/pricing.h"

namespace keygate::proxy {

// Formats a duration the way OpenAI's headers do: "250ms" under a second, else "[Hh][Mm]S[.fff]s"
// ("1s", "6m0s", "1m2.5s"). Negative durations format as "0s".
std::string FormatResetDuration(int64_t ms);

// Appends the x-ratelimit-* headers (requests where there are request figures, tokens where
// there are token figures) as of `now` to `headers`.
void AppendRateLimitHeaders(const std::optional<limits::WindowFigures>& requests,
                            const std::optional<limits::WindowFigures>& tokens, UnixMillis now,
                            http::HeaderList* headers);

// The same headers as http::Response::header_lines text ("name: value\r\n" each), appended to
// `lines`: the form an answer that carries them on every call uses (no list to build).
void AppendRateLimitLines(const std::optional<limits::WindowFigures>& requests,
                          const std::optional<limits::WindowFigures>& tokens, UnixMillis now,
                          std::string* lines);

// The 429 for kRejectRpm, kRejectTpm or kRejectTpmNeverFits: rate_limit_exceeded, with
// Retry-After (whole seconds, rounded up) and retry-after-ms unless the request can never fit,
// and the rate-limit headers. A request that can never fit is told what to change: its
// `cap_member` (the output cap it set or may set, "max_tokens" or "max_completion_tokens") or,
// when that is empty (an embedding, which has no output), its input, named as the param.
// REQUIRES: decision.outcome is one of those three.
http::Response RateLimitedResponse(const limits::Decision& decision, const WorstCase& worst,
                                   std::string_view cap_member, UnixMillis now);

// The 402 for kRejectBudget: budget_exceeded, whose message and error object give the limit,
// the spend, the open reservations and when the period resets (fields limit, spend, reserved
// in USD and resets_at, an ISO 8601 time or null), and the rate-limit headers. A chat that set
// no output cap (`uncapped_member`, the member it may set, non-empty) is told that its output
// was reserved at the model's maximum, and that setting that member reserves less.
// REQUIRES: decision.outcome == kRejectBudget and decision.budget is set.
http::Response BudgetExceededResponse(const limits::Decision& decision, const WorstCase& worst,
                                      keys::ResetInterval interval, UnixMillis now,
                                      std::string_view uncapped_member = {});

}  // namespace keygate::proxy
