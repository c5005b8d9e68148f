// One model, three codecs (issue 4): a key created in any dialect reads the same in the other
// two (same id, guardrails, usage and status), an update in one shows in the others, the same
// rule refuses the same bad value in each (naming the field in each dialect's words), and a
// rotation or a delete in one holds in all.
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "integration/dialect_fixture.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

enum class Dialect { kFastRouter, kOpenRouter, kRouterKeys };

const Dialect kDialects[] = {Dialect::kFastRouter, Dialect::kOpenRouter, Dialect::kRouterKeys};

std::string NameOf(Dialect d) {
  switch (d) {
    case Dialect::kFastRouter: return "FastRouter";
    case Dialect::kOpenRouter: return "OpenRouter";
    case Dialect::kRouterKeys: return "v2";
  }
  return "?";
}

// A key as every dialect can show it, in one vocabulary.
struct Common {
  std::string id;
  std::string name;
  json::value credit_limit;
  json::value interval;
  json::value rpm;
  json::value tpm;
  json::value models;
  json::value tags;
  json::value metadata;
  json::value expiry;
  std::string status;  // lower case
  json::value spend;   // current period, USD
  json::value revoke_at;  // keygate's own in every dialect: a rotated key's end

  bool operator==(const Common&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Common& c) {
  return os << "{id " << c.id.substr(0, 8) << " name " << c.name << " limit " << c.credit_limit
            << " interval " << c.interval << " rpm " << c.rpm << " tpm " << c.tpm << " models "
            << c.models << " tags " << c.tags << " metadata " << c.metadata << " expiry "
            << c.expiry << " status " << c.status << " spend " << c.spend << " revoke_at "
            << c.revoke_at << "}";
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

json::value Member(const json::value& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const json::value* v = object.as_object().if_contains(key);
  return v ? *v : json::value(nullptr);
}

// The same guardrails in each dialect's wire names.
const char kFastRouterCreate[] = R"({"api_key_name":"same","credit_limit":12.5,
  "reset_budget_interval":"monthly","rpm_limit":30,"tpm_limit":5000,"models":["openai/*"],
  "tags":["ci","prod"],"metadata":{"team":"platform"},"expire_key":"2099-01-01T00:00:00Z"})";
const char kOpenRouterCreate[] = R"({"name":"same","limit":12.5,"limit_reset":"monthly",
  "rpm_limit":30,"tpm_limit":5000,"models":["openai/*"],"tags":["ci","prod"],
  "metadata":{"team":"platform"},"expires_at":"2099-01-01T00:00:00Z"})";
const char kRouterKeysCreate[] = R"({"name":"same","budget":{"amount":12.5,"period":"monthly"},
  "rate_limit":{"requests_per_minute":30,"tokens_per_minute":5000},"models":["openai/*"],
  "tags":["ci","prod"],"metadata":{"team":"platform"},"expires_at":"2099-01-01T00:00:00Z"})";

class CrossDialectTest : public DialectTest {
 protected:
  // Creates a key in `d` with the guardrails above; returns its id.
  std::string Create(Dialect d) {
    switch (d) {
      case Dialect::kFastRouter: return Str(CreateKey(a_, kFastRouterCreate)["api_key_id_hash"]);
      case Dialect::kOpenRouter:
        return Str(OrCreate(a_.pk, kOpenRouterCreate)["data"].as_object()["hash"]);
      case Dialect::kRouterKeys: return Str(V2Create(a_.pk, kRouterKeysCreate)["id"]);
    }
    return "";
  }

  std::optional<Common> Read(Dialect d, const std::string& id) {
    switch (d) {
      case Dialect::kFastRouter: return ReadFastRouter(id);
      case Dialect::kOpenRouter: return ReadOpenRouter(id);
      case Dialect::kRouterKeys: return ReadRouterKeys(id);
    }
    return std::nullopt;
  }

  // FastRouter has no get: find the key in the list.
  std::optional<Common> ReadFastRouter(const std::string& id) {
    Reply reply = Call("POST", "/prod/getServiceKeys", R"({"limit":1000})", a_.pk);
    EXPECT_EQ(reply.status, 200) << reply.body;
    const json::object page = Obj(reply);
    for (const json::value& v : page.at("data").as_array()) {
      const json::object& r = v.as_object();
      if (Str(r.at("api_key_id_hash")) != id) continue;
      return Common{id, Str(r.at("api_key_name")), r.at("credit_limit"),
                    r.at("reset_budget_interval"), r.at("rpm_limit"), r.at("tpm_limit"),
                    r.at("models"), r.at("tags"), r.at("metadata"), r.at("expire_key"),
                    Lower(Str(r.at("status"))), Member(r.at("usage"), "current_period"),
                    r.at("revoke_at")};
    }
    return std::nullopt;
  }

  std::optional<Common> ReadOpenRouter(const std::string& id) {
    Reply reply = Call("GET", "/api/v1/keys/" + id, "", a_.pk);
    if (reply.status != 200) return std::nullopt;
    const json::object r = Obj(reply)["data"].as_object();
    return Common{Str(r.at("hash")), Str(r.at("name")), r.at("limit"), r.at("limit_reset"),
                  r.at("rpm_limit"), r.at("tpm_limit"), r.at("models"), r.at("tags"),
                  r.at("metadata"), r.at("expires_at"), Lower(Str(r.at("status"))),
                  r.at("usage_current_period"), r.at("revoke_at")};
  }

  std::optional<Common> ReadRouterKeys(const std::string& id) {
    Reply reply = Call("GET", "/v2/api-keys/" + id, "", a_.pk);
    if (reply.status != 200) return std::nullopt;
    const json::object r = Obj(reply);
    const json::value& budget = r.at("budget");
    const json::value& rate = r.at("rate_limit");
    return Common{Str(r.at("id")), Str(r.at("name")), Member(budget, "amount"),
                  Member(budget, "period"), Member(rate, "requests_per_minute"),
                  Member(rate, "tokens_per_minute"), r.at("models"), r.at("tags"),
                  r.at("metadata"), r.at("expiration"), Lower(Str(r.at("status"))),
                  r.at("consumption"), r.at("revoke_at")};
  }

  // Sets the name, the credit limit, the RPM and the disabled flag in `d`'s words.
  void Update(Dialect d, const std::string& id, const std::string& name, double limit, int rpm,
              bool disabled) {
    const std::string flag = disabled ? "true" : "false";
    const std::string l = std::to_string(limit);
    const std::string r = std::to_string(rpm);
    Reply reply;
    switch (d) {
      case Dialect::kFastRouter:
        reply = Call("POST", "/prod/updateServiceKey",
                     R"({"api_key_id_hash":")" + id + R"(","api_key_name":")" + name +
                         R"(","credit_limit":)" + l + R"(,"rpm_limit":)" + r +
                         R"(,"disabled":)" + flag + "}",
                     a_.pk);
        break;
      case Dialect::kOpenRouter:
        reply = Call("PATCH", "/api/v1/keys/" + id,
                     R"({"name":")" + name + R"(","limit":)" + l + R"(,"rpm_limit":)" + r +
                         R"(,"disabled":)" + flag + "}",
                     a_.pk);
        break;
      case Dialect::kRouterKeys:
        reply = Call("PATCH", "/v2/api-keys/" + id,
                     R"({"name":")" + name + R"(","budget":{"amount":)" + l +
                         R"(},"rate_limit":{"requests_per_minute":)" + r + R"(},"active":)" +
                         (disabled ? "false" : "true") + "}",
                     a_.pk);
        break;
    }
    EXPECT_EQ(reply.status, 200) << NameOf(d) << " " << reply.body;
  }

  // Reads `id` in every dialect and checks that all three agree with `expected`.
  void ExpectSameEverywhere(const std::string& id, const Common& expected,
                            const std::string& context) {
    for (Dialect reader : kDialects) {
      std::optional<Common> seen = Read(reader, id);
      ASSERT_TRUE(seen.has_value()) << context << ": " << NameOf(reader) << " cannot see the key";
      EXPECT_EQ(*seen, expected) << context << ", read in " << NameOf(reader);
    }
  }
};

TEST_F(CrossDialectTest, AKeyCreatedInAnyDialectReadsTheSameInTheOtherTwo) {
  for (Dialect maker : kDialects) {
    const std::string id = Create(maker);
    ASSERT_EQ(id.size(), 64u) << NameOf(maker);
    Common expected{id,
                    "same",
                    12.5,
                    "monthly",
                    30,
                    5000,
                    json::parse(R"(["openai/*"])"),
                    json::parse(R"(["ci","prod"])"),
                    json::parse(R"({"team":"platform"})"),
                    "2099-01-01T00:00:00.000Z",
                    "active",
                    0};
    ExpectSameEverywhere(id, expected, "made in " + NameOf(maker));
  }
}

// Spec §2: metadata is "stored and returned as given". Numbers keep their spelling (1.0 is not
// re-serialized as 1E0, nor 30 digits rounded to a double), strings their escapes; only the
// whitespace between tokens goes.
TEST_F(CrossDialectTest, MetadataIsReturnedAsWrittenInEveryDialect) {
  const std::string sent = R"({ "ratio" : 1.0, "list": [1.50, 2e3, -0.0],
      "big": 123456789012345678901234567890, "s": "a \" b\n\u00e9", "nested": {"x": null} })";
  const std::string kept = R"({"ratio":1.0,"list":[1.50,2e3,-0.0],)"
                           R"("big":123456789012345678901234567890,"s":"a \" b\n\u00e9",)"
                           R"("nested":{"x":null}})";
  const std::string member = R"("metadata":)" + kept;
  const std::string updated = R"({"v":2.50})";
  for (Dialect maker : kDialects) {
    std::string id;
    switch (maker) {
      case Dialect::kFastRouter:
        id = Str(CreateKey(a_, R"({"api_key_name":"m","metadata":)" + sent + "}")
                     ["api_key_id_hash"]);
        break;
      case Dialect::kOpenRouter:
        id = Str(OrCreate(a_.pk, R"({"name":"m","metadata":)" + sent + "}")["data"]
                     .as_object()["hash"]);
        break;
      case Dialect::kRouterKeys:
        id = Str(V2Create(a_.pk, R"({"name":"m","metadata":)" + sent + "}")["id"]);
        break;
    }
    ASSERT_EQ(id.size(), 64u) << NameOf(maker);
    const std::vector<std::pair<std::string, std::string>> reads = {
        {"POST /prod/getServiceKeys", Call("POST", "/prod/getServiceKeys", "{}", a_.pk).body},
        {"GET /api/v1/keys/{hash}", Call("GET", "/api/v1/keys/" + id, "", a_.pk).body},
        {"GET /v2/api-keys/{id}", Call("GET", "/v2/api-keys/" + id, "", a_.pk).body},
        {"GET /api/owner/keys/{hash}",
         Call("GET", "/api/owner/keys/" + id, "", a_.owner_key).body}};
    for (const auto& [route, body] : reads) {
      EXPECT_NE(body.find(member), std::string::npos)
          << "made in " << NameOf(maker) << ", read by " << route << ": " << body;
    }
  }
  // An update keeps the new value as written too, in each dialect.
  const std::string id = Create(Dialect::kOpenRouter);
  const Reply fr = Call("POST", "/prod/updateServiceKey",
                        R"({"api_key_id_hash":")" + id + R"(","metadata":)" + updated + "}", a_.pk);
  EXPECT_NE(fr.body.find(R"("metadata":{"v":2.50})"), std::string::npos) << fr.body;
  const Reply orr = Call("PATCH", "/api/v1/keys/" + id, R"({"metadata":{"v":3.0}})", a_.pk);
  EXPECT_NE(orr.body.find(R"("metadata":{"v":3.0})"), std::string::npos) << orr.body;
  const Reply v2 = Call("PATCH", "/v2/api-keys/" + id, R"({"metadata":{"v":4.00}})", a_.pk);
  EXPECT_NE(v2.body.find(R"("metadata":{"v":4.00})"), std::string::npos) << v2.body;
}

TEST_F(CrossDialectTest, AnUpdateInOneDialectReadsTheSameInTheOtherTwo) {
  for (Dialect maker : kDialects) {
    const std::string id = Create(maker);
    int step = 0;
    for (Dialect editor : kDialects) {
      if (editor == maker) continue;
      ++step;
      const bool disabled = step == 1;
      const std::string name = "edited-" + std::to_string(step);
      Update(editor, id, name, 20.25 + step, 40 + step, disabled);
      std::optional<Common> expected = Read(maker, id);
      ASSERT_TRUE(expected.has_value());
      EXPECT_EQ(expected->name, name);
      EXPECT_EQ(expected->credit_limit, json::value(20.25 + step));
      EXPECT_EQ(expected->rpm, json::value(40 + step));
      EXPECT_EQ(expected->status, disabled ? "disabled" : "active");
      EXPECT_EQ(expected->tags, json::parse(R"(["ci","prod"])"));  // untouched
      ExpectSameEverywhere(id, *expected,
                           "made in " + NameOf(maker) + ", updated in " + NameOf(editor));
    }
  }
}

TEST_F(CrossDialectTest, TheSameRuleRefusesTheSameValueInEveryDialect) {
  struct Case {
    Dialect dialect;
    std::string method;
    std::string path;
    std::string body;
    std::string field;
  };
  const std::vector<Case> cases = {
      {Dialect::kFastRouter, "POST", "/prod/createServiceKey",
       R"({"api_key_name":"x","credit_limit":0})", "credit_limit"},
      {Dialect::kOpenRouter, "POST", "/api/v1/keys", R"({"name":"x","limit":0})", "limit"},
      {Dialect::kRouterKeys, "POST", "/v2/api-keys", R"({"name":"x","budget":{"amount":0}})",
       "budget.amount"},
      {Dialect::kFastRouter, "POST", "/prod/createServiceKey",
       R"({"api_key_name":"x","rpm_limit":0})", "rpm_limit"},
      {Dialect::kOpenRouter, "POST", "/api/v1/keys", R"({"name":"x","rpm_limit":0})", "rpm_limit"},
      {Dialect::kRouterKeys, "POST", "/v2/api-keys",
       R"({"name":"x","rate_limit":{"requests_per_minute":0}})", "rate_limit.requests_per_minute"},
      {Dialect::kFastRouter, "POST", "/prod/createServiceKey",
       R"({"api_key_name":"x","expire_key":"2001-01-01T00:00:00Z"})", "expire_key"},
      {Dialect::kOpenRouter, "POST", "/api/v1/keys",
       R"({"name":"x","expires_at":"2001-01-01T00:00:00Z"})", "expires_at"},
      {Dialect::kRouterKeys, "POST", "/v2/api-keys",
       R"({"name":"x","expires_at":"2001-01-01T00:00:00Z"})", "expires_at"},
      {Dialect::kFastRouter, "POST", "/prod/createServiceKey",
       R"({"api_key_name":"x","models":["no-provider"]})", "models"},
      {Dialect::kOpenRouter, "POST", "/api/v1/keys", R"({"name":"x","models":["no-provider"]})",
       "models"},
      {Dialect::kRouterKeys, "POST", "/v2/api-keys", R"({"name":"x","models":["no-provider"]})",
       "models"},
  };
  for (const Case& c : cases) {
    Reply reply = Call(c.method, c.path, c.body, a_.pk);
    EXPECT_EQ(reply.status, 400) << NameOf(c.dialect) << " " << c.body << " → " << reply.body;
    EXPECT_NE(reply.body.find(c.field), std::string::npos)
        << NameOf(c.dialect) << " " << c.body << " → " << reply.body;
  }
  // None of them made a key.
  EXPECT_EQ(Obj(Call("GET", "/v2/api-keys", "", a_.pk))["data"].as_array().size(), 0u);
}

TEST_F(CrossDialectTest, RotationAndDeletionInOneDialectHoldInTheOthers) {
  const std::string id = Create(Dialect::kRouterKeys);
  Reply rotated = Call("POST", "/v2/api-keys/" + id + "/rotate",
                       R"({"grace_period_seconds":3600})", a_.pk);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  const std::string fresh = Str(Obj(rotated)["id"]);
  std::optional<Common> old_view = Read(Dialect::kOpenRouter, id);
  ASSERT_TRUE(old_view.has_value());
  // Every dialect shows when the old key stops working (audit M: none did).
  EXPECT_EQ(old_view->revoke_at, Obj(rotated)["replaces"].at("revoke_at"));
  Common expected = *old_view;
  expected.id = fresh;
  expected.revoke_at = nullptr;
  ExpectSameEverywhere(fresh, expected, "rotated in v2");
  // The old key stays visible everywhere during its grace period; FastRouter rotates it again.
  ExpectSameEverywhere(id, *old_view, "old key in its grace period");
  Reply again = Call("POST", "/prod/rotateServiceKey", R"({"api_key_id_hash":")" + id + R"("})",
                     a_.pk);
  ASSERT_EQ(again.status, 201) << again.body;
  // Grace 0: the old key is gone from every dialect at once.
  for (Dialect reader : kDialects) {
    EXPECT_FALSE(Read(reader, id).has_value()) << NameOf(reader);
  }
  // Deleted through OpenRouter: gone everywhere, and refused as a credential.
  ASSERT_EQ(Call("DELETE", "/api/v1/keys/" + fresh, "", a_.pk).status, 200);
  for (Dialect reader : kDialects) {
    EXPECT_FALSE(Read(reader, fresh).has_value()) << NameOf(reader);
  }
  EXPECT_EQ(Call("PATCH", "/v2/api-keys/" + fresh, R"({"name":"x"})", a_.pk).status, 404);
  EXPECT_EQ(Call("POST", "/prod/updateServiceKey",
                 R"({"api_key_id_hash":")" + fresh + R"(","rpm_limit":1})", a_.pk)
                .status,
            404);
}

// Audit, 2026-12-06: a delete in one dialect racing an update in another answered 200 to
// both, and in most trials the update wrote the key back unrevoked: it kept working, across
// restarts. Whatever the interleaving, an acknowledged delete holds.
TEST_F(CrossDialectTest, AnAcknowledgedDeleteHoldsAgainstAConcurrentUpdate) {
  constexpr int kTrials = 12;
  for (int trial = 0; trial < kTrials; ++trial) {
    const std::string hash = OrCreateHash(a_, "race-" + std::to_string(trial));
    int deleted = 0;
    int updated = 0;
    std::thread remover([&] {
      TestHttpClient own("127.0.0.1", process_->port());
      deleted = own.Request("DELETE", "/api/v1/keys/" + hash, "",
                            {{"authorization", "Bearer " + a_.pk}})
                    .status;
    });
    std::thread changer([&] {
      TestHttpClient own("127.0.0.1", process_->port());
      updated = own.Request("POST", "/prod/updateServiceKey",
                            R"({"api_key_id_hash":")" + hash + R"(","rpm_limit":5})",
                            {{"authorization", "Bearer " + a_.pk}})
                    .status;
    });
    remover.join();
    changer.join();
    ASSERT_EQ(deleted, 200) << trial;
    EXPECT_TRUE(updated == 200 || updated == 404) << updated;
    EXPECT_EQ(Call("GET", "/api/v1/keys/" + hash, "", a_.pk).status, 404) << trial;
  }
}

}  // namespace
}  // namespace keygate::testing
