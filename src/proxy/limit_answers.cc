#include "proxy/limit_answers.h"

#include <algorithm>
#include <utility>

#include "common/ascii.h"
#include "common/json_writer.h"
#include "common/money.h"
#include "common/text_writer.h"
#include "common/time_format.h"
#include "http/error_response.h"

namespace keygate::proxy {
namespace {

constexpr int64_t kMsPerSecond = 1000;
constexpr int64_t kMsPerMinute = 60 * kMsPerSecond;
constexpr int64_t kMsPerHour = 60 * kMsPerMinute;

// "12", "12.5", "12.05" (trailing zeros of the milliseconds dropped), appended to a
// std::string or a TextWriter.
template <typename Out>
void AppendSeconds(int64_t ms, Out* out) {
  AppendDecimal(ms / kMsPerSecond, out);
  int64_t fraction = ms % kMsPerSecond;
  if (fraction == 0) return;
  char digits[4] = {'0', '0', '0', '\0'};
  for (int i = 2; i >= 0; --i, fraction /= 10) digits[i] = static_cast<char>('0' + fraction % 10);
  int length = 3;
  while (digits[length - 1] == '0') --length;
  out->push_back('.');
  out->append(digits, static_cast<size_t>(length));
}

// FormatResetDuration's text, appended to *out (a std::string or a TextWriter).
template <typename Out>
void AppendResetDuration(int64_t ms, Out* out) {
  if (ms <= 0) {
    out->append("0s");
    return;
  }
  if (ms < kMsPerSecond) {
    AppendDecimal(ms, out);
    out->append("ms");
    return;
  }
  if (ms >= kMsPerHour) {
    AppendDecimal(ms / kMsPerHour, out);
    out->push_back('h');
  }
  if (ms >= kMsPerMinute) {
    AppendDecimal(ms % kMsPerHour / kMsPerMinute, out);
    out->push_back('m');
  }
  AppendSeconds(ms % kMsPerMinute, out);
  out->push_back('s');
}

std::string Seconds(int64_t ms) {
  std::string out;
  AppendSeconds(ms, &out);
  return out;
}

std::string Usd(MicroUsd micros) { return "$" + FormatUsd(micros); }

// The three header names of one window.
struct WindowHeaderNames {
  std::string_view limit;
  std::string_view remaining;
  std::string_view reset;
};
constexpr WindowHeaderNames kRequestHeaders = {"x-ratelimit-limit-requests",
                                               "x-ratelimit-remaining-requests",
                                               "x-ratelimit-reset-requests"};
constexpr WindowHeaderNames kTokenHeaders = {"x-ratelimit-limit-tokens",
                                             "x-ratelimit-remaining-tokens",
                                             "x-ratelimit-reset-tokens"};

// Calls emit(name, append_value) for each x-ratelimit-* header of the figures present, where
// append_value(out) appends the header's value to a std::string or TextWriter: every answer
// carries these headers, so their values are written in place rather than built as strings
// first.
template <typename Emit>
void ForEachRateLimitHeader(const std::optional<limits::WindowFigures>& requests,
                            const std::optional<limits::WindowFigures>& tokens, UnixMillis now,
                            Emit&& emit) {
  auto window = [&](const WindowHeaderNames& names, const limits::WindowFigures& figures) {
    emit(names.limit, [&](auto* out) { AppendDecimal(figures.limit, out); });
    emit(names.remaining,
         [&](auto* out) { AppendDecimal(std::max<int64_t>(figures.remaining, 0), out); });
    emit(names.reset, [&](auto* out) { AppendResetDuration(figures.reset_at_ms - now, out); });
  };
  if (requests) window(kRequestHeaders, *requests);
  if (tokens) window(kTokenHeaders, *tokens);
}

std::string RateLimitMessage(const limits::Decision& decision, const WorstCase& worst,
                             std::string_view cap_member) {
  const std::string tokens = std::to_string(worst.tokens()) + " tokens (a prompt of at most " +
                             std::to_string(worst.prompt_tokens) + " plus up to " +
                             std::to_string(worst.completion_tokens) + " completion tokens)";
  const int64_t tpm = decision.tokens ? decision.tokens->limit : 0;
  switch (decision.outcome) {
    case limits::LimitOutcome::kRejectRpm:
      return "Rate limit reached for requests: this key allows " +
             std::to_string(decision.requests ? decision.requests->limit : 0) +
             " requests per minute. Try again in " + Seconds(decision.retry_after_ms) + "s.";
    case limits::LimitOutcome::kRejectTpmNeverFits:
      return "This request can never fit this key's token rate limit: it may use up to " +
             tokens + ", more than the whole limit of " + std::to_string(tpm) +
             " tokens per minute. " +
             (cap_member.empty() ? std::string("Shorten the input.")
                                 : "Lower " + std::string(cap_member) + " or shorten the input.");
    default:
      return "Rate limit reached for tokens: this key allows " + std::to_string(tpm) +
             " tokens per minute, " +
             std::to_string(decision.tokens ? decision.tokens->remaining : 0) +
             " remain, and this request may use up to " + tokens + ". Try again in " +
             Seconds(decision.retry_after_ms) + "s.";
  }
}

}  // namespace

std::string FormatResetDuration(int64_t ms) {
  std::string out;
  AppendResetDuration(ms, &out);
  return out;
}

void AppendRateLimitHeaders(const std::optional<limits::WindowFigures>& requests,
                            const std::optional<limits::WindowFigures>& tokens, UnixMillis now,
                            http::HeaderList* headers) {
  headers->reserve(headers->size() + 6);
  ForEachRateLimitHeader(requests, tokens, now, [&](std::string_view name, auto append_value) {
    std::string value;
    append_value(&value);
    headers->emplace_back(std::string(name), std::move(value));
  });
}

void AppendRateLimitLines(const std::optional<limits::WindowFigures>& requests,
                          const std::optional<limits::WindowFigures>& tokens, UnixMillis now,
                          std::string* lines) {
  if (!requests && !tokens) return;
  constexpr size_t kSixLines = 256;
  TextWriter out(lines, kSixLines);
  ForEachRateLimitHeader(requests, tokens, now, [&](std::string_view name, auto append_value) {
    out.append(name).append(": ");
    append_value(&out);
    out.append("\r\n");
  });
}

http::Response RateLimitedResponse(const limits::Decision& decision, const WorstCase& worst,
                                   std::string_view cap_member, UnixMillis now) {
  Error error{ErrorCode::kRateLimited, RateLimitMessage(decision, worst, cap_member), "",
              "rate_limit_exceeded"};
  if (decision.outcome == limits::LimitOutcome::kRejectTpmNeverFits) {
    error.param = cap_member.empty() ? "input" : std::string(cap_member);
  }
  http::Response response = http::ErrorResponse(error);
  if (decision.outcome != limits::LimitOutcome::kRejectTpmNeverFits) {
    // spec §3: honest, when enough of the window will have expired. Rounded up, so that a
    // client waiting exactly this long finds room.
    const int64_t wait_ms = std::max<int64_t>(decision.retry_after_ms, 1);
    response.headers.emplace_back("Retry-After",
                                  std::to_string((wait_ms + kMsPerSecond - 1) / kMsPerSecond));
    response.headers.emplace_back("retry-after-ms", std::to_string(wait_ms));
  } else {
    // No wait helps: the OpenAI SDKs (and others generated by Stainless) read this header
    // before their own rule, which retries every 429 (audit M: three calls a refusal).
    response.headers.emplace_back("x-should-retry", "false");
  }
  AppendRateLimitHeaders(decision.requests, decision.tokens, now, &response.headers);
  return response;
}

http::Response BudgetExceededResponse(const limits::Decision& decision, const WorstCase& worst,
                                      keys::ResetInterval interval, UnixMillis now,
                                      std::string_view uncapped_member) {
  const limits::BudgetState& budget = *decision.budget;
  const std::string resets =
      budget.resets_at_ms ? FormatTimestamp(*budget.resets_at_ms) : std::string();
  const std::string period = interval == keys::ResetInterval::kNever
                                 ? std::string("in total")
                                 : std::string("in the current ") + keys::ToString(interval) +
                                       " period";
  std::string message = "Budget exceeded: this key has spent " + Usd(budget.spend) + " of its " +
                        Usd(budget.limit) + " limit " + period + " (" + Usd(budget.reserved) +
                        " more is reserved by calls in flight), and this request may cost up to " +
                        Usd(worst.cost) + ". ";
  message += resets.empty() ? "The budget never resets." : "The budget resets at " + resets + ".";
  if (!uncapped_member.empty()) {
    // Audit R: a 402 for "hi" read as a mystery; the reservation was the model's whole output.
    message += " With no " + std::string(uncapped_member) +
               " set, the request's output is reserved at the model's maximum output, " +
               std::to_string(worst.completion_tokens) + " tokens in all; a lower " +
               std::string(uncapped_member) + " reserves less.";
  }
  JsonWriter w;
  w.BeginObject().Key("error").BeginObject();
  w.Key("message").String(message).Key("type").String(ErrorTypeFor(ErrorCode::kPaymentRequired));
  w.Key("code").String("budget_exceeded").Key("param").Null();
  w.Key("limit").Usd(budget.limit).Key("spend").Usd(budget.spend);
  w.Key("reserved").Usd(budget.reserved).Key("request_max_cost").Usd(worst.cost);
  w.Key("resets_at").StringOrNull(resets);
  w.EndObject().EndObject();
  http::Response response =
      http::JsonResponse(HttpStatusFor(ErrorCode::kPaymentRequired), w.Take());
  AppendRateLimitHeaders(decision.requests, decision.tokens, now, &response.headers);
  return response;
}

}  // namespace keygate::proxy
