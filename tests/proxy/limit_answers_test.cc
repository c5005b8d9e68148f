#include "proxy/limit_answers.h"

#include <gtest/gtest.h>

#include <string>

namespace keygate::proxy {
namespace {

TEST(LimitAnswersTest, ResetDurationsReadLikeOpenAis) {
  EXPECT_EQ(FormatResetDuration(-5), "0s");
  EXPECT_EQ(FormatResetDuration(0), "0s");
  EXPECT_EQ(FormatResetDuration(250), "250ms");
  EXPECT_EQ(FormatResetDuration(1000), "1s");
  EXPECT_EQ(FormatResetDuration(1500), "1.5s");
  EXPECT_EQ(FormatResetDuration(59'999), "59.999s");
  EXPECT_EQ(FormatResetDuration(60'000), "1m0s");
  EXPECT_EQ(FormatResetDuration(62'500), "1m2.5s");
  EXPECT_EQ(FormatResetDuration(3'600'000), "1h0m0s");
}

TEST(LimitAnswersTest, RateLimitLinesSayWhatTheHeaderListSays) {
  const limits::WindowFigures requests{100, 97, 61'000};
  const limits::WindowFigures tokens{50'000, -3, 1'250};
  http::HeaderList list;
  AppendRateLimitHeaders(requests, tokens, 1'000, &list);
  std::string lines;
  AppendRateLimitLines(requests, tokens, 1'000, &lines);
  EXPECT_EQ(lines,
            "x-ratelimit-limit-requests: 100\r\n"
            "x-ratelimit-remaining-requests: 97\r\n"
            "x-ratelimit-reset-requests: 1m0s\r\n"
            "x-ratelimit-limit-tokens: 50000\r\n"
            "x-ratelimit-remaining-tokens: 0\r\n"
            "x-ratelimit-reset-tokens: 250ms\r\n");
  std::string from_list;
  for (const auto& [name, value] : list) from_list += name + ": " + value + "\r\n";
  EXPECT_EQ(from_list, lines);
  std::string requests_only;
  AppendRateLimitLines(requests, std::nullopt, 1'000, &requests_only);
  EXPECT_EQ(requests_only.find("tokens"), std::string::npos);
  std::string none;
  AppendRateLimitLines(std::nullopt, std::nullopt, 1'000, &none);
  EXPECT_EQ(none, "");
}

TEST(LimitAnswersTest, RetryAfterRoundsUpToWholeSeconds) {
  limits::Decision decision;
  decision.outcome = limits::LimitOutcome::kRejectRpm;
  decision.retry_after_ms = 1001;
  decision.requests = limits::WindowFigures{5, 0, 1001};
  http::Response response = RateLimitedResponse(decision, WorstCase{}, "max_tokens", 0);
  EXPECT_EQ(response.status, 429);
  std::string retry_after;
  for (const auto& [name, value] : response.headers) {
    if (name == "Retry-After") retry_after = value;
  }
  EXPECT_EQ(retry_after, "2");
  EXPECT_NE(response.body.find("\"code\":\"rate_limit_exceeded\""), std::string::npos);
  EXPECT_NE(response.body.find("\"type\":\"rate_limit_error\""), std::string::npos);
}

TEST(LimitAnswersTest, ARequestThatNeverFitsIsToldWhatToChange) {
  limits::Decision decision;
  decision.outcome = limits::LimitOutcome::kRejectTpmNeverFits;
  decision.tokens = limits::WindowFigures{20, 20, 0};
  http::Response chat =
      RateLimitedResponse(decision, WorstCase{10, 100, 0}, "max_completion_tokens", 0);
  EXPECT_EQ(chat.status, 429);
  EXPECT_NE(chat.body.find("\"param\":\"max_completion_tokens\""), std::string::npos) << chat.body;
  EXPECT_NE(chat.body.find("Lower max_completion_tokens or shorten the input."),
            std::string::npos)
      << chat.body;
  // An embedding has no output to cap: only its input can change.
  http::Response embedding = RateLimitedResponse(decision, WorstCase{30, 0, 0}, "", 0);
  EXPECT_NE(embedding.body.find("\"param\":\"input\""), std::string::npos) << embedding.body;
  EXPECT_NE(embedding.body.find("Shorten the input."), std::string::npos) << embedding.body;
  EXPECT_EQ(embedding.body.find("max_tokens"), std::string::npos) << embedding.body;
  for (const auto& [name, value] : embedding.headers) EXPECT_NE(name, "Retry-After");
}

TEST(LimitAnswersTest, ABudgetThatNeverResetsSaysSo) {
  limits::Decision decision;
  decision.outcome = limits::LimitOutcome::kRejectBudget;
  decision.budget = limits::BudgetState{1'000'000, 999'000, 500, std::nullopt};
  http::Response response =
      BudgetExceededResponse(decision, WorstCase{1, 1, 2000}, keys::ResetInterval::kNever, 0);
  EXPECT_EQ(response.status, 402);
  EXPECT_NE(response.body.find("never resets"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("\"resets_at\":null"), std::string::npos) << response.body;
  EXPECT_NE(response.body.find("\"type\":\"insufficient_quota\""), std::string::npos);
  EXPECT_EQ(response.body.find("max_tokens"), std::string::npos) << response.body;
  // A chat that set no cap is told its output was reserved at the model's maximum (audit R).
  http::Response uncapped = BudgetExceededResponse(decision, WorstCase{18, 1024, 2066},
                                                   keys::ResetInterval::kNever, 0, "max_tokens");
  EXPECT_NE(uncapped.body.find("With no max_tokens set, the request's output is reserved at the "
                               "model's maximum output, 1024 tokens in all; a lower max_tokens "
                               "reserves less."),
            std::string::npos)
      << uncapped.body;
}

}  // namespace
}  // namespace keygate::proxy
