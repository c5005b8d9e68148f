#include "proxy/openai_response.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace keygate::proxy {
namespace {

std::vector<std::string> FeedAll(SseSplitter& splitter, const std::vector<std::string>& reads) {
  std::vector<std::string> out;
  std::vector<std::string_view> events;
  for (const std::string& read : reads) {
    splitter.Feed(read, &events);
    for (std::string_view event : events) out.emplace_back(event);
  }
  return out;
}

TEST(OpenAiResponseTest, ParseUsageReadsTheLastUsageObject) {
  auto chat = ParseUsage(
      R"({"id":"x","choices":[{"message":{"content":"\"usage\": {\"prompt_tokens\": 999}"}}],)"
      R"("usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}})");
  ASSERT_TRUE(chat.has_value());
  EXPECT_EQ(chat->prompt_tokens, 12);
  EXPECT_EQ(chat->completion_tokens, 5);
  auto embeddings = ParseUsage(R"({"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}})");
  ASSERT_TRUE(embeddings.has_value());
  EXPECT_EQ(embeddings->prompt_tokens, 8);
  EXPECT_EQ(embeddings->completion_tokens, 0);
  auto spaced = ParseUsage("{ \"usage\" : { \"prompt_tokens\": 3 } }");
  ASSERT_TRUE(spaced.has_value());
  EXPECT_EQ(spaced->prompt_tokens, 3);
}

TEST(OpenAiResponseTest, ParseUsageRefusesWhatIsNotAUsageObject) {
  EXPECT_FALSE(ParseUsage("").has_value());
  EXPECT_FALSE(ParseUsage("not json").has_value());
  EXPECT_FALSE(ParseUsage(R"({"usage":null})").has_value());
  EXPECT_FALSE(ParseUsage(R"({"usage":{"completion_tokens":3}})").has_value());
  EXPECT_FALSE(ParseUsage(R"({"error":{"message":"a \"usage\":{\"prompt_tokens\":1}"}})")
                   .has_value());
  EXPECT_FALSE(ParseUsage(R"({"tags":["usage"]})").has_value());
}

TEST(OpenAiResponseTest, SplitterReturnsWholeEventsAcrossReads) {
  SseSplitter splitter;
  const auto events = FeedAll(splitter, {"data: {\"a\":1}\n", "\ndata: {\"b\"", ":2}\n\ndata: [DO",
                                         "NE]\n\n"});
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], "data: {\"a\":1}\n\n");
  EXPECT_EQ(events[1], "data: {\"b\":2}\n\n");
  EXPECT_EQ(events[2], "data: [DONE]\n\n");
  EXPECT_TRUE(splitter.Pending().empty());
}

TEST(OpenAiResponseTest, SplitterAcceptsCrLfAndKeepsAnUnfinishedEvent) {
  SseSplitter splitter;
  const auto events = FeedAll(splitter, {"data: 1\r\n\r", "\ndata: 2\r\n"});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], "data: 1\r\n\r\n");
  EXPECT_EQ(splitter.Pending(), "data: 2\r\n");
  EXPECT_EQ(splitter.bytes_fed(), 20u);
}

TEST(OpenAiResponseTest, ClassifiesUsageDoneAndContent) {
  EXPECT_EQ(ClassifyEvent("data: [DONE]\n\n"), EventKind::kDone);
  EXPECT_EQ(ClassifyEvent("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n"),
            EventKind::kUsageOnly);
  EXPECT_EQ(ClassifyEvent("data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"prompt_tokens\":1}}\n\n"),
            EventKind::kContentWithUsage);
  EXPECT_EQ(ClassifyEvent("data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n"),
            EventKind::kContent);
  EXPECT_EQ(ClassifyEvent(": keep-alive comment\n\n"), EventKind::kContent);
}

TEST(OpenAiResponseTest, EventDataSkipsOtherFields) {
  EXPECT_EQ(EventData("event: message\ndata: {\"x\":1}\n\n"), "{\"x\":1}");
  EXPECT_EQ(EventData("data:{\"x\":1}\r\n\r\n"), "{\"x\":1}");
  EXPECT_EQ(EventData(": comment\n\n"), "");
}

TEST(OpenAiResponseTest, NullUsageIsStrippedOnlyAtTheTopLevelEnd) {
  auto stripped = WithoutNullUsage("data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n");
  ASSERT_TRUE(stripped.has_value());
  EXPECT_EQ(*stripped, "data: {\"choices\":[{\"delta\":{}}]}\n\n");
  EXPECT_FALSE(WithoutNullUsage("data: {\"choices\":[]}\n\n").has_value());
  EXPECT_FALSE(WithoutNullUsage("data: [DONE]\n\n").has_value());
}

TEST(OpenAiResponseTest, CompletionTextBytesAreAnUpperBoundOfTheDelta) {
  EXPECT_EQ(CompletionTextBytes(
                "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"Hello\"}}]}\n\n"),
            5);
  // Escapes count raw: \" is two bytes for one character.
  EXPECT_EQ(CompletionTextBytes("data: {\"delta\":{\"content\":\"a\\\"b\"}}\n\n"), 4);
  EXPECT_EQ(CompletionTextBytes(
                "data: {\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\"{\\\"x\\\":1}\"}}]}}\n\n"),
            9);
  EXPECT_EQ(CompletionTextBytes("data: {\"delta\":{\"content\":null}}\n\n"), 0);
}

}  // namespace
}  // namespace keygate::proxy
