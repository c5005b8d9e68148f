// The message scanner against Beast's parser: what the scanner accepts, Beast's parser accepts
// and reads alike (method, target, status, fields, body, keep-alive, length), and every shape
// the scanner does not know is left to Beast's parser.
#include "http/message_scan.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "http/request_parser.h"

namespace keygate::http {
namespace {

namespace bhttp = boost::beast::http;

constexpr size_t kHeadLimit = 1024;
constexpr uint64_t kBodyLimit = 64;
constexpr ScanLimits kLimits{kHeadLimit, kBodyLimit};

// A message as either parser reads it: names lower-cased.
struct Reading {
  std::string method;
  std::string target;
  int status = 0;
  int version = 0;
  bool keep_alive = false;
  std::vector<std::pair<std::string, std::string>> fields;
  std::string body;
  size_t size = 0;

  bool operator==(const Reading&) const = default;
};

std::ostream& operator<<(std::ostream& out, const Reading& r) {
  out << r.method << " " << r.target << " " << r.status << " v" << r.version
      << (r.keep_alive ? " keep-alive" : " close") << " size " << r.size << " [";
  for (const auto& [name, value] : r.fields) out << name << "=" << value << ";";
  return out << "] body " << r.body;
}

std::optional<Reading> Scanned(std::string_view bytes, bool request) {
  ScannedMessage scanned;
  const bool ok = request ? ScanRequest(bytes, kLimits, &scanned)
                          : ScanResponse(bytes, kLimits, &scanned);
  if (!ok) return std::nullopt;
  Reading r{std::string(scanned.method), std::string(scanned.target), scanned.status,
            scanned.version, scanned.keep_alive, {}, std::string(scanned.body), scanned.size};
  for (const ScannedField& field : scanned.fields()) {
    r.fields.emplace_back(AsciiLowered(field.name), std::string(field.value));
  }
  return r;
}

// Beast's reading of the request at the start of `bytes`, by the session's own Beast parser,
// or nullopt if it refuses it or needs more.
std::optional<Reading> RequestByBeast(std::string_view bytes) {
  internal::RequestParser parser;
  parser.header_limit(kHeadLimit);
  parser.body_limit(kBodyLimit);
  size_t used = 0;
  while (!parser.is_done()) {
    boost::beast::error_code ec;
    const size_t n = parser.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    used += n;
    if (ec || n == 0) return std::nullopt;
  }
  const int version = parser.version();
  const bool keep_alive = parser.keep_alive();
  Request request = parser.TakeRequest();
  return Reading{request.method, parser.target(), 0, version, keep_alive, request.headers,
                 request.body, used};
}

std::optional<Reading> ResponseByBeast(std::string_view bytes) {
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(kHeadLimit);
  parser.body_limit(kBodyLimit);
  parser.eager(true);
  boost::beast::error_code ec;
  const size_t used = parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec || !parser.is_done()) return std::nullopt;
  const auto& message = parser.get();
  Reading r{"", "", static_cast<int>(message.result_int()), static_cast<int>(message.version()),
            parser.keep_alive(), {}, message.body(), used};
  for (const auto& field : message) {
    r.fields.emplace_back(AsciiLowered(field.name_string()), std::string(field.value()));
  }
  return r;
}

std::optional<Reading> ByBeast(std::string_view bytes, bool request) {
  return request ? RequestByBeast(bytes) : ResponseByBeast(bytes);
}

// Each of `texts` is accepted by both parsers and read alike.
void ExpectReadAlike(const std::vector<std::string>& texts, bool request) {
  for (const std::string& text : texts) {
    SCOPED_TRACE(text);
    const auto scanned = Scanned(text, request);
    const auto beast = ByBeast(text, request);
    ASSERT_TRUE(scanned.has_value());
    ASSERT_TRUE(beast.has_value());
    EXPECT_EQ(*scanned, *beast);
  }
}

const std::string kRequest =
    "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    "Authorization: Bearer sk-kg-0123456789abcdefghijABCDEFGHIJ0123456789\r\n"
    "Content-Type: application/json\r\nX-Tabs: a\tlonger value\twith\ttabs in it\r\n"
    "X-Trace:  a b\t c \t\r\nEmpty:\r\nContent-Length: 13\r\n\r\n{\"model\":\"m\"}";

const std::string kResponse =
    "HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Sun, 06 Dec 2026 09:00:00 GMT\r\n"
    "Content-Type: application/json\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n"
    "{\"id\":\"x\"}";

TEST(MessageScanTest, CommonRequestsReadAsBeastReadsThem) {
  const std::vector<std::string> requests = {
      kRequest,
      kRequest + "GET /next HTTP/1.1\r\n\r\n",  // pipelined: only the first is taken
      "GET /v1/models HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer k\r\n\r\n",
      "GET / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "POST /x HTTP/1.1\r\nconnection: CLOSE\r\ncontent-length: 0\r\n\r\n",
      "DELETE /api/v1/keys/abc HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
      "HEAD /x HTTP/1.1\r\nContent-Length: 007\r\n\r\n1234567",
  };
  ExpectReadAlike(requests, true);
  const auto first = Scanned(requests[1], true);
  EXPECT_EQ(first->size, kRequest.size());
  EXPECT_EQ(first->body, "{\"model\":\"m\"}");
  EXPECT_EQ(first->fields[4], (std::pair<std::string, std::string>{"x-trace", "a b\t c"}));
  EXPECT_EQ(first->fields[5], (std::pair<std::string, std::string>{"empty", ""}));
  EXPECT_FALSE(Scanned(requests[5], true)->keep_alive);
  EXPECT_TRUE(Scanned(requests[4], true)->keep_alive);
  EXPECT_FALSE(Scanned(requests[6], true)->keep_alive);
}

TEST(MessageScanTest, CommonAnswersReadAsBeastReadsThem) {
  const std::vector<std::string> answers = {
      kResponse,
      "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\n{}",
      "HTTP/1.1 500 \r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\ndata:extra bytes after",
  };
  ExpectReadAlike(answers, false);
  EXPECT_EQ(Scanned(answers[1], false)->status, 429);
  EXPECT_FALSE(Scanned(answers[2], false)->keep_alive);
  EXPECT_EQ(Scanned(answers[3], false)->body, "data:");
}

TEST(MessageScanTest, NamesAreLowerCasedWhereTheyLie) {
  std::string bytes = kResponse;
  ScannedMessage message;
  ASSERT_TRUE(ScanResponse(bytes, {1024, 1024}, &message));
  LowerFieldNamesInPlace(bytes.data(), message);
  EXPECT_EQ(bytes,
            "HTTP/1.1 200 OK\r\nserver: nginx\r\ndate: Sun, 06 Dec 2026 09:00:00 GMT\r\n"
            "content-type: application/json\r\ncontent-length: 10\r\nconnection: keep-alive\r\n"
            "\r\n{\"id\":\"x\"}");
  ASSERT_EQ(message.field_count, 5u);
  EXPECT_EQ(message.fields()[2].name, "content-type");
  EXPECT_EQ(message.fields()[2].value, "application/json");
}

TEST(MessageScanTest, LeavesEveryOtherShapeToBeast) {
  const std::string head = "POST / HTTP/1.1\r\n";
  const std::vector<std::string> requests = {
      "",
      "POST / HTTP/1.1\r\nHost: h\r\n",                           // head not whole
      head + "Content-Length: 5\r\n\r\nabc",                      // body not whole
      head + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      head + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",  // repeated length
      head + "Content-Length: 3, 3\r\n\r\nabc",
      head + "Content-Length: +3\r\n\r\nabc",
      head + "Content-Length: 65\r\n\r\n" + std::string(65, 'x'),  // over the body limit
      head + "X-Long: " + std::string(kHeadLimit, 'a') + "\r\n\r\n",  // over the head limit
      head + "X-Fold: a\r\n b\r\n\r\n",                                // obs-fold
      head + "X-Bare: a\nX-Next: b\r\n\r\n",                           // bare LF
      head + "X-Text: caf\xc3\xa9\r\n\r\n",                            // obs-text
      head + "X-Del: a\x7f\r\n\r\n",
      head + "X-Nul: a" + std::string(1, '\0') + "b\r\n\r\n",
      head + "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      head + "Connection: keep-alive, Upgrade\r\n\r\n",
      head + "Proxy-Connection: close\r\n\r\n",
      head + "Expect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
      head + "X-Space : a\r\n\r\n",
      head + ": a\r\n\r\n",
      "POST / HTTP/2.0\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\n\r\n",
      "GET  / HTTP/1.1\r\n\r\n",
      "GET /\xff HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1 \r\n\r\n",
  };
  for (const std::string& text : requests) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(Scanned(text, true).has_value());
  }
  // The head's limit: Beast's parser decides a head of the limit's size or more.
  const std::string base = "GET / HTTP/1.1\r\nX-Pad: \r\n\r\n";
  const std::string at_limit = "GET / HTTP/1.1\r\nX-Pad: " +
                               std::string(kHeadLimit - base.size(), 'p') + "\r\n\r\n";
  ASSERT_EQ(at_limit.size(), kHeadLimit);
  EXPECT_FALSE(Scanned(at_limit, true).has_value());
  const std::string under_limit = std::string(at_limit).erase(30, 1);
  ASSERT_TRUE(Scanned(under_limit, true).has_value());
  EXPECT_EQ(*Scanned(under_limit, true), *RequestByBeast(under_limit));

  std::string many = head;
  for (size_t i = 0; i <= ScannedMessage::kMaxFields; ++i) many += "X: 1\r\n";
  EXPECT_FALSE(Scanned(many + "\r\n", true).has_value());
  EXPECT_TRUE(RequestByBeast(many + "\r\n").has_value());

  const std::vector<std::string> answers = {
      "HTTP/1.1 204 No Content\r\n\r\n",
      "HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n",
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\n\r\nuntil the end",                     // no length
      "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{}",            // body not whole
      "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 600 OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
  };
  for (const std::string& text : answers) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(Scanned(text, false).has_value());
  }
}

// Every byte of a request and an answer replaced by others, dropped, or doubled: whenever the
// scanner still accepts the message, Beast's parser accepts it too and reads the same.
TEST(MessageScanTest, NeverAcceptsWhatBeastRefusesOrReadsItDifferently) {
  const std::string replacements("\0\t\n\r :,\"\x7f\x80\xff" "a0-", 15);
  for (const bool request : {true, false}) {
    const std::string& original = request ? kRequest : kResponse;
    ASSERT_TRUE(Scanned(original, request).has_value());
    int accepted = 0;
    auto check = [&](const std::string& text) {
      const auto scanned = Scanned(text, request);
      if (!scanned) return;
      ++accepted;
      const auto beast = ByBeast(text, request);
      ASSERT_TRUE(beast.has_value()) << testing::PrintToString(text);
      EXPECT_EQ(*scanned, *beast) << testing::PrintToString(text);
    };
    for (size_t i = 0; i < original.size(); ++i) {
      for (char c : replacements) {
        std::string text = original;
        text[i] = c;
        check(text);
      }
      check(std::string(original).erase(i, 1));
      check(std::string(original).insert(i, 1, original[i]));
      check(original.substr(0, i));
    }
    EXPECT_GT(accepted, 100);  // the mutations do reach the scanner's accepting paths
  }
}

}  // namespace
}  // namespace keygate::http
