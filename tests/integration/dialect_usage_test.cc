// Spend through the data plane reads the same in every dialect and in GET /api/v1/key, and a
// rotation in any dialect hands the current period's spend to the new key (spec §3 Rotation:
// "rotation never resets a budget").
#include <gtest/gtest.h>

#include <cmath>

#include "integration/data_plane_fixture.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

int64_t Micros(const json::value& usd) {
  return std::llround(json::value_to<double>(usd) * 1e6);
}

class DialectUsageTest : public DataPlaneTest {
 protected:
  json::object Get(const std::string& path, const std::string& bearer) {
    TestHttpClient::Reply reply = client_->Get(path, bearer);
    EXPECT_EQ(reply.status, 200) << path << " " << reply.body;
    json::value v = Parse(reply.body);
    return v.is_object() ? v.as_object() : json::object{};
  }

  // The current period's spend of `hash` in each dialect, and of `secret` in GET /api/v1/key.
  struct Spend {
    int64_t fastrouter = 0;
    int64_t openrouter = 0;
    int64_t routerkeys = 0;
    int64_t current_key = 0;
  };
  Spend SpendOf(const std::string& hash, const std::string& secret) {
    Spend s;
    MintedKey key{secret, hash};
    s.fastrouter = Micros(Record(key).at("usage").at("current_period"));
    s.openrouter = Micros(Get("/api/v1/keys/" + hash, pk_).at("data").at("usage_monthly"));
    s.routerkeys = Micros(Get("/v2/api-keys/" + hash, pk_).at("consumption"));
    s.current_key = Micros(Get("/api/v1/key", secret).at("data").at("usage_monthly"));
    return s;
  }
  void ExpectSpend(const std::string& hash, const std::string& secret, int64_t micros) {
    Spend s = SpendOf(hash, secret);
    EXPECT_EQ(s.fastrouter, micros) << "FastRouter";
    EXPECT_EQ(s.openrouter, micros) << "OpenRouter";
    EXPECT_EQ(s.routerkeys, micros) << "v2";
    EXPECT_EQ(s.current_key, micros) << "GET /api/v1/key";
  }
};

TEST_F(DialectUsageTest, SpendReadsTheSameEverywhereAndRotationCarriesIt) {
  auto created = client_->Post("/api/v1/keys",
                               R"({"name":"spender","limit":1,"limit_reset":"monthly",
                                   "rpm_limit":100,"tpm_limit":100000})",
                               pk_);
  ASSERT_EQ(created.status, 201) << created.body;
  json::value answer = Parse(created.body);
  const std::string secret(answer.at("key").as_string());
  const std::string hash(answer.at("data").at("hash").as_string());
  secrets_.push_back(secret);
  ASSERT_EQ(Call(secret, ChatBody("hello there", 20)).status, 200);
  ASSERT_EQ(Call(secret, ChatBody("and again", 20)).status, 200);
  const int64_t spent = SumCost(WaitForUsage(hash, 2));
  ASSERT_GT(spent, 0);
  ExpectSpend(hash, secret, spent);
  json::object v2 = Get("/v2/api-keys/" + hash, pk_);
  EXPECT_EQ(v2["requests_per_minute_consumption"], 2);
  EXPECT_GT(v2["token_consumption"].as_int64(), 0);
  json::object current = Get("/api/v1/key", secret)["data"].as_object();
  EXPECT_EQ(Micros(current["limit_remaining"]), 1'000'000 - spent);

  // Rotate in v2: the new key starts with the lineage's spend, in every dialect.
  auto rotated = client_->Request("POST", "/v2/api-keys/" + hash + "/rotate",
                                  R"({"grace_period_seconds":3600})",
                                  {{"authorization", "Bearer " + pk_}});
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  json::value fresh = Parse(rotated.body);
  const std::string new_secret(fresh.at("token").as_string());
  const std::string new_hash(fresh.at("id").as_string());
  secrets_.push_back(new_secret);
  EXPECT_EQ(Micros(fresh.at("consumption")), spent);
  ExpectSpend(new_hash, new_secret, spent);

  // Spend by the new key counts for both, while the old one is in its grace period.
  ASSERT_EQ(Call(new_secret, ChatBody("from the new key", 20)).status, 200);
  const int64_t total = spent + SumCost(WaitForUsage(new_hash, 1));
  ExpectSpend(new_hash, new_secret, total);
  ExpectSpend(hash, secret, total);

  // Rotate again through OpenRouter's dialect: still the same spend.
  auto again = client_->Post("/api/v1/keys/" + new_hash + "/rotate", "", pk_);
  ASSERT_EQ(again.status, 201) << again.body;
  json::value third = Parse(again.body);
  secrets_.push_back(std::string(third.at("key").as_string()));
  EXPECT_EQ(Micros(third.at("data").at("usage")), total);
  EXPECT_EQ(Micros(third.at("data").at("limit_remaining")), 1'000'000 - total);
}

}  // namespace
}  // namespace keygate::testing
