// Who may do what (spec §2) and the tenant boundary, from the outside: every management route
// with another org's key answers 404, exactly like a key that does not exist.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <thread>

#include "integration/management_fixture.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

struct Call {
  std::string method;
  std::string path;
  std::string body;
};

// Every route that names a service key, aimed at `hash`.
std::vector<Call> KeyRoutes(const std::string& hash) {
  const std::string by_hash = R"({"api_key_id_hash":")" + hash + R"("})";
  return {
      {"POST", "/prod/updateServiceKey", R"({"api_key_id_hash":")" + hash + R"(","rpm_limit":1})"},
      {"POST", "/prod/deleteServiceKey", by_hash},
      {"POST", "/prod/rotateServiceKey", by_hash},
  };
}

std::vector<Call> OwnerKeyRoutes(const std::string& hash) {
  return {
      {"GET", "/api/owner/keys/" + hash, ""},
      {"PATCH", "/api/owner/keys/" + hash, R"({"name":"x"})"},
      {"POST", "/api/owner/keys/" + hash + "/rotate", "{}"},
      {"DELETE", "/api/owner/keys/" + hash, ""},
  };
}

TEST_F(ManagementTest, AnotherOrgsKeyIsNotFoundOnEveryRoute) {
  const std::string foreign = CreateKeyHash(b_, "b-key");
  const std::string missing(64, 'a');
  for (const std::string& target : {foreign, missing}) {
    for (const Call& call : KeyRoutes(target)) {
      auto reply = client_->Request(call.method, call.path, call.body,
                                    {{"authorization", "Bearer " + a_.pk}});
      EXPECT_EQ(reply.status, 404) << call.path << " " << reply.body;
    }
    for (const Call& call : OwnerKeyRoutes(target)) {
      auto reply = client_->Request(call.method, call.path, call.body,
                                    {{"authorization", "Bearer " + a_.owner_key}});
      EXPECT_EQ(reply.status, 404) << call.method << " " << call.path << " " << reply.body;
    }
  }
  // Another org's provisioning key, through the owner API.
  for (const Call& call : std::vector<Call>{
           {"PATCH", "/api/owner/provisioning-keys/" + b_.pk_id, R"({"disabled":true})"},
           {"DELETE", "/api/owner/provisioning-keys/" + b_.pk_id, ""}}) {
    auto reply = client_->Request(call.method, call.path, call.body,
                                  {{"authorization", "Bearer " + a_.owner_key}});
    EXPECT_EQ(reply.status, 404) << call.path << " " << reply.body;
  }
  // A claimed org_id of another org is 404 too; lists never show another org's keys.
  auto claimed = client_->Post("/prod/createServiceKey",
                               R"({"api_key_name":"x","org_id":")" + b_.org_id + R"("})", a_.pk);
  EXPECT_EQ(claimed.status, 404);
  // An empty org_id is present and names no org (spec dialects.md: 404), not an absent one.
  EXPECT_EQ(client_->Post("/prod/createServiceKey", R"({"api_key_name":"x","org_id":""})", a_.pk)
                .status,
            404);
  auto listed = client_->Get("/prod/getServiceKeys", a_.pk);
  EXPECT_EQ(Parse(listed.body).as_object()["total"], 0);
  auto owner_list = client_->Get("/api/owner/keys", a_.owner_key);
  EXPECT_EQ(Parse(owner_list.body).as_object()["total"], 0);
  // And b's key is untouched.
  auto b_list = client_->Get("/prod/getServiceKeys", b_.pk);
  EXPECT_EQ(Parse(b_list.body).as_object()["data"].as_array()[0].as_object()["rpm_limit"],
            nullptr);
}

TEST_F(ManagementTest, ProvisioningKeysCannotUseTheOwnerApiNorMintProvisioningKeys) {
  for (const Call& call : std::vector<Call>{{"GET", "/api/owner/provisioning-keys", ""},
                                            {"POST", "/api/owner/provisioning-keys", R"({"name":"n"})"},
                                            {"GET", "/api/owner/keys", ""},
                                            {"GET", "/api/owner/audit", ""}}) {
    auto reply = client_->Request(call.method, call.path, call.body,
                                  {{"authorization", "Bearer " + a_.pk}});
    EXPECT_EQ(reply.status, 403) << call.path << " " << reply.body;
  }
}

TEST_F(ManagementTest, ServiceKeysGet403OnManagementRoutes) {
  auto created = CreateKey(a_, R"({"api_key_name":"svc"})");
  const std::string secret(created["api_key"].as_string());
  for (const Call& call : std::vector<Call>{{"POST", "/prod/createServiceKey", R"({"api_key_name":"x"})"},
                                            {"GET", "/prod/getServiceKeys", ""},
                                            {"GET", "/api/owner/keys", ""}}) {
    auto reply = client_->Request(call.method, call.path, call.body,
                                  {{"authorization", "Bearer " + secret}});
    EXPECT_EQ(reply.status, 403) << call.path << " " << reply.body;
  }
}

// Audit Z: one organization's provisioning key made 17,000 keys in 20 s (481 MB of memory, 560
// MB of disk) and nothing stopped it. limits.max_service_keys_per_org bounds the keys an org
// holds, in every dialect; a deleted or rotated key frees its place; other orgs are untouched.
TEST_F(ManagementTest, AnOrganizationHoldsAtMostItsQuotaOfServiceKeys) {
  ASSERT_EQ(process_->Stop(), 0);
  ASSERT_TRUE(process_->Start({"KEYGATE_LIMITS_MAX_SERVICE_KEYS_PER_ORG=3"})) << process_->log();
  client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  const std::string first = CreateKeyHash(a_, "q1");
  const std::string second = CreateKeyHash(a_, "q2");
  CreateKeyHash(a_, "q3");
  const struct {
    std::string path;
    std::string body;
  } creates[] = {{"/prod/createServiceKey", R"({"api_key_name":"q4"})"},
                 {"/api/v1/keys", R"({"name":"q4"})"},
                 {"/v2/api-keys", R"({"name":"q4"})"}};
  for (const auto& create : creates) {
    auto refused = client_->Post(create.path, create.body, a_.pk);
    EXPECT_EQ(refused.status, 403) << create.path << " " << refused.body;
    EXPECT_NE(refused.body.find("limits.max_service_keys_per_org"), std::string::npos)
        << refused.body;
  }
  EXPECT_EQ(client_->Post("/prod/createServiceKey", R"({"api_key_name":"b1"})", b_.pk).status,
            201);
  // A rotation replaces a key: at the quota, it still works.
  auto rotated = client_->Post("/api/v1/keys/" + first + "/rotate", "{}", a_.pk);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  const std::string successor = Parse(rotated.body).at("data").at("hash").as_string().c_str();
  // Audit AA: a key in a rotation's grace period still authenticates, so it counts: a rotation
  // with a grace period at the quota is refused (1,000 of them on one key made 1,000 working
  // keys), whether of a live key or of one already in its grace period.
  auto graced = client_->Post("/api/v1/keys/" + successor + "/rotate",
                              R"({"grace_period_seconds":3600})", a_.pk);
  EXPECT_EQ(graced.status, 403) << graced.body;
  EXPECT_EQ(client_->Post("/api/v1/keys", R"({"name":"q4"})", a_.pk).status, 403);
  EXPECT_EQ(client_->Delete("/api/v1/keys/" + successor, a_.pk).status, 200);
  EXPECT_EQ(client_->Post("/api/v1/keys", R"({"name":"q4"})", a_.pk).status, 201);
  // Room for one more: a rotation with a grace period takes it; rotating the old key again,
  // in its grace period, finds none.
  EXPECT_EQ(client_->Delete("/api/v1/keys/" + second, a_.pk).status, 200);
  const std::string fifth = CreateKeyHash(a_, "q5");
  EXPECT_EQ(client_->Delete("/api/v1/keys/" + fifth, a_.pk).status, 200);
  const std::string third = [&] {
    const boost::json::value listed = Parse(client_->Get("/api/v1/keys", a_.pk).body);
    for (const auto& key : listed.at("data").as_array()) {
      if (key.at("name") == "q3") return std::string(key.at("hash").as_string().c_str());
    }
    return std::string();
  }();
  for (int expected : {201, 403}) {
    auto rotated_in_grace = client_->Post("/api/v1/keys/" + third + "/rotate",
                                          R"({"grace_period_seconds":3600})", a_.pk);
    EXPECT_EQ(rotated_in_grace.status, expected) << rotated_in_grace.body;
  }
  // The v2 dialect's own shape for it.
  auto v2 = client_->Post("/v2/api-keys", R"({"name":"q6"})", a_.pk);
  EXPECT_EQ(v2.status, 403) << v2.body;
  // Above a quota lowered since, a rotation without grace (a leaked key's) still works: it adds
  // nothing (the review).
  ASSERT_EQ(process_->Stop(), 0);
  ASSERT_TRUE(process_->Start({"KEYGATE_LIMITS_MAX_SERVICE_KEYS_PER_ORG=1"})) << process_->log();
  client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  auto leaked = client_->Post("/api/v1/keys/" + third + "/rotate", "{}", a_.pk);
  EXPECT_EQ(leaked.status, 201) << leaked.body;  // in its grace period: it ends now instead
  const boost::json::value keys = Parse(client_->Get("/api/v1/keys", a_.pk).body);
  for (const auto& key : keys.at("data").as_array()) {
    if (key.at("name") != "q4") continue;
    auto replaced = client_->Post(
        "/api/v1/keys/" + std::string(key.at("hash").as_string().c_str()) + "/rotate", "{}",
        a_.pk);
    EXPECT_EQ(replaced.status, 201) << replaced.body;
  }
  EXPECT_EQ(client_->Post("/api/v1/keys", R"({"name":"q7"})", a_.pk).status, 403);
}

// Audit Z: one organization's provisioning key flooding creates slowed every other
// organization's management calls (their median from 1.4 to 38 ms). Each organization's
// provisioning keys share a bucket of management calls over every dialect; past it, a 429 with
// Retry-After in the dialect's shape, reads and writes alike, logged (once a minute). Its
// owners have a bucket of their own (the review: a runaway provisioning key kept the owners
// from disabling it), as have its service keys; other organizations are untouched.
TEST_F(ManagementTest, AnOrganizationsManagementCallsArePaced) {
  ASSERT_EQ(process_->Stop(), 0);
  ASSERT_TRUE(process_->Start({"KEYGATE_LIMITS_MANAGEMENT_RPS_PER_ORG=1",
                               "KEYGATE_LIMITS_MANAGEMENT_BURST_PER_ORG=4"}))
      << process_->log();
  client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  const std::string service_key = CreateKey(a_, R"({"api_key_name":"paced"})")["api_key"]
                                      .as_string()
                                      .c_str();
  // The bucket holds four calls and gains one a second: each route is refused after a few
  // tries (a bound far above what a slow machine needs; a limiter that never refuses fails).
  const struct {
    std::string method;
    std::string path;
    std::string body;
    std::string shape;  // what the dialect's error body holds
  } routes[] = {
      {"GET", "/prod/getServiceKeys", "",
       R"("type":"rate_limit_error","code":"management_rate_limited")"},
      {"POST", "/prod/createServiceKey", R"({"api_key_name":"flood"})",
       R"("code":"management_rate_limited")"},
      {"GET", "/api/v1/keys", "", R"("code":429)"},
      {"POST", "/api/v1/keys", R"({"name":"flood"})", R"("reason":"management_rate_limited")"},
      {"GET", "/v2/api-keys", "", R"("code":"429")"}};
  for (const auto& route : routes) {
    TestHttpClient::Reply refused;
    for (int i = 0; i < 50 && refused.status != 429; ++i) {
      refused = client_->Request(route.method, route.path, route.body,
                                 {{"authorization", "Bearer " + a_.pk}});
    }
    ASSERT_EQ(refused.status, 429) << route.path << " " << refused.body;
    EXPECT_EQ(refused.Header("retry-after"), "1") << route.path;
    const int64_t wait_ms = std::stoll(refused.Header("retry-after-ms"));
    EXPECT_GT(wait_ms, 0);
    EXPECT_LE(wait_ms, 1000);
    EXPECT_NE(refused.body.find(route.shape), std::string::npos) << refused.body;
    EXPECT_NE(refused.body.find("1 a second, in bursts of up to 4"), std::string::npos)
        << refused.body;
  }
  EXPECT_NE(process_->log().find(R"("event":"management.paced")"), std::string::npos);
  // The provisioning keys' bucket is empty: the owner still disables the key, and reads.
  auto disabled = client_->Patch("/api/owner/provisioning-keys/" + a_.pk_id,
                                 R"({"disabled":true})", a_.owner_key);
  EXPECT_EQ(disabled.status, 200) << disabled.body;
  EXPECT_EQ(client_->Get("/api/owner/keys", a_.owner_key).status, 200);
  // A service key reading itself draws from its own bucket: four pass, then it is paced.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client_->Get("/api/v1/key", service_key).status, 200) << i;
  }
  TestHttpClient::Reply polled;
  for (int i = 0; i < 50 && polled.status != 429; ++i) {
    polled = client_->Get("/api/v1/key", service_key);
  }
  EXPECT_EQ(polled.status, 429) << polled.body;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client_->Get("/prod/getServiceKeys", b_.pk).status, 200) << "org b, " << i;
  }
}

TEST_F(ManagementTest, MissingOrUnknownCredentialsAre401) {
  EXPECT_EQ(client_->Get("/prod/getServiceKeys").status, 401);
  EXPECT_EQ(client_->Get("/prod/getServiceKeys", "pk-kg-notakey").status, 401);
  EXPECT_EQ(client_->Get("/api/owner/keys", "").status, 401);
}

TEST_F(ManagementTest, DisabledProvisioningKeyGets401EverywhereAndItsKeysKeepWorking) {
  const std::string made = CreateKeyHash(a_, "made-before");
  auto disable = client_->Patch("/api/owner/provisioning-keys/" + a_.pk_id, R"({"disabled":true})",
                                a_.owner_key);
  ASSERT_EQ(disable.status, 200) << disable.body;
  EXPECT_EQ(Parse(disable.body).as_object()["data"].as_object()["disabled"], true);
  EXPECT_EQ(client_->Get("/prod/getServiceKeys", a_.pk).status, 401);
  EXPECT_EQ(client_->Post("/prod/createServiceKey", R"({"api_key_name":"x"})", a_.pk).status, 401);
  // The owner still sees the key it made.
  auto got = client_->Get("/api/owner/keys/" + made, a_.owner_key);
  EXPECT_EQ(got.status, 200) << got.body;
  // Enable again: works on the next call.
  client_->Patch("/api/owner/provisioning-keys/" + a_.pk_id, R"({"disabled":false})", a_.owner_key);
  EXPECT_EQ(client_->Get("/prod/getServiceKeys", a_.pk).status, 200);
  // Delete: refused from then on, and its service keys stay.
  auto deleted = client_->Delete("/api/owner/provisioning-keys/" + a_.pk_id, a_.owner_key);
  EXPECT_EQ(deleted.status, 200);
  EXPECT_EQ(client_->Get("/prod/getServiceKeys", a_.pk).status, 401);
  EXPECT_EQ(client_->Get("/api/owner/keys/" + made, a_.owner_key).status, 200);
}

TEST_F(ManagementTest, ProvisioningKeysCannotTouchWorkspaceKeys) {
  auto made = client_->Post("/api/owner/keys", R"({"name":"console-key"})", a_.owner_key);
  ASSERT_EQ(made.status, 201) << made.body;
  auto data = Parse(made.body).as_object()["data"].as_object();
  EXPECT_EQ(data["source"], "workspace");
  const std::string hash(data["hash"].as_string());
  auto reply = client_->Post("/prod/updateServiceKey",
                             R"({"api_key_id_hash":")" + hash + R"(","rpm_limit":1})", a_.pk);
  EXPECT_EQ(reply.status, 403) << reply.body;
  // A provisioning key's list shows router keys only; the owner's shows both.
  CreateKeyHash(a_, "router-key");
  EXPECT_EQ(Parse(client_->Get("/prod/getServiceKeys", a_.pk).body).as_object()["total"], 1);
  EXPECT_EQ(Parse(client_->Get("/api/owner/keys", a_.owner_key).body).as_object()["total"], 2);
}

TEST_F(ManagementTest, OwnerManagesProvisioningKeysAndDuplicateNamesConflict) {
  auto created = client_->Post("/api/owner/provisioning-keys", R"({"name":"deploy"})", a_.owner_key);
  ASSERT_EQ(created.status, 201) << created.body;
  auto body = Parse(created.body).as_object();
  EXPECT_EQ(std::string(body["key"].as_string()).rfind("pk-kg-", 0), 0u);
  const std::string id(body["data"].as_object()["id"].as_string());
  EXPECT_EQ(client_->Post("/api/owner/provisioning-keys", R"({"name":"deploy"})", a_.owner_key).status,
            409);
  auto listed = Parse(client_->Get("/api/owner/provisioning-keys", a_.owner_key).body).as_object();
  ASSERT_EQ(listed["data"].as_array().size(), 2u);
  for (const auto& pk : listed["data"].as_array()) {
    EXPECT_NE(std::string(pk.as_object().at("masked_key").as_string()).find("••••"), std::string::npos);
    EXPECT_FALSE(pk.as_object().contains("key"));
  }
  auto renamed = client_->Patch("/api/owner/provisioning-keys/" + id, R"({"name":"deploy-2"})",
                                a_.owner_key);
  EXPECT_EQ(Parse(renamed.body).as_object()["data"].as_object()["name"], "deploy-2");
}

TEST_F(ManagementTest, AuditLogRecordsEveryActionWithoutSecrets) {
  auto created = CreateKey(a_, R"({"api_key_name":"audited","rpm_limit":5})");
  const std::string hash(created["api_key_id_hash"].as_string());
  const std::string secret(created["api_key"].as_string());
  client_->Post("/prod/updateServiceKey",
                R"({"api_key_id_hash":")" + hash +
                    R"(","rpm_limit":9,"expire_key":"2099-01-02T03:04:05.000Z"})",
                a_.pk);
  client_->Post("/prod/deleteServiceKey", R"({"api_key_id_hash":")" + hash + R"("})", a_.pk);
  auto reply = client_->Get("/api/owner/audit?key=" + hash, a_.owner_key);
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.body.find(secret), std::string::npos);
  auto entries = Parse(reply.body).as_object()["data"].as_array();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].as_object().at("action"), "service_key.delete");
  EXPECT_EQ(entries[1].as_object().at("action"), "service_key.update");
  EXPECT_EQ(entries[2].as_object().at("action"), "service_key.create");
  auto change = entries[1].as_object().at("changes").as_object().at("rpm_limit").as_object();
  EXPECT_EQ(change.at("before"), 5);
  EXPECT_EQ(change.at("after"), 9);
  // Times as ISO 8601 UTC, as everywhere in the dialects (dialects.md).
  auto expiry = entries[1].as_object().at("changes").as_object().at("expire_key").as_object();
  EXPECT_EQ(expiry.at("before"), nullptr);
  EXPECT_EQ(expiry.at("after"), "2099-01-02T03:04:05.000Z");
  auto revoked = entries[0].as_object().at("changes").as_object().at("revoked_at").as_object();
  ASSERT_TRUE(revoked.at("after").is_string()) << json::serialize(revoked);
  EXPECT_EQ(revoked.at("after").as_string().back(), 'Z');
  EXPECT_EQ(entries[1].as_object().at("actor"), json::value("pk:" + a_.pk_id));
  // Filter by actor; page with limit/before.
  auto by_actor = client_->Get("/api/owner/audit?limit=1&actor=pk:" + a_.pk_id, a_.owner_key);
  auto page = Parse(by_actor.body).as_object();
  EXPECT_EQ(page["data"].as_array().size(), 1u);
  EXPECT_EQ(page["has_more"], true);
  // b's owner sees none of a's entries.
  auto bad_cursor = client_->Get("/api/owner/audit?before=-1", a_.owner_key);
  EXPECT_EQ(bad_cursor.status, 400);
  EXPECT_NE(bad_cursor.body.find(R"("param":"before")"), std::string::npos) << bad_cursor.body;
  auto other = client_->Get("/api/owner/audit?key=" + hash, b_.owner_key);
  EXPECT_EQ(Parse(other.body).as_object()["data"].as_array().size(), 0u);
}

// A rotation's audit entry names the successor (never its secret) and the old key's revoke_at
// as it was and as it is: null before the first rotation, shortened by a second rotation with a
// shorter grace, unchanged (before == after) by one with a longer grace, which only may shorten.
TEST_F(ManagementTest, AuditLogRecordsRotationsWithTheSuccessorAndRevokeAt) {
  auto created = CreateKey(a_, R"({"api_key_name":"rotated"})");
  const std::string old_hash(created["api_key_id_hash"].as_string());
  auto rotate = [&](int grace) {
    auto reply = client_->Post("/prod/rotateServiceKey",
                               R"({"api_key_id_hash":")" + old_hash +
                                   R"(","grace_period_seconds":)" + std::to_string(grace) + "}",
                               a_.pk);
    EXPECT_EQ(reply.status, 201) << reply.body;
    return Parse(reply.body).as_object();
  };
  const json::object first = rotate(3600);
  const json::object second = rotate(60);
  const json::object third = rotate(7200);
  auto reply = client_->Get("/api/owner/audit?key=" + old_hash, a_.owner_key);
  ASSERT_EQ(reply.status, 200) << reply.body;
  for (const json::object* rotated : {&first, &second, &third}) {
    EXPECT_EQ(reply.body.find(std::string(rotated->at("api_key").as_string())), std::string::npos);
  }
  auto entries = Parse(reply.body).as_object()["data"].as_array();
  ASSERT_EQ(entries.size(), 4u) << reply.body;  // newest first: three rotations, the create
  EXPECT_EQ(entries[3].as_object().at("action"), "service_key.create");
  const json::object* rotations[] = {&first, &second, &third};
  for (int i = 0; i < 3; ++i) {
    const json::object& entry = entries[2 - i].as_object();
    EXPECT_EQ(entry.at("action"), "service_key.rotate");
    EXPECT_EQ(entry.at("target"), json::value(old_hash)) << json::serialize(entry);
    EXPECT_EQ(entry.at("actor"), json::value("pk:" + a_.pk_id));
    const json::object& changes = entry.at("changes").as_object();
    EXPECT_EQ(changes.at("replaced_by").as_object().at("before"), nullptr);
    EXPECT_EQ(changes.at("replaced_by").as_object().at("after"),
              rotations[i]->at("api_key_id_hash"))
        << json::serialize(entry);
  }
  auto revoke = [&](int i) { return entries[2 - i].as_object().at("changes").at("revoke_at"); };
  const auto when = [](const json::value& v) { return std::string(v.as_string()); };
  EXPECT_EQ(revoke(0).at("before"), nullptr);
  ASSERT_TRUE(revoke(0).at("after").is_string());
  EXPECT_EQ(when(revoke(0).at("after")).back(), 'Z');
  // ISO 8601 UTC strings of one format compare in time order.
  EXPECT_EQ(revoke(1).at("before"), revoke(0).at("after"));
  EXPECT_LT(when(revoke(1).at("after")), when(revoke(1).at("before")));
  EXPECT_EQ(revoke(2).at("before"), revoke(1).at("after"));
  EXPECT_EQ(revoke(2).at("after"), revoke(1).at("after"));
}

// The value of the gauge `name` at /metrics, or -1.
int Gauge(TestHttpClient& client, const std::string& name) {
  const std::string text = client.Get("/metrics").body;
  const size_t at = text.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::stoi(text.substr(at + name.size() + 2));
}

// /metrics' keygate_service_keys counts the keys that can authenticate now: a deleted key, or
// a rotated one past its grace period, no longer counts (though the index keeps it, refused,
// for a minute: keygate_index_service_key_records).
TEST_F(ManagementTest, TheServiceKeyGaugeCountsOnlyKeysThatCanAuthenticate) {
  auto gauge = [&] { return Gauge(*client_, "keygate_service_keys"); };
  const std::string first = CreateKeyHash(a_, "first");
  const std::string second = CreateKeyHash(b_, "second");
  EXPECT_EQ(gauge(), 2);
  client_->Post("/prod/deleteServiceKey", R"({"api_key_id_hash":")" + first + R"("})", a_.pk);
  EXPECT_EQ(gauge(), 1);
  auto rotated = client_->Post("/prod/rotateServiceKey",
                               R"({"api_key_id_hash":")" + second + R"("})", b_.pk);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  EXPECT_EQ(gauge(), 1);  // the successor; the old key is revoked at once (grace 0)
  const std::string successor(Parse(rotated.body).at("api_key_id_hash").as_string());
  client_->Post("/prod/rotateServiceKey",
                R"({"api_key_id_hash":")" + successor + R"(","grace_period_seconds":600})",
                b_.pk);
  EXPECT_EQ(gauge(), 2);  // within its grace period the old key still works
  EXPECT_EQ(Gauge(*client_, "keygate_index_service_key_records"), 4);
}

// Audit W: the index kept every deleted key's record for good, and after a restart the poller
// read back those deleted after the newest live key. A key revoked over a minute ago is not
// read back (KeyIndex::ApplyStoredChange; the first KeyIndex::DropRevoked, unit-tested, runs a
// minute after the start).
TEST_F(ManagementTest, KeysRevokedLongAgoAreNotReadBackIntoTheIndexAfterARestart) {
  CreateKeyHash(a_, "live");
  for (const char* name : {"gone-1", "gone-2", "gone-3"}) {
    const std::string hash = CreateKeyHash(a_, name);
    auto deleted =
        client_->Post("/prod/deleteServiceKey", R"({"api_key_id_hash":")" + hash + R"("})", a_.pk);
    ASSERT_EQ(deleted.status, 200) << deleted.body;
  }
  EXPECT_EQ(Gauge(*client_, "keygate_index_service_key_records"), 4);
  ASSERT_EQ(process_->Stop(), 0);
  {  // Deleted two minutes ago.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_.path() + "/keygate.db").c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db,
                           "UPDATE service_keys SET revoke_at = revoke_at - 120000 "
                           "WHERE revoke_at IS NOT NULL",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  ASSERT_TRUE(process_->Start()) << process_->log();
  client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // two ticks of the poller
  EXPECT_EQ(Gauge(*client_, "keygate_index_service_key_records"), 1);
  EXPECT_EQ(Gauge(*client_, "keygate_service_keys"), 1);
}

}  // namespace
}  // namespace keygate::testing
