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

}  // namespace
}  // namespace keygate::testing
