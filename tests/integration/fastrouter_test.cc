// FastRouter's dialect end to end, starting with the vendor's own curl examples
// (shared/seeds/001_*.txt) with the placeholders filled in.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "integration/management_fixture.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

// The seed's curl flags, verbatim apart from the URL and the placeholders.
CommandResult Curl(uint16_t port, const std::string& path, const std::string& key,
                   const std::string& data) {
  return RunCommand({"/usr/bin/curl", "-sS", "-w", "\n%{http_code}",
                     "http://127.0.0.1:" + std::to_string(port) + path,
                     "-H", "accept: application/json", "-H", "accept-language: en-US,en;q=0.9",
                     "-H", "authorization: Bearer " + key, "--data-raw", data});
}

int StatusOf(const CommandResult& r) { return std::stoi(r.out.substr(r.out.rfind('\n') + 1)); }
std::string BodyOf(const CommandResult& r) { return r.out.substr(0, r.out.rfind('\n')); }

TEST_F(ManagementTest, SeedCurlExamplesWorkAsWritten) {
  // Create, with every optional field null (seed: "Create a Service Account Key").
  auto created = Curl(process_->port(), "/prod/createServiceKey", a_.pk, R"({
    "org_id": ")" + a_.org_id + R"(",
    "api_key_name": "SERVICE-KEY-NAME",
    "credit_limit": null, "reset_budget_interval": null, "expire_key": null, "models": null,
    "tpm_limit": null, "rpm_limit": null, "meta_data": null, "tags": null
  })");
  ASSERT_EQ(StatusOf(created), 201) << created.out << created.err;
  json::object key = Parse(BodyOf(created)).as_object();
  const std::string hash(key["api_key_id_hash"].as_string());
  EXPECT_EQ(hash.size(), 64u);
  EXPECT_EQ(std::string(key["api_key"].as_string()).rfind("sk-kg-", 0), 0u);
  EXPECT_EQ(key["status"], "active");
  EXPECT_TRUE(key["credit_limit"].is_null());
  EXPECT_EQ(key["org_id"], json::value(a_.org_id));

  // Update, with the seed's values (the expiry moved into the future).
  auto updated = Curl(process_->port(), "/prod/updateServiceKey", a_.pk, R"({
    "org_id": ")" + a_.org_id + R"(", "api_key_id_hash": ")" + hash + R"(",
    "api_key_name": "SERVICE-KEY-NAME", "credit_limit": 150, "reset_budget_interval": "daily",
    "expire_key": "2099-03-28 18:30:00.000",
    "models": ["GROQ/deepseek-r1-distill-llama-70b", "GROQ/llama-3.1-8b-instant"],
    "tpm_limit": 10000, "rpm_limit": 10,
    "metadata": {"version": "v1", "source": "system",
                 "data": {"user_id": "user_id", "name": "raw_key", "email": "hashed_key",
                          "api_key_alias": "alias1"}},
    "tags": ["tag1", "tag2"]
  })");
  ASSERT_EQ(StatusOf(updated), 200) << updated.out;
  json::object record = Parse(BodyOf(updated)).as_object();
  EXPECT_EQ(record["credit_limit"], 150);
  EXPECT_EQ(record["reset_budget_interval"], "daily");
  EXPECT_EQ(record["expire_key"], "2099-03-28T18:30:00.000Z");
  EXPECT_EQ(record["tpm_limit"], 10000);
  EXPECT_EQ(record["rpm_limit"], 10);
  EXPECT_EQ(record["models"].as_array().size(), 2u);
  EXPECT_EQ(record["metadata"].as_object()["data"].as_object()["api_key_alias"], "alias1");
  EXPECT_EQ(record["tags"], json::parse(R"(["tag1","tag2"])"));
  EXPECT_FALSE(record.contains("api_key"));  // the secret is shown once only
  EXPECT_FALSE(record["budget_resets_at"].is_null());

  // List (seed: GET with a body, which curl --data-raw turns into a POST).
  auto listed = Curl(process_->port(), "/prod/getServiceKeys", a_.pk,
                     R"({"org_id": ")" + a_.org_id + R"("})");
  ASSERT_EQ(StatusOf(listed), 200) << listed.out;
  json::object page = Parse(BodyOf(listed)).as_object();
  ASSERT_EQ(page["total"], 1);
  EXPECT_EQ(page["data"].as_array()[0].as_object()["api_key_id_hash"], json::value(hash));
  EXPECT_NE(BodyOf(listed).find("sk-kg-••••"), std::string::npos);

  // Delete.
  auto deleted = Curl(process_->port(), "/prod/deleteServiceKey", a_.pk,
                      R"({"org_id": ")" + a_.org_id + R"(", "api_key_id_hash": ")" + hash + R"("})");
  ASSERT_EQ(StatusOf(deleted), 200) << deleted.out;
  EXPECT_EQ(Parse(BodyOf(deleted)).as_object()["deleted"], true);
  auto after = client_->Get("/prod/getServiceKeys", a_.pk);
  EXPECT_EQ(Parse(after.body).as_object()["total"], 0);
}

TEST_F(ManagementTest, CreateWithProjectNameCreatesTheProjectOnce) {
  auto one = CreateKey(a_, R"({"api_key_name":"ci","project_name":"Production","tags":["ci","prod"],
                               "models":["openai/gpt-4o-mini"],"credit_limit":150,
                               "reset_budget_interval":"daily"})");
  auto two = CreateKey(a_, R"({"api_key_name":"cd","project_name":"Production"})");
  EXPECT_EQ(one["project_id"], two["project_id"]);
  EXPECT_EQ(one["project_name"], "Production");
  auto unknown = client_->Post("/prod/createServiceKey",
                               R"({"api_key_name":"x","project_id":"proj_nope"})", a_.pk);
  EXPECT_EQ(unknown.status, 404) << unknown.body;
}

TEST_F(ManagementTest, CallsRacingToCreateTheSameNewProjectAllGetIt) {
  // spec dialects.md: an unknown project_name creates the project, for every call that names
  // it, even when several arrive together (an audit saw 5 of 6 answered 409).
  constexpr int kCalls = 6;
  std::vector<std::thread> calls;
  std::vector<TestHttpClient::Reply> replies(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    calls.emplace_back([this, i, &replies] {
      TestHttpClient client("127.0.0.1", process_->port());
      replies[i] = client.Post("/prod/createServiceKey",
                               R"({"api_key_name":"race-)" + std::to_string(i) +
                                   R"(","project_name":"Raced"})",
                               a_.pk);
    });
  }
  for (std::thread& call : calls) call.join();
  std::set<std::string> projects;
  for (const TestHttpClient::Reply& reply : replies) {
    ASSERT_EQ(reply.status, 201) << reply.body;
    projects.insert(std::string(Parse(reply.body).at("project_id").as_string()));
  }
  EXPECT_EQ(projects.size(), 1u);
  auto listed = client_->Get("/prod/getServiceKeys?project_name=Raced", a_.pk);
  EXPECT_EQ(Parse(listed.body).at("total"), kCalls) << listed.body;
}

TEST_F(ManagementTest, UpdateIsPartialAndNullClears) {
  std::string hash;
  {
    auto created = CreateKey(a_, R"({"api_key_name":"p","rpm_limit":5,"tpm_limit":100,
                                     "tags":["x"],"credit_limit":"2.5"})");
    hash = std::string(created["api_key_id_hash"].as_string());
    EXPECT_EQ(created["credit_limit"], 2.5);
  }
  auto reply = client_->Post("/prod/updateServiceKey",
                             R"({"api_key_id_hash":")" + hash + R"(","rpm_limit":null})", a_.pk);
  ASSERT_EQ(reply.status, 200) << reply.body;
  auto record = Parse(reply.body).as_object();
  EXPECT_TRUE(record["rpm_limit"].is_null());
  EXPECT_EQ(record["tpm_limit"], 100);
  EXPECT_EQ(record["tags"], json::parse(R"(["x"])"));
  EXPECT_EQ(record["api_key_name"], "p");
  EXPECT_FALSE(record["updated_at"].is_null());
  reply = client_->Post("/prod/updateServiceKey",
                        R"({"api_key_id_hash":")" + hash + R"(","disabled":true})", a_.pk);
  EXPECT_EQ(Parse(reply.body).as_object()["status"], "disabled");
}

TEST_F(ManagementTest, ListFiltersAndPages) {
  CreateKey(a_, R"({"api_key_name":"alpha-one","tags":["ci","prod"],"project_name":"P1"})");
  CreateKey(a_, R"({"api_key_name":"alpha-two","tags":["ci"]})");
  std::string beta = CreateKeyHash(a_, "beta_%");
  client_->Post("/prod/updateServiceKey", R"({"api_key_id_hash":")" + beta + R"(","disabled":true})",
                a_.pk);
  auto total = [&](const std::string& query) {
    auto reply = client_->Get("/prod/getServiceKeys" + query, a_.pk);
    EXPECT_EQ(reply.status, 200) << query << " " << reply.body;
    return Parse(reply.body).as_object()["total"].as_int64();
  };
  EXPECT_EQ(total(""), 3);
  EXPECT_EQ(total("?tags=ci"), 2);
  EXPECT_EQ(total("?tags=ci,prod"), 1);
  EXPECT_EQ(total("?project_name=P1"), 1);
  EXPECT_EQ(total("?status=disabled"), 1);
  EXPECT_EQ(total("?status=active"), 2);
  EXPECT_EQ(total("?search=ALPHA"), 2);
  EXPECT_EQ(total("?search=_%25"), 1);  // LIKE wildcards are literal
  auto page = client_->Post("/prod/getServiceKeys", R"({"limit":2,"offset":0})", a_.pk);
  auto body = Parse(page.body).as_object();
  EXPECT_EQ(body["data"].as_array().size(), 2u);
  EXPECT_EQ(body["data"].as_array()[0].as_object()["api_key_name"], "alpha-one");
  page = client_->Post("/prod/getServiceKeys", R"({"limit":2,"offset":2})", a_.pk);
  EXPECT_EQ(Parse(page.body).as_object()["data"].as_array().size(), 1u);
}

TEST_F(ManagementTest, RotateCopiesGuardrailsAndKeepsTheOldKeyForTheGracePeriod) {
  auto created = CreateKey(a_, R"({"api_key_name":"rot","models":["openai/*"],"credit_limit":10,
                                   "reset_budget_interval":"monthly","rpm_limit":7,
                                   "tags":["t"],"metadata":{"team":"platform"}})");
  const std::string old_hash(created["api_key_id_hash"].as_string());
  auto reply = client_->Post("/prod/rotateServiceKey",
                             R"({"api_key_id_hash":")" + old_hash + R"(","grace_period_seconds":3600})",
                             a_.pk);
  ASSERT_EQ(reply.status, 201) << reply.body;
  auto rotated = Parse(reply.body).as_object();
  EXPECT_NE(rotated["api_key_id_hash"], json::value(old_hash));
  EXPECT_EQ(rotated["replaces"].as_object()["api_key_id_hash"], json::value(old_hash));
  for (const char* field : {"models", "credit_limit", "reset_budget_interval", "rpm_limit", "tags",
                            "metadata", "api_key_name"}) {
    EXPECT_EQ(rotated[field], created[field]) << field;
  }
  // Within the grace period both keys are listed; rotating again works.
  EXPECT_EQ(Parse(client_->Get("/prod/getServiceKeys", a_.pk).body).as_object()["total"], 2);
  auto again = client_->Post("/prod/rotateServiceKey",
                             R"({"api_key_id_hash":")" + old_hash + R"("})", a_.pk);
  EXPECT_EQ(again.status, 201) << again.body;
  // Grace 0 revokes at once: the old key is gone.
  auto get_old = client_->Post("/prod/updateServiceKey",
                               R"({"api_key_id_hash":")" + old_hash + R"(","rpm_limit":1})", a_.pk);
  EXPECT_EQ(get_old.status, 404);
}

}  // namespace
}  // namespace keygate::testing
