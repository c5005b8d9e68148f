// The router-keys v2 dialect end to end (spec dialects.md "Router keys v2: /v2/api-keys…"): the
// record, PATCH switches and partial guardrail objects, DELETE 204, cursor paging with
// `source`, bad input in v2's error shape, and rotation with a real (short) grace period.
#include <gtest/gtest.h>

#include <set>

#include "common/clock.h"
#include "integration/dialect_fixture.h"
#include "store/sqlite/sqlite_store.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

// spec dialects.md: the v2 record, exactly.
const std::set<std::string> kRecordFields = {
    "id", "name", "workspace_id", "token", "token_prefix", "active", "status", "source",
    "budget", "rate_limit", "models", "tags", "metadata", "expiration", "consumption",
    "token_consumption", "requests_per_minute_consumption", "created", "updated", "last_used_at",
    "revoke_at"};  // keygate's own: a rotated key's end

const std::string kFullCreate = R"({"name":"v2-key","expires_at":"2099-01-01T00:00:00Z",
  "budget":{"amount":"7.25","period":"weekly"},
  "rate_limit":{"requests_per_minute":60,"tokens_per_minute":1000},
  "models":["openai/gpt-4o-mini"],"tags":["a","b"],"metadata":{"k":1}})";

class RouterKeysTest : public DialectTest {
 protected:
  std::set<std::string> FieldsOf(const json::object& record) {
    std::set<std::string> out;
    for (const auto& member : record) out.insert(std::string(member.key()));
    return out;
  }
  json::object Patch(const std::string& id, const std::string& body, int status = 200) {
    Reply reply = Call("PATCH", "/v2/api-keys/" + id, body, a_.pk);
    EXPECT_EQ(reply.status, status) << body << " → " << reply.body;
    return Obj(reply);
  }
  // Every id of a full walk through the list, `limit` at a time.
  std::vector<std::string> WalkIds(const std::string& query, int limit, int* pages) {
    std::vector<std::string> ids;
    std::string cursor;
    *pages = 0;
    for (bool more = true; more && *pages < 100; ++*pages) {
      std::string path = "/v2/api-keys?limit=" + std::to_string(limit) + query;
      if (!cursor.empty()) path += "&starting_after=" + cursor;
      Reply reply = Call("GET", path, "", a_.pk);
      EXPECT_EQ(reply.status, 200) << reply.body;
      json::object page = Obj(reply);
      EXPECT_EQ(page["object"], "list");
      for (const json::value& record : page["data"].as_array()) {
        ids.push_back(Str(record.as_object().at("id")));
      }
      more = page["has_more"].as_bool();
      if (!ids.empty()) cursor = ids.back();
    }
    return ids;
  }
};

TEST_F(RouterKeysTest, CreateAnswers201WithTheRecordAndTheRawTokenOnce) {
  Reply reply = Call("POST", "/v2/api-keys", kFullCreate, a_.pk);
  ASSERT_EQ(reply.status, 201) << reply.body;
  json::object record = Obj(reply);
  EXPECT_EQ(FieldsOf(record), kRecordFields);
  EXPECT_EQ(Str(record["id"]).size(), 64u);
  EXPECT_EQ(record["name"], "v2-key");
  EXPECT_EQ(record["workspace_id"], json::value(a_.org_id));
  const std::string token = Str(record["token"]);
  EXPECT_EQ(token.rfind("sk-kg-", 0), 0u);
  EXPECT_EQ(token.find("••••"), std::string::npos);
  EXPECT_EQ(record["token_prefix"], "sk-kg-");
  EXPECT_EQ(record["active"], true);
  EXPECT_EQ(record["status"], "ACTIVE");
  EXPECT_EQ(record["source"], "router");
  EXPECT_EQ(record["budget"], json::parse(R"({"amount":7.25,"period":"weekly"})"));
  EXPECT_EQ(record["rate_limit"],
            json::parse(R"({"requests_per_minute":60,"tokens_per_minute":1000})"));
  EXPECT_EQ(record["models"], json::parse(R"(["openai/gpt-4o-mini"])"));
  EXPECT_EQ(record["tags"], json::parse(R"(["a","b"])"));
  EXPECT_EQ(record["metadata"], json::parse(R"({"k":1})"));
  EXPECT_EQ(record["expiration"], "2099-01-01T00:00:00.000Z");
  EXPECT_EQ(record["consumption"], 0);
  EXPECT_EQ(record["token_consumption"], 0);
  EXPECT_EQ(record["requests_per_minute_consumption"], 0);
  EXPECT_EQ(record["created"], record["updated"]);
  EXPECT_TRUE(record["last_used_at"].is_null());
  // Read back: the same record, with the token masked.
  Reply got = Call("GET", "/v2/api-keys/" + Str(record["id"]), "", a_.pk);
  ASSERT_EQ(got.status, 200) << got.body;
  json::object again = Obj(got);
  EXPECT_EQ(got.body.find(token), std::string::npos);
  EXPECT_NE(Str(again["token"]).find("••••"), std::string::npos);
  again.erase("token");
  record.erase("token");
  EXPECT_EQ(again, record);
}

TEST_F(RouterKeysTest, PatchSwitchesStatusAndUpdatesGuardrailsPartially) {
  const std::string id = Str(V2Create(a_.pk, kFullCreate)["id"]);
  json::object r = Patch(id, R"({"status":"API_KEY_STATUS_DISABLED"})");
  EXPECT_EQ(r["active"], false);
  EXPECT_EQ(r["status"], "DISABLED");
  r = Patch(id, R"({"status":"active"})");
  EXPECT_EQ(r["status"], "ACTIVE");
  r = Patch(id, R"({"active":false})");
  EXPECT_EQ(r["status"], "DISABLED");
  r = Patch(id, R"({"active":true,"status":"ACTIVE"})");
  EXPECT_EQ(r["active"], true);
  r = Patch(id, R"({"budget":{"amount":3}})");
  EXPECT_EQ(r["budget"], json::parse(R"({"amount":3,"period":"weekly"})"));
  r = Patch(id, R"({"rate_limit":{"tokens_per_minute":null}})");
  EXPECT_EQ(r["rate_limit"], json::parse(R"({"requests_per_minute":60,"tokens_per_minute":null})"));
  r = Patch(id, R"({"budget":null,"rate_limit":null,"models":null,"expires_at":null})");
  EXPECT_TRUE(r["budget"].is_null());
  EXPECT_TRUE(r["rate_limit"].is_null());
  EXPECT_TRUE(r["models"].is_null());
  EXPECT_TRUE(r["expiration"].is_null());
  EXPECT_EQ(r["tags"], json::parse(R"(["a","b"])"));  // untouched
  r = Patch(id, R"({"name":"renamed","tags":[],"metadata":null})");
  EXPECT_EQ(r["name"], "renamed");
  EXPECT_EQ(r["tags"], json::array());
  EXPECT_TRUE(r["metadata"].is_null());
  EXPECT_NE(r["updated"], r["created"]);
  json::object unchanged = Patch(id, "");
  EXPECT_EQ(unchanged["name"], "renamed");
}

TEST_F(RouterKeysTest, DeleteAnswers204WithoutABodyThenTheKeyIsGone) {
  json::object record = V2Create(a_.pk, R"({"name":"doomed"})");
  const std::string path = "/v2/api-keys/" + Str(record["id"]);
  Reply deleted = Call("DELETE", path, "", a_.pk);
  EXPECT_EQ(deleted.status, 204);
  EXPECT_TRUE(deleted.body.empty()) << deleted.body;
  Reply gone = Call("GET", path, "", a_.pk);
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(Obj(gone)["code"], "404");
  EXPECT_TRUE(Obj(gone)["message"].is_string());
  EXPECT_EQ(Call("DELETE", path, "", a_.pk).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", Str(record["token"])).status, 401);
}

TEST_F(RouterKeysTest, ListPagesWithACursorInCreationOrder) {
  constexpr int kKeys = 30;
  std::vector<std::string> made;
  for (int i = 0; i < kKeys; ++i) {
    made.push_back(Str(V2Create(a_.pk, R"({"name":"k)" + std::to_string(i) + R"("})")["id"]));
  }
  Reply first = Call("GET", "/v2/api-keys", "", a_.pk);
  ASSERT_EQ(first.status, 200) << first.body;
  json::object page = Obj(first);
  EXPECT_EQ(page["object"], "list");
  EXPECT_EQ(page["data"].as_array().size(), 25u);  // the default page
  EXPECT_EQ(page["has_more"], true);
  EXPECT_EQ(page["data"].as_array()[0].as_object().at("id"), json::value(made[0]));
  int pages = 0;
  EXPECT_EQ(WalkIds("", 7, &pages), made);
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(WalkIds("", 200, &pages), made);
  EXPECT_EQ(pages, 1);
  // A cursor of a deleted key still pages on from its place.
  ASSERT_EQ(Call("DELETE", "/v2/api-keys/" + made[10], "", a_.pk).status, 204);
  Reply after = Call("GET", "/v2/api-keys?limit=1&starting_after=" + made[10], "", a_.pk);
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(Obj(after)["data"].as_array()[0].as_object().at("id"), json::value(made[11]));
}

TEST_F(RouterKeysTest, SourceSelectsRouterOrWorkspaceKeys) {
  V2Create(a_.pk, R"({"name":"router-key"})");
  Reply made = Call("POST", "/api/owner/keys", R"({"name":"console-key"})", a_.owner_key);
  ASSERT_EQ(made.status, 201) << made.body;
  auto names = [&](const std::string& query, const std::string& bearer) {
    Reply reply = Call("GET", "/v2/api-keys" + query, "", bearer);
    EXPECT_EQ(reply.status, 200) << query << " " << reply.body;
    std::vector<std::string> out;
    const json::object page = Obj(reply);
    for (const json::value& r : page.at("data").as_array()) {
      out.push_back(Str(r.as_object().at("name")));
    }
    return out;
  };
  using Names = std::vector<std::string>;
  EXPECT_EQ(names("", a_.pk), Names{"router-key"});
  EXPECT_EQ(names("?source=router", a_.owner_key), Names{"router-key"});
  EXPECT_EQ(names("", a_.owner_key), Names{"router-key"});  // router by default, owners too
  EXPECT_EQ(names("?source=workspace", a_.owner_key), Names{"console-key"});
  Reply refused = Call("GET", "/v2/api-keys?source=workspace", "", a_.pk);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(Obj(refused)["code"], "403");
}

TEST_F(RouterKeysTest, ListFiltersByTagProjectStatusAndName) {
  V2Create(a_.pk, R"({"name":"alpha-one","tags":["ci","prod"]})");
  const std::string two = Str(V2Create(a_.pk, R"({"name":"alpha-two","tags":["ci"]})")["id"]);
  CreateKey(a_, R"({"api_key_name":"in-project","project_name":"P1"})");
  Patch(two, R"({"active":false})");
  auto count = [&](const std::string& query) {
    Reply reply = Call("GET", "/v2/api-keys" + query, "", a_.pk);
    EXPECT_EQ(reply.status, 200) << query << " " << reply.body;
    return Obj(reply)["data"].as_array().size();
  };
  EXPECT_EQ(count(""), 3u);
  EXPECT_EQ(count("?tag=ci"), 2u);
  EXPECT_EQ(count("?tags=ci,prod"), 1u);
  EXPECT_EQ(count("?project_name=P1"), 1u);
  EXPECT_EQ(count("?status=DISABLED"), 1u);
  EXPECT_EQ(count("?status=API_KEY_STATUS_ACTIVE"), 2u);
  EXPECT_EQ(count("?search=alpha"), 2u);
  EXPECT_EQ(count("?search=alpha&status=active"), 1u);
}

// workspace_id is no v2 input (spec: unknown fields are ignored): naming another org acts on
// the caller's own, and shows nothing of the other's.
TEST_F(RouterKeysTest, WorkspaceIdIsIgnoredAsAnyUnknownField) {
  V2Create(b_.pk, R"({"name":"b-key"})");
  json::object made = V2Create(
      a_.pk, R"({"name":"a-key","workspace_id":")" + b_.org_id + R"("})");
  EXPECT_EQ(made["workspace_id"], json::value(a_.org_id));
  Reply listed = Call("GET", "/v2/api-keys?workspace_id=" + b_.org_id, "", a_.pk);
  ASSERT_EQ(listed.status, 200) << listed.body;
  json::object page = Obj(listed);
  const json::array& data = page["data"].as_array();
  ASSERT_EQ(data.size(), 1u);
  EXPECT_EQ(data[0].as_object().at("name"), "a-key");
}

struct BadCase {
  std::string method;
  std::string path;  // "{id}" is replaced by a real key's id
  std::string body;
  int status;
  std::string field;  // must appear in the message
};

// Every bad input of the dialect; "{id}" stands for a real key's id.
std::vector<BadCase> BadCases() {
  const std::string keys = "/v2/api-keys";
  const std::string one = keys + "/{id}";
  return {
      {"POST", keys, "", 400, "body"},
      {"POST", keys, "{nope", 400, "body"},
      {"POST", keys, "{}", 400, "name"},
      {"POST", keys, R"({"name":""})", 400, "name"},
      {"POST", keys, R"({"name":null})", 400, "name"},
      {"POST", keys, R"({"name":["x"]})", 400, "name"},
      {"POST", keys, R"({"name":"x","budget":5})", 400, "budget"},
      {"POST", keys, R"({"name":"x","budget":{"amount":-1}})", 400, "budget.amount"},
      {"POST", keys, R"({"name":"x","budget":{"amount":0}})", 400, "budget.amount"},
      {"POST", keys, R"({"name":"x","budget":{"amount":"ten"}})", 400, "budget.amount"},
      {"POST", keys, R"({"name":"x","budget":{"period":"hourly"}})", 400, "budget.period"},
      {"POST", keys, R"({"name":"x","rate_limit":[]})", 400, "rate_limit"},
      {"POST", keys, R"({"name":"x","rate_limit":{"requests_per_minute":0}})", 400,
       "rate_limit.requests_per_minute"},
      {"POST", keys, R"({"name":"x","rate_limit":{"tokens_per_minute":1.5}})", 400,
       "rate_limit.tokens_per_minute"},
      {"POST", keys, R"({"name":"x","rate_limit":{"tokens_per_minute":-4}})", 400,
       "rate_limit.tokens_per_minute"},
      {"POST", keys, R"({"name":"x","expires_at":"2001-01-01T00:00:00Z"})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","expires_at":"2099-01-01T00:00Z"})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","expires_at":"tomorrow"})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","models":"openai/gpt-4o"})", 400, "models"},
      {"POST", keys, R"({"name":"x","models":["gpt-4o"]})", 400, "models"},
      {"POST", keys, R"({"name":"x","tags":[1]})", 400, "tags"},
      {"POST", keys, R"({"name":"x","metadata":[]})", 400, "metadata"},
      {"PATCH", one, R"({"active":"yes"})", 400, "active"},
      {"PATCH", one, R"({"active":null})", 400, "active"},
      {"PATCH", one, R"({"status":"sleeping"})", 400, "status"},
      {"PATCH", one, R"({"status":"EXPIRED"})", 400, "status"},
      {"PATCH", one, R"({"status":null})", 400, "status"},
      {"PATCH", one, R"({"active":true,"status":"DISABLED"})", 400, "status"},
      {"PATCH", one, R"({"name":""})", 400, "name"},
      {"PATCH", one, R"({"budget":{"amount":0}})", 400, "budget.amount"},
      {"POST", one + "/rotate", R"({"grace_period_seconds":-5})", 400, "grace_period_seconds"},
      {"POST", one + "/rotate", R"({"grace_period_seconds":true})", 400, "grace_period_seconds"},
      {"GET", keys + "?limit=0", "", 400, "limit"},
      {"GET", keys + "?limit=201", "", 400, "limit"},
      {"GET", keys + "?limit=ten", "", 400, "limit"},
      {"GET", keys + "?starting_after=" + std::string(64, 'a'), "", 400, "starting_after"},
      {"GET", keys + "?starting_after=nope", "", 400, "starting_after"},
      {"GET", keys + "?source=everything", "", 400, "source"},
      {"GET", keys + "?status=sleeping", "", 400, "status"},
      {"GET", keys + "/" + std::string(64, 'a'), "", 404, ""},
  };
}

TEST_F(RouterKeysTest, BadInputsAnswer4xxInV2ShapeNamingTheV2Field) {
  const std::string id = Str(V2Create(a_.pk, R"({"name":"target"})")["id"]);
  const std::string keys = "/v2/api-keys";
  const std::vector<BadCase> cases = BadCases();
  for (const BadCase& c : cases) {
    std::string path = c.path;
    if (size_t at = path.find("{id}"); at != std::string::npos) path.replace(at, 4, id);
    Reply reply = Call(c.method, path, c.body, a_.pk);
    const std::string context = c.method + " " + path + " " + c.body;
    EXPECT_EQ(reply.status, c.status) << context << " → " << reply.body;
    json::object error = Obj(reply);
    EXPECT_EQ(error["code"], json::value(std::to_string(c.status))) << context;
    ASSERT_TRUE(error["message"].is_string()) << reply.body;
    if (!c.field.empty()) {
      EXPECT_NE(Str(error["message"]).find(c.field), std::string::npos)
          << context << " → " << reply.body;
    }
  }
  // A cursor naming another org's key names nothing here either.
  const std::string foreign = OrCreateHash(b_, "b-key");
  EXPECT_EQ(Call("GET", keys + "?starting_after=" + foreign, "", a_.pk).status, 400);
  Reply target = Call("GET", keys + "/" + id, "", a_.pk);
  EXPECT_EQ(Obj(target)["name"], "target");
  EXPECT_EQ(Obj(target)["status"], "ACTIVE");
  EXPECT_EQ(client_->Get("/healthz").status, 200);
}

TEST_F(RouterKeysTest, RotationKeepsTheOldKeyUntilRevokeAtThenItIsGone) {
  json::object old_record = V2Create(a_.pk, kFullCreate);
  const std::string old_id = Str(old_record["id"]);
  const std::string old_token = Str(old_record["token"]);
  Reply reply = Call("POST", "/v2/api-keys/" + old_id + "/rotate",
                     R"({"grace_period_seconds":1})", a_.pk);
  ASSERT_EQ(reply.status, 201) << reply.body;
  json::object fresh = Obj(reply);
  EXPECT_NE(fresh["id"], json::value(old_id));
  EXPECT_EQ(Str(fresh["token"]).rfind("sk-kg-", 0), 0u);
  EXPECT_EQ(Str(fresh["token"]).find("••••"), std::string::npos);
  EXPECT_EQ(fresh["replaces"].as_object()["id"], json::value(old_id));
  for (const char* field : {"name", "budget", "rate_limit", "models", "tags", "metadata",
                            "expiration", "consumption"}) {
    EXPECT_EQ(fresh[field], old_record[field]) << field;
  }
  // Before revoke_at: the old key answers and is listed beside the new one.
  EXPECT_EQ(Call("GET", "/v2/api-keys/" + old_id, "", a_.pk).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", old_token).status, 200);
  int pages = 0;
  EXPECT_EQ(WalkIds("", 25, &pages).size(), 2u);
  // After: refused as a credential and unknown to management.
  EXPECT_TRUE(Eventually([&] {
    return Call("GET", "/v2/api-keys/" + old_id, "", a_.pk).status == 404;
  })) << "the old key was still listed 10 s after its revoke_at";
  EXPECT_EQ(Call("GET", "/api/v1/key", "", old_token).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", Str(fresh["token"])).status, 200);
  EXPECT_EQ(WalkIds("", 25, &pages), std::vector<std::string>{Str(fresh["id"])});
}

// `consumption` is the spend of the key's current budget period, not its total (audit Y: a
// mutant writing the total survived, since every test's spend fell on one day). The store is
// seeded with a call three days ago and one now, for a key whose budget resets daily.
TEST_F(RouterKeysTest, ConsumptionIsTheSpendOfTheCurrentPeriod) {
  Reply created = Call("POST", "/v2/api-keys",
                       R"({"name":"daily","budget":{"amount":"10","period":"daily"}})", a_.pk);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string id = Str(Obj(created)["id"]);
  ASSERT_EQ(process_->Stop(), 0);
  constexpr int64_t kDayMs = 86'400'000;
  const UnixMillis now = SystemClock().NowMs();
  {
    auto store = store::SqliteStore::Open(dir_.path() + "/keygate.db", {});
    ASSERT_TRUE(store.ok()) << store.error().message;
    store::UsageRecord earlier;
    earlier.key_hash = id;
    earlier.lineage = id;
    earlier.org_id = a_.org_id;
    earlier.model = "mock/echo";
    earlier.provider = "mock";
    earlier.cost = 2'000'000;
    earlier.status = 200;
    earlier.request_id = "req_earlier";
    earlier.at = now - 3 * kDayMs;
    store::UsageRecord today = earlier;
    today.cost = 250'000;
    today.request_id = "req_today";
    today.at = now;
    ASSERT_TRUE((*store)->AppendUsage({earlier, today}).ok());
  }
  ASSERT_TRUE(process_->Start()) << process_->log();
  client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  Reply v2 = Call("GET", "/v2/api-keys/" + id, "", a_.pk);
  Reply openrouter = Call("GET", "/api/v1/keys/" + id, "", a_.pk);
  if (SystemClock().NowMs() / kDayMs != now / kDayMs) GTEST_SKIP() << "the UTC day changed";
  ASSERT_EQ(v2.status, 200) << v2.body;
  EXPECT_EQ(Obj(v2)["consumption"], json::value(0.25)) << v2.body;
  ASSERT_EQ(openrouter.status, 200) << openrouter.body;
  const json::object data = Obj(openrouter)["data"].as_object();
  EXPECT_EQ(data.at("usage"), json::value(2.25)) << openrouter.body;
  EXPECT_EQ(data.at("usage_daily"), json::value(0.25)) << openrouter.body;
}

}  // namespace
}  // namespace keygate::testing
