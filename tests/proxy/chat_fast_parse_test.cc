// The fast path of ParseChatRequest against the full parser: on every body it accepts it must
// give the same request, and it must hand every other body (each refusal among them) to the
// full parser.
#include "proxy/chat_fast_parse.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <boost/json.hpp>

namespace keygate::proxy {
namespace {

namespace json = boost::json;

void ExpectSameRequest(const ModelRequest& fast, const ModelRequest& full, const std::string& body) {
  SCOPED_TRACE(body);
  EXPECT_EQ(fast.endpoint, full.endpoint);
  EXPECT_EQ(fast.model, full.model);
  EXPECT_EQ(fast.stream, full.stream);
  EXPECT_EQ(fast.caller_wants_usage, full.caller_wants_usage);
  EXPECT_EQ(fast.max_completion_tokens, full.max_completion_tokens);
  EXPECT_EQ(fast.choices, full.choices);
  ASSERT_EQ(fast.prompt.inputs.size(), full.prompt.inputs.size());
  for (size_t i = 0; i < fast.prompt.inputs.size(); ++i) {
    EXPECT_EQ(fast.prompt.inputs[i].text_bytes, full.prompt.inputs[i].text_bytes);
    EXPECT_EQ(fast.prompt.inputs[i].token_ids, full.prompt.inputs[i].token_ids);
    EXPECT_EQ(fast.prompt.inputs[i].overhead_tokens, full.prompt.inputs[i].overhead_tokens);
    EXPECT_EQ(fast.prompt.inputs[i].unbounded, full.prompt.inputs[i].unbounded);
  }
  // The same members, whatever the formatting.
  EXPECT_EQ(json::parse(fast.body_without_model), json::parse(full.body_without_model));
  EXPECT_EQ(json::parse(UpstreamBody(fast, "up")), json::parse(UpstreamBody(full, "up")));
}

TEST(ChatFastParseTest, CommonBodiesGiveWhatTheFullParserGives) {
  const std::vector<std::string> bodies = {
      R"({"model":"mock/echo","messages":[{"role":"user","content":"hi"}]})",
      R"({"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}],"model":"mock/echo","max_tokens":16})",
      R"(  { "model" : "openai/gpt-4o" , "stream" : true , "messages" : [ {"role":"user","content":"x","name":"ann"} ] , "n" : 2 }  )",
      R"({"model":"m","messages":[{"role":"assistant","content":null},{"role":"user","content":"caf\u00e9 \"q\""}],"max_completion_tokens":40,"max_tokens":10})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"top_p":1,"user":"u-1","stop":["\n","}"],"logit_bias":{"50256":-100},"metadata":{"a":{"b":[1,{"c":"]"}]}}})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"auto","response_format":null,"stream":false,"max_tokens":null})",
      R"({"model":"pro\u0076ider/m","messages":[{"role":"user","content":"hi"}]})",
  };
  for (const std::string& body : bodies) {
    std::optional<ModelRequest> fast = internal::FastParseChatRequest(body);
    ASSERT_TRUE(fast.has_value()) << "the fast path gave up on " << body;
    Result<ModelRequest> full = internal::ParseChatRequestFully(body);
    ASSERT_TRUE(full.ok()) << full.error().message;
    ExpectSameRequest(*fast, *full, body);
  }
}

TEST(ChatFastParseTest, AStreamAsksForUsage) {
  auto fast = internal::FastParseChatRequest(
      R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(fast.has_value());
  json::value sent = json::parse(UpstreamBody(*fast, "up"));
  EXPECT_EQ(sent.at("model"), "up");
  EXPECT_EQ(sent.at("stream_options").at("include_usage"), true);
  EXPECT_FALSE(sent.as_object().contains("mod"));
}

TEST(ChatFastParseTest, EverythingElseGoesToTheFullParser) {
  const std::vector<std::string> bodies = {
      // not the common shape, but valid
      R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]})",
      R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]}]})",
      R"({"model":"m","messages":[{"role":"assistant","audio":{"id":"a"}}]})",
      R"({"mod\u0065l":"m","messages":[{"role":"user","content":"hi"}]})",
      R"({"model":"m","model":"n","messages":[{"role":"user","content":"hi"}]})",
      // refused: the full parser words the error
      R"({"model":"m","messages":[]})",
      R"({"model":"","messages":[{"role":"user","content":"hi"}]})",
      R"({"model":7,"messages":[{"role":"user","content":"hi"}]})",
      R"({"messages":[{"role":"user","content":"hi"}]})",
      R"({"model":"m"})",
      R"({"model":"m","messages":[{"content":"hi"}]})",
      R"({"model":"m","messages":[{"role":null,"content":"hi"}]})",
      R"({"model":"m","messages":["hi"]})",
      R"({"model":"m","messages":[{"role":"user","content":5}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":0})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":1.5})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"n":129})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":"yes"})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}]} trailing)",
      R"([{"model":"m"}])",
      R"("just a string")",
      R"({"model":"m","messages":[{"role":"user","content":"hi"})",
      "",
  };
  for (const std::string& body : bodies) {
    EXPECT_FALSE(internal::FastParseChatRequest(body).has_value()) << body;
  }
}

TEST(ChatFastParseTest, ParseChatRequestStillRefusesWithTheFullParsersWords) {
  auto request = ParseChatRequest(R"({"model":"m","messages":[{"role":"user","content":5}]})");
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.error().param, "messages[0].content");
}

}  // namespace
}  // namespace keygate::proxy
