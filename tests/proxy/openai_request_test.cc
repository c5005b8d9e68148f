#include "proxy/openai_request.h"

#include <gtest/gtest.h>

#include <string>

#include <boost/json.hpp>

#include "proxy/openai_params.h"

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

// How often `member` is a member name in `body`.
size_t Occurrences(const std::string& body, const std::string& member) {
  const std::string quoted = '"' + member + "\":";
  size_t count = 0;
  for (size_t at = body.find(quoted); at != std::string::npos; at = body.find(quoted, at + 1)) {
    ++count;
  }
  return count;
}

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
      {ChatBody(R"(,"models":["openai/gpt-4o"])"), "models"},  // fallbacks (audit S)
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
      // members keygate only forwards: their types (spec §4), and a sign where a negative
      // value means nothing to any provider
      {ChatBody(R"(,"temperature":"hot")"), "temperature"},
      {ChatBody(R"(,"temperature":-0.5)"), "temperature"},
      {ChatBody(R"(,"temperature":1e400)"), "temperature"},
      {ChatBody(R"(,"top_p":"x")"), "top_p"},
      {ChatBody(R"(,"seed":1.5)"), "seed"},
      {ChatBody(R"(,"seed":"x")"), "seed"},
      {ChatBody(R"(,"top_logprobs":-1)"), "top_logprobs"},
      {ChatBody(R"(,"logprobs":"yes")"), "logprobs"},
      {ChatBody(R"(,"stop":5)"), "stop"},
      {ChatBody(R"(,"stop":[1])"), "stop"},
      {ChatBody(R"(,"tools":[5])"), "tools"},
      {ChatBody(R"(,"logit_bias":{"1":"x"})"), "logit_bias"},
      {ChatBody(R"(,"user":5)"), "user"},
      {ChatBody(R"(,"tools":"x")"), "tools"},
      {ChatBody(R"(,"tool_choice":5)"), "tool_choice"},
      {ChatBody(R"(,"response_format":"x")"), "response_format"},
      {ChatBody(R"(,"logit_bias":[1])"), "logit_bias"},
      {ChatBody(R"(,"parallel_tool_calls":1)"), "parallel_tool_calls"},
      {R"({"model":"m","messages":[{"role":"bogus","content":"hi"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi","name":5}]})",
       "messages[0].name"},
      {R"({"model":"m","messages":[{"role":"tool","content":"1","tool_call_id":{}}]})",
       "messages[0].tool_call_id"},
      {R"({"model":"m","messages":[{"role":"assistant","tool_calls":"x"}]})",
       "messages[0].tool_calls"},
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

TEST(OpenAiRequestTest, AnUnknownRoleIsRefusedNamingEveryRoleKnown) {
  auto request = ParseChatRequest(R"({"model":"m","messages":[{"role":"bogus","content":"x"}]})");
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.error().message,
            "messages[0].role must be one of system, developer, user, assistant, tool or "
            "function, got 'bogus'");
  for (const char* role : {"system", "developer", "user", "assistant", "tool", "function"}) {
    EXPECT_TRUE(IsKnownRole(role)) << role;
  }
  EXPECT_FALSE(IsKnownRole("User"));
}

TEST(OpenAiRequestTest, TypesThatFitAreAccepted) {
  for (const char* extra :
       {R"(,"temperature":0,"top_p":1,"seed":-3,"top_logprobs":0,"logprobs":null)",
        R"(,"seed":1.0,"seed":2e3,"stop":"x","user":"u","tool_choice":{"type":"none"})",
        R"(,"tools":[],"response_format":{"type":"grammar"},"frequency_penalty":-1.5)",
        R"(,"stop":["a","b"],"logit_bias":{"50256":-100,"1":2.5},"tools":[{"type":"function"}])",
        R"(,"provider_extension":"anything","top_k":-1)"}) {
    auto request = ParseChatRequest(ChatBody(extra));
    EXPECT_TRUE(request.ok()) << extra << ": " << request.error().message;
  }
}

TEST(OpenAiRequestTest, ATooDeepBodyIsRefusedSayingSo) {
  const std::string deep = std::string(70, '[') + std::string(70, ']');
  auto request = ParseChatRequest(ChatBody(R"(,"x":)" + deep));
  ASSERT_FALSE(request.ok());
  EXPECT_NE(request.error().message.find("nests deeper than 64"), std::string::npos)
      << request.error().message;
  // A tool schema of ordinary depth (past the 32 levels Boost.JSON allows by default) passes.
  const std::string schema = std::string(40, '[') + std::string(40, ']');
  EXPECT_TRUE(ParseChatRequest(ChatBody(R"(,"x":)" + schema)).ok());
}

// Numbers, escapes and spacing the caller wrote reach the upstream as written: a parsed
// document would turn 1e400 into a bare Infinity (not JSON) and round a 30-digit seed.
TEST(OpenAiRequestTest, MembersAreForwardedAsWritten) {
  const std::string body =
      R"({"model":"m","tools":[{"type":"function","function":{"name":"f","parameters":)"
      R"({"type":"number","maximum":1e400,"multipleOf":0.10000000000000000001}}}],)"
      R"("messages":[{"role":"user","content":"café"}],"seed":123456789012345678901234567890,)"
      R"("x-extra":{ "a" : [ 1.0 ] },"n":1})";
  auto request = ParseChatRequest(body);
  ASSERT_TRUE(request.ok()) << request.error().message;
  const std::string sent = UpstreamBody(*request, "up");
  EXPECT_NE(sent.find(R"("maximum":1e400,"multipleOf":0.10000000000000000001)"),
            std::string::npos) << sent;
  EXPECT_NE(sent.find(R"("seed":123456789012345678901234567890)"), std::string::npos) << sent;
  EXPECT_NE(sent.find(R"("content":"café")"), std::string::npos) << sent;
  EXPECT_NE(sent.find(R"("x-extra":{ "a" : [ 1.0 ] })"), std::string::npos) << sent;
  EXPECT_EQ(sent.find("Infinity"), std::string::npos) << sent;
  boost::system::error_code ec;
  json::parse(sent, ec);
  EXPECT_FALSE(ec) << sent;  // Boost.JSON reads 1e400 as infinity, but it reads it
}

TEST(OpenAiRequestTest, ARepeatedMemberIsForwardedOnceAsTheLastWhichWasChecked) {
  auto request = ParseChatRequest(
      ChatBody(R"(,"temperature":"hot","user":"a","temperature":0.5,"model":"x")"));
  ASSERT_TRUE(request.ok()) << request.error().message;
  const std::string sent = UpstreamBody(*request, "up");
  EXPECT_EQ(Occurrences(sent, "temperature"), 1u) << sent;
  EXPECT_NE(sent.find(R"("temperature":0.5)"), std::string::npos) << sent;
  EXPECT_EQ(sent.find("hot"), std::string::npos) << sent;
  EXPECT_EQ(json::parse(sent).at("model"), "up") << sent;  // an escaped "model" is dropped too
  EXPECT_EQ(sent.find(R"("x")"), std::string::npos) << sent;
  // Refused when the last one is wrong.
  EXPECT_FALSE(ParseChatRequest(ChatBody(R"(,"temperature":0.5,"temperature":"hot")")).ok());
}

TEST(OpenAiRequestTest, StreamOptionsWithoutAStreamAreNotForwarded) {
  // OpenAI refuses stream_options on a call that does not stream; they mean nothing there.
  auto request = ParseChatRequest(ChatBody(R"(,"stream_options":{"include_usage":true})"));
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(json::parse(UpstreamBody(*request, "up")).as_object().if_contains("stream_options"),
            nullptr);
}

TEST(OpenAiRequestTest, TheCapIsNamedAsTheCallerWroteIt) {
  auto completion = ParseChatRequest(ChatBody(R"(,"max_completion_tokens":17)"));
  ASSERT_TRUE(completion.ok());
  EXPECT_EQ(completion->cap_member, "max_completion_tokens");
  auto both = ParseChatRequest(ChatBody(R"(,"max_completion_tokens":17,"max_tokens":20)"));
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->cap_member, "max_tokens");
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
      {R"({"model":"m","input":"x","dimensions":0})", "dimensions"},
      {R"({"model":"m","input":"x","dimensions":"x"})", "dimensions"},
      {R"({"model":"m","input":"x","encoding_format":5})", "encoding_format"},
      {R"({"model":"m","input":"x","user":[]})", "user"},
  };
  for (const BadChat& bad : cases) {
    auto request = ParseEmbeddingsRequest(bad.body);
    ASSERT_FALSE(request.ok()) << bad.body;
    EXPECT_EQ(request.error().param, bad.param) << bad.body;
  }
}

}  // namespace
}  // namespace keygate::proxy
