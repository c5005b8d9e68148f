#include "proxy/pricing.h"

#include <gtest/gtest.h>

#include <string>

namespace keygate::proxy {
namespace {

config::ModelConfig Model(MicroUsd input_per_mtok, MicroUsd output_per_mtok, int64_t context,
                          int64_t max_output) {
  config::ModelConfig model;
  model.id = "mock/echo";
  model.provider = "mock";
  model.upstream = "echo";
  model.input_micro_usd_per_mtok = input_per_mtok;
  model.output_micro_usd_per_mtok = output_per_mtok;
  model.context_tokens = context;
  model.max_output_tokens = max_output;
  return model;
}

ModelRequest Chat(const std::string& extra = "") {
  auto request = ParseChatRequest(
      R"({"model":"mock/echo","messages":[{"role":"user","content":"hello"}])" + extra + "}");
  EXPECT_TRUE(request.ok());
  return std::move(*request);
}

TEST(PricingTest, CostIsEachSideRoundedUpToTheMicroDollar) {
  // $1 and $2 per Mtok: 1 micro-dollar per input token, 2 per output token.
  const config::ModelConfig echo = Model(1'000'000, 2'000'000, 8192, 1024);
  EXPECT_EQ(CostOf(echo, {10, 5}), 10 + 10);
  // $0.15 and $0.60 per Mtok: 1000 prompt tokens cost 150 micro-dollars, 1 output token 0.6,
  // rounded up to 1.
  const config::ModelConfig mini = Model(150'000, 600'000, 128'000, 16'384);
  EXPECT_EQ(CostOf(mini, {1000, 1}), 150 + 1);
  EXPECT_EQ(CostOf(mini, {0, 0}), 0);
  EXPECT_EQ(CostOf(mini, {-5, -5}), 0);
}

TEST(PricingTest, WorstCaseUsesMaxTokensElseTheModelsMaximumOutput) {
  const config::ModelConfig echo = Model(1'000'000, 2'000'000, 8192, 1024);
  const WorstCase limited = WorstCaseOf(echo, Chat(R"(,"max_tokens":10)"));
  EXPECT_EQ(limited.prompt_tokens, 5 + 4 + 4 + 8);
  EXPECT_EQ(limited.completion_tokens, 10);
  EXPECT_EQ(limited.cost, 21 * 1 + 10 * 2);
  const WorstCase unlimited = WorstCaseOf(echo, Chat());
  EXPECT_EQ(unlimited.completion_tokens, 1024);
  EXPECT_EQ(unlimited.tokens(), 21 + 1024);
}

TEST(PricingTest, EveryChoiceMayProduceMaxTokens) {
  const config::ModelConfig echo = Model(1'000'000, 2'000'000, 8192, 1024);
  EXPECT_EQ(WorstCaseOf(echo, Chat(R"(,"max_tokens":10,"n":3)")).completion_tokens, 30);
}

TEST(PricingTest, AModelWithoutMaximumOutputIsBoundedByItsContext) {
  const config::ModelConfig open = Model(1'000'000, 2'000'000, 4096, 0);
  EXPECT_EQ(WorstCaseOf(open, Chat()).completion_tokens, 4096);
}

TEST(PricingTest, EmbeddingsHaveNoCompletion) {
  const config::ModelConfig embed = Model(20'000, 0, 8191, 0);
  auto request = ParseEmbeddingsRequest(R"({"model":"mock/embed","input":["abcd","ef"]})");
  ASSERT_TRUE(request.ok());
  const WorstCase worst = WorstCaseOf(embed, *request);
  EXPECT_EQ(worst.completion_tokens, 0);
  EXPECT_EQ(worst.prompt_tokens, 4 + 2 + 2 + 2);
  EXPECT_EQ(worst.cost, 1);  // 10 tokens at $0.02/Mtok, rounded up
}

TEST(PricingTest, TheWorstCaseIsNeverBelowAnyCostWithinItsBounds) {
  const config::ModelConfig mini = Model(150'000, 600'000, 128'000, 16'384);
  const WorstCase worst = WorstCaseOf(mini, Chat(R"(,"max_tokens":500)"));
  for (int64_t prompt = 0; prompt <= worst.prompt_tokens; ++prompt) {
    for (int64_t completion = 0; completion <= worst.completion_tokens; completion += 7) {
      ASSERT_LE(CostOf(mini, {prompt, completion}), worst.cost);
    }
  }
}

}  // namespace
}  // namespace keygate::proxy
