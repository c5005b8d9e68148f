#include "proxy/openai_response.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
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
      R"("usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}})",
      UsageCounts::kPromptAndCompletion);
  ASSERT_TRUE(chat.has_value());
  EXPECT_EQ(chat->prompt_tokens, 12);
  EXPECT_EQ(chat->completion_tokens, 5);
  auto embeddings = ParseUsage(R"({"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}})",
                               UsageCounts::kPromptOnly);
  ASSERT_TRUE(embeddings.has_value());
  EXPECT_EQ(embeddings->prompt_tokens, 8);
  EXPECT_EQ(embeddings->completion_tokens, 0);
  auto spaced = ParseUsage("{ \"usage\" : { \"prompt_tokens\": 3 } }", UsageCounts::kPromptOnly);
  ASSERT_TRUE(spaced.has_value());
  EXPECT_EQ(spaced->prompt_tokens, 3);
  // A chat completion's usage without its completion tokens (absent or null) is no usage: the
  // call is charged as one without usage, not for its prompt alone (audit, 2026-12-07).
  for (const char* usage : {R"({"usage":{"prompt_tokens":10}})",
                            R"({"usage":{"prompt_tokens":10,"completion_tokens":null}})"}) {
    EXPECT_FALSE(ParseUsage(usage, UsageCounts::kPromptAndCompletion).has_value()) << usage;
    EXPECT_EQ(ParseUsage(usage, UsageCounts::kPromptOnly)->prompt_tokens, 10) << usage;
  }
}

TEST(OpenAiResponseTest, ParseUsageRefusesWhatIsNotAUsageObject) {
  for (const char* text :
       {"", "not json", R"({"usage":null})", R"({"usage":{"completion_tokens":3}})",
        R"({"error":{"message":"a \"usage\":{\"prompt_tokens\":1}"}})", R"({"tags":["usage"]})"}) {
    EXPECT_FALSE(ParseUsage(text, UsageCounts::kPromptOnly).has_value()) << text;
  }
}

// Audit Z: 5e18 tokens, reported for a key without limits, were charged as reported and
// wrapped its totals negative. A count past kMostTokensReported is no usage (the call is then
// charged as one without usage, never free), by the scanner and the full parser alike, in an
// answer and in a stream's event.
TEST(OpenAiResponseTest, ParseUsageRefusesCountsNoModelReaches) {
  const std::string most = std::to_string(kMostTokensReported);
  const std::string more = std::to_string(kMostTokensReported + 1);
  auto answer = [](const std::string& prompt, const std::string& completion,
                   const char* extra = "") {
    return R"({"usage":{"prompt_tokens":)" + prompt + R"(,"completion_tokens":)" + completion +
           extra + "}}";
  };
  for (const char* extra : {"", R"(,"total_tokens":1e3)"}) {  // the latter: the full parser
    auto at_most = ParseUsage(answer(most, most, extra), UsageCounts::kPromptAndCompletion);
    ASSERT_TRUE(at_most.has_value()) << extra;
    EXPECT_EQ(at_most->prompt_tokens, kMostTokensReported);
    for (const std::string& body :
         {answer(more, "1", extra), answer("1", more, extra),
          answer("5000000000000000000", "0", extra)}) {
      EXPECT_FALSE(ParseUsage(body, UsageCounts::kPromptAndCompletion).has_value()) << body;
      const EventFacts facts = ReadEvent("data: " + body + "\n\n");
      EXPECT_FALSE(facts.usage.has_value()) << body;
    }
  }
}

// The scanner reads the common usage objects itself, and whatever it reads, it reads as the
// full parser does.
TEST(OpenAiResponseTest, UsageScannerAgreesWithTheFullParser) {
  const std::vector<std::string> read_by_scanner = {
      R"({"prompt_tokens":12,"completion_tokens":5,"total_tokens":17})",
      R"({"prompt_tokens":8,"total_tokens":8})",
      R"({ "prompt_tokens" : 3 , "completion_tokens" : 0 }  trailing)",
      R"({"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,)"
      R"("prompt_tokens_details":{"cached_tokens":0,"audio_tokens":null},)"
      R"("completion_tokens_details":{"reasoning_tokens":0,"accepted_prediction_tokens":0},)"
      R"("cost":0.00012,"is_byok":false,"note":"caf\u00e9 \"x\"","list":[1,[2],{}]})",
      R"({"total_tokens":1000000000000,"prompt_tokens":1000000000000})",  // kMostTokensReported
  };
  for (const std::string& object : read_by_scanner) {
    SCOPED_TRACE(object);
    const auto scanned = internal::ScanUsage(object);
    const auto parsed = internal::ParseUsageObject(object);
    ASSERT_TRUE(scanned.has_value());
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(scanned->prompt_tokens, parsed->prompt_tokens);
    EXPECT_EQ(scanned->completion_tokens, parsed->completion_tokens);
  }
  EXPECT_EQ(internal::ScanUsage(read_by_scanner[0])->completion_tokens, 5);
  EXPECT_EQ(internal::ScanUsage(read_by_scanner[4])->prompt_tokens, kMostTokensReported);

  // Left to the full parser: what ParseUsage answers is the full parser's.
  const std::vector<std::string> left_to_parser = {
      R"({"prompt_tokens":-4,"completion_tokens":2})",
      R"({"prompt_tokens":4,"completion_tokens":-2})",
      R"({"prompt_tokens":4.0,"completion_tokens":2})",
      R"({"prompt_tokens":4,"completion_tokens":2.5})",
      R"({"prompt_tokens":4,"completion_tokens":"2"})",
      R"({"prompt_tokens":4,"completion_tokens":null})",
      R"({"prompt_tokens":4e2})",
      R"({"prompt_tokens":12345678901234567890})",
      R"({"prompt_tokens":1,"prompt_tokens":2})",
      R"({"prompt\u005ftokens":7})",
      R"({"completion_tokens":3})",
      R"({})",
      R"({"prompt_tokens":1,})",
      R"({"prompt_tokens":01})",
  };
  for (const std::string& object : left_to_parser) {
    SCOPED_TRACE(object);
    EXPECT_FALSE(internal::ScanUsage(object).has_value());
    const auto whole = ParseUsage(R"({"usage":)" + object + "}", UsageCounts::kPromptOnly);
    const auto parsed = internal::ParseUsageObject(object);
    ASSERT_EQ(whole.has_value(), parsed.has_value());
    if (parsed.has_value()) {
      EXPECT_EQ(whole->prompt_tokens, parsed->prompt_tokens);
      EXPECT_EQ(whole->completion_tokens, parsed->completion_tokens);
    }
  }
  // Text that is JSON but no object is no usage (audit CC: "0" was read through a null).
  for (const char* other : {"0", "\"usage\"", "[1]", "null"}) {
    EXPECT_FALSE(internal::ParseUsageObject(other).has_value()) << other;
  }
  // The full parser's answers for a few of them.
  // A negative count is no usage (the call is then charged as one without usage), not free.
  EXPECT_FALSE(internal::ParseUsageObject(left_to_parser[0]).has_value());
  EXPECT_FALSE(internal::ParseUsageObject(left_to_parser[1]).has_value());
  EXPECT_FALSE(internal::ParseUsageObject(left_to_parser[2]).has_value());
  // A count that is not a non-negative integer (2.5, "2") is no usage either; null is 0.
  EXPECT_FALSE(internal::ParseUsageObject(left_to_parser[3]).has_value());
  EXPECT_FALSE(internal::ParseUsageObject(left_to_parser[4]).has_value());
  EXPECT_EQ(internal::ParseUsageObject(left_to_parser[5])->completion_tokens, 0);
  EXPECT_EQ(internal::ParseUsageObject(left_to_parser[9])->prompt_tokens, 7);
  EXPECT_FALSE(internal::ParseUsageObject(left_to_parser[12]).has_value());
}

void ExpectSameFacts(const EventFacts& a, const EventFacts& b) {
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.completion_text_bytes, b.completion_text_bytes);
  EXPECT_EQ(a.null_usage_at, b.null_usage_at);
  ASSERT_EQ(a.usage.has_value(), b.usage.has_value());
  if (a.usage) {
    EXPECT_EQ(a.usage->prompt_tokens, b.usage->prompt_tokens);
    EXPECT_EQ(a.usage->completion_tokens, b.usage->completion_tokens);
  }
}

// Each event of `stream`, read in order with one EventShapes, gives what it gives read alone.
void ExpectStreamReadsAsItsEvents(const std::vector<std::string>& stream) {
  EventShapes shapes;
  for (const std::string& text : stream) {
    SCOPED_TRACE(text);
    ExpectSameFacts(ReadEvent(text, &shapes), ReadEvent(text));
  }
}

// The one-pass reading of an event agrees with the searches it replaces; the searches remain
// for events cut short.
TEST(OpenAiResponseTest, EventScannerAgreesWithTheSearches) {
  const std::vector<std::string> events = {
      "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
      "\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
      "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\\\"lo \\u00e9\"}}],\"usage\":null}\n\n",
      "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\","
      "\"arguments\":\"{\\\"x\\\":1}\"}}]}}]}\r\n\r\n",
      "data: {\"choices\":[{\"delta\":{\"refusal\":\"no\",\"reasoning\":\"why\","
      "\"reasoning_content\":\"because\"}}]}\n\n",
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":4,"
      "\"total_tokens\":28,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n",
      "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":3,"
      "\"completion_tokens\":1}}\n\n",
      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-3}}\n\n",
      "data: {\"choices\":[],\"usage\":{\"completion_tokens\":3}}\n\n",
      "event: message\ndata: {\"choices\":[{\"delta\":{\"content\":null}}]}\n\n",
      "data: {}\n\n",
      // Usage inside another object (a provider's extension), and an empty choices list.
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
      "\"x_provider\":{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}}\n\n",
      "data: {\"x\":{\"choices\":[],\"usage\":{\"prompt_tokens\":1}},"
      "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n",
      "data: [DONE]\n\n",
      ": keep-alive\n\n",
  };
  for (const std::string& event : events) {
    SCOPED_TRACE(event);
    const auto scanned = internal::ScanEvent(event);
    ASSERT_TRUE(scanned.has_value());
    ExpectSameFacts(*scanned, internal::SearchEvent(event));
  }
  // The null usage keygate asked for is found where WithoutNullUsage() cuts it.
  const EventFacts first = ReadEvent(events[0]);
  ASSERT_NE(first.null_usage_at, std::string::npos);
  std::string stripped;
  AppendWithoutNullUsage(events[0], first.null_usage_at, &stripped);
  EXPECT_EQ(stripped, WithoutNullUsage(events[0]).value());
  EXPECT_EQ(stripped.find("usage"), std::string::npos);
  EXPECT_EQ(ReadEvent(events[3]).null_usage_at, std::string::npos);
  EXPECT_EQ(ReadEvent(events[1]).completion_text_bytes, 14);  // raw, escapes included
  EXPECT_EQ(ReadEvent(events[3]).completion_text_bytes, 12);
  // An audio answer's transcript is its text (audit R: charged nothing without usage).
  const std::string audio =
      R"(data: {"choices":[{"delta":{"audio":{"id":"a","transcript":"hello"}}}]})" "\n\n";
  EXPECT_EQ(ReadEvent(audio).completion_text_bytes, 5);
  EXPECT_EQ(CompletionTextBytes(audio), 5);
  EXPECT_EQ(ReadEvent(events[4]).kind, EventKind::kUsageOnly);
  EXPECT_EQ(ReadEvent(events[4]).usage->prompt_tokens, 24);
  EXPECT_EQ(ReadEvent(events[5]).kind, EventKind::kContentWithUsage);
  EXPECT_EQ(ReadEvent(events[6]).usage->prompt_tokens, 0);  // the full parser's reading
  EXPECT_FALSE(ReadEvent(events[7]).usage.has_value());
  EXPECT_EQ(ReadEvent(events[10]).kind, EventKind::kContentWithUsage);
  EXPECT_EQ(ReadEvent(events[10]).usage->prompt_tokens, 10);
  EXPECT_EQ(ReadEvent(events[10]).usage->completion_tokens, 5);
  EXPECT_EQ(ReadEvent(events[11]).kind, EventKind::kUsageOnly);
  EXPECT_EQ(ReadEvent(events[11]).usage->prompt_tokens, 7);  // the last usage object
  // A stream is a chat completion's: usage without completion tokens is no usage.
  for (const char* event : {"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10}}\n\n",
                            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,"
                            "\"completion_tokens\":null}}\n\n"}) {
    EXPECT_FALSE(ReadEvent(event).usage.has_value()) << event;
  }
  EXPECT_EQ(ReadEvent(events[12]).kind, EventKind::kDone);

  // Not JSON, an escaped name, structure-like text inside strings: read alike.
  for (const std::string& event :
       {std::string("data: not json\n\n"),
        std::string("data: {\"cont\\u0065nt\":\"x\",\"usage\":{\"prompt_tokens\":1}}\n\n"),
        std::string("data: {\"content\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":9} ]}\"}\n\n")}) {
    SCOPED_TRACE(event);
    const auto scanned = internal::ScanEvent(event);
    ASSERT_TRUE(scanned.has_value());
    ExpectSameFacts(*scanned, internal::SearchEvent(event));
  }
  // Cut short (an unterminated string, an unterminated usage object): left to the searches.
  for (const std::string& event :
       {std::string("data: {\"choices\":[{\"delta\":{\"content\":\"abc\n\n"),
        std::string("data: {\"usage\":{\"prompt_tokens\":3\n\n")}) {
    SCOPED_TRACE(event);
    EXPECT_FALSE(internal::ScanEvent(event).has_value());
    ExpectSameFacts(ReadEvent(event), internal::SearchEvent(event));
  }

  // Numbers, literals and punctuation are skipped to the next quote through the quote index:
  // whatever their length, the text and members after them are found, and a completion
  // member's value that is not a string counts nothing, not even a string after it.
  for (size_t pad = 0; pad <= 40; ++pad) {
    std::string numbers;
    for (size_t i = 0; i < pad; ++i) numbers += i % 2 == 0 ? "7" : ",";
    const std::string event =
        "data: {\"n\":[" + numbers + "],\"created\":1" + numbers.substr(0, pad / 2) +
        ",\"choices\":[],\"delta\":{\"content\":\"Hello\",\"refusal\":null" +
        std::string(pad, ' ') + "},\"x\":[{\"content\":" + numbers + "0},\"ab\"]," +
        "\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":" + std::to_string(pad) +
        "}}\n\n";
    SCOPED_TRACE(event);
    const auto scanned = internal::ScanEvent(event);
    ASSERT_TRUE(scanned.has_value());
    EXPECT_EQ(scanned->completion_text_bytes, 5);
    EXPECT_EQ(scanned->kind, EventKind::kUsageOnly);
    ASSERT_TRUE(scanned->usage.has_value());
    EXPECT_EQ(scanned->usage->completion_tokens, static_cast<int64_t>(pad));
  }

  // Whatever the spacing, the lexer finds the text (the search needs `":"` unspaced).
  const std::string spaced =
      "data: { \"choices\" : [ ] , \"delta\": { \"content\" : \"Hello\" }, "
      "\"usage\" : { \"prompt_tokens\" : 2 } }\n\n";
  EXPECT_EQ(ReadEvent(spaced).completion_text_bytes, 5);
  EXPECT_EQ(ReadEvent(spaced).kind, EventKind::kUsageOnly);
  EXPECT_EQ(CompletionTextBytes(spaced), 0);
}

// A stream's events read with its EventShapes give what each gives read alone: the prefix is
// learned from the first event (its bytes up to the first name that can tell anything), and
// skipped only where an event begins with the same bytes.
TEST(OpenAiResponseTest, AStreamsEventPrefixChangesNoFacts) {
  const std::string head =
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
      R"("model":"gpt-4o","system_fingerprint":"fp_1",)";
  auto event = [](const std::string& payload) { return "data: " + payload + "\n\n"; };
  const std::vector<std::vector<std::string>> streams = {
      // OpenAI's shape: content chunks with a null usage, the usage chunk, [DONE].
      {event(head + R"("choices":[{"index":0,"delta":{"role":"assistant","content":""}}],)"
                    R"("usage":null})"),
       event(head + R"("choices":[{"index":0,"delta":{"content":"Hel\"lo"}}],"usage":null})"),
       event(head + R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}],)"
                    R"("usage":null})"),
       event(head + R"("choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}})"),
       "data: [DONE]\n\n"},
      // The same head with one byte changed, a usage first, a member that tells something
      // nested in a quiet one, an event cut short after the head, a payload of the head
      // alone.
      {event(head + R"("choices":[{"delta":{"content":"a"}}]})"),
       event(R"({"id":"chatcmpl-2")" + head.substr(18) +
             R"("choices":[{"delta":{"content":"bc"}}]})"),
       // As long as the head, with a name just where the head ends: a skip without the
       // comparison would miss the content.
       event([&] {
         std::string payload = R"({"choices":[{"delta":{"content":"abc"}}],"pad":")";
         payload += std::string(head.size() - payload.size() - 2, 'z') + "\",";
         return payload + R"("k":1})";
       }()),
       event(head + R"("usage":{"prompt_tokens":1},"choices":[]})"),
       event(head + R"("x":{"content":"hidden","usage":{"prompt_tokens":4}},"choices":[]})"),
       event(head + R"("choices":[{"delta":{"content":"cut)"),
       event(head.substr(0, head.size() - 1) + "}"),
       event(head + R"("content":"top"})")},
      // First events with nothing to tell (a comment, an event without such a member): the
      // prefix is learned from the first that has one.
      {": keep-alive\n\n", event(R"({"id":"1"})"),
       event(head + R"("choices":[{"delta":{"content":"x"}}]})"),
       event(head + R"("choices":[{"delta":{"content":"yz"}}]})")},
      // Not JSON: a name right after a string. Whether the string before it was a name would
      // depend on the byte after the prefix, so none is learned there.
      {event(R"({"content""choices":[]})"), event(R"({"content":"abc"})")},
      {event(R"({"id":"x","usage""choices":[]})"),
       event(R"({"id":"x","usage":{"prompt_tokens":5},"choices":[]})")},
      // A head longer than the prefix holds.
      {event(R"({"id":")" + std::string(300, 'x') + R"(","choices":[{"delta":{"content":"y"}}]})"),
       event(R"({"id":")" + std::string(300, 'x') + R"(","choices":[]})")},
  };
  for (const auto& stream : streams) ExpectStreamReadsAsItsEvents(stream);
  EventShapes shapes;
  ReadEvent(streams[0][0], &shapes);
  EXPECT_TRUE(shapes.prefix_learned());
  EXPECT_EQ(shapes.prefix(), head);
  EventShapes later;
  for (const std::string& text : streams[2]) ReadEvent(text, &later);
  EXPECT_TRUE(later.prefix_learned());
  EXPECT_EQ(later.prefix(), head);
  EventShapes none;
  ReadEvent(streams[3][0], &none);
  EXPECT_FALSE(none.prefix_learned());
}

// The same for the chunk shape: learned from an event with one completion string and no usage
// object, and used only for an event that is the same bytes around another string.
TEST(OpenAiResponseTest, AStreamsChunkShapeChangesNoFacts) {
  const std::string head =
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
      R"("model":"gpt-4o","choices":[{"index":0,"delta":{"content":")";
  const std::string tail = R"("},"finish_reason":null}],"usage":null})";
  auto event = [](const std::string& payload) { return "data: " + payload + "\n\n"; };
  auto chunk = [&](const std::string& text) { return event(head + text + tail); };
  const std::vector<std::vector<std::string>> streams = {
      // OpenAI's shape: the role chunk, content chunks (escapes, empty, across 64-byte
      // windows, a backslash last), the finish chunk, the usage chunk.
      {event(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
             R"("model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant",)"
             R"("content":""},"finish_reason":null}],"usage":null})"),
       chunk("Hel"), chunk(R"(lo \"you\")"), chunk(""), chunk(std::string(150, 'w')),
       chunk(R"(\\)"), chunk(R"(\u00e9\n)"),
       event(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
             R"("model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],)"
             R"("usage":null})"),
       event(R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,)"
             R"("model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3}})"),
       "data: [DONE]\n\n"},
      // The chunk's head, then bytes that are not its tail after the string: a usage object,
      // more bytes, the tail's text inside the string and a second string, a string cut short.
      // An escaped quote before the tail. A head as long but for another member.
      {chunk("a"), event(head + R"(b"}}],"usage":{"prompt_tokens":4},"choices":[]})"),
       event(head + "c" + tail + "x"), event(head + R"(d"}}],"content":"e)" + tail),
       event(head + "cut"), event(head + R"(f\")" + tail), chunk("g"),
       event(std::string(head).replace(head.rfind("content"), 7, "contenT") + "hij" + tail)},
      // Not learned from two completion strings, nor from one beside a usage object: the next
      // event, alike but for its last string, must be read whole.
      {event(R"({"choices":[{"delta":{"content":"a","reasoning":"b"}}]})"),
       event(R"({"choices":[{"delta":{"content":"a","reasoning":"bcd"}}]})")},
      {event(R"({"usage":{"prompt_tokens":1},"choices":[{"delta":{"content":"a"}}]})"),
       event(R"({"usage":{"prompt_tokens":1},"choices":[{"delta":{"content":"bb"}}]})")},
  };
  for (const auto& stream : streams) ExpectStreamReadsAsItsEvents(stream);

  EventShapes shapes;
  for (size_t i = 0; i < 3; ++i) ReadEvent(streams[0][i], &shapes);
  EXPECT_EQ(shapes.chunk_head(), head);
  EXPECT_EQ(shapes.chunk_tail(), tail);
  // The chunk is compared, not lexed, only where it is the same bytes around a string.
  EXPECT_TRUE(internal::MatchesChunk(chunk("other text"), shapes));
  EXPECT_TRUE(internal::MatchesChunk(chunk(R"(a\"b)"), shapes));
  EXPECT_FALSE(internal::MatchesChunk(event(head + "c" + tail + "x"), shapes));
  EXPECT_FALSE(internal::MatchesChunk(event(head + "cut"), shapes));
  EXPECT_FALSE(internal::MatchesChunk(event(head + R"(d"}}],"content":"e)" + tail), shapes));
  for (size_t i : {2u, 3u}) {
    EventShapes unlearned;
    for (const std::string& text : streams[i]) ReadEvent(text, &unlearned);
    EXPECT_TRUE(unlearned.chunk_head().empty()) << i;
  }
  // Up to the capacities around the string, learned; a byte more, not.
  auto head_of = [&](size_t size) {  // a payload whose head (to the string's quote) is `size`
    const std::string open = R"({"id":")";
    const std::string name = R"(","content":")";
    return event(open + std::string(size - open.size() - name.size(), 'x') + name + R"(a"})");
  };
  auto tail_of = [&](size_t size) {  // a payload whose tail (from the string's quote) is `size`
    const std::string first = R"({"content":"a)";
    const std::string id = R"(","id":")";
    return event(first + id + std::string(size - id.size() - 2, 'x') + R"("})");
  };
  for (const auto& [text, head_size, tail_size] :
       std::vector<std::tuple<std::string, size_t, size_t>>{
           {head_of(EventShapes::kChunkHeadCapacity), EventShapes::kChunkHeadCapacity, 2},
           {head_of(EventShapes::kChunkHeadCapacity + 1), 0, 0},
           {tail_of(EventShapes::kChunkTailCapacity), 12, EventShapes::kChunkTailCapacity},
           {tail_of(EventShapes::kChunkTailCapacity + 1), 0, 0}}) {
    EventShapes sized;
    ReadEvent(text, &sized);
    EXPECT_EQ(sized.chunk_head().size(), head_size) << text;
    EXPECT_EQ(sized.chunk_tail().size(), tail_size) << text;
  }
}

// Whatever an event's bytes (each replaced by a structural byte, dropped, or the event cut
// there), the lexer stays within them: its counts are bounded by the payload.
TEST(OpenAiResponseTest, EventLexerStaysWithinBrokenEvents) {
  const std::string event =
      "data: {\"choices\":[{\"delta\":{\"content\":\"a\\\"b\"}}],"
      "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
  const std::string replacements = "\"\\{}[]:, \n";
  auto check = [](const std::string& text) {
    const EventFacts facts = ReadEvent(text);
    EXPECT_GE(facts.completion_text_bytes, 0);
    EXPECT_LE(facts.completion_text_bytes, static_cast<int64_t>(text.size())) << text;
  };
  for (size_t i = 0; i < event.size(); ++i) {
    for (char c : replacements) {
      std::string text = event;
      text[i] = c;
      check(text);
    }
    check(std::string(event).erase(i, 1));
    check(event.substr(0, i));
  }
}

// A stream cut into reads at every point gives the same events as the stream whole, whether
// an event was pending (the copy) or not (events cut from the read itself).
TEST(OpenAiResponseTest, SplitterGivesTheSameEventsWhereverTheReadsEnd) {
  for (const std::string& stream :
       {std::string("data: {\"a\":1}\n\ndata: {\"b\":2}\n\n: note\n\ndata: [DONE]\n\n"),
        std::string("data: {\"a\":1}\r\n\r\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\r\n\r\n"),
        std::string("data: 1\r\rdata: 2\n\ndata: 3\r\n\r\n")}) {
    SseSplitter whole;
    const auto expected = FeedAll(whole, {stream});
    ASSERT_GE(expected.size(), 3u);
    for (size_t first = 0; first <= stream.size(); ++first) {
      for (size_t second = first; second <= stream.size(); second += 7) {
        SseSplitter split;
        const auto events = FeedAll(split, {stream.substr(0, first),
                                            stream.substr(first, second - first),
                                            stream.substr(second)});
        ASSERT_EQ(events, expected) << first << " " << second;
        EXPECT_TRUE(split.Pending().empty());
        EXPECT_EQ(split.bytes_fed(), stream.size());
      }
    }
  }
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

// SSE lets a payload span several data lines (joined by line feeds): a usage chunk sent so is
// still the usage chunk, and its usage is read.
TEST(OpenAiResponseTest, APayloadOnSeveralDataLinesIsReadWhole) {
  const std::string usage_event =
      "data: {\"id\":\"x\",\"choices\":[],\n"
      "data: \"usage\":{\"prompt_tokens\":10,\"completion_tokens\":20}}\n\n";
  EXPECT_EQ(JoinedEventData(usage_event),
            "{\"id\":\"x\",\"choices\":[],\n\"usage\":{\"prompt_tokens\":10,"
            "\"completion_tokens\":20}}");
  const EventFacts facts = ReadEvent(usage_event);
  EXPECT_EQ(facts.kind, EventKind::kUsageOnly);
  ASSERT_TRUE(facts.usage.has_value());
  EXPECT_EQ(facts.usage->prompt_tokens, 10);
  EXPECT_EQ(facts.usage->completion_tokens, 20);
  const EventFacts content =
      ReadEvent("data: {\"choices\":[{\"delta\":\ndata: {\"content\":\"hi\"}}]}\r\n\r\n");
  EXPECT_EQ(content.kind, EventKind::kContent);
  EXPECT_EQ(content.completion_text_bytes, 2);
  EXPECT_EQ(ReadEvent("event: ping\n\n").kind, EventKind::kContent);
  // An empty first data line is a line too.
  const EventFacts late = ReadEvent(
      "data:\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n");
  EXPECT_EQ(late.kind, EventKind::kUsageOnly);
  ASSERT_TRUE(late.usage.has_value());
  EXPECT_EQ(late.usage->completion_tokens, 4);
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

// Audit CC (session 22): the events were written from a parsed document, so 1e400 became
// `Infinity` (no client parses it) and big integers lost digits. They are the answer's own
// text now, whatever its spacing; escaped member names and repeated members read as a parser
// reads them (the last one); a tool call's own index kept.
TEST(AnswerAsEventsTest, TheEventsKeepTheAnswersNumbersAndTextAsWritten) {
  const std::string body = "{ \"id\" : \"c\", \"created\": 18446744073709551616,\n"
                           "  \"model\":\"m\", \"obj\\u0065ct\": \"chat.completion\",\n"
                           "  \"choices\": [ { \"message\": { \"role\": \"x\", \"role\": "
                           "\"assistant\", \"content\": \"a  b\\u00e9\", \"score\": 1e400,\n"
                           "  \"tool_calls\": [ {}, { \"index\": 7, \"id\": \"t\" }, 3 ] },\n"
                           "  \"logprobs\": { \"p\": [ -0.0, 1.0E+2 ] }, \"finish_reason\": "
                           "\"stop\" } ],\n  \"usage\": { \"prompt_tokens\": 1, \"cost\": 0.1 } }";
  const std::string head = R"(data: {"id":"c","created":18446744073709551616,"model":"m",)"
                           R"("object":"chat.completion.chunk","choices":)";
  EXPECT_EQ(AnswerAsEvents(body, true),
            head + R"([{"index":0,"delta":{"role":"assistant"},"logprobs":null,)"
                   R"("finish_reason":null}]})" "\n\n" +
                head + R"([{"index":0,"delta":{"content":"a  b\u00e9","score":1e400,)"
                       R"("tool_calls":[{"index":0},{"index":7,"id":"t"},3]},)"
                       R"("logprobs":{"p":[-0.0,1.0E+2]},"finish_reason":"stop"}]})" "\n\n" +
                head + R"([],"usage":{"prompt_tokens":1,"cost":0.1}})" "\n\n"
                       "data: [DONE]\n\n");
}

// A whole answer sent to a caller who asked to stream (audit M): the events a stream of it
// would have carried, a chunk per choice, its message as the delta, each tool call with its
// index, a choice without an index given its position.
TEST(AnswerAsEventsTest, AWholeCompletionBecomesTheStreamOfIt) {
  const std::string body =
      R"({"id":"c1","object":"chat.completion","created":7,"model":"m","choices":[)"
      R"({"index":0,"message":{"role":"assistant","content":"hi"},"logprobs":null,)"
      R"("finish_reason":"stop"},{"message":{"role":"assistant","content":null,)"
      R"("tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"}},)"
      R"({"id":"t2","type":"function","function":{"name":"g","arguments":"[]"}}]},)"
      R"("finish_reason":"tool_calls"}],"usage":{"prompt_tokens":3,"completion_tokens":4,)"
      R"("total_tokens":7}})";
  const std::string head =
      R"(data: {"id":"c1","created":7,"model":"m","object":"chat.completion.chunk","choices":)";
  const std::string role = R"("delta":{"role":"assistant"},"logprobs":null,"finish_reason":null}]})"
                           "\n\n";
  const std::string chunks =
      head + R"([{"index":0,)" + role + head +
      R"([{"index":0,"delta":{"content":"hi"},"logprobs":null,)"
      R"("finish_reason":"stop"}]})"
      "\n\n" +
      head + R"([{"index":1,)" + role + head +
      R"([{"index":1,"delta":{"content":null,)"
      R"("tool_calls":[{"id":"t1","type":"function","function":{"name":"f","arguments":"{}"},)"
      R"("index":0},{"id":"t2","type":"function","function":{"name":"g","arguments":"[]"},)"
      R"("index":1}]},"logprobs":null,"finish_reason":"tool_calls"}]})"
      "\n\n";
  EXPECT_EQ(AnswerAsEvents(body, false), chunks + "data: [DONE]\n\n");
  EXPECT_EQ(AnswerAsEvents(body, true),
            chunks + head +
                R"([],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})"
                "\n\ndata: [DONE]\n\n");
  // Logprobs go with the content, never with the opening chunk (the openai client's helper
  // would count them twice); a message without a role opens with an empty delta.
  const std::string logprobs = R"({"content":[{"token":"hi","logprob":-2}]})";
  const auto with_logprobs = AnswerAsEvents(
      R"({"object":"chat.completion","choices":[{"index":0,"message":{"content":"hi"},)"
      R"("logprobs":)" + logprobs + R"(,"finish_reason":"stop"}]})",
      false);
  ASSERT_TRUE(with_logprobs.has_value());
  EXPECT_EQ(*with_logprobs,
            R"(data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{},)"
            R"("logprobs":null,"finish_reason":null}]})"
            "\n\n"
            R"(data: {"object":"chat.completion.chunk","choices":[{"index":0,)"
            R"("delta":{"content":"hi"},"logprobs":)" + logprobs +
                R"(,"finish_reason":"stop"}]})"
                "\n\ndata: [DONE]\n\n");
  // An error in a 200: the one event a stream's error is, as written (its escapes too: the
  // search that follows decodes them, see DataPlaneTest's echoed keys), on one line.
  const std::string error = R"({"error":{"message":"overloaded","type":"server_error"}})";
  EXPECT_EQ(AnswerAsEvents(error, true), "data: " + error + "\n\n");
  EXPECT_EQ(AnswerAsEvents("{\n  \"error\": {\"message\": \"key \\u0073k-1 \\n x\"}\n}", false),
            "data: {\"error\":{\"message\":\"key \\u0073k-1 \\n x\"}}\n\n");
  // As text, whatever else it is (audit CC): printable ASCII escapes and \/ decoded where they
  // lie; a quote, a backslash, a control character, other characters and an escaped backslash
  // (and what follows it) as they are; a NaN, a cut escape, no JSON at all alike.
  EXPECT_EQ(TextEscapesDecoded(R"({"m":"\u0073\u006B-a\/b","p":NaN})"),
            R"({"m":"sk-a/b","p":NaN})");
  EXPECT_EQ(TextEscapesDecoded(R"(\u0022\u005c\u005C\u001f\u00e9\\u0073\\/\n)"),
            R"(\u0022\u005c\u005C\u001f\u00e9\\u0073\\/\n)");
  EXPECT_EQ(TextEscapesDecoded(R"(x\u007)"), R"(x\u007)");
  EXPECT_EQ(TextEscapesDecoded(R"(x\u00zz\u+073\)"), R"(x\u00zz\u+073\)");
  EXPECT_EQ(TextEscapesDecoded("not json \\u0041"), "not json A");
  // Events alike, whatever their lines (event:, data over several lines).
  EXPECT_EQ(TextEscapesDecoded("event: error\r\ndata: {\"m\":\n"
                               "data: \"\\u0073k\"}\r\n\r\n"),
            "event: error\r\ndata: {\"m\":\ndata: \"sk\"}\r\n\r\n");
  // Its status: 502, or its code when that is an HTTP error status (OpenRouter's shape).
  EXPECT_EQ(ErrorAnswerStatus(error), 502);
  EXPECT_EQ(ErrorAnswerStatus(R"({"error":{"code":429,"message":"slow down"}})"), 429);
  EXPECT_EQ(ErrorAnswerStatus(R"({"error":{"code":503.0}})"), 503);
  EXPECT_EQ(ErrorAnswerStatus(R"({"error":{"code":503},"usage":{"prompt_tokens":3}})"), 503);
  for (const char* code : {"200", "302", "600", "-1", "429.5", "1e300", "\"429\"", "null"}) {
    EXPECT_EQ(ErrorAnswerStatus(std::string(R"({"error":{"code":)") + code + "}}"), 502) << code;
  }
  EXPECT_EQ(ErrorAnswerStatus(R"({"error":"overloaded"})"), 502);
  EXPECT_EQ(ErrorAnswerStatus(body), std::nullopt);
  EXPECT_EQ(ErrorAnswerStatus(R"({"choices":[],"error":null})"), std::nullopt);
  EXPECT_EQ(ErrorAnswerStatus(R"({"object":"list","data":[],"error":null,"usage":{}})"),
            std::nullopt);  // an embedding answer (the review)
  // Anything else is relayed as it came.
  for (const char* other :
       {R"({"object":"list","data":[]})", "not json", "[]",
        R"({"object":"chat.completion","choices":{}})",
        R"({"object":"chat.completion","choices":[1]})"}) {
    EXPECT_EQ(AnswerAsEvents(other, true), std::nullopt) << other;
    EXPECT_EQ(ErrorAnswerStatus(other), std::nullopt) << other;
  }
}

}  // namespace
}  // namespace keygate::proxy
