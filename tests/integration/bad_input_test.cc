// Every input error answers with its status and the dialect's error shape naming the field;
// nothing a client sends produces a 5xx, and the server keeps serving.
#include <gtest/gtest.h>

#include "integration/management_fixture.h"

namespace keygate::testing {
namespace {

struct BadCase {
  std::string path;
  std::string body;
  int status;
  std::string param;  // expected error.param ("" = not checked)
};

TEST_F(ManagementTest, BadInputsAnswer4xxNamingTheField) {
  const std::string hash = CreateKeyHash(a_, "target");
  const std::string upd = R"({"api_key_id_hash":")" + hash + R"(",)";
  const std::string long_name(257, 'n');
  std::string many_tags = "[";
  for (int i = 0; i < 65; ++i) many_tags += (i ? ",\"t" : "\"t") + std::to_string(i) + "\"";
  many_tags += "]";
  const std::string big_meta = R"({"m":")" + std::string(17 * 1024, 'x') + R"("})";
  const std::vector<BadCase> cases = {
      {"/prod/createServiceKey", "{not json", 400, "body"},
      {"/prod/createServiceKey", "[1,2]", 400, "body"},
      {"/prod/createServiceKey", "", 400, "body"},
      {"/prod/createServiceKey", "{}", 400, "api_key_name"},
      {"/prod/createServiceKey", R"({"api_key_name":""})", 400, "api_key_name"},
      {"/prod/createServiceKey", R"({"api_key_name":42})", 400, "api_key_name"},
      {"/prod/createServiceKey", R"({"api_key_name":")" + long_name + R"("})", 400, "api_key_name"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","credit_limit":-1})", 400, "credit_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","credit_limit":0})", 400, "credit_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","credit_limit":"abc"})", 400, "credit_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","credit_limit":true})", 400, "credit_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","reset_budget_interval":"hourly"})", 400,
       "reset_budget_interval"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","rpm_limit":0})", 400, "rpm_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","tpm_limit":-5})", 400, "tpm_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","rpm_limit":"10"})", 400, "rpm_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","rpm_limit":1.5})", 400, "rpm_limit"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","expire_key":"2001-01-01T00:00:00Z"})", 400,
       "expire_key"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","expire_key":"next week"})", 400, "expire_key"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":"openai/gpt-4o"})", 400, "models"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":["gpt-4o"]})", 400, "models"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":[1]})", 400, "models"},
      // patterns that could never match a model (audit, 2026-12-07)
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":["*/*"]})", 400, "models"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":[" mock/echo"]})", 400, "models"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":["mock/*/x"]})", 400, "models"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":["mock/gpt-4*"]})", 400, "models"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","models":["mock/a b"]})", 400, "models"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","tags":)" + many_tags + "}", 400, "tags"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","tags":[""]})", 400, "tags"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","metadata":"text"})", 400, "metadata"},
      {"/prod/createServiceKey", R"({"api_key_name":"x","metadata":)" + big_meta + "}", 400, "metadata"},
      {"/prod/updateServiceKey", R"({"rpm_limit":5})", 400, "api_key_id_hash"},
      {"/prod/updateServiceKey", R"({"api_key_id_hash":"nope"})", 404, ""},
      {"/prod/updateServiceKey", upd + R"("disabled":"yes"})", 400, "disabled"},
      {"/prod/updateServiceKey", upd + R"("api_key_name":null})", 400, "api_key_name"},
      {"/prod/deleteServiceKey", R"({"api_key_id_hash":12})", 400, "api_key_id_hash"},
      {"/prod/rotateServiceKey", upd + R"("grace_period_seconds":-1})", 400, "grace_period_seconds"},
      {"/prod/getServiceKeys", R"({"limit":0})", 400, "limit"},
      {"/prod/getServiceKeys", R"({"limit":1001})", 400, "limit"},
      {"/prod/getServiceKeys", R"({"offset":-1})", 400, "offset"},
      {"/prod/getServiceKeys", R"({"status":"sleeping"})", 400, "status"},
  };
  for (const BadCase& c : cases) {
    auto reply = client_->Post(c.path, c.body, a_.pk);
    EXPECT_EQ(reply.status, c.status) << c.path << " " << c.body.substr(0, 80) << " → " << reply.body;
    auto v = Parse(reply.body);
    ASSERT_TRUE(v.is_object() && v.as_object().contains("error")) << reply.body;
    const auto& error = v.as_object().at("error").as_object();
    EXPECT_TRUE(error.contains("message") && error.contains("type") && error.contains("code"));
    if (!c.param.empty()) {
      EXPECT_EQ(error.at("param"), boost::json::value(c.param)) << c.body.substr(0, 80);
    }
  }
  // Query-string inputs.
  EXPECT_EQ(client_->Get("/prod/getServiceKeys?limit=ten", a_.pk).status, 400);
  EXPECT_EQ(client_->Get("/prod/getServiceKeys?offset=%zz", a_.pk).status, 400);
  // The key the bad updates aimed at is unchanged and the server is still healthy.
  auto listed = Parse(client_->Get("/prod/getServiceKeys", a_.pk).body).as_object();
  EXPECT_EQ(listed["total"], 1);
  EXPECT_EQ(client_->Get("/healthz").status, 200);
}

// A flag has no cleared state: null for one is a 400 in every dialect (FastRouter's used to
// read it as false and re-enable a disabled key; OpenRouter's and the owner API ignored it).
TEST_F(ManagementTest, AFlagSentAsNullIs400EverywhereAndChangesNothing) {
  const std::string hash = CreateKeyHash(a_, "flagged");
  ASSERT_EQ(client_->Post("/prod/updateServiceKey",
                          R"({"api_key_id_hash":")" + hash + R"(","disabled":true})", a_.pk)
                .status,
            200);
  struct NullFlag {
    TestHttpClient::Reply reply;
    std::string field;
  };
  const std::vector<NullFlag> sent = {
      {client_->Post("/prod/updateServiceKey",
                     R"({"api_key_id_hash":")" + hash + R"(","disabled":null})", a_.pk),
       "disabled"},
      {client_->Patch("/api/v1/keys/" + hash, R"({"disabled":null})", a_.pk), "disabled"},
      {client_->Patch("/api/v1/keys/" + hash, R"({"include_byok_in_limit":null})", a_.pk),
       "include_byok_in_limit"},
      {client_->Post("/api/v1/keys", R"({"name":"n","include_byok_in_limit":null})", a_.pk),
       "include_byok_in_limit"},
      {client_->Patch("/v2/api-keys/" + hash, R"({"active":null})", a_.pk), "active"},
      {client_->Patch("/api/owner/keys/" + hash, R"({"disabled":null})", a_.owner_key),
       "disabled"},
      {client_->Patch("/api/owner/provisioning-keys/" + a_.pk_id, R"({"disabled":null})",
                      a_.owner_key),
       "disabled"},
  };
  for (const NullFlag& flag : sent) {
    EXPECT_EQ(flag.reply.status, 400) << flag.field << ": " << flag.reply.body;
    EXPECT_NE(flag.reply.body.find(flag.field + " must be true or false"), std::string::npos)
        << flag.reply.body;
  }
  auto record = Parse(client_->Post("/prod/getServiceKeys", "{}", a_.pk).body);
  EXPECT_NE(boost::json::serialize(record).find(R"("status":"disabled")"), std::string::npos);
}

// Filters no key can meet (all of more tags than a key may hold, a name longer than a name
// may be) list nothing, in every dialect, rather than reach the store as a query it refuses.
TEST_F(ManagementTest, FiltersNoKeyCanMeetListNothing) {
  const std::string tagged = CreateKeyHash(a_, "tagged");
  ASSERT_EQ(client_->Post("/prod/updateServiceKey",
                          R"({"api_key_id_hash":")" + tagged + R"(","tags":["t0","t1"]})", a_.pk)
                .status,
            200);
  std::string many;  // t0,t1,...,t998: 999 distinct tags
  for (int i = 0; i < 999; ++i) many += (i ? ",t" : "t") + std::to_string(i);
  std::string repeated;  // t0 and t1, 500 times over: two distinct tags, the key has both
  for (int i = 0; i < 1000; ++i) repeated += (i ? ",t" : "t") + std::to_string(i % 2);
  for (const char* path : {"/prod/getServiceKeys", "/api/v1/keys", "/v2/api-keys"}) {
    SCOPED_TRACE(path);
    auto all_of_many = client_->Get(std::string(path) + "?tags=" + many, a_.pk);
    EXPECT_EQ(all_of_many.status, 200) << all_of_many.body.substr(0, 300);
    EXPECT_EQ(all_of_many.body.find("SELECT"), std::string::npos);
    EXPECT_EQ(all_of_many.body.find(tagged), std::string::npos);
    auto all_of_two = client_->Get(std::string(path) + "?tags=" + repeated, a_.pk);
    EXPECT_EQ(all_of_two.status, 200) << all_of_two.body.substr(0, 300);
    EXPECT_NE(all_of_two.body.find(tagged), std::string::npos) << all_of_two.body.substr(0, 300);
  }
  const std::string long_search(50'001, 'a');
  auto searched = client_->Post("/prod/getServiceKeys",
                                R"({"search":")" + long_search + R"("})", a_.pk);
  EXPECT_EQ(searched.status, 200) << searched.body.substr(0, 300);
  EXPECT_EQ(Parse(searched.body).at("total"), 0);
  auto just_over = client_->Post("/prod/getServiceKeys",
                                 R"({"search":")" + std::string(257, 'a') + R"("})", a_.pk);
  EXPECT_EQ(just_over.status, 200) << just_over.body.substr(0, 300);
  EXPECT_EQ(Parse(just_over.body).at("total"), 0);
  // A search as long as a name may be still runs, and finds it.
  const std::string longest_name(256, 'n');
  ASSERT_EQ(client_->Post("/prod/createServiceKey",
                          R"({"api_key_name":")" + longest_name + R"("})", a_.pk)
                .status,
            201);
  auto found = client_->Post("/prod/getServiceKeys",
                             R"({"search":")" + longest_name + R"("})", a_.pk);
  EXPECT_EQ(Parse(found.body).at("total"), 1) << found.body.substr(0, 300);
}

TEST_F(ManagementTest, RoutingAndSizeErrorsAreJson) {
  auto unknown = client_->Get("/prod/nope", a_.pk);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("\"error\""), std::string::npos);
  auto wrong_method = client_->Request("DELETE", "/prod/createServiceKey", "",
                                       {{"authorization", "Bearer " + a_.pk}});
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_NE(wrong_method.body.find("\"error\""), std::string::npos);
  std::string huge(11 * 1024 * 1024, 'x');
  auto too_big = client_->Post("/prod/createServiceKey", huge, a_.pk);
  EXPECT_EQ(too_big.status, 413);
  EXPECT_EQ(client_->Get("/healthz").status, 200);
}

enum class Shape { kOpenAI, kOpenRouter, kRouterKeys };

// Whether `body` is an error of `status` in `shape`: OpenAI's {"error":{"message","type","code":
// string}}, OpenRouter's {"error":{"code":<status as a number>,"message"}}, v2's
// {"code":"<status>","message"}.
::testing::AssertionResult IsError(const std::string& body, int status, Shape shape) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return ::testing::AssertionFailure() << "not an object: " << body;
  const auto& top = v.as_object();
  const auto* error = top.if_contains("error");
  switch (shape) {
    case Shape::kOpenAI:
      if (error != nullptr && error->is_object() && error->as_object().contains("type") &&
          error->as_object().at("code").is_string() &&
          error->as_object().at("message").is_string()) {
        return ::testing::AssertionSuccess();
      }
      break;
    case Shape::kOpenRouter:
      if (error != nullptr && error->is_object() && error->as_object().contains("code") &&
          error->as_object().at("code") == boost::json::value(status) &&
          error->as_object().at("message").is_string()) {
        return ::testing::AssertionSuccess();
      }
      break;
    case Shape::kRouterKeys:
      if (error == nullptr && top.contains("code") &&
          top.at("code") == boost::json::value(std::to_string(status)) &&
          top.contains("message") && top.at("message").is_string()) {
        return ::testing::AssertionSuccess();
      }
      break;
  }
  return ::testing::AssertionFailure() << "not in the expected shape: " << body;
}

// The errors the server answers before any route runs (no route, a method the route lacks, a
// malformed path, a body over the limit) come in the error shape of the API the path belongs
// to, so that each dialect's clients parse them like its own.
TEST_F(ManagementTest, ServerErrorsComeInTheShapeOfThePathsDialect) {
  struct Case {
    std::string method;
    std::string path;
    int status;
    Shape shape;
  };
  const std::vector<Case> cases = {
      {"GET", "/api/v1/nope", 404, Shape::kOpenRouter},
      {"PUT", "/api/v1/keys", 405, Shape::kOpenRouter},
      {"DELETE", "/api/v1/key", 405, Shape::kOpenRouter},
      {"GET", "/api/v1/keys/%zz", 400, Shape::kOpenRouter},
      {"GET", "/api/owner/nope", 404, Shape::kOpenRouter},
      {"PUT", "/api/owner/keys", 405, Shape::kOpenRouter},
      {"DELETE", "/v2/api-keys", 405, Shape::kRouterKeys},
      {"GET", "/v2/api-keys/a/b", 404, Shape::kRouterKeys},
      {"GET", "/v2/api-keys/%zz", 400, Shape::kRouterKeys},
      {"GET", "/prod/nope", 404, Shape::kOpenAI},
      {"GET", "/prod/createServiceKey", 405, Shape::kOpenAI},
      {"PUT", "/v1/chat/completions", 405, Shape::kOpenAI},
      {"GET", "/v1/nope", 404, Shape::kOpenAI},
      {"GET", "/nope", 404, Shape::kOpenAI},
  };
  for (const Case& c : cases) {
    auto reply = client_->Request(c.method, c.path, "", {{"authorization", "Bearer " + a_.pk}});
    EXPECT_EQ(reply.status, c.status) << c.method << " " << c.path << " " << reply.body;
    EXPECT_TRUE(IsError(reply.body, c.status, c.shape)) << c.method << " " << c.path;
    if (c.status == 405) {
      EXPECT_NE(reply.Header("allow"), "") << c.path;
    }
  }
  EXPECT_EQ(client_->Request("PUT", "/api/v1/keys", "", {}).Header("allow"), "GET, HEAD, POST");
  // A key put in a path is not repeated in the answer that quotes the path.
  auto quoted = client_->Get("/nonexistent/" + a_.owner_key, a_.owner_key);
  EXPECT_EQ(quoted.status, 404);
  EXPECT_EQ(quoted.body.find(a_.owner_key), std::string::npos) << quoted.body;
  // A body over the limit is refused before any route runs, in the same shapes.
  const std::string huge(11 * 1024 * 1024, 'x');
  for (const auto& [path, shape] : std::vector<std::pair<std::string, Shape>>{
           {"/api/v1/keys", Shape::kOpenRouter},
           {"/v2/api-keys", Shape::kRouterKeys},
           {"/prod/createServiceKey", Shape::kOpenAI}}) {
    auto too_big = client_->Post(path, huge, a_.pk);
    EXPECT_EQ(too_big.status, 413) << path;
    EXPECT_TRUE(IsError(too_big.body, 413, shape)) << path;
  }
  // A header block over the server's limit: 431, its body's code the same status.
  const std::string long_value(40 * 1024, 'h');
  for (const auto& [path, shape] : std::vector<std::pair<std::string, Shape>>{
           {"/api/v1/keys", Shape::kOpenRouter},
           {"/v2/api-keys", Shape::kRouterKeys},
           {"/v1/models", Shape::kOpenAI}}) {
    auto too_long = client_->Request("GET", path, "", {{"x-padding", long_value}});
    EXPECT_EQ(too_long.status, 431) << path;
    EXPECT_TRUE(IsError(too_long.body, 431, shape)) << path;
  }
  EXPECT_EQ(client_->Get("/healthz").status, 200);
}

}  // namespace
}  // namespace keygate::testing
