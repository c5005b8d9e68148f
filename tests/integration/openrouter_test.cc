// OpenRouter's dialect end to end (spec dialects.md "OpenRouter: /api/v1/keys…"): every call,
// the KeyData and CurrentKey shapes the official SDK insists on, paging, filters, bad input,
// and rotation with a real (short) grace period.
#include <gtest/gtest.h>

#include <ctime>
#include <iomanip>
#include <set>
#include <sstream>

#include "integration/dialect_fixture.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

// spec dialects.md: KeyData, every field present (expires_at may be absent or null).
const char* const kKeyDataFields[] = {
    "hash", "name", "label", "disabled", "limit", "limit_remaining", "limit_reset",
    "include_byok_in_limit", "usage", "usage_daily", "usage_weekly", "usage_monthly",
    "byok_usage", "byok_usage_daily", "byok_usage_weekly", "byok_usage_monthly", "created_at",
    "updated_at", "creator_user_id", "external_user", "workspace_id"};

const char* const kCurrentKeyFields[] = {
    "name", "label", "limit", "limit_remaining", "limit_reset", "include_byok_in_limit", "usage",
    "usage_daily", "usage_weekly", "usage_monthly", "byok_usage", "byok_usage_daily",
    "byok_usage_weekly", "byok_usage_monthly", "is_free_tier", "is_management_key",
    "is_provisioning_key", "creator_user_id", "organization_id", "workspace_id",
    "allowed_data_regions", "free_model_daily_requests", "rate_limit"};

const std::string kFullCreate = R"({"name":"or-key","limit":12.5,"limit_reset":"monthly",
  "include_byok_in_limit":true,"expires_at":"2099-01-01T00:00:00Z","creator_user_id":"user-7",
  "external":{"user":"ext-1"},"models":["openai/*"],"rpm_limit":30,"tpm_limit":5000,
  "tags":["ci"],"metadata":{"team":"platform"}})";

class OpenRouterTest : public DialectTest {
 protected:
  json::object Data(const Reply& reply) {
    json::object body = Obj(reply);
    auto* data = body.if_contains("data");
    EXPECT_TRUE(data && data->is_object()) << reply.body;
    return data && data->is_object() ? data->as_object() : json::object{};
  }
  std::vector<std::string> ListedNames(const std::string& query, const std::string& bearer) {
    Reply reply = Call("GET", "/api/v1/keys" + query, "", bearer);
    EXPECT_EQ(reply.status, 200) << query << " " << reply.body;
    std::vector<std::string> names;
    const json::object page = Obj(reply);
    for (const json::value& key : page.at("data").as_array()) {
      names.push_back(Str(key.as_object().at("name")));
    }
    return names;
  }
};

TEST_F(OpenRouterTest, CreateAnswers201WithEveryKeyDataFieldAndTheSecretOnce) {
  Reply reply = Call("POST", "/api/v1/keys", kFullCreate, a_.pk);
  ASSERT_EQ(reply.status, 201) << reply.body;
  EXPECT_EQ(reply.Header("content-type"), "application/json");
  json::object body = Obj(reply);
  EXPECT_EQ(Str(body["key"]).rfind("sk-kg-", 0), 0u);
  json::object data = body["data"].as_object();
  for (const char* field : kKeyDataFields) EXPECT_TRUE(data.contains(field)) << field;
  EXPECT_EQ(Str(data["hash"]).size(), 64u);
  EXPECT_NE(Str(data["label"]).find("••••"), std::string::npos);
  EXPECT_EQ(data["name"], "or-key");
  EXPECT_EQ(data["disabled"], false);
  EXPECT_EQ(data["limit"], 12.5);
  EXPECT_EQ(data["limit_remaining"], 12.5);
  EXPECT_EQ(data["limit_reset"], "monthly");
  EXPECT_EQ(data["include_byok_in_limit"], true);
  EXPECT_EQ(data["usage"], 0);
  EXPECT_EQ(data["byok_usage_monthly"], 0);
  EXPECT_TRUE(data["updated_at"].is_null());
  EXPECT_EQ(data["expires_at"], "2099-01-01T00:00:00.000Z");
  EXPECT_EQ(data["creator_user_id"], "user-7");
  EXPECT_EQ(data["external_user"], "ext-1");
  EXPECT_EQ(data["workspace_id"], json::value(a_.org_id));
  // keygate's own fields beside OpenRouter's.
  EXPECT_EQ(data["rpm_limit"], 30);
  EXPECT_EQ(data["tpm_limit"], 5000);
  EXPECT_EQ(data["models"], json::parse(R"(["openai/*"])"));
  EXPECT_EQ(data["tags"], json::parse(R"(["ci"])"));
  EXPECT_EQ(data["metadata"], json::parse(R"({"team":"platform"})"));
  EXPECT_EQ(data["source"], "router");
  // The secret never shows again.
  Reply got = Call("GET", "/api/v1/keys/" + Str(data["hash"]), "", a_.pk);
  EXPECT_EQ(got.body.find(Str(body["key"])), std::string::npos);
}

TEST_F(OpenRouterTest, GetPatchAndDeleteAKey) {
  json::object data = OrCreate(a_.pk, kFullCreate)["data"].as_object();
  const std::string path = "/api/v1/keys/" + Str(data["hash"]);
  Reply got = Call("GET", path, "", a_.pk);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Data(got), data);
  // An empty body is valid and changes nothing but updated_at.
  Reply empty = Call("PATCH", path, "", a_.pk);
  ASSERT_EQ(empty.status, 200) << empty.body;
  json::object unchanged = Data(empty);
  unchanged.erase("updated_at");
  json::object before = data;
  before.erase("updated_at");
  EXPECT_EQ(unchanged, before);
  Reply patched = Call("PATCH", path, R"({"name":"renamed","limit":null,"disabled":true})", a_.pk);
  ASSERT_EQ(patched.status, 200) << patched.body;
  json::object after = Data(patched);
  EXPECT_EQ(after["name"], "renamed");
  EXPECT_TRUE(after["limit"].is_null());
  EXPECT_TRUE(after["limit_remaining"].is_null());
  EXPECT_EQ(after["disabled"], true);
  EXPECT_EQ(after["status"], "disabled");
  EXPECT_EQ(after["limit_reset"], "monthly");  // untouched
  EXPECT_FALSE(after["updated_at"].is_null());
  Reply deleted = Call("DELETE", path, "", a_.pk);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(Obj(deleted), json::parse(R"({"deleted":true})").as_object());
  Reply gone = Call("GET", path, "", a_.pk);
  EXPECT_EQ(gone.status, 404);
  EXPECT_EQ(Obj(gone)["error"].as_object()["code"], 404);
  EXPECT_EQ(Call("DELETE", path, "", a_.pk).status, 404);
}

TEST_F(OpenRouterTest, HashIsPercentDecodedAndAnEmptyCookieHeaderIsAccepted) {
  const std::string hash = OrCreateHash(a_, "encoded");
  // The SDK URL-encodes the hash and sends an empty cookie header on every request.
  char escaped[4];
  std::snprintf(escaped, sizeof escaped, "%%%02X", static_cast<unsigned char>(hash[0]));
  Reply got = client_->Request("GET", "/api/v1/keys/" + std::string(escaped) + hash.substr(1), "",
                               {{"authorization", "Bearer " + a_.pk}, {"cookie", ""}});
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Data(got)["hash"], json::value(hash));
}

TEST_F(OpenRouterTest, ListIsNewestFirstHidesDisabledKeysAndPagesByOneHundred) {
  constexpr int kKeys = 101;
  std::vector<std::string> hashes;
  for (int i = 0; i < kKeys; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "k%03d", i);
    hashes.push_back(OrCreateHash(a_, name));
  }
  std::vector<std::string> page = ListedNames("", a_.pk);
  ASSERT_EQ(page.size(), 100u);
  EXPECT_EQ(page.front(), "k100");
  EXPECT_EQ(page.back(), "k001");
  EXPECT_EQ(ListedNames("?offset=100", a_.pk), std::vector<std::string>{"k000"});
  EXPECT_EQ(ListedNames("/?offset=100", a_.pk), std::vector<std::string>{"k000"});  // "/keys/"
  ASSERT_EQ(Call("PATCH", "/api/v1/keys/" + hashes.back(), R"({"disabled":true})", a_.pk).status,
            200);
  EXPECT_EQ(ListedNames("", a_.pk).front(), "k099");
  EXPECT_EQ(ListedNames("?include_disabled=true", a_.pk).front(), "k100");
  EXPECT_EQ(ListedNames("?include_disabled=false&offset=99", a_.pk),
            std::vector<std::string>{"k000"});
}

TEST_F(OpenRouterTest, ListFiltersByTagProjectStatusNameAndWorkspace) {
  OrCreate(a_.pk, R"({"name":"alpha-one","tags":["ci","prod"],"project_name":"P1"})");
  OrCreate(a_.pk, R"({"name":"alpha-two","tags":["ci"]})");
  const std::string beta = OrCreateHash(a_, "beta");
  ASSERT_EQ(Call("PATCH", "/api/v1/keys/" + beta, R"({"disabled":true})", a_.pk).status, 200);
  using Names = std::vector<std::string>;
  EXPECT_EQ(ListedNames("?tag=ci", a_.pk), (Names{"alpha-two", "alpha-one"}));
  EXPECT_EQ(ListedNames("?tags=ci,prod", a_.pk), Names{"alpha-one"});
  EXPECT_EQ(ListedNames("?tag=ci&tag=prod", a_.pk), Names{"alpha-one"});
  EXPECT_EQ(ListedNames("?project_name=P1", a_.pk), Names{"alpha-one"});
  EXPECT_EQ(ListedNames("?project_name=nope", a_.pk), Names{});
  EXPECT_EQ(ListedNames("?status=disabled", a_.pk), Names{"beta"});
  EXPECT_EQ(ListedNames("?search=ALPHA-T", a_.pk), Names{"alpha-two"});
  EXPECT_EQ(ListedNames("?workspace_id=" + a_.org_id, a_.pk).size(), 2u);
  EXPECT_EQ(ListedNames("?workspace_id=" + b_.org_id, a_.pk), Names{});
  EXPECT_EQ(ListedNames("?workspace_id=org_doesnotexist", a_.pk), Names{});
}

TEST_F(OpenRouterTest, CurrentKeyAnswersForServiceProvisioningAndOwnerKeys) {
  json::object created = OrCreate(a_.pk, kFullCreate);
  const std::string secret = Str(created["key"]);
  Reply mine = Call("GET", "/api/v1/key", "", secret);
  ASSERT_EQ(mine.status, 200) << mine.body;
  json::object data = Data(mine);
  for (const char* field : kCurrentKeyFields) EXPECT_TRUE(data.contains(field)) << field;
  EXPECT_EQ(data["label"], created["data"].as_object()["label"]);
  EXPECT_EQ(data["name"], "or-key");  // spec data-plane.md (audit R: it was missing)
  EXPECT_EQ(data["limit"], 12.5);
  EXPECT_EQ(data["limit_remaining"], 12.5);
  EXPECT_EQ(data["limit_reset"], "monthly");
  EXPECT_EQ(data["is_provisioning_key"], false);
  EXPECT_EQ(data["is_management_key"], false);
  EXPECT_EQ(data["is_free_tier"], false);
  EXPECT_EQ(data["expires_at"], "2099-01-01T00:00:00.000Z");
  EXPECT_EQ(data["organization_id"], json::value(a_.org_id));
  EXPECT_EQ(data["allowed_data_regions"], json::parse(R"(["global"])"));
  EXPECT_EQ(data["rate_limit"].as_object()["requests"], 30);
  EXPECT_EQ(data["rate_limit"].as_object()["tokens"], 5000);  // keygate's addition
  EXPECT_TRUE(data["free_model_daily_requests"].as_object()["used"].is_int64());

  const std::vector<std::pair<std::string, std::string>> managers = {{a_.pk, "pk-kg-"},
                                                                     {a_.owner_key, "ok-kg-"}};
  for (const auto& [bearer, prefix] : managers) {
    Reply manager = Call("GET", "/api/v1/key", "", bearer);
    ASSERT_EQ(manager.status, 200) << manager.body;
    json::object m = Data(manager);
    for (const char* field : kCurrentKeyFields) EXPECT_TRUE(m.contains(field)) << field;
    EXPECT_EQ(m["is_provisioning_key"], true);
    EXPECT_EQ(m["is_management_key"], true);
    EXPECT_EQ(Str(m["label"]).rfind(prefix, 0), 0u) << m["label"];
    EXPECT_TRUE(m["limit"].is_null());
    EXPECT_EQ(m["rate_limit"].as_object()["requests"], -1);
    EXPECT_EQ(m["workspace_id"], json::value(a_.org_id));
  }
}

TEST_F(OpenRouterTest, CurrentKeyRefusesUnknownDisabledAndDeletedKeys) {
  json::object created = OrCreate(a_.pk, R"({"name":"me"})");
  const std::string secret = Str(created["key"]);
  const std::string path = "/api/v1/keys/" + Str(created["data"].as_object()["hash"]);
  Reply missing = Call("GET", "/api/v1/key", "", "");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(Obj(missing)["error"].as_object()["code"], 401);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", "sk-kg-unknown").status, 401);
  ASSERT_EQ(Call("PATCH", path, R"({"disabled":true})", a_.pk).status, 200);
  Reply disabled = Call("GET", "/api/v1/key", "", secret);
  EXPECT_EQ(disabled.status, 403) << disabled.body;
  ASSERT_EQ(Call("PATCH", path, R"({"disabled":false})", a_.pk).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", secret).status, 200);
  ASSERT_EQ(Call("DELETE", path, "", a_.pk).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", secret).status, 401);
}

// `iso` ("2026-11-23T10:33:17.076Z", the server's clock) plus `seconds`, with second precision.
std::string SecondsAfter(const std::string& iso, int seconds) {
  std::tm tm{};
  std::istringstream in(iso.substr(0, 19));
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  std::time_t at = timegm(&tm) + seconds + 1;  // +1: the dropped milliseconds
  std::tm out{};
  gmtime_r(&at, &out);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &out);
  return text;
}

TEST_F(OpenRouterTest, CurrentKeyOfAnExpiredKeyIs401KeyExpired) {
  // The server's own clock, read from a key it just made: the expiry is 1 s after it.
  json::object clock = OrCreate(a_.pk, R"({"name":"clock"})")["data"].as_object();
  const std::string now = Str(clock["created_at"]);
  json::object created =
      OrCreate(a_.pk, R"({"name":"short-lived","expires_at":")" + SecondsAfter(now, 1) + R"("})");
  const std::string secret = Str(created["key"]);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", secret).status, 200);
  Reply expired;
  EXPECT_TRUE(Eventually([&] {
    expired = Call("GET", "/api/v1/key", "", secret);
    return expired.status != 200;
  })) << "the key was still accepted 10 s after its expiry";
  EXPECT_EQ(expired.status, 401) << expired.body;
  EXPECT_EQ(Obj(expired)["error"].as_object()["reason"], "key_expired") << expired.body;
  // Management still sees it, as expired.
  Reply listed = Call("GET", "/api/v1/keys/" + Str(created["data"].as_object()["hash"]), "", a_.pk);
  EXPECT_EQ(Data(listed)["status"], "expired");
}

struct BadCase {
  std::string method;
  std::string path;  // "{hash}" is replaced by a real key's hash
  std::string body;
  int status;
  std::string field;  // must be the error's param and appear in its message
};

// Every bad input of the dialect; "{hash}" stands for a real key's hash.
std::vector<BadCase> BadCases(const std::string& other_org) {
  const std::string keys = "/api/v1/keys";
  return {
      {"POST", keys, "", 400, "body"},
      {"POST", keys, "{not json", 400, "body"},
      {"POST", keys, "[]", 400, "body"},
      {"POST", keys, "{}", 400, "name"},
      {"POST", keys, R"({"name":""})", 400, "name"},
      {"POST", keys, R"({"name":null})", 400, "name"},
      {"POST", keys, R"({"name":5})", 400, "name"},
      {"POST", keys, R"({"name":")" + std::string(257, 'n') + R"("})", 400, "name"},
      {"POST", keys, R"({"name":"x","limit":-1})", 400, "limit"},
      {"POST", keys, R"({"name":"x","limit":0})", 400, "limit"},
      {"POST", keys, R"({"name":"x","limit":"abc"})", 400, "limit"},
      {"POST", keys, R"({"name":"x","limit":[]})", 400, "limit"},
      {"POST", keys, R"({"name":"x","limit_reset":"hourly"})", 400, "limit_reset"},
      {"POST", keys, R"({"name":"x","limit_reset":7})", 400, "limit_reset"},
      {"POST", keys, R"({"name":"x","expires_at":"2099-01-01T00:00:00+02:00"})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","expires_at":"2099-01-01T00:00Z"})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","expires_at":"2099-01-01 00:00:00"})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","expires_at":"2001-01-01T00:00:00Z"})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","expires_at":20990101})", 400, "expires_at"},
      {"POST", keys, R"({"name":"x","include_byok_in_limit":"yes"})", 400,
       "include_byok_in_limit"},
      {"POST", keys, R"({"name":"x","external":"user-1"})", 400, "external"},
      {"POST", keys, R"({"name":"x","external":{"user":5}})", 400, "external.user"},
      {"POST", keys, R"({"name":"x","creator_user_id":12})", 400, "creator_user_id"},
      {"POST", keys, R"({"name":"x","rpm_limit":0})", 400, "rpm_limit"},
      {"POST", keys, R"({"name":"x","tpm_limit":1.5})", 400, "tpm_limit"},
      {"POST", keys, R"({"name":"x","models":["gpt-4o"]})", 400, "models"},
      {"POST", keys, R"({"name":"x","tags":"ci"})", 400, "tags"},
      {"POST", keys, R"({"name":"x","metadata":"text"})", 400, "metadata"},
      {"PATCH", keys + "/{hash}", R"({"disabled":"yes"})", 400, "disabled"},
      {"PATCH", keys + "/{hash}", R"({"limit_reset":"yearly"})", 400, "limit_reset"},
      {"PATCH", keys + "/{hash}", R"({"name":""})", 400, "name"},
      {"PATCH", keys + "/{hash}", R"({"limit":-3})", 400, "limit"},
      {"PATCH", keys + "/{hash}", "{oops", 400, "body"},
      {"POST", keys + "/{hash}/rotate", R"({"grace_period_seconds":-1})", 400,
       "grace_period_seconds"},
      {"POST", keys + "/{hash}/rotate", R"({"grace_period_seconds":"soon"})", 400,
       "grace_period_seconds"},
      {"POST", keys + "/{hash}/rotate", R"({"grace_period_seconds":99999999})", 400,
       "grace_period_seconds"},
      {"GET", keys + "?offset=abc", "", 400, "offset"},
      {"GET", keys + "?offset=-1", "", 400, "offset"},
      {"GET", keys + "?offset=", "", 400, "offset"},
      {"GET", keys + "?offset=1.5", "", 400, "offset"},
      {"GET", keys + "?include_disabled=maybe", "", 400, "include_disabled"},
      {"GET", keys + "?status=sleeping", "", 400, "status"},
      {"GET", keys + "?offset=%zz", "", 400, "query"},
      {"POST", keys, R"({"name":"x","workspace_id":")" + other_org + R"("})", 404, ""},
      {"GET", keys + "/not-a-hash", "", 404, ""},
  };
}

TEST_F(OpenRouterTest, BadInputsAnswer4xxInOpenRoutersShapeNamingTheField) {
  const std::string hash = OrCreateHash(a_, "target");
  const std::string keys = "/api/v1/keys";
  const std::vector<BadCase> cases = BadCases(b_.org_id);
  for (const BadCase& c : cases) {
    std::string path = c.path;
    if (size_t at = path.find("{hash}"); at != std::string::npos) path.replace(at, 6, hash);
    Reply reply = Call(c.method, path, c.body, a_.pk);
    const std::string context = c.method + " " + path + " " + c.body.substr(0, 80);
    EXPECT_EQ(reply.status, c.status) << context << " → " << reply.body;
    EXPECT_EQ(reply.Header("content-type"), "application/json") << context;
    json::object body = Obj(reply);
    ASSERT_TRUE(body.contains("error") && body["error"].is_object()) << reply.body;
    json::object error = body["error"].as_object();
    EXPECT_EQ(error["code"], c.status) << context;
    ASSERT_TRUE(error["message"].is_string()) << reply.body;
    if (!c.field.empty()) {
      EXPECT_EQ(error["param"], json::value(c.field)) << context << " → " << reply.body;
      EXPECT_NE(Str(error["message"]).find(c.field), std::string::npos) << reply.body;
    }
  }
  // Nothing changed the target, and the server is healthy.
  Reply target = Call("GET", keys + "/" + hash, "", a_.pk);
  EXPECT_EQ(Data(target)["name"], "target");
  EXPECT_TRUE(Data(target)["updated_at"].is_null());
  EXPECT_EQ(client_->Get("/healthz").status, 200);
}

TEST_F(OpenRouterTest, RotationCarriesGuardrailsAndTheOldKeyWorksUntilRevokeAt) {
  json::object created = OrCreate(a_.pk, kFullCreate);
  json::object old_data = created["data"].as_object();
  const std::string old_hash = Str(old_data["hash"]);
  const std::string old_secret = Str(created["key"]);
  Reply reply = Call("POST", "/api/v1/keys/" + old_hash + "/rotate",
                     R"({"grace_period_seconds":1})", a_.pk);
  ASSERT_EQ(reply.status, 201) << reply.body;
  json::object rotated = Obj(reply);
  json::object fresh = rotated["data"].as_object();
  EXPECT_NE(fresh["hash"], json::value(old_hash));
  EXPECT_EQ(Str(rotated["key"]).rfind("sk-kg-", 0), 0u);
  EXPECT_EQ(rotated["replaces"].as_object()["hash"], json::value(old_hash));
  EXPECT_TRUE(rotated["replaces"].as_object()["revoke_at"].is_string());
  for (const char* field : {"name", "limit", "limit_reset", "include_byok_in_limit", "expires_at",
                            "models", "rpm_limit", "tpm_limit", "tags", "metadata",
                            "creator_user_id", "external_user", "usage"}) {
    EXPECT_EQ(fresh[field], old_data[field]) << field;
  }
  // Within the grace period the old key still works, is listed, and can be rotated again.
  EXPECT_EQ(Call("GET", "/api/v1/key", "", old_secret).status, 200);
  EXPECT_EQ(ListedNames("", a_.pk).size(), 2u);
  Reply again = Call("POST", "/api/v1/keys/" + old_hash + "/rotate",
                     R"({"grace_period_seconds":3600})", a_.pk);
  ASSERT_EQ(again.status, 201) << again.body;
  // A second rotation never extends the first grace period.
  EXPECT_EQ(Obj(again)["replaces"].as_object()["revoke_at"],
            rotated["replaces"].as_object()["revoke_at"]);
  // Then the old key is refused and gone; both replacements work.
  EXPECT_TRUE(Eventually([&] { return Call("GET", "/api/v1/key", "", old_secret).status == 401; }))
      << "the old key was still accepted 10 s after its revoke_at";
  EXPECT_EQ(Call("GET", "/api/v1/keys/" + old_hash, "", a_.pk).status, 404);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", Str(rotated["key"])).status, 200);
  EXPECT_EQ(Call("GET", "/api/v1/key", "", Str(Obj(again)["key"])).status, 200);
  EXPECT_EQ(ListedNames("", a_.pk).size(), 2u);
  // Rotating another org's key is 404, as is rotating a revoked one.
  const std::string foreign = OrCreateHash(b_, "b-key");
  EXPECT_EQ(Call("POST", "/api/v1/keys/" + foreign + "/rotate", "", a_.pk).status, 404);
  EXPECT_EQ(Call("POST", "/api/v1/keys/" + old_hash + "/rotate", "", a_.pk).status, 404);
}

}  // namespace
}  // namespace keygate::testing
