// The owner API's usage of a key (spec §2a `/api/owner/usage…`, for the console's key detail:
// spend and requests per day, and the latest requests): read from the usage records the data
// plane writes, owners only, never across orgs, a rotation's predecessors included.
#include <gtest/gtest.h>

#include "common/time_format.h"
#include "integration/data_plane_fixture.h"

namespace keygate::testing {
namespace {

namespace json = boost::json;

class OwnerUsageTest : public DataPlaneTest {
 protected:
  TestHttpClient::Reply Get(const std::string& path, const std::string& bearer) {
    return client_->Get(path, bearer);
  }
};

// Today's UTC date, YYYY-MM-DD.
std::string Today() {
  return FormatTimestamp(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count())
      .substr(0, 10);
}

TEST_F(OwnerUsageTest, DailyUsageAndLatestRequestsOfAKey) {
  const std::string day_before = Today();  // a run across midnight may see either day
  MintedKey key = Mint();
  std::vector<std::string> request_ids;
  for (int i = 0; i < 3; ++i) {
    auto reply = Call(key.secret, ChatBody("hello " + std::to_string(i), 5));
    ASSERT_EQ(reply.status, 200) << reply.body;
    request_ids.push_back(reply.Header("x-request-id"));
  }
  const auto rows = WaitForUsage(key.hash, 3);
  ASSERT_EQ(rows.size(), 3u);

  auto daily = Get("/api/owner/usage/" + key.hash, owner_key_);
  ASSERT_EQ(daily.status, 200) << daily.body;
  json::object body = Parse(daily.body).as_object();
  EXPECT_EQ(body.at("hash"), json::value(key.hash));
  const json::array& days = body.at("data").as_array();
  ASSERT_EQ(days.size(), 30u);  // the default: the console's 30 days, every one of them
  const json::object& today = days.back().as_object();
  const std::string date(today.at("date").as_string());
  EXPECT_TRUE(date == day_before || date == Today()) << date;
  if (date != day_before) GTEST_SKIP() << "the calls and the read straddle midnight (UTC)";
  EXPECT_EQ(today.at("requests"), 3);
  int64_t tokens = 0;
  for (const UsageRow& row : rows) tokens += row.prompt_tokens + row.completion_tokens;
  EXPECT_EQ(today.at("tokens"), tokens);
  EXPECT_NEAR(json::value_to<double>(today.at("usage")), SumCost(rows) / 1e6, 1e-9);
  EXPECT_EQ(days.front().as_object().at("requests"), 0);
  EXPECT_EQ(days.front().as_object().at("usage"), 0);
  EXPECT_EQ(Parse(Get("/api/owner/usage/" + key.hash + "?days=1", owner_key_).body)
                .at("data").as_array().size(),
            1u);

  auto recent = Get("/api/owner/usage/" + key.hash + "/requests?limit=2", owner_key_);
  ASSERT_EQ(recent.status, 200) << recent.body;
  const json::array latest = Parse(recent.body).at("data").as_array();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].at("request_id"), json::value(request_ids[2]));  // newest first
  EXPECT_EQ(latest[1].at("request_id"), json::value(request_ids[1]));
  const json::object& call = latest[0].as_object();
  EXPECT_EQ(call.at("key_hash"), json::value(key.hash));
  EXPECT_EQ(call.at("model"), "mock/echo");
  EXPECT_EQ(call.at("provider"), "mock");
  EXPECT_EQ(call.at("status"), 200);
  EXPECT_EQ(call.at("completion_tokens"), rows[2].completion_tokens);
  EXPECT_GT(json::value_to<double>(call.at("usage")), 0);
  EXPECT_TRUE(call.at("latency_ms").is_int64());
  EXPECT_EQ(call.at("created_at").as_string().back(), 'Z');
  EXPECT_EQ(recent.body.find(key.secret), std::string::npos);
}

TEST_F(OwnerUsageTest, BadQueriesAndCallersAreRefused) {
  MintedKey key = Mint();
  const std::string path = "/api/owner/usage/" + key.hash;
  for (const char* query : {"?days=0", "?days=367", "?days=ten"}) {
    auto reply = Get(path + query, owner_key_);
    EXPECT_EQ(reply.status, 400) << query;
    EXPECT_EQ(Parse(reply.body).at("error").at("param"), "days") << reply.body;
  }
  EXPECT_EQ(Get(path + "/requests?limit=0", owner_key_).status, 400);
  EXPECT_EQ(Get(path + "/requests?limit=1001", owner_key_).status, 400);
  // Owners only: a provisioning key or the service key itself is refused.
  EXPECT_EQ(Get(path, pk_).status, 403);
  EXPECT_EQ(Get(path + "/requests", key.secret).status, 403);
  EXPECT_EQ(Get(path, "").status, 401);
  // Another org's owner learns nothing: 404, as for a key that does not exist.
  auto other = process_->Init("other-org");
  secrets_.push_back(other.owner_key);
  EXPECT_EQ(Get(path, other.owner_key).status, 404);
  EXPECT_EQ(Get(path + "/requests", other.owner_key).status, 404);
  EXPECT_EQ(Get("/api/owner/usage/" + std::string(64, 'a'), owner_key_).status, 404);
}

TEST_F(OwnerUsageTest, ARotatedKeysUsageIncludesItsPredecessors) {
  MintedKey key = Mint();
  ASSERT_EQ(Call(key.secret, ChatBody("before", 5)).status, 200);
  ASSERT_EQ(WaitForUsage(key.hash, 1).size(), 1u);
  auto rotated = client_->Post("/api/owner/keys/" + key.hash + "/rotate", "{}", owner_key_);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  const json::object data = Parse(rotated.body).at("data").as_object();
  const std::string fresh(data.at("hash").as_string());
  secrets_.push_back(std::string(Parse(rotated.body).at("key").as_string()));
  auto daily = Parse(Get("/api/owner/usage/" + fresh + "?days=1", owner_key_).body);
  EXPECT_EQ(daily.at("data").as_array().back().at("requests"), 1);
  auto recent = Parse(Get("/api/owner/usage/" + fresh + "/requests", owner_key_).body);
  ASSERT_EQ(recent.at("data").as_array().size(), 1u);
  EXPECT_EQ(recent.at("data").as_array()[0].at("key_hash"), json::value(key.hash));
}

}  // namespace
}  // namespace keygate::testing
