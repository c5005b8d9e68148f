// RequestParser: what Beast's basic_parser finds lands in a keygate Request.
#include "http/request_parser.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <string>
#include <string_view>

namespace keygate::http::internal {
namespace {

namespace bhttp = boost::beast::http;

// Feeds `bytes` to `parser` one byte at a time when `bytewise` (every split point), else
// whole; returns the first error other than need_more, and how many bytes were taken.
boost::beast::error_code Feed(RequestParser& parser, std::string_view bytes, bool bytewise,
                              size_t* used_out = nullptr) {
  parser.eager(true);
  std::string pending;
  size_t used_total = 0;
  for (size_t i = 0; i < bytes.size() && !parser.is_done();) {
    const size_t take = bytewise ? 1 : bytes.size() - i;
    pending.append(bytes.substr(i, take));
    i += take;
    boost::beast::error_code ec;
    const size_t used = parser.put(boost::asio::buffer(pending), ec);
    pending.erase(0, used);
    used_total += used;
    if (ec == bhttp::error::need_more) continue;
    if (ec) return ec;
  }
  if (used_out != nullptr) *used_out = used_total;
  return {};
}

class RequestParserTest : public ::testing::TestWithParam<bool> {};

TEST_P(RequestParserTest, MethodTargetLowerCasedHeadersAndBodyLandInTheRequest) {
  RequestParser parser;
  const std::string text =
      "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer sk-abc\r\n"
      "Content-Type: application/json\r\nX-Request-ID: Mixed-Case-Value\r\n"
      "Content-Length: 11\r\n\r\n{\"a\":\"b c\"}";
  ASSERT_FALSE(Feed(parser, text, GetParam()));
  ASSERT_TRUE(parser.is_done());
  EXPECT_EQ(parser.verb(), bhttp::verb::post);
  EXPECT_EQ(parser.version(), 11);
  EXPECT_TRUE(parser.keep_alive());
  Request request = parser.TakeRequest();
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(parser.target(), "/v1/chat/completions?x=1");
  const HeaderList expected = {{"host", "gw"},
                               {"authorization", "Bearer sk-abc"},
                               {"content-type", "application/json"},
                               {"x-request-id", "Mixed-Case-Value"},
                               {"content-length", "11"}};
  EXPECT_EQ(request.headers, expected);
  EXPECT_EQ(request.BearerToken(), "sk-abc");
  EXPECT_EQ(request.body, "{\"a\":\"b c\"}");
}

TEST_P(RequestParserTest, AChunkedBodyIsDechunked) {
  RequestParser parser;
  const std::string text =
      "PUT /x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nabcd\r\n10;ext=1\r\n0123456789abcdef\r\n0\r\nTrailer-Field: t\r\n\r\n";
  ASSERT_FALSE(Feed(parser, text, GetParam()));
  ASSERT_TRUE(parser.is_done());
  EXPECT_EQ(parser.request().body, "abcd0123456789abcdef");
  EXPECT_EQ(parser.request().method, "PUT");
}

TEST_P(RequestParserTest, HeadAndHttp10AreReported) {
  RequestParser parser;
  ASSERT_FALSE(Feed(parser, "HEAD /v1/models HTTP/1.0\r\nHost: gw\r\n\r\n", GetParam()));
  ASSERT_TRUE(parser.is_done());
  EXPECT_EQ(parser.verb(), bhttp::verb::head);
  EXPECT_EQ(parser.version(), 10);
  EXPECT_FALSE(parser.keep_alive());
  EXPECT_TRUE(parser.request().body.empty());

  RequestParser closing;
  ASSERT_FALSE(Feed(closing, "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", GetParam()));
  EXPECT_FALSE(closing.keep_alive());
}

TEST_P(RequestParserTest, LimitsAndBadSyntaxAreErrors) {
  RequestParser too_long;
  too_long.body_limit(4);
  EXPECT_EQ(Feed(too_long, "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde", GetParam()),
            bhttp::error::body_limit);

  RequestParser too_long_chunked;
  too_long_chunked.body_limit(4);
  EXPECT_EQ(Feed(too_long_chunked,
                 "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
                 GetParam()),
            bhttp::error::body_limit);

  RequestParser big_head;
  big_head.header_limit(64);
  EXPECT_EQ(Feed(big_head, "GET / HTTP/1.1\r\nX-Filler: " + std::string(100, 'f') + "\r\n\r\n",
                 GetParam()),
            bhttp::error::header_limit);

  RequestParser bad_name;
  EXPECT_TRUE(Feed(bad_name, "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", GetParam()));

  RequestParser two_lengths;
  EXPECT_TRUE(Feed(two_lengths,
                   "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                   GetParam()));
}

TEST_P(RequestParserTest, StopsAtTheEndOfTheFirstOfTwoPipelinedRequests) {
  RequestParser parser;
  const std::string first = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz";
  size_t used = 0;
  ASSERT_FALSE(Feed(parser, first + "GET /b HTTP/1.1\r\n\r\n", GetParam(), &used));
  ASSERT_TRUE(parser.is_done());
  EXPECT_EQ(used, first.size());
  EXPECT_EQ(parser.target(), "/a");
  EXPECT_EQ(parser.request().body, "xyz");
}

INSTANTIATE_TEST_SUITE_P(WholeAndBytewise, RequestParserTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("Bytewise") : std::string("Whole");
                         });

}  // namespace
}  // namespace keygate::http::internal
