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
  EXPECT_EQ(json::parse(UpstreamBody(fast, "up", {"max_tokens", 64})),
            json::parse(UpstreamBody(full, "up", {"max_tokens", 64})));
}

TEST(ChatFastParseTest, CommonBodiesGiveWhatTheFullParserGives) {
  const std::vector<std::string> bodies = {
      R"({"model":"mock/echo","messages":[{"role":"user","content":"hi"}]})",
      R"({"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello."}],"model":"mock/echo","max_tokens":16})",
      R"(  { "model" : "openai/gpt-4o" , "stream" : true , "messages" : [ {"role":"user","content":"x","name":"ann"} ] , "n" : 2 }  )",
      R"({"model":"m","messages":[{"role":"assistant","content":null},{"role":"user","content":"caf\u00e9 \"q\""}],"max_completion_tokens":40,"max_tokens":10})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"top_p":1,"user":"u-1","stop":"\n","metadata":{"a":{"b":[1,{"c":"]"}]}}})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"auto","response_format":null,"stream":false,"max_tokens":null})",
      R"({"model":"pro\u0076ider/m","messages":[{"role":"user","content":"hi"}]})",
      // every escape, and UTF-8 of two, three and four bytes, raw and escaped
      R"({"model":"m","messages":[{"role":"user","content":"\"\\\/\b\f\n\r\t\u0000\u00e9\u4E2D"}]})",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xC3\xA9 \xE4\xB8\xAD "
      "\xF0\x9F\x99\x82 \xEF\xBF\xBF\x7F\"}]}",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":-12,)"
      R"("metadata":{"x":[0,-0.5,10.25,true,false,null,{},[],""],"y":{}}})",
      "{\n\t\"model\":\"m\",\r\n \"messages\":[\n{ \"role\" :\"user\" }\n]\n}\n",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"none","functions":null,"function_call":"\u00e9"})",
      R"({"model":"m","messages":[{"role":"developer","content":"hi"},{"role":"tool","content":"1","tool_call_id":"c"}],"temperature":0,"seed":7,"top_logprobs":2,"logprobs":true,"user":null,"parallel_tool_calls":false})",
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
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"x":1,"x":2})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["\n","}"],"logit_bias":{"50256":-100}})",
      R"({"model":"m","messages":[{"role":"user","content":"a long one","content":"hi"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1.0})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":-0.0})",
      // over 18 digits: past int64_t (the scanner overflowed on them, UB: audit U)
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":12345678901234567890123})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":-99999999999999999999999})",
      // members whose text may reach the model (audit R): the full parser counts them
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"documents":["x"]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"x":1})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"web_search_options":{}})",
      // refused: the full parser words the error
      R"({"model":"m","messages":[{"role":"bogus","content":"hi"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":"x"})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":"json"})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":"hot"})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":-1})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"top_logprobs":-1})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1.5})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stop":5})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"logprobs":"yes"})",
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
      // not JSON, or not JSON that Boost.JSON reads: the scanner must not be looser
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xC0\x80\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xE0\x80\x80\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xED\xA0\x80\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xF4\x90\x80\x80\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xF5\x80\x80\x80\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\x80\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xE2\x82\"}]}",
      "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\x01" "b\"}]}",
      R"({"model":"m","messages":[{"role":"user","content":"\x41"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"\u12"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"\ud83d\ude42"}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":012})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1.})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":-})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":.5})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1e3})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":NaN})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"x":[1,]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"},]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi",}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"x":tru})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}] /* note */})",
      R"({'model':'m','messages':[{'role':'user','content':'hi'}]})",
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"x":)" + std::string(40, '[') +
          std::string(40, ']') + "}",
  };
  for (const std::string& body : bodies) {
    EXPECT_FALSE(internal::FastParseChatRequest(body).has_value()) << body;
  }
}

// Each body is broken at every position (a byte replaced by one that matters to JSON, a byte
// dropped, the text cut short). Whatever the fast path accepts of those, the full parser must
// accept too, with the same reading: the scanner may give up more often, never read more.
TEST(ChatFastParseTest, WhatTheFastPathAcceptsTheFullParserAcceptsAlike) {
  const std::vector<std::string> seeds = {
      R"({"model":"mock/echo","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Say \"hi\"\n\u00e9","name":null}],"max_tokens":16,"n":2,"stream":true})",
      "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"\xE4\xB8\xAD\xF0\x9F\x99\x82\"} ] , "
      "\"model\":\"m\", \"tool_choice\":\"auto\", \"x\":[-1.5,0,true,{\"a\":[null,\"]\"]}]}",
  };
  const std::string replacements = std::string("\"\\{}[],: 0e-.nt\x01\x7F") + "\xC3\x80\xED\xFF";
  size_t accepted = 0;
  size_t tried = 0;
  auto check = [&](const std::string& body) {
    ++tried;
    std::optional<ModelRequest> fast = internal::FastParseChatRequest(body);
    if (!fast) return;
    ++accepted;
    Result<ModelRequest> full = internal::ParseChatRequestFully(body);
    ASSERT_TRUE(full.ok()) << "the fast path accepted what the full parser refuses: " << body;
    ExpectSameRequest(*fast, *full, body);
  };
  for (const std::string& seed : seeds) {
    for (size_t at = 0; at < seed.size(); ++at) {
      for (char c : replacements) {
        std::string body = seed;
        body[at] = c;
        check(body);
      }
      check(seed.substr(0, at) + seed.substr(at + 1));
      check(seed.substr(0, at));
    }
  }
  // The mutations must leave something for the comparison to bite on.
  EXPECT_GT(accepted, tried / 20);
}

TEST(ChatFastParseTest, ParseChatRequestStillRefusesWithTheFullParsersWords) {
  auto request = ParseChatRequest(R"({"model":"m","messages":[{"role":"user","content":5}]})");
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.error().param, "messages[0].content");
}

}  // namespace
}  // namespace keygate::proxy
