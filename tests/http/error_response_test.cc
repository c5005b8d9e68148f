#include "http/error_response.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace keygate::http {
namespace {

boost::json::object ErrorObject(const Response& response) {
  return boost::json::parse(response.body).as_object().at("error").as_object();
}

TEST(ErrorResponseTest, NotFoundHasOpenAiShape) {
  Response response = ErrorResponse(Error::NotFound("No such key"));
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.content_type, "application/json");
  boost::json::object error = ErrorObject(response);
  EXPECT_EQ(error.at("message").as_string(), "No such key");
  EXPECT_EQ(error.at("type").as_string(), "invalid_request_error");
  EXPECT_EQ(error.at("code").as_string(), "not_found");
  EXPECT_TRUE(error.at("param").is_null());
}

TEST(ErrorResponseTest, ReasonOverridesDefaultCode) {
  Response response = ErrorResponse(Error::Unauthenticated("Key expired", "key_expired"));
  EXPECT_EQ(response.status, 401);
  boost::json::object error = ErrorObject(response);
  EXPECT_EQ(error.at("code").as_string(), "key_expired");
  EXPECT_EQ(error.at("type").as_string(), "authentication_error");
}

TEST(ErrorResponseTest, ParamIsAStringWhenSet) {
  Response response = ErrorResponse(Error::InvalidArgument("limit must be positive", "limit"));
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(ErrorObject(response).at("param").as_string(), "limit");
}

TEST(ErrorResponseTest, StatusFollowsEveryCode) {
  EXPECT_EQ(ErrorResponse(Error{ErrorCode::kPayloadTooLarge, "big", {}, {}}).status, 413);
  EXPECT_EQ(ErrorResponse(Error{ErrorCode::kMethodNotAllowed, "no", {}, {}}).status, 405);
  EXPECT_EQ(ErrorResponse(Error::Internal("oops")).status, 500);
  EXPECT_EQ(ErrorResponse(Error::Unavailable("later")).status, 503);
}

TEST(ErrorResponseTest, MessageIsJsonEscaped) {
  Response response = ErrorResponse(Error::InvalidArgument("bad \"name\"\n\\ here"));
  EXPECT_EQ(ErrorObject(response).at("message").as_string(), "bad \"name\"\n\\ here");
}

TEST(ErrorResponseTest, JsonResponseKeepsBodyAndStatus) {
  Response response = JsonResponse(201, "{\"ok\":true}");
  EXPECT_EQ(response.status, 201);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(response.body, "{\"ok\":true}");
  EXPECT_TRUE(response.headers.empty());
}

}  // namespace
}  // namespace keygate::http
