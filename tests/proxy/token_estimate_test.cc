#include "proxy/token_estimate.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>

#include "proxy/openai_request.h"

namespace keygate::proxy {
namespace {

constexpr int64_t kContext = 1'000'000;

// The mock upstream's count (tools/mock_upstream/mock_api.h): ceil(bytes / 4) + 3 per message,
// which stands for a real tokenizer here.
int64_t MockPromptTokens(int64_t content_bytes, int64_t messages) {
  return (content_bytes + 3) / 4 + 3 * messages;
}

std::string Chat(const std::string& messages_json) {
  return R"({"model":"mock/echo","messages":)" + messages_json + "}";
}

int64_t UpperBound(const std::string& body, int64_t context = kContext) {
  auto request = ParseChatRequest(body);
  EXPECT_TRUE(request.ok()) << body;
  return request.ok() ? PromptUpperBound(request->prompt, context) : -1;
}

TEST(TokenEstimateTest, CountsEveryUtf8BytePlusOverheads) {
  // "hello" (5 bytes) + role "user" (4 bytes) + 4 per message + 8 per conversation.
  EXPECT_EQ(UpperBound(Chat(R"([{"role":"user","content":"hello"}])")), 5 + 4 + 4 + 8);
  // "é" is two bytes, "日本" six: bytes, not characters.
  EXPECT_EQ(UpperBound(Chat(R"([{"role":"user","content":"é日本"}])")), 8 + 4 + 4 + 8);
}

TEST(TokenEstimateTest, NeverBelowTheUpstreamCountForRandomConversations) {
  std::mt19937 rng(7);
  // JSON text of a character and its UTF-8 size once decoded.
  const std::pair<std::string, int64_t> alphabet[] = {
      {"a", 1}, {" ", 1}, {"\xC3\xA9", 2}, {"\xE6\x97\xA5", 3}, {"\xF0\x9F\x98\x80", 4},
      {"\\n", 1}};
  for (int round = 0; round < 200; ++round) {
    const int messages = 1 + static_cast<int>(rng() % 5);
    std::string json = "[";
    int64_t content_bytes = 0;
    for (int m = 0; m < messages; ++m) {
      std::string text;
      const int length = static_cast<int>(rng() % 300);
      for (int i = 0; i < length; ++i) {
        const auto& [encoded, bytes] = alphabet[rng() % 6];
        text += encoded;
        content_bytes += bytes;
      }
      json += std::string(m ? "," : "") + R"({"role":"user","content":")" + text + R"("})";
    }
    json += "]";
    EXPECT_GE(UpperBound(Chat(json)), MockPromptTokens(content_bytes, messages)) << json;
  }
}

TEST(TokenEstimateTest, TextPartsCountAndImagesAreBoundedByTheContext) {
  const std::string text_parts =
      Chat(R"([{"role":"user","content":[{"type":"text","text":"abc"},{"type":"text","text":"de"}]}])");
  EXPECT_EQ(UpperBound(text_parts), 5 + 4 + 4 + 8);
  const std::string with_image = Chat(
      R"([{"role":"user","content":[{"type":"text","text":"what is this"},)"
      R"({"type":"image_url","image_url":{"url":"https://x/y.png"}}]}])");
  EXPECT_EQ(UpperBound(with_image, 8192), 8192);
}

TEST(TokenEstimateTest, ToolSchemasCountTowardsThePrompt) {
  const std::string plain = Chat(R"([{"role":"user","content":"hi"}])");
  const std::string tools =
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function",)"
      R"("function":{"name":"get_weather","parameters":{"type":"object"}}}]})";
  EXPECT_GT(UpperBound(tools), UpperBound(plain) + 40);
}

// A member keygate knows nothing of is forwarded, and may reach the model (vLLM's `documents`,
// a `system` or `prompt` of another API): its text counts (audit R: it went up uncounted). The
// members keygate knows that the model does not read add nothing; web search results have no
// bound but the context.
TEST(TokenEstimateTest, MembersOfProvidersExtensionsCountTowardsThePrompt) {
  const std::string hi = R"({"model":"m","messages":[{"role":"user","content":"hi"}])";
  const int64_t plain = UpperBound(hi + "}");
  const std::string text(3000, 'x');
  for (const char* member : {"documents", "system", "prompt", "instructions", "chat_template"}) {
    EXPECT_EQ(UpperBound(hi + ",\"" + member + "\":\"" + text + "\"}"), plain + 3000) << member;
  }
  const std::string around = R"([{"title":"t","text":""}])";  // counted as JSON text
  EXPECT_EQ(UpperBound(hi + R"(,"documents":[{"title":"t","text":")" + text + R"("}]})"),
            plain + 3000 + static_cast<int64_t>(around.size()));
  EXPECT_EQ(UpperBound(hi + R"(,"temperature":0.5,"metadata":{"k":"v"},"user":"u","seed":7})"),
            plain);
  EXPECT_EQ(UpperBound(hi + R"(,"web_search_options":{}})", 8192), 8192);
  // So does a text part's member besides its type and text (audit S).
  EXPECT_EQ(UpperBound(R"({"model":"m","messages":[{"role":"user","content":[)"
                       R"({"type":"text","text":"hi","cache":")" + text + R"("}]}]})"),
            plain + 3000);
  // And an embedding's, as one more input (audit S).
  auto embedding = ParseEmbeddingsRequest(R"({"model":"m","input":"hi","encoding_format":"float",)"
                                          R"("texts":[")" + text + R"("]})");
  ASSERT_TRUE(embedding.ok());
  ASSERT_EQ(embedding->prompt.inputs.size(), 2u);
  EXPECT_EQ(embedding->prompt.inputs[1].text_bytes, 3000 + 4);  // ["..."]
  EXPECT_EQ(UpperBound(hi + R"(,"web_search_options":null})"), plain);
}

TEST(TokenEstimateTest, EachInputIsCappedAtTheContext) {
  PromptSize prompt;
  prompt.inputs.push_back({100'000, 0, 4, false});
  prompt.inputs.push_back({10, 0, 2, false});
  EXPECT_EQ(PromptUpperBound(prompt, 8192), 8192 + 12);
}

TEST(TokenEstimateTest, TokenIdsCountExactly) {
  auto request = ParseEmbeddingsRequest(R"({"model":"m","input":[1,2,3,4]})");
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(PromptUpperBound(request->prompt, kContext), 4 + kPerInputTokens);
  EXPECT_EQ(LargestInputLowerBound(request->prompt), 4);
}

TEST(TokenEstimateTest, LowerBoundDividesBytesByTheLongestToken) {
  PromptSize prompt;
  prompt.inputs.push_back({1000, 0, 4, false});
  prompt.inputs.push_back({8, 3, 0, false});
  EXPECT_EQ(LargestInputLowerBound(prompt), 4);  // max(ceil(1000 / 256), 1 + 3)
  EXPECT_EQ(LargestInputLowerBound(PromptSize{}), 0);
}

// Texts whose real token counts (cl100k_base and o200k_base alike, counted with a tokenizer by
// an audit) are far below a byte count over 8: the lower bound must stay under them, or a
// prompt that fits is refused.
TEST(TokenEstimateTest, LowerBoundStaysUnderRunsThatTokenizersPackTight) {
  struct Measured {
    int64_t bytes;
    int64_t tokens;
  };
  for (const Measured m : {Measured{70'000, 5'000},    // " understanding" x 5000
                           Measured{80'000, 1'250},    // '=' x 80000
                           Measured{80'002, 628}}) {   // 'a', 80000 spaces, 'b'
    PromptSize prompt;
    prompt.inputs.push_back({m.bytes, 0, 0, false});
    EXPECT_LE(LargestInputLowerBound(prompt), m.tokens) << m.bytes;
  }
}

TEST(TokenEstimateTest, SaturatesInsteadOfOverflowing) {
  PromptSize prompt;
  prompt.inputs.push_back({INT64_MAX, INT64_MAX, 1, false});
  EXPECT_EQ(PromptUpperBound(prompt, kContext), kContext);
}

}  // namespace
}  // namespace keygate::proxy
