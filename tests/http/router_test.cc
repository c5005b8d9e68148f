#include "http/router.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <stdexcept>
#include <string>

namespace keygate::http {
namespace {

class RouterTest : public ::testing::Test {
 protected:
  // A handler that records which route ran.
  Handler Named(std::string name) {
    return [this, name](Request&, std::shared_ptr<Responder>) { hit_ = name; };
  }

  // Matches and runs the handler; returns the route name, or "" if nothing matched.
  std::string Run(std::string_view method, std::string_view path, RouteMatch* out = nullptr) {
    hit_.clear();
    RouteMatch match = router_.Match(method, path);
    if (match.ok()) {
      Request request;
      (*match.handler)(request, nullptr);
    }
    if (out != nullptr) *out = std::move(match);
    return hit_;
  }

  static std::string Param(const RouteMatch& match, const std::string& name) {
    for (const auto& [key, value] : match.path_params) {
      if (key == name) return value;
    }
    return "<absent>";
  }

  static boost::json::object ErrorOf(const RouteMatch& match) {
    return boost::json::parse(match.rejection.body).as_object().at("error").as_object();
  }

  Router router_;
  std::string hit_;
};

TEST_F(RouterTest, MatchesLiteralPath) {
  router_.Add("POST", "/prod/createServiceKey", Named("create"));
  EXPECT_EQ(Run("POST", "/prod/createServiceKey"), "create");
  EXPECT_EQ(Run("POST", "/prod/createservicekey"), "");  // paths are case-sensitive
}

TEST_F(RouterTest, MatchesRootPath) {
  router_.Add("GET", "/", Named("root"));
  EXPECT_EQ(Run("GET", "/"), "root");
  EXPECT_EQ(Run("GET", "/x"), "");
}

TEST_F(RouterTest, CapturesParams) {
  router_.Add("GET", "/orgs/{org}/keys/{hash}", Named("key"));
  RouteMatch match;
  EXPECT_EQ(Run("GET", "/orgs/acme/keys/abc123", &match), "key");
  ASSERT_EQ(match.path_params.size(), 2u);
  EXPECT_EQ(Param(match, "org"), "acme");
  EXPECT_EQ(Param(match, "hash"), "abc123");
}

TEST_F(RouterTest, DecodesEachSegmentAfterSplitting) {
  router_.Add("GET", "/api/v1/keys/{hash}", Named("key"));
  RouteMatch match;
  EXPECT_EQ(Run("GET", "/api/v1/keys/a%2Fb%20c", &match), "key");
  EXPECT_EQ(Param(match, "hash"), "a/b c");
  // An encoded slash never splits: this is one segment, not two.
  EXPECT_EQ(Run("GET", "/api/v1%2Fkeys/x"), "");
}

TEST_F(RouterTest, DecodedLiteralMatches) {
  router_.Add("GET", "/api/v1/keys", Named("list"));
  EXPECT_EQ(Run("GET", "/api/v1/%6Beys"), "list");
}

TEST_F(RouterTest, PlusIsNotASpaceInPaths) {
  router_.Add("GET", "/items/{id}", Named("item"));
  RouteMatch match;
  Run("GET", "/items/a+b", &match);
  EXPECT_EQ(Param(match, "id"), "a+b");
}

TEST_F(RouterTest, LiteralSegmentBeatsParamWhicheverIsAddedFirst) {
  router_.Add("GET", "/keys/{hash}", Named("param"));
  router_.Add("GET", "/keys/current", Named("literal"));
  router_.Add("GET", "/a/b", Named("ab"));
  router_.Add("GET", "/{x}/b", Named("xb"));
  EXPECT_EQ(Run("GET", "/keys/current"), "literal");
  EXPECT_EQ(Run("GET", "/keys/other"), "param");
  EXPECT_EQ(Run("GET", "/a/b"), "ab");
  EXPECT_EQ(Run("GET", "/z/b"), "xb");
}

TEST_F(RouterTest, EarlierLiteralSegmentDecides) {
  router_.Add("GET", "/{a}/x", Named("param-first"));
  router_.Add("GET", "/v/{b}", Named("literal-first"));
  EXPECT_EQ(Run("GET", "/v/x"), "literal-first");
}

TEST_F(RouterTest, MoreSpecificPatternOnlyWinsForItsMethods) {
  router_.Add("GET", "/keys/current", Named("current"));
  router_.Add("DELETE", "/keys/{hash}", Named("delete"));
  RouteMatch match;
  EXPECT_EQ(Run("DELETE", "/keys/current", &match), "delete");
  EXPECT_EQ(Param(match, "hash"), "current");
}

TEST_F(RouterTest, ToleratesOneTrailingSlash) {
  router_.Add("GET", "/api/v1/keys", Named("list"));
  router_.Add("GET", "/api/v1/keys/{hash}", Named("get"));
  EXPECT_EQ(Run("GET", "/api/v1/keys/"), "list");
  RouteMatch match;
  EXPECT_EQ(Run("GET", "/api/v1/keys/abc/", &match), "get");
  EXPECT_EQ(Param(match, "hash"), "abc");
  EXPECT_EQ(Run("GET", "/api/v1/keys//"), "");
}

TEST_F(RouterTest, ParamNeverMatchesEmptySegment) {
  router_.Add("GET", "/a/{x}/b", Named("axb"));
  EXPECT_EQ(Run("GET", "/a//b"), "");
}

TEST_F(RouterTest, UnknownPathIs404InOpenAiShape) {
  router_.Add("GET", "/hello", Named("hello"));
  RouteMatch match;
  EXPECT_EQ(Run("GET", "/nope", &match), "");
  EXPECT_FALSE(match.ok());
  EXPECT_EQ(match.rejection.status, 404);
  EXPECT_EQ(match.rejection.content_type, "application/json");
  boost::json::object error = ErrorOf(match);
  EXPECT_EQ(error.at("code").as_string(), "not_found");
  EXPECT_EQ(error.at("type").as_string(), "invalid_request_error");
  EXPECT_TRUE(error.at("param").is_null());
  EXPECT_NE(std::string(error.at("message").as_string()).find("/nope"), std::string::npos);
}

TEST_F(RouterTest, PathWithoutLeadingSlashIs404) {
  router_.Add("GET", "/hello", Named("hello"));
  RouteMatch match;
  Run("GET", "hello", &match);
  EXPECT_EQ(match.rejection.status, 404);
  Run("GET", "", &match);
  EXPECT_EQ(match.rejection.status, 404);
}

TEST_F(RouterTest, WrongMethodIs405WithAllow) {
  router_.Add("GET", "/keys/{hash}", Named("get"));
  router_.Add("PATCH", "/keys/{hash}", Named("patch"));
  router_.Add("POST", "/keys/current", Named("post"));
  RouteMatch match;
  EXPECT_EQ(Run("PUT", "/keys/current", &match), "");
  EXPECT_EQ(match.rejection.status, 405);
  ASSERT_EQ(match.rejection.headers.size(), 1u);
  EXPECT_EQ(match.rejection.headers[0].first, "allow");
  EXPECT_EQ(match.rejection.headers[0].second, "GET, HEAD, PATCH, POST");
  boost::json::object error = ErrorOf(match);
  EXPECT_EQ(error.at("code").as_string(), "method_not_allowed");
  EXPECT_EQ(error.at("type").as_string(), "invalid_request_error");
}

// A renderer that names itself and the error's code and status: {"by":..,"code":..,"status":..}.
ErrorRenderer Renderer(std::string name) {
  return [name](const Error& error) {
    const int status = HttpStatusFor(error.code);
    boost::json::object body{{"by", name}, {"status", status}, {"message", error.message}};
    Response response;
    response.status = status;
    response.body = boost::json::serialize(body);
    return response;
  };
}

TEST_F(RouterTest, RejectionsTakeTheRendererOfTheLongestMatchingPrefix) {
  router_.Add("GET", "/api/v1/keys", Named("keys"));
  router_.Add("GET", "/api/owner/keys", Named("owner"));
  router_.SetErrorRenderer("/api/", Renderer("api"));
  router_.SetErrorRenderer("/api/owner/", Renderer("owner"));
  auto by = [](const RouteMatch& match) {
    const boost::json::object body = boost::json::parse(match.rejection.body).as_object();
    return body.contains("by") ? std::string(body.at("by").as_string()) : std::string("openai");
  };
  RouteMatch match;
  Run("GET", "/api/v1/nope", &match);
  EXPECT_EQ(match.rejection.status, 404);
  EXPECT_EQ(by(match), "api");
  Run("GET", "/api/owner/nope", &match);
  EXPECT_EQ(by(match), "owner");
  Run("GET", "/api/v1/keys/%zz", &match);
  EXPECT_EQ(match.rejection.status, 400);
  EXPECT_EQ(by(match), "api");
  // A 405 keeps its Allow header whoever renders its body.
  Run("DELETE", "/api/owner/keys", &match);
  EXPECT_EQ(match.rejection.status, 405);
  EXPECT_EQ(by(match), "owner");
  ASSERT_EQ(match.rejection.headers.size(), 1u);
  EXPECT_EQ(match.rejection.headers[0].first, "allow");
  EXPECT_EQ(match.rejection.headers[0].second, "GET, HEAD");
  // Outside every prefix (and "/api" itself, without the prefix's slash): OpenAI's shape.
  Run("GET", "/other", &match);
  EXPECT_EQ(by(match), "openai");
  EXPECT_EQ(ErrorOf(match).at("code").as_string(), "not_found");
  Run("GET", "/api", &match);
  EXPECT_EQ(by(match), "openai");

  EXPECT_EQ(router_.ErrorRendererFor("/elsewhere"), nullptr);
  ASSERT_NE(router_.ErrorRendererFor("/api/owner/x"), nullptr);
  const Response rendered = router_.RenderError("/api/owner/x", Error::Internal("boom"));
  EXPECT_EQ(rendered.status, 500);
  EXPECT_NE(rendered.body.find(R"("by":"owner")"), std::string::npos);
}

TEST_F(RouterTest, AKeyInAQuotedPathIsMasked) {
  router_.Add("GET", "/keys/{hash}", Named("get"));
  router_.SetSecretPrefixes({"sk-kg-", "ok-kg-"});
  RouteMatch match;
  Run("GET", "/nope/ok-kg-0123456789abcdefXYZW", &match);
  EXPECT_EQ(match.rejection.status, 404);
  EXPECT_EQ(match.rejection.body.find("0123456789abcdef"), std::string::npos)
      << match.rejection.body;
  EXPECT_NE(match.rejection.body.find("ok-kg-••••XYZW"), std::string::npos)
      << match.rejection.body;
  Run("GET", "/nope/sk%2Dkg%2D0123456789abcdefXYZW", &match);  // escapes hide no key
  EXPECT_EQ(match.rejection.body.find("0123456789abcdef"), std::string::npos)
      << match.rejection.body;
  Run("DELETE", "/keys/sk-kg-0123456789abcdefXYZW", &match);
  EXPECT_EQ(match.rejection.status, 405);
  EXPECT_EQ(match.rejection.body.find("0123456789abcdef"), std::string::npos)
      << match.rejection.body;
}

TEST_F(RouterTest, SetErrorRendererRejectsBadOrRepeatedPrefixes) {
  EXPECT_THROW(router_.SetErrorRenderer("", Renderer("x")), std::invalid_argument);
  EXPECT_THROW(router_.SetErrorRenderer("api/", Renderer("x")), std::invalid_argument);
  router_.SetErrorRenderer("/v2/", Renderer("x"));
  EXPECT_THROW(router_.SetErrorRenderer("/v2/", Renderer("y")), std::invalid_argument);
}

TEST_F(RouterTest, MethodsAreCaseSensitive) {
  router_.Add("GET", "/hello", Named("hello"));
  RouteMatch match;
  Run("get", "/hello", &match);
  EXPECT_EQ(match.rejection.status, 405);
}

TEST_F(RouterTest, HeadUsesGetHandler) {
  router_.Add("GET", "/hello", Named("get"));
  EXPECT_EQ(Run("HEAD", "/hello"), "get");
  router_.Add("HEAD", "/hello", Named("head"));
  EXPECT_EQ(Run("HEAD", "/hello"), "head");
}

TEST_F(RouterTest, MalformedPercentEncodingIs400) {
  router_.Add("GET", "/items/{id}", Named("item"));
  for (const char* path : {"/items/%zz", "/items/%4", "/items/abc%"}) {
    RouteMatch match;
    EXPECT_EQ(Run("GET", path, &match), "") << path;
    EXPECT_EQ(match.rejection.status, 400) << path;
  }
}

TEST_F(RouterTest, ReportsExecution) {
  router_.Add("GET", "/healthz", Named("health"), Execution::kInline);
  router_.Add("GET", "/keys", Named("keys"));
  EXPECT_EQ(router_.Match("GET", "/healthz").execution, Execution::kInline);
  EXPECT_EQ(router_.Match("GET", "/keys").execution, Execution::kBlocking);
}

TEST_F(RouterTest, SamePatternDifferentMethodsShareShape) {
  router_.Add("GET", "/keys/{hash}", Named("get"));
  router_.Add("DELETE", "/keys/{id}", Named("delete"));
  EXPECT_EQ(router_.size(), 1u);
  RouteMatch match;
  EXPECT_EQ(Run("DELETE", "/keys/k1", &match), "delete");
  EXPECT_EQ(Param(match, "id"), "k1");
  EXPECT_EQ(Run("GET", "/keys/k1", &match), "get");
  EXPECT_EQ(Param(match, "hash"), "k1");
}

TEST_F(RouterTest, AddRejectsBadPatterns) {
  auto noop = [](Request&, std::shared_ptr<Responder>) {};
  EXPECT_THROW(router_.Add("GET", "keys", noop), std::invalid_argument);
  EXPECT_THROW(router_.Add("GET", "", noop), std::invalid_argument);
  EXPECT_THROW(router_.Add("GET", "/keys/{}", noop), std::invalid_argument);
  EXPECT_THROW(router_.Add("GET", "/keys/a{x}", noop), std::invalid_argument);
  EXPECT_THROW(router_.Add("GET", "/keys/{x}{y}", noop), std::invalid_argument);
  EXPECT_THROW(router_.Add("GET", "/a/{x}/{x}", noop), std::invalid_argument);
  EXPECT_THROW(router_.Add("GET", "/a//b", noop), std::invalid_argument);
  EXPECT_THROW(router_.Add("", "/a", noop), std::invalid_argument);
}

TEST_F(RouterTest, AddRejectsDuplicateRoute) {
  auto noop = [](Request&, std::shared_ptr<Responder>) {};
  router_.Add("GET", "/keys/{hash}", noop);
  EXPECT_THROW(router_.Add("GET", "/keys/{other}", noop), std::invalid_argument);
  EXPECT_NO_THROW(router_.Add("POST", "/keys/{other}", noop));
}

TEST(PercentDecodeTest, DecodesEscapes) {
  EXPECT_EQ(PercentDecode("a%20b%2f%2F"), "a b//");
  EXPECT_EQ(PercentDecode(""), "");
  EXPECT_EQ(PercentDecode("%41%62"), "Ab");
  EXPECT_FALSE(PercentDecode("%").has_value());
  EXPECT_FALSE(PercentDecode("%g0").has_value());
  EXPECT_FALSE(PercentDecode("ab%1").has_value());
}

}  // namespace
}  // namespace keygate::http
