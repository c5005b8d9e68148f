// Each guardrail of spec §3 through the real binary and the mock upstream: its refusal, its
// headers, its order, and that nothing refused ever reaches the upstream.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "integration/data_plane_fixture.h"

namespace keygate::testing {
namespace {

std::string CodeOf(const TestHttpClient::Reply& reply) {
  boost::system::error_code ec;
  boost::json::value body = boost::json::parse(reply.body, ec);
  if (ec || !body.is_object() || !body.as_object().contains("error")) return "";
  const boost::json::value& code = body.at("error").at("code");
  return code.is_string() ? std::string(code.as_string()) : "";
}

TEST_F(DataPlaneTest, AuthenticationRefusalsInTheSpecsOrder) {
  const std::string body = ChatBody("hi", 5);
  auto unknown = Call("sk-kg-thisisnotakey", body);
  EXPECT_EQ(unknown.status, 401);
  EXPECT_EQ(CodeOf(unknown), "invalid_api_key");
  EXPECT_EQ(Call("", body).status, 401);
  // Management credentials may not call models. These were made by the CLI before the
  // server started, so the data plane reads them from the store.
  EXPECT_EQ(Call(pk_, body).status, 403) << Call(pk_, body).body;
  EXPECT_EQ(Call(owner_key_, body).status, 403);
  EXPECT_EQ(client_->Get("/v1/models", pk_).status, 403);
  // Their prefix alone proves nothing: an unknown secret is unknown.
  auto fake_pk = Call(pk_.substr(0, 6) + "notarealkeyatall", body);
  EXPECT_EQ(fake_pk.status, 401) << fake_pk.body;
  EXPECT_EQ(CodeOf(fake_pk), "invalid_api_key");
  EXPECT_EQ(Call(owner_key_.substr(0, 6) + "notarealkeyatall", body).status, 401);
  MintedKey disabled = Mint(R"("disabled": true)");
  auto refused = Call(disabled.secret, body);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(CodeOf(refused), "key_disabled");
  EXPECT_EQ(MockRequests(), 0);
}

TEST_F(DataPlaneTest, AnExpiredKeyIs401KeyExpired) {
  // Expiry must be in the future when set: set it a moment ahead and wait it out (bounded).
  const auto soon = std::chrono::system_clock::now() + std::chrono::milliseconds(1500);
  const std::time_t seconds = std::chrono::system_clock::to_time_t(soon);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&seconds));
  MintedKey key = Mint(std::string(R"("expire_key": ")") + when + "\"");
  TestHttpClient::Reply reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    reply = Call(key.secret, ChatBody("hi", 5));
    if (reply.status != 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(reply.status, 401) << reply.body;
  EXPECT_EQ(CodeOf(reply), "key_expired");
}

TEST_F(DataPlaneTest, ModelScopeNamesTheAllowedModels) {
  MintedKey key = Mint(R"("models": ["MOCK/echo", "mock/embed"])");
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5, "mock/echo")).status, 200);
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5, "Mock/echo")).status, 200);
  auto refused = Call(key.secret, ChatBody("hi", 5, "mock/gpt-4o-mini"));
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(CodeOf(refused), "model_not_allowed");
  EXPECT_NE(refused.body.find("MOCK/echo"), std::string::npos) << refused.body;
  EXPECT_NE(refused.body.find("mock/embed"), std::string::npos) << refused.body;
  MintedKey wildcard = Mint(R"("models": ["mock/*"])");
  EXPECT_EQ(Call(wildcard.secret, ChatBody("hi", 5, "mock/gpt-4o-mini")).status, 200);
  EXPECT_EQ(Call(wildcard.secret, ChatBody("hi", 5, "slow/echo")).status, 403);
  EXPECT_EQ(MockChats(), 3);
}

TEST_F(DataPlaneTest, RpmRefusalHasAnHonestRetryAfterAndHeaders) {
  MintedKey key = Mint(R"("rpm_limit": 2)");
  auto first = Call(key.secret, ChatBody("hi", 5));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.Header("x-ratelimit-limit-requests"), "2");
  EXPECT_EQ(first.Header("x-ratelimit-remaining-requests"), "1");
  EXPECT_FALSE(first.Header("x-ratelimit-reset-requests").empty());
  EXPECT_EQ(first.Header("x-ratelimit-limit-tokens"), "");  // no TPM limit, no header
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 200);
  auto refused = Call(key.secret, ChatBody("hi", 5));
  EXPECT_EQ(refused.status, 429);
  EXPECT_EQ(CodeOf(refused), "rate_limit_exceeded");
  const int retry_after = std::stoi(refused.Header("retry-after"));
  EXPECT_GE(retry_after, 59);  // the first call leaves the window a minute after it came
  EXPECT_LE(retry_after, 60);
  EXPECT_EQ(refused.Header("x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(MockChats(), 2);
}

TEST_F(DataPlaneTest, TpmRefusalsIncludingARequestThatCanNeverFit) {
  // "hi": a prompt of at most 18 tokens; with max_tokens 100, 118 tokens in the worst case.
  MintedKey key = Mint(R"("tpm_limit": 200)");
  auto first = Call(key.secret, ChatBody("hi", 100));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.Header("x-ratelimit-limit-tokens"), "200");
  EXPECT_EQ(first.Header("x-ratelimit-remaining-tokens"), "82");  // reserved, not yet settled
  // Settled to the real 6 tokens: 194 remain, and 118 fit again.
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
  auto big = Call(key.secret, ChatBody("hi", 175));  // 193 fits the limit, not beside 12
  EXPECT_EQ(big.status, 429);
  EXPECT_FALSE(big.Header("retry-after").empty());
  auto never = Call(key.secret, ChatBody("hi", 1000));
  EXPECT_EQ(never.status, 429);
  EXPECT_NE(never.body.find("never fit"), std::string::npos) << never.body;
  EXPECT_NE(never.body.find(R"("param":"max_tokens")"), std::string::npos) << never.body;
  EXPECT_EQ(never.Header("retry-after"), "");
  EXPECT_EQ(never.Header("x-should-retry"), "false");  // no wait helps (audit M)
  EXPECT_EQ(big.Header("x-should-retry"), "");
  EXPECT_EQ(MockChats(), 2);
  // An embedding has no output: its input is what to change.
  auto embedding = Call(key.secret, R"({"model":"mock/embed","input":")" +
                                        std::string(2000, 'x') + R"("})",
                        "/v1/embeddings");
  EXPECT_EQ(embedding.status, 429);
  EXPECT_NE(embedding.body.find(R"("param":"input")"), std::string::npos) << embedding.body;
  EXPECT_EQ(embedding.body.find("max_tokens"), std::string::npos) << embedding.body;
}

TEST_F(DataPlaneTest, BudgetRefusalGivesLimitSpendAndReset) {
  // $0.0003 = 300 micro-dollars; one call reserves 18 + 2 * 100 = 218.
  MintedKey key = Mint(R"("credit_limit": 0.0003, "reset_budget_interval": "monthly")");
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);  // costs 4 + 2 * 2 = 8
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
  auto refused = Call(key.secret, ChatBody("hi", 200));  // 418 > 300 - 16
  ASSERT_EQ(refused.status, 402) << refused.body;
  EXPECT_EQ(CodeOf(refused), "budget_exceeded");
  boost::json::value error = Parse(refused.body).at("error");
  EXPECT_EQ(error.at("limit"), boost::json::value(0.0003));
  EXPECT_EQ(error.at("spend"), boost::json::value(0.000016));
  EXPECT_TRUE(error.at("resets_at").is_string());
  EXPECT_EQ(error.at("message").as_string().find("With no"), std::string::npos) << refused.body;
  // Without max_tokens, the output is reserved at the model's maximum, and the answer says so.
  auto uncapped =
      Call(key.secret, R"({"model":"mock/echo","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(uncapped.status, 402) << uncapped.body;
  EXPECT_NE(uncapped.body.find("With no max_tokens set, the request's output is reserved at the "
                               "model's maximum output, 1024 tokens in all"),
            std::string::npos)
      << uncapped.body;
  EXPECT_EQ(MockChats(), 2);
}

TEST_F(DataPlaneTest, ACallWithoutMaxTokensIsCappedUpstreamAtWhatItReserved) {
  // spec §3: without max_tokens a call reserves the model's maximum output (100 for the tiny
  // models), so the upstream is told that bound. The mock would echo all 200 words.
  MintedKey key = Mint(R"("credit_limit": 1, "tpm_limit": 100000)");
  std::string words = "w";
  for (int i = 1; i < 200; ++i) words += " w";
  const std::string messages = R"("messages":[{"role":"user","content":")" + words + R"("}])";
  const std::string parts =
      R"("messages":[{"role":"user","content":[{"type":"text","text":")" + words + R"("}]}])";
  struct Case {
    std::string body;
    std::string member;  // the one the provider caps with
  };
  const Case cases[] = {
      {R"({"model":"mock/tiny",)" + messages + "}", "max_tokens"},
      {R"({"model":"mock/tiny","max_tokens":null,)" + messages + "}", "max_tokens"},
      {R"({"model":"mock/tiny","stream":true,)" + messages + "}", "max_tokens"},
      {R"({"model":"mock/tiny","max_completion_tokens":null,)" + parts + "}", "max_tokens"},
      {R"({"model":"reasoning/tiny",)" + messages + "}", "max_completion_tokens"},
  };
  for (const Case& c : cases) {
    auto reply = Call(key.secret, c.body);
    ASSERT_EQ(reply.status, 200) << c.body << "\n" << reply.body;
    boost::json::object sent = MockStats().at("last_body").as_object();
    EXPECT_EQ(sent.at(c.member), 100) << c.body;
    EXPECT_FALSE(sent.contains(c.member == "max_tokens" ? "max_completion_tokens" : "max_tokens"))
        << c.body;
  }
  // Each was charged the 100 completion tokens it reserved, not the 200 it would have had.
  std::vector<UsageRow> rows = WaitForUsage(key.hash, std::size(cases));
  ASSERT_EQ(rows.size(), std::size(cases));
  for (const UsageRow& row : rows) EXPECT_EQ(row.completion_tokens, 100);
  // A cap of the caller's own goes in the member the provider understands, alone.
  ASSERT_EQ(Call(key.secret, ChatBody(words, 7, "mock/tiny")).status, 200);
  EXPECT_EQ(MockStats().at("last_body").at("max_tokens"), 7);
  ASSERT_EQ(Call(key.secret, ChatBody(words, 7, "reasoning/tiny")).status, 200);
  boost::json::object sent = MockStats().at("last_body").as_object();
  EXPECT_EQ(sent.at("max_completion_tokens"), 7);
  EXPECT_FALSE(sent.contains("max_tokens"));
  // A key without a credit or TPM limit has no reservation to keep: no cap is added.
  MintedKey free = Mint();
  ASSERT_EQ(Call(free.secret, cases[0].body).status, 200);
  EXPECT_FALSE(MockStats().at("last_body").as_object().contains("max_tokens"));
}

TEST_F(DataPlaneTest, BadInputIsA4xxAndNeverForwarded) {
  MintedKey key = Mint();
  struct Case {
    std::string body;
    int status;
  };
  const Case cases[] = {
      {"{not json", 400},
      {"[]", 400},
      {R"({"messages":[{"role":"user","content":"hi"}]})", 400},
      {R"({"model":42,"messages":[{"role":"user","content":"hi"}]})", 400},
      {R"({"model":"mock/echo","messages":"hi"})", 400},
      {R"({"model":"mock/echo","messages":[{"role":"user","content":{}}]})", 400},
      {ChatBody("hi", -5), 400},
      {ChatBody("hi", 5, "mock/echo", R"(,"stream":"yes")"), 400},
      {ChatBody("hi", 2000), 400},                         // above the model's maximum output
      {ChatBody("hi", 5, "mock/unknown"), 404},            // not in the catalog
      {ChatBody(std::string(30'000, 'x'), 5, "mock/small"), 400},  // beyond a 100-token context
      {ChatBody("hi", 5, "mock/echo", R"(,"temperature":"hot")"), 400},  // a wrong type
      {ChatBody("hi", 5, "mock/echo", R"(,"tools":"x")"), 400},
      {R"({"model":"mock/echo","messages":[{"role":"bogus","content":"hi"}]})", 400},
      {ChatBody(std::string(70'000, 'x'), 5), 413},        // over max_body_bytes
  };
  for (const Case& c : cases) {
    auto reply = Call(key.secret, c.body);
    EXPECT_EQ(reply.status, c.status) << c.body.substr(0, 120) << " -> " << reply.body;
    EXPECT_NE(reply.body.find("\"error\""), std::string::npos) << reply.body;
  }
  auto embeddings = Call(key.secret, R"({"model":"mock/embed","input":[]})", "/v1/embeddings");
  EXPECT_EQ(embeddings.status, 400);
  EXPECT_EQ(MockRequests(), 0);
}

TEST_F(DataPlaneTest, AnUpdateOrARevocationTakesEffectOnTheNextRequest) {
  MintedKey key = Mint(R"("rpm_limit": 100)");
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5)).Header("x-ratelimit-limit-requests"), "100");
  Update(key, R"("rpm_limit": 7)");
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5)).Header("x-ratelimit-limit-requests"), "7");
  Update(key, R"("models": ["mock/gpt-4o-mini"])");
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 403);
  Update(key, R"("models": null, "disabled": true)");
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 403);
  Update(key, R"("disabled": false)");
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 200);
  auto deleted = client_->Post("/prod/deleteServiceKey",
                               R"({"api_key_id_hash":")" + key.hash + "\"}", pk_);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  auto revoked = Call(key.secret, ChatBody("hi", 5));
  EXPECT_EQ(revoked.status, 401);
  EXPECT_EQ(CodeOf(revoked), "invalid_api_key");
}

TEST_F(DataPlaneTest, ARotatedKeySharesItsBudgetAndTheOldOneIsRevoked) {
  MintedKey old_key = Mint(R"("credit_limit": 0.0003)");
  ASSERT_EQ(Call(old_key.secret, ChatBody("hi", 100)).status, 200);
  auto rotated = client_->Post("/prod/rotateServiceKey",
                               R"({"api_key_id_hash":")" + old_key.hash + "\"}", pk_);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  MintedKey new_key{std::string(Parse(rotated.body).at("api_key").as_string()), ""};
  secrets_.push_back(new_key.secret);
  EXPECT_EQ(Call(old_key.secret, ChatBody("hi", 5)).status, 401);
  ASSERT_EQ(Call(new_key.secret, ChatBody("hi", 100)).status, 200);
  // 8 + 8 spent by the lineage: 418 more would pass 300.
  EXPECT_EQ(Call(new_key.secret, ChatBody("hi", 200)).status, 402);
}

// The old secret of a rotation with a grace period stands in for the new key: the new key's
// guardrails, changed after the rotation, hold the old secret's calls too, and deleting the
// new key ends the old one's grace (decision 0002).
TEST_F(DataPlaneTest, DuringAGracePeriodTheOldSecretIsHeldToTheNewKeysGuardrails) {
  MintedKey old_key = Mint(R"("credit_limit": 1, "rpm_limit": 100)");
  auto rotated = client_->Post("/prod/rotateServiceKey",
                               R"({"api_key_id_hash":")" + old_key.hash +
                                   R"(","grace_period_seconds":600})",
                               pk_);
  ASSERT_EQ(rotated.status, 201) << rotated.body;
  MintedKey new_key{std::string(Parse(rotated.body).at("api_key").as_string()),
                    std::string(Parse(rotated.body).at("api_key_id_hash").as_string())};
  secrets_.push_back(new_key.secret);
  auto first = Call(old_key.secret, ChatBody("hi", 5));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.Header("x-ratelimit-limit-requests"), "100");

  Update(new_key, R"("rpm_limit": 7)");
  EXPECT_EQ(Call(old_key.secret, ChatBody("hi", 5)).Header("x-ratelimit-limit-requests"), "7");
  // The old key's own limits no longer count: changing them is refused, naming the field.
  auto own = client_->Post("/prod/updateServiceKey",
                           R"({"api_key_id_hash":")" + old_key.hash + R"(","rpm_limit":500})", pk_);
  EXPECT_EQ(own.status, 409) << own.body;
  EXPECT_EQ(Parse(own.body).at("error").at("param"), "rpm_limit") << own.body;
  Update(new_key, R"("models": ["mock/gpt-4o-mini"])");
  auto model = Call(old_key.secret, ChatBody("hi", 5));
  EXPECT_EQ(model.status, 403);
  EXPECT_EQ(CodeOf(model), "model_not_allowed");
  Update(new_key, R"("models": null, "credit_limit": 0.000001)");
  auto budget = Call(old_key.secret, ChatBody("hi", 5));
  EXPECT_EQ(budget.status, 402) << budget.body;
  Update(new_key, R"("credit_limit": 1, "disabled": true)");
  EXPECT_EQ(CodeOf(Call(old_key.secret, ChatBody("hi", 5))), "key_disabled");
  Update(new_key, R"("disabled": false)");
  EXPECT_EQ(Call(old_key.secret, ChatBody("hi", 5)).status, 200);

  auto deleted = client_->Post("/prod/deleteServiceKey",
                               R"({"api_key_id_hash":")" + new_key.hash + "\"}", pk_);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  auto orphan = Call(old_key.secret, ChatBody("hi", 5));
  EXPECT_EQ(orphan.status, 401);
  EXPECT_EQ(CodeOf(orphan), "invalid_api_key");
}

// Decision 0007: a key whose reset interval changes, or that gains its first credit limit, has
// its period's spend read again; the calls settled just before, not committed yet, count too.
TEST_F(DataPlaneTest, ANewIntervalOrAFirstLimitCountsTheSpendNotCommittedYet) {
  for (const std::string before : {R"("credit_limit": 0.0003)", ""}) {
    MintedKey key = Mint(before);
    for (int i = 0; i < 6; ++i) ASSERT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
    Update(key, R"("credit_limit": 0.0003, "reset_budget_interval": "daily")");
    // 48 spent (8 a call): a call reserves 218, so five more fit (88 + 218 > 300), not six.
    int admitted = 0;
    TestHttpClient::Reply last = Call(key.secret, ChatBody("hi", 100));
    while (last.status == 200 && admitted < 20) {
      ++admitted;
      last = Call(key.secret, ChatBody("hi", 100));
    }
    EXPECT_EQ(admitted, 5) << before;
    EXPECT_EQ(last.status, 402) << last.body;
    EXPECT_EQ(Parse(last.body).at("error").at("spend"), boost::json::value(0.000088)) << before;
  }
}

TEST_F(DataPlaneTest, ABudgetSurvivesARestart) {
  // 220 micro-dollars: one call reserves 218 and costs 8, so a second never fits beside it.
  MintedKey key = Mint(R"("credit_limit": 0.00022)");
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 402);
  ASSERT_EQ(process_->Stop(), 0);
  ASSERT_TRUE(process_->Start({std::string(kUpstreamKeyEnv) + "=" + kUpstreamKey}))
      << process_->log();
  // The spend is read back from the store (UsageStore::SpendSince) before the first admission.
  auto after = Call(key.secret, ChatBody("hi", 100));
  EXPECT_EQ(after.status, 402) << after.body << process_->log();
  EXPECT_EQ(Parse(after.body).at("error").at("spend"), boost::json::value(0.000008));
}

TEST_F(DataPlaneTest, RateWindowsSurviveARestart) {
  // spec §3: no rolling 60 s window holds more requests than the RPM, a restart in between
  // or not. The calls of the last minute are read back from the usage records at start.
  MintedKey key = Mint(R"("rpm_limit": 2, "tpm_limit": 100000)");
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 200);
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 200);
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 429);
  ASSERT_EQ(process_->Stop(), 0);  // SIGTERM: the usage records are flushed first
  ASSERT_TRUE(process_->Start({std::string(kUpstreamKeyEnv) + "=" + kUpstreamKey}))
      << process_->log();
  auto after = Call(key.secret, ChatBody("hi", 5));
  EXPECT_EQ(after.status, 429) << after.body << process_->log();
  EXPECT_EQ(after.Header("x-ratelimit-remaining-requests"), "0");
  const int retry_after = std::atoi(after.Header("retry-after").c_str());
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 60);
  EXPECT_NE(process_->log().find("limits.windows_restored"), std::string::npos);
  EXPECT_EQ(MockChats(), 2);
}

// usage.retention_days: the records of calls older than it are forgotten once keygate runs
// (the newest stored batch stays, so that record ids are never given twice); the key's usage
// totals keep counting them, and so does its budget.
TEST_F(DataPlaneTest, UsageRecordsPastTheirRetentionAreForgottenAndTheTotalsStay) {
  MintedKey key = Mint(R"("credit_limit": 1)");
  for (size_t i = 1; i <= 3; ++i) {  // three batches: each call waits for its record
    ASSERT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 200);
    ASSERT_EQ(WaitForUsage(key.hash, i).size(), i);
  }
  const int64_t total = UsageTotalMicros(key);
  const std::string usage = boost::json::serialize(Record(key).at("usage"));
  ASSERT_GT(total, 0);
  ASSERT_EQ(process_->Stop(), 0);
  {  // The three calls made 100 days ago.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_.path() + "/keygate.db").c_str(), &db), SQLITE_OK);
    constexpr const char* kAge =
        "UPDATE usage_chunks SET newest_at = newest_at - 8640000000, records = (SELECT "
        "json_group_array(json_set(value, '$[10]', (value ->> 10) - 8640000000)) FROM "
        "json_each(records))";
    EXPECT_EQ(sqlite3_exec(db, kAge, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  ASSERT_TRUE(process_->Start({std::string(kUpstreamKeyEnv) + "=" + kUpstreamKey,
                               "KEYGATE_USAGE_RETENTION_DAYS=30"}))
      << process_->log();
  client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (UsageRows(key.hash).size() > 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(UsageRows(key.hash).size(), 1u) << process_->log();
  // Logged once the pruning pass ends, a moment after its write is seen (a race this test lost
  // once in a full run).
  const std::string pruned = R"("event":"usage.records_pruned","records":2)";
  while (process_->log().find(pruned) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(process_->log().find(pruned), std::string::npos) << process_->log();
  EXPECT_EQ(boost::json::serialize(Record(key).at("usage")), usage);
  EXPECT_EQ(UsageTotalMicros(key), total);
  // The budget still counts them: a limit just above the spend leaves room for no call.
  Update(key, R"("credit_limit": )" + std::to_string((total + 1) / 1e6));
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 402);
}

}  // namespace
}  // namespace keygate::testing
