#include "proxy/openai_request.h"

#include <gtest/gtest.h>

#include <string>

#include <boost/json.hpp>

namespace keygate::proxy {
namespace {

namespace json = boost::json;

constexpr const char* kMessages = R"("messages":[{"role":"user","content":"hi"}])";

std::string ChatBody(const std::string& extra) {
  return std::string(R"({"model":"mock/echo",)") + kMessages + extra + "}";
}

// A refused body: the error's param, for the table below.
struct BadChat {
  std::string body;
  std::string param;
};

TEST(OpenAiRequestTest, ReadsTheFieldsKeygateActsOn) {
  auto request = ParseChatRequest(ChatBody(
      R"(,"stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"n":2,"temperature":0.2)"));
  ASSERT_TRUE(request.ok()) << request.error().message;
  EXPECT_EQ(request->endpoint, Endpoint::kChatCompletions);
  EXPECT_EQ(request->model, "mock/echo");
  EXPECT_TRUE(request->stream);
  EXPECT_TRUE(request->caller_wants_usage);
  EXPECT_EQ(request->max_completion_tokens, 50);
  EXPECT_EQ(request->choices, 2);
  ASSERT_EQ(request->prompt.inputs.size(), 1u);
}

TEST(OpenAiRequestTest, TheLargerCompletionLimitBoundsTheAnswer) {
  auto request = ParseChatRequest(ChatBody(R"(,"max_tokens":10,"max_completion_tokens":30)"));
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(request->max_completion_tokens, 30);
  auto none = ParseChatRequest(ChatBody(R"(,"max_tokens":null)"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->max_completion_tokens.has_value());
}

TEST(OpenAiRequestTest, BadChatBodiesAreRefusedNamingTheField) {
  const BadChat cases[] = {
      {"{", ""},
      {"[1,2]", ""},
      {"", ""},
      {std::string("{") + kMessages + "}", "model"},
      {std::string(R"({"model":7,)") + kMessages + "}", "model"},
      {std::string(R"({"model":"",)") + kMessages + "}", "model"},
      {R"({"model":"m"})", "messages"},
      {R"({"model":"m","messages":{}})", "messages"},
      {R"({"model":"m","messages":[]})", "messages"},
      {R"({"model":"m","messages":["hi"]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"content":"hi"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"text":"x"}]}]})",
       "messages[0].content[0]"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":1}]}]})",
       "messages[0].content[0].text"},
      {ChatBody(R"(,"max_tokens":-5)"), "max_tokens"},
      {ChatBody(R"(,"max_tokens":0)"), "max_tokens"},
      {ChatBody(R"(,"max_tokens":"100")"), "max_tokens"},
      {ChatBody(R"(,"max_tokens":1.5)"), "max_tokens"},
      {ChatBody(R"(,"max_tokens":1000000000000)"), "max_tokens"},
      {ChatBody(R"(,"max_completion_tokens":-1)"), "max_completion_tokens"},
      {ChatBody(R"(,"n":0)"), "n"},
      {ChatBody(R"(,"n":1000)"), "n"},
      {ChatBody(R"(,"stream":"yes")"), "stream"},
      {ChatBody(R"(,"stream":true,"stream_options":true)"), "stream_options"},
      {ChatBody(R"(,"stream":true,"stream_options":{"include_usage":1})"),
       "stream_options.include_usage"},
  };
  for (const BadChat& bad : cases) {
    auto request = ParseChatRequest(bad.body);
    ASSERT_FALSE(request.ok()) << bad.body;
    EXPECT_EQ(request.error().code, ErrorCode::kInvalidArgument) << bad.body;
    EXPECT_EQ(request.error().param, bad.param) << bad.body;
    if (!bad.param.empty()) {
      EXPECT_NE(request.error().message.find(bad.param), std::string::npos)
          << request.error().message;
    }
  }
}

TEST(OpenAiRequestTest, UpstreamBodyRewritesTheModelAndAsksForStreamUsage) {
  auto request = ParseChatRequest(
      ChatBody(R"(,"stream":true,"stream_options":{"other":1},"temperature":0.5)"));
  ASSERT_TRUE(request.ok());
  EXPECT_FALSE(request->caller_wants_usage);
  json::value sent = json::parse(UpstreamBody(*request, "echo"));
  EXPECT_EQ(sent.at("model"), "echo");
  EXPECT_EQ(sent.at("stream_options").at("include_usage"), true);
  EXPECT_EQ(sent.at("stream_options").at("other"), 1);
  EXPECT_EQ(sent.at("temperature"), 0.5);
  EXPECT_EQ(sent.at("messages"), json::parse(R"([{"role":"user","content":"hi"}])"));
}

TEST(OpenAiRequestTest, PlainCallsAreForwardedWithoutStreamOptions) {
  auto request = ParseChatRequest(ChatBody(""));
  ASSERT_TRUE(request.ok());
  json::value sent = json::parse(UpstreamBody(*request, "gpt-4o-mini"));
  EXPECT_EQ(sent.at("model"), "gpt-4o-mini");
  EXPECT_EQ(sent.as_object().if_contains("stream_options"), nullptr);
}

// How often `member` is a member name in `body`.
size_t Occurrences(const std::string& body, const std::string& member) {
  const std::string quoted = '"' + member + "\":";
  size_t count = 0;
  for (size_t at = body.find(quoted); at != std::string::npos; at = body.find(quoted, at + 1)) {
    ++count;
  }
  return count;
}

TEST(OpenAiRequestTest, UpstreamBodyCapsTheOutputInTheProvidersMemberAlone) {
  const OutputCap cap{"max_tokens", 1024};
  auto none = ParseChatRequest(ChatBody(""));
  ASSERT_TRUE(none.ok());
  json::value sent = json::parse(UpstreamBody(*none, "up", cap));
  EXPECT_EQ(sent.at("max_tokens"), 1024);
  EXPECT_EQ(sent.at("model"), "up");
  sent = json::parse(UpstreamBody(*none, "up", {"max_completion_tokens", 1024}));
  EXPECT_EQ(sent.at("max_completion_tokens"), 1024);
  EXPECT_FALSE(sent.as_object().contains("max_tokens"));
  // No cap to send (a key without a credit or TPM limit, a model without a maximum output).
  EXPECT_EQ(Occurrences(UpstreamBody(*none, "up", {"max_tokens", 0}), "max_tokens"), 0u);

  // Whatever members the caller used (null ones are no cap), through either parser: the one
  // the provider understands carries the larger of them, or the default, and no other.
  const std::string parts =
      R"("messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}])";
  struct Case {
    std::string members;  // ",..." of the caller's body
    int64_t sent;
  };
  const Case cases[] = {
      {R"(,"max_tokens":null,"max_completion_tokens":null)", 1024},
      {R"(,"max_tokens":16)", 16},
      {R"(,"max_completion_tokens":16)", 16},
      {R"(,"max_tokens":10,"max_completion_tokens":30)", 30},
      {R"(,"max_completion_tokens":null,"max_tokens":7)", 7},
  };
  for (const Case& c : cases) {
    const std::string full = "{\"model\":\"m\"," + parts + c.members + "}";
    for (const std::string& body : {ChatBody(c.members), full}) {
      for (auto parse : {&ParseChatRequest, &internal::ParseChatRequestFully}) {
        auto request = parse(body);
        ASSERT_TRUE(request.ok()) << body;
        for (const std::string field : {"max_tokens", "max_completion_tokens"}) {
          const std::string text = UpstreamBody(*request, "up", {field, 1024});
          const std::string other =
              field == "max_tokens" ? "max_completion_tokens" : "max_tokens";
          EXPECT_EQ(Occurrences(text, field), 1u) << text;
          EXPECT_EQ(Occurrences(text, other), 0u) << text;
          EXPECT_EQ(json::parse(text).at(field), c.sent) << text;
        }
      }
    }
  }

  // Embeddings produce no output to cap, and keep their body as sent.
  auto embed = ParseEmbeddingsRequest(R"({"model":"mock/embed","input":"hello","max_tokens":3})");
  ASSERT_TRUE(embed.ok());
  EXPECT_EQ(json::parse(UpstreamBody(*embed, "up", cap)).at("max_tokens"), 3);
}

TEST(OpenAiRequestTest, EmbeddingInputsInEveryShape) {
  struct Case {
    std::string input;
    size_t inputs;
  };
  const Case cases[] = {{R"("hello")", 1},
                        {R"(["a","bb","ccc"])", 3},
                        {R"([1,2,3])", 1},
                        {R"([[1,2],[3]])", 2}};
  for (const Case& c : cases) {
    auto request = ParseEmbeddingsRequest(R"({"model":"mock/embed","input":)" + c.input + "}");
    ASSERT_TRUE(request.ok()) << c.input << ": " << request.error().message;
    EXPECT_EQ(request->endpoint, Endpoint::kEmbeddings);
    EXPECT_EQ(request->prompt.inputs.size(), c.inputs) << c.input;
  }
}

TEST(OpenAiRequestTest, BadEmbeddingInputsAreRefused) {
  const BadChat cases[] = {
      {R"({"model":"m"})", "input"},
      {R"({"model":"m","input":""})", "input"},
      {R"({"model":"m","input":[]})", "input"},
      {R"({"model":"m","input":5})", "input"},
      {R"({"model":"m","input":[-1,2]})", "input"},
      {R"({"model":"m","input":["a",""]})", "input[1]"},
      {R"({"model":"m","input":["a",{}]})", "input[1]"},
      {R"({"input":"x"})", "model"},
  };
  for (const BadChat& bad : cases) {
    auto request = ParseEmbeddingsRequest(bad.body);
    ASSERT_FALSE(request.ok()) << bad.body;
    EXPECT_EQ(request.error().param, bad.param) << bad.body;
  }
}

}  // namespace
}  // namespace keygate::proxy
