#include "http/handler.h"

#include <gtest/gtest.h>

namespace keygate::http {
namespace {

Request WithHeaders(HeaderList headers) {
  Request request;
  request.headers = std::move(headers);
  return request;
}

TEST(ContentTypeTest, JsonUnlessSetFromALiteralOrACopiedValue) {
  Response response;
  EXPECT_EQ(response.content_type, "application/json");
  response.content_type = "text/plain";
  EXPECT_EQ(response.content_type, "text/plain");
  std::string upstream = "text/html; charset=utf-8";
  response.content_type = ContentType(upstream);
  upstream.assign(upstream.size(), 'x');  // the response holds its own copy
  Response copied = response;
  Response moved = std::move(response);
  EXPECT_EQ(copied.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(moved.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(std::string_view(moved.content_type), "text/html; charset=utf-8");
  moved.content_type.clear();
  EXPECT_TRUE(moved.content_type.empty());
}

TEST(ContentTypeTest, OfHoldsTheCommonTypesByReferenceAndCopiesTheRest) {
  for (const char* common : {"application/json", "text/event-stream",
                             "text/event-stream; charset=utf-8", "application/json; charset=utf-8"}) {
    std::string upstream = common;
    const ContentType type = ContentType::Of(upstream);
    EXPECT_EQ(type, common);
    // Held by reference: every answer of that type points at the same characters.
    EXPECT_EQ(type.view().data(), ContentType::Of(std::string(common)).view().data());
  }
  std::string upstream = "text/plain";
  const ContentType type = ContentType::Of(upstream);
  upstream.assign(upstream.size(), 'x');
  EXPECT_EQ(type, "text/plain");
}

TEST(RequestTest, HeaderIsFoundByLowerCaseName) {
  Request request = WithHeaders({{"content-type", "application/json"}, {"x-a", "1"}});
  EXPECT_EQ(request.Header("content-type"), "application/json");
  EXPECT_EQ(request.Header("x-a"), "1");
}

TEST(RequestTest, HeaderLookupIgnoresCase) {
  Request request = WithHeaders({{"X-Custom", "v"}});
  EXPECT_EQ(request.Header("x-custom"), "v");
  EXPECT_TRUE(request.HasHeader("x-custom"));
}

TEST(RequestTest, HeaderReturnsFirstOfRepeated) {
  Request request = WithHeaders({{"x-a", "first"}, {"x-a", "second"}});
  EXPECT_EQ(request.Header("x-a"), "first");
}

TEST(RequestTest, MissingHeaderIsEmptyAndAbsent) {
  Request request = WithHeaders({{"x-a", "1"}});
  EXPECT_EQ(request.Header("x-b"), "");
  EXPECT_FALSE(request.HasHeader("x-b"));
}

TEST(RequestTest, EmptyHeaderIsPresent) {
  Request request = WithHeaders({{"cookie", ""}});
  EXPECT_TRUE(request.HasHeader("cookie"));
  EXPECT_EQ(request.Header("cookie"), "");
}

TEST(RequestTest, PathParamByName) {
  Request request;
  request.path_params = {{"org", "acme"}, {"hash", "abc"}};
  EXPECT_EQ(request.PathParam("hash"), "abc");
  EXPECT_EQ(request.PathParam("org"), "acme");
  EXPECT_EQ(request.PathParam("missing"), "");
}

TEST(RequestTest, BearerTokenFromAuthorization) {
  EXPECT_EQ(WithHeaders({{"authorization", "Bearer sk-abc"}}).BearerToken(), "sk-abc");
}

TEST(RequestTest, BearerSchemeIsCaseInsensitive) {
  EXPECT_EQ(WithHeaders({{"authorization", "bearer sk-abc"}}).BearerToken(), "sk-abc");
  EXPECT_EQ(WithHeaders({{"authorization", "BEARER sk-abc"}}).BearerToken(), "sk-abc");
}

TEST(RequestTest, BearerTokenIsTrimmed) {
  EXPECT_EQ(WithHeaders({{"authorization", "  Bearer    sk-abc  "}}).BearerToken(), "sk-abc");
  EXPECT_EQ(WithHeaders({{"authorization", "Bearer\tsk-abc\t"}}).BearerToken(), "sk-abc");
}

TEST(RequestTest, BearerTokenEmptyForOtherSchemesOrMalformedValues) {
  EXPECT_EQ(WithHeaders({}).BearerToken(), "");
  EXPECT_EQ(WithHeaders({{"authorization", "Basic dXNlcjpwYXNz"}}).BearerToken(), "");
  EXPECT_EQ(WithHeaders({{"authorization", "Bearer"}}).BearerToken(), "");
  EXPECT_EQ(WithHeaders({{"authorization", "Bearer   "}}).BearerToken(), "");
  EXPECT_EQ(WithHeaders({{"authorization", "Bearersk-abc"}}).BearerToken(), "");
  EXPECT_EQ(WithHeaders({{"authorization", ""}}).BearerToken(), "");
}

}  // namespace
}  // namespace keygate::http
