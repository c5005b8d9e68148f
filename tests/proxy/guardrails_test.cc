#include "proxy/guardrails.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <string_view>

#include "keys/secrets.h"
#include "limits/local_limiter.h"
#include "testing/manual_clock.h"

namespace keygate::proxy {
namespace {

using testing::ManualClock;

constexpr const char* kSecret = "sk-kg-test-secret-0001";
// 2023-11-14T22:13:20Z, a Tuesday.
constexpr const char* kSuccessorSecret = "sk-kg-test-secret-0002";
constexpr UnixMillis kStart = 1'700'000'000'000;

config::Catalog MakeCatalog() {
  config::Catalog catalog;
  config::ProviderConfig mock;
  mock.name = "mock";
  mock.base_url = "http://127.0.0.1:9/v1";
  catalog.providers.push_back(mock);
  config::ProviderConfig keyed = mock;
  keyed.name = "keyed";
  keyed.api_key_env = "KEYGATE_TEST_UNSET_KEY";
  catalog.providers.push_back(keyed);
  auto model = [](std::string id, std::string provider, int64_t context, int64_t max_output) {
    config::ModelConfig m;
    m.id = std::move(id);
    m.provider = std::move(provider);
    m.upstream = "echo";
    m.input_micro_usd_per_mtok = 1'000'000;   // 1 micro-dollar per token
    m.output_micro_usd_per_mtok = 2'000'000;  // 2 micro-dollars per token
    m.context_tokens = context;
    m.max_output_tokens = max_output;
    return m;
  };
  catalog.models.push_back(model("mock/echo", "mock", 8192, 1024));
  catalog.models.push_back(model("mock/other", "mock", 8192, 1024));
  catalog.models.push_back(model("keyed/echo", "keyed", 8192, 1024));
  return catalog;
}

// A body whose worst case is 21 prompt tokens + max_tokens: 21 + 2 * max_tokens micro-dollars.
std::string Body(int max_tokens = 10, const std::string& model = "mock/echo") {
  return R"({"model":")" + model +
         R"(","messages":[{"role":"user","content":"hello"}],"max_tokens":)" +
         std::to_string(max_tokens) + "}";
}

// The value of header `name` in the response's list or in its preformatted header_lines.
std::string Header(const http::Response& response, const std::string& name) {
  for (const auto& [key, value] : response.headers) {
    if (key == name) return value;
  }
  const std::string prefix = name + ": ";
  std::string_view lines = response.header_lines;
  while (!lines.empty()) {
    const size_t end = lines.find("\r\n");
    const std::string_view line = lines.substr(0, end);
    if (line.substr(0, prefix.size()) == prefix) return std::string(line.substr(prefix.size()));
    if (end == std::string_view::npos) break;
    lines.remove_prefix(end + 2);
  }
  return "";
}

class GuardrailsTest : public ::testing::Test {
 protected:
  GuardrailsTest()
      : clock_(kStart),
        limiter_([this](const std::string&, UnixMillis) -> Result<MicroUsd> {
          if (store_down_) return Error::Unavailable("store down");
          return stored_spend_;
        }),
        guardrails_(GuardrailOptions{}, index_, limiter_, clock_) {
    catalog_ = *ResolveCatalog(MakeCatalog(), [](const char*) -> const char* { return nullptr; });
  }

  // Indexes a service key for kSecret, changed by `edit`.
  keys::ServiceKey& PutKey(const std::function<void(keys::ServiceKey&)>& edit = {}) {
    key_.hash = keys::Sha256Hex(kSecret);
    key_.lineage = key_.hash;
    key_.org_id = "org_1";
    if (edit) edit(key_);
    ++key_.version;
    index_.UpsertServiceKey(key_);
    return key_;
  }

  // Indexes the key that rotating kSecret's key made (kSuccessorSecret, in its lineage, with
  // its guardrails as they are now), changed by `edit`.
  void PutSuccessor(const std::function<void(keys::ServiceKey&)>& edit = {}) {
    keys::ServiceKey successor = key_;
    successor.hash = keys::Sha256Hex(kSuccessorSecret);
    successor.lineage = key_.hash;
    successor.created_at = key_.created_at + 1;
    successor.revoke_at.reset();
    if (edit) edit(successor);
    successor.version = ++key_.version;
    index_.UpsertServiceKey(successor);
  }

  Verdict<Admission> Check(const std::string& body = Body(), const std::string& secret = kSecret,
                           Endpoint endpoint = Endpoint::kChatCompletions) {
    return guardrails_.Check(secret, endpoint, body, catalog_);
  }

  // The error code of a refusal, or "" if admitted.
  std::string CodeOf(const Verdict<Admission>& verdict) {
    if (verdict.ok()) return "";
    const std::string& body = verdict.refusal.body;
    const size_t at = body.find("\"code\":\"");
    return at == std::string::npos ? body : body.substr(at + 8, body.find('"', at + 8) - at - 8);
  }

  ManualClock clock_;
  MicroUsd stored_spend_ = 0;
  bool store_down_ = false;
  keys::KeyIndex index_;
  limits::LocalLimiter limiter_;
  Guardrails guardrails_;
  std::shared_ptr<const ResolvedCatalog> catalog_;
  keys::ServiceKey key_;
};

TEST_F(GuardrailsTest, AnUnlimitedKeyIsAdmittedWithoutRateLimitHeaders) {
  PutKey();
  auto verdict = Check();
  ASSERT_TRUE(verdict.ok()) << verdict.refusal.body;
  EXPECT_TRUE(verdict.value->ticket.valid());
  EXPECT_TRUE(verdict.value->rate_limits.Lines().empty());
  EXPECT_EQ(verdict.value->call.model->id, "mock/echo");
  EXPECT_EQ(verdict.value->call.worst.tokens(), 21 + 10);
}

TEST_F(GuardrailsTest, UnknownOrMissingKeysAre401) {
  PutKey();
  auto unknown = Check(Body(), "sk-kg-not-a-key");
  EXPECT_EQ(unknown.refusal.status, 401);
  EXPECT_EQ(CodeOf(unknown), "invalid_api_key");
  auto missing = Check(Body(), "");
  EXPECT_EQ(missing.refusal.status, 401);
  EXPECT_EQ(CodeOf(missing), "missing_api_key");
}

TEST_F(GuardrailsTest, ARevokedKeyIs401FromItsRevocationOn) {
  PutKey([](keys::ServiceKey& k) { k.revoke_at = kStart + 1000; });
  PutSuccessor();
  EXPECT_TRUE(Check().ok());  // the rotation grace period
  clock_.AdvanceMs(1000);
  auto revoked = Check();
  EXPECT_EQ(revoked.refusal.status, 401);
  EXPECT_EQ(CodeOf(revoked), "invalid_api_key");
}

// Decision 0002: a rotated key and its successor share one budget and one pair of windows, so
// while the grace period runs the old secret is held to the successor's guardrails; the old
// key's own state still counts for itself.
TEST_F(GuardrailsTest, ARotatedKeyInItsGracePeriodIsHeldToItsSuccessorsGuardrails) {
  PutKey([](keys::ServiceKey& k) {
    k.revoke_at = kStart + 600'000;
    k.guardrails.rpm_limit = 100;
  });
  PutSuccessor([](keys::ServiceKey& k) { k.guardrails.rpm_limit = 2; });
  EXPECT_TRUE(Check().ok());
  EXPECT_TRUE(Check(Body(), kSuccessorSecret).ok());
  auto third = Check();  // the old secret, past the successor's RPM
  EXPECT_EQ(third.refusal.status, 429) << third.refusal.body;

  PutSuccessor([](keys::ServiceKey& k) { k.guardrails.models = std::vector<std::string>{"x/y"}; });
  auto model = Check();
  EXPECT_EQ(CodeOf(model), "model_not_allowed") << model.refusal.body;
  EXPECT_NE(model.refusal.body.find("x/y"), std::string::npos);

  PutSuccessor([](keys::ServiceKey& k) { k.disabled = true; });
  auto disabled = Check();
  EXPECT_EQ(disabled.refusal.status, 403);
  EXPECT_EQ(CodeOf(disabled), "key_disabled");

  PutSuccessor([](keys::ServiceKey& k) { k.guardrails.expires_at = kStart; });
  auto expired = Check();
  EXPECT_EQ(expired.refusal.status, 401);
  EXPECT_EQ(CodeOf(expired), "key_expired");

  PutSuccessor([](keys::ServiceKey& k) { k.revoke_at = kStart; });  // deleted
  auto deleted = Check();
  EXPECT_EQ(deleted.refusal.status, 401);
  EXPECT_EQ(CodeOf(deleted), "invalid_api_key");
}

TEST_F(GuardrailsTest, ARotatedKeysOwnStateStillRefusesIt) {
  PutKey([](keys::ServiceKey& k) {
    k.revoke_at = kStart + 600'000;
    k.disabled = true;
  });
  PutSuccessor([](keys::ServiceKey& k) { k.disabled = false; });
  EXPECT_EQ(CodeOf(Check()), "key_disabled");
  EXPECT_TRUE(Check(Body(), kSuccessorSecret).ok());
}

TEST_F(GuardrailsTest, AnExpiredKeyIs401KeyExpiredFromItsExpiryOn) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.expires_at = kStart + 5; });
  EXPECT_TRUE(Check().ok());
  clock_.AdvanceMs(5);
  auto expired = Check();
  EXPECT_EQ(expired.refusal.status, 401);
  EXPECT_EQ(CodeOf(expired), "key_expired");
}

TEST_F(GuardrailsTest, ADisabledKeyIs403AndExpiryComesFirst) {
  PutKey([](keys::ServiceKey& k) { k.disabled = true; });
  auto disabled = Check();
  EXPECT_EQ(disabled.refusal.status, 403);
  EXPECT_EQ(CodeOf(disabled), "key_disabled");
  PutKey([](keys::ServiceKey& k) { k.guardrails.expires_at = kStart; });
  EXPECT_EQ(CodeOf(Check()), "key_expired");  // spec §3 step 1 order
}

TEST_F(GuardrailsTest, ManagementCredentialsAre403AndADisabledProvisioningKey401) {
  index_.UpsertOther(keys::Sha256Hex("pk-kg-live"), keys::CredentialKind::kProvisioningKey,
                     "org_1", false);
  index_.UpsertOther(keys::Sha256Hex("pk-kg-off"), keys::CredentialKind::kProvisioningKey,
                     "org_1", true);
  index_.UpsertOther(keys::Sha256Hex("owner-secret"), keys::CredentialKind::kOwner, "org_1",
                     false);
  EXPECT_EQ(Check(Body(), "pk-kg-live").refusal.status, 403);
  EXPECT_EQ(Check(Body(), "owner-secret").refusal.status, 403);
  EXPECT_EQ(Check(Body(), "pk-kg-off").refusal.status, 401);
  // Not in the index: unknown here (the data plane asks the store first, see
  // DataPlane::AnsweredFromStore and the integration test of a key made by the CLI).
  EXPECT_EQ(Check(Body(), "pk-kg-made-by-the-cli").refusal.status, 401);
  EXPECT_TRUE(guardrails_.IsUnindexedManagementKey("pk-kg-made-by-the-cli"));
  EXPECT_FALSE(guardrails_.IsUnindexedManagementKey("pk-kg-live"));
  EXPECT_FALSE(guardrails_.IsUnindexedManagementKey("sk-kg-anything"));
  EXPECT_EQ(Check(Body(), "ok-kg-made-by-the-cli").refusal.status, 401);
  EXPECT_TRUE(guardrails_.IsUnindexedManagementKey("ok-kg-made-by-the-cli"));
  // What the data plane answers once the store has named the credential.
  keys::IndexedCredential stored;
  stored.kind = keys::CredentialKind::kOwner;
  EXPECT_EQ(HttpStatusFor(Guardrails::ManagementCredentialRefusal(stored).code), 403);
  stored.kind = keys::CredentialKind::kProvisioningKey;
  stored.disabled = true;
  EXPECT_EQ(HttpStatusFor(Guardrails::ManagementCredentialRefusal(stored).code), 401);
  EXPECT_EQ(HttpStatusFor(Guardrails::ManagementCredentialRefusal({}).code), 401);
}

TEST_F(GuardrailsTest, AuthenticationComesBeforeTheBodyIsRead) {
  EXPECT_EQ(Check("{not json", "sk-kg-unknown").refusal.status, 401);
  PutKey();
  EXPECT_EQ(Check("{not json").refusal.status, 400);
}

TEST_F(GuardrailsTest, ModelScopeIsCaseInsensitiveOnTheProviderAndAcceptsWildcards) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.models = {{"MOCK/echo"}}; });
  EXPECT_TRUE(Check(Body(10, "mock/echo")).ok());
  EXPECT_TRUE(Check(Body(10, "Mock/echo")).ok());
  auto other = Check(Body(10, "mock/other"));
  EXPECT_EQ(other.refusal.status, 403);
  EXPECT_EQ(CodeOf(other), "model_not_allowed");
  EXPECT_NE(other.refusal.body.find("MOCK/echo"), std::string::npos);  // names what is allowed
  EXPECT_NE(other.refusal.body.find("\"param\":\"model\""), std::string::npos);
  PutKey([](keys::ServiceKey& k) { k.guardrails.models = {{"mock/*"}}; });
  EXPECT_TRUE(Check(Body(10, "mock/other")).ok());
  EXPECT_EQ(Check(Body(10, "keyed/echo")).refusal.status, 403);
}

TEST_F(GuardrailsTest, ModelAllowedMatchesOnlyWholeNames) {
  EXPECT_TRUE(ModelAllowed(std::nullopt, "anything/at-all"));
  EXPECT_FALSE(ModelAllowed(std::vector<std::string>{}, "mock/echo"));
  EXPECT_FALSE(ModelAllowed(std::vector<std::string>{"mock/echo"}, "mock/ECHO"));
  EXPECT_FALSE(ModelAllowed(std::vector<std::string>{"mock/ech"}, "mock/echo"));
  EXPECT_FALSE(ModelAllowed(std::vector<std::string>{"mo/*"}, "mock/echo"));
}

TEST_F(GuardrailsTest, ModelScopeAnswersAsModelAllowed) {
  const std::vector<std::string> ids = {"mock/echo", "MOCK/echo", "mock/ECHO", "mock/*",
                                        "Mock/*",    "mock/",     "mock",      "echo",
                                        "/echo",     "/*",        "*/*",       "keyed/echo",
                                        "mock/a/b",  "MOCK/a/b",  "mock/a",    ""};
  std::vector<std::optional<std::vector<std::string>>> lists = {std::nullopt,
                                                                std::vector<std::string>{}};
  for (const std::string& entry : ids) lists.push_back(std::vector<std::string>{entry});
  lists.push_back(ids);
  lists.push_back(std::vector<std::string>{"keyed/*", "mock/a/b", "echo"});
  for (const auto& list : lists) {
    const ModelScope scope(list);
    for (const std::string& requested : ids) {
      EXPECT_EQ(scope.Allows(requested), ModelAllowed(list, requested))
          << requested << " against " << (list ? std::to_string(list->size()) : "null")
          << " entries, the first " << (list && !list->empty() ? list->front() : "");
    }
  }
}

TEST_F(GuardrailsTest, AModelRefusalNamesAHundredAllowedModelsAndCountsTheRest) {
  auto allow = [this](int count) {
    PutKey([count](keys::ServiceKey& k) {
      std::vector<std::string> allowed;
      for (int i = 0; i < count; ++i) allowed.push_back("keyed/m-" + std::to_string(i));
      k.guardrails.models = allowed;
    });
  };
  allow(100);
  auto all = Check(Body(10, "mock/echo"));
  EXPECT_EQ(all.refusal.status, 403);
  EXPECT_NE(all.refusal.body.find("keyed/m-0, keyed/m-1,"), std::string::npos);
  EXPECT_NE(all.refusal.body.find("keyed/m-99."), std::string::npos) << all.refusal.body;
  allow(1000);
  auto capped = Check(Body(10, "mock/echo"));
  EXPECT_NE(capped.refusal.body.find("keyed/m-99 and 900 more."), std::string::npos)
      << capped.refusal.body;
  EXPECT_EQ(capped.refusal.body.find("keyed/m-100"), std::string::npos);
  EXPECT_LT(capped.refusal.body.size(), 3000u);
}

TEST_F(GuardrailsTest, UnknownModelsOversizedPromptsAndMaxTokensAreRefusedBeforeTheLimiter) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.rpm_limit = 1; });
  auto unknown = Check(Body(10, "mock/nope"));
  EXPECT_EQ(unknown.refusal.status, 404);
  EXPECT_EQ(CodeOf(unknown), "model_not_found");
  EXPECT_NE(unknown.refusal.body.find("The model 'mock/nope' does not exist"), std::string::npos);
  // A long name is quoted in part (audit R: 100 KB came back whole).
  auto long_name = Check(Body(10, "mock/" + std::string(100'000, 'n')));
  EXPECT_EQ(CodeOf(long_name), "model_not_found");
  EXPECT_LT(long_name.refusal.body.size(), 1000u);
  EXPECT_NE(long_name.refusal.body.find("nnn...' (100005 bytes) does not exist"),
            std::string::npos)
      << long_name.refusal.body;
  std::string accents = "mock/";
  for (int i = 0; i < 200; ++i) accents += "\xc3\xa9";  // 405 bytes of "é": cut between two
  auto accented = Check(Body(10, accents));
  EXPECT_EQ(accented.refusal.body.find("\\ufffd"), std::string::npos) << accented.refusal.body;
  EXPECT_NE(accented.refusal.body.find("\xc3\xa9...' (405 bytes)"), std::string::npos)
      << accented.refusal.body;
  const std::string huge(8192 * kMaxBytesPerToken + 8, 'x');
  auto too_long = Check(R"({"model":"mock/echo","messages":[{"role":"user","content":")" + huge +
                        R"("}]})");
  EXPECT_EQ(too_long.refusal.status, 400);
  EXPECT_EQ(CodeOf(too_long), "context_length_exceeded");
  auto too_many = Check(Body(1025));
  EXPECT_EQ(too_many.refusal.status, 400);
  EXPECT_NE(too_many.refusal.body.find("max_tokens"), std::string::npos);
  // Named as the caller named it.
  auto too_many_completion = Check(
      R"({"model":"mock/echo","max_completion_tokens":1025,"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(too_many_completion.refusal.status, 400);
  EXPECT_NE(too_many_completion.refusal.body.find(R"("param":"max_completion_tokens")"),
            std::string::npos) << too_many_completion.refusal.body;
  // None of them used the only request of the minute.
  EXPECT_TRUE(Check().ok());
}

TEST(ResolvedCatalogTest, FindsAModelAsFindModelDoesWithItsProvidersUpstream) {
  config::Catalog source = MakeCatalog();
  source.models.push_back(source.models[0]);  // the same id twice: the first wins
  source.models.back().upstream = "second";
  config::ModelConfig orphan = source.models[0];
  orphan.id = "ghost/echo";
  orphan.provider = "ghost";  // no such provider
  source.models.push_back(orphan);
  config::ModelConfig nested = source.models[1];
  nested.id = "mock/vendor/model";  // a model part with a '/' of its own
  source.models.push_back(nested);
  config::ModelConfig shadowed = source.models[1];
  shadowed.id = "MOCK/other";  // equal to mock/other by the catalog's rule: the first wins
  source.models.push_back(shadowed);
  for (int i = 0; i < 300; ++i) {
    config::ModelConfig m = source.models[1];
    m.id = "mock/m-" + std::to_string(i);
    source.models.push_back(m);
  }
  auto resolved = ResolveCatalog(source, [](const char*) -> const char* { return nullptr; });
  ASSERT_TRUE(resolved.ok());
  const ResolvedCatalog& catalog = **resolved;
  for (const char* id : {"mock/echo", "MOCK/echo", "Mock/echo", "keyed/echo", "ghost/echo",
                         "mock/m-0", "mock/m-299", "mock/Echo", "mock/echo ", "echo", "mock/",
                         "/echo", "mock/m-300", "nope/echo", "MOCK/vendor/model",
                         "mock/Vendor/model", "mock/vendor", "mock/other"}) {
    const ResolvedModel* found = catalog.Find(id);
    const config::ModelConfig* expected = catalog.catalog.FindModel(id);
    ASSERT_EQ(found == nullptr, expected == nullptr) << id;
    if (found != nullptr) {
      EXPECT_EQ(found->config, expected) << id;
    }
  }
  EXPECT_EQ(catalog.Find("mock/echo")->config->upstream, "echo");
  EXPECT_EQ(catalog.Find("MOCK/echo")->target->provider, "mock");
  EXPECT_EQ(catalog.Find("keyed/echo")->target->provider, "keyed");
  EXPECT_EQ(catalog.Find("ghost/echo")->target, nullptr);
  EXPECT_EQ(catalog.Find("mock/m-299")->config->id, "mock/m-299");
  EXPECT_EQ(catalog.Find("Mock/vendor/model")->config->id, "mock/vendor/model");
  EXPECT_EQ(catalog.Find("MOCK/other")->config, &catalog.catalog.models[1]);
  // Ids equal by the catalog's rule hash alike.
  EXPECT_EQ(ModelIdHash{}("OpenAI/gpt-4o"), ModelIdHash{}("openai/gpt-4o"));
  EXPECT_TRUE(ModelIdEqual{}("OpenAI/gpt-4o", "openai/gpt-4o"));
  EXPECT_FALSE(ModelIdEqual{}("openai/GPT-4o", "openai/gpt-4o"));
}

TEST_F(GuardrailsTest, AModelOfAnUndeclaredProviderIs503) {
  PutKey();
  config::Catalog source = MakeCatalog();
  source.models.push_back(source.models[0]);
  source.models.back().id = "ghost/echo";
  source.models.back().provider = "ghost";
  catalog_ = *ResolveCatalog(source, [](const char*) -> const char* { return nullptr; });
  auto verdict = Check(Body(10, "ghost/echo"));
  EXPECT_EQ(verdict.refusal.status, 503);
  EXPECT_NE(verdict.refusal.body.find("not declared"), std::string::npos) << verdict.refusal.body;
}

TEST_F(GuardrailsTest, AProviderWithoutItsApiKeyIs503) {
  PutKey();
  auto verdict = Check(Body(10, "keyed/echo"));
  EXPECT_EQ(verdict.refusal.status, 503);
  EXPECT_NE(verdict.refusal.body.find("KEYGATE_TEST_UNSET_KEY"), std::string::npos);
}

TEST_F(GuardrailsTest, RpmComesBeforeTpmWhichComesBeforeTheBudget) {
  PutKey([](keys::ServiceKey& k) {
    k.guardrails.rpm_limit = 1;
    k.guardrails.tpm_limit = 100;
    k.guardrails.credit_limit = 50;  // micro-dollars
  });
  ASSERT_TRUE(Check(Body(10)).ok());  // 31 tokens, 41 micro-dollars
  // A second call fails all three; RPM answers.
  auto second = Check(Body(30));
  EXPECT_EQ(second.refusal.status, 429);
  EXPECT_NE(second.refusal.body.find("requests"), std::string::npos);
  clock_.AdvanceMs(60'000);
  // Both windows have room again (91 tokens fit); the first call's 41 micro-dollars are still
  // reserved, and 41 + 161 > 50: the budget answers.
  auto budget = Check(Body(70));
  EXPECT_EQ(budget.refusal.status, 402);
  EXPECT_EQ(CodeOf(budget), "budget_exceeded");
}

TEST_F(GuardrailsTest, TpmRefusesWhatTheWindowCannotHoldYet) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.tpm_limit = 60; });
  ASSERT_TRUE(Check(Body(10)).ok());  // 31 tokens
  clock_.AdvanceMs(20'000);
  auto refused = Check(Body(10));  // 31 more would make 62
  ASSERT_EQ(refused.refusal.status, 429);
  EXPECT_EQ(Header(refused.refusal, "Retry-After"), "40");
  EXPECT_EQ(Header(refused.refusal, "retry-after-ms"), "40000");
  EXPECT_EQ(Header(refused.refusal, "x-ratelimit-limit-tokens"), "60");
  EXPECT_EQ(Header(refused.refusal, "x-ratelimit-remaining-tokens"), "29");
  EXPECT_EQ(Header(refused.refusal, "x-ratelimit-reset-tokens"), "40s");
}

TEST_F(GuardrailsTest, RetryAfterIsHonestToTheMillisecond) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.rpm_limit = 2; });
  ASSERT_TRUE(Check().ok());
  clock_.AdvanceMs(10'000);
  ASSERT_TRUE(Check().ok());
  clock_.AdvanceMs(10'000);
  auto refused = Check();
  ASSERT_EQ(refused.refusal.status, 429);
  EXPECT_EQ(Header(refused.refusal, "retry-after-ms"), "40000");
  clock_.AdvanceMs(39'999);
  EXPECT_EQ(Check().refusal.status, 429);
  clock_.AdvanceMs(1);
  EXPECT_TRUE(Check().ok());
}

TEST_F(GuardrailsTest, ARequestLargerThanTheWholeTpmLimitCanNeverFit) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.tpm_limit = 500; });
  auto refused = Check(Body(1000));
  ASSERT_EQ(refused.refusal.status, 429);
  EXPECT_NE(refused.refusal.body.find("never fit"), std::string::npos);
  EXPECT_EQ(Header(refused.refusal, "Retry-After"), "");
}

TEST_F(GuardrailsTest, SuccessCarriesTheRateLimitHeadersOfTheLimitsTheKeyHas) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.rpm_limit = 10; });
  auto verdict = Check();
  ASSERT_TRUE(verdict.ok());
  http::Response carrier;
  carrier.header_lines = verdict.value->rate_limits.Lines();
  EXPECT_EQ(Header(carrier, "x-ratelimit-limit-requests"), "10");
  EXPECT_EQ(Header(carrier, "x-ratelimit-remaining-requests"), "9");
  EXPECT_EQ(Header(carrier, "x-ratelimit-reset-requests"), "1m0s");
  EXPECT_EQ(Header(carrier, "x-ratelimit-limit-tokens"), "");
}

TEST_F(GuardrailsTest, TheBudgetRefusalGivesLimitSpendAndReset) {
  stored_spend_ = 30;
  PutKey([](keys::ServiceKey& k) {
    k.guardrails.credit_limit = 60;
    k.guardrails.reset_interval = keys::ResetInterval::kDaily;
  });
  auto refused = Check(Body(10));  // 41 more would pass 60
  ASSERT_EQ(refused.refusal.status, 402);
  const std::string& body = refused.refusal.body;
  EXPECT_NE(body.find("\"limit\":0.00006"), std::string::npos) << body;
  EXPECT_NE(body.find("\"spend\":0.00003"), std::string::npos) << body;
  EXPECT_NE(body.find("\"resets_at\":\"2023-11-15T00:00:00.000Z\""), std::string::npos) << body;
  EXPECT_NE(body.find("daily"), std::string::npos) << body;
}

TEST_F(GuardrailsTest, SettlingReplacesTheReservationWithTheRealCost) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.credit_limit = 60; });
  auto first = Check(Body(10));  // reserves 41
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Check(Body(10)).refusal.status, 402);  // 41 + 41 > 60
  limiter_.Settle(first.value->ticket, 10, 12, clock_.NowMs());
  EXPECT_TRUE(Check(Body(10)).ok());  // 12 + 41 <= 60
}

TEST_F(GuardrailsTest, AReleasedReservationFreesItsBudget) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.credit_limit = 41; });
  auto first = Check(Body(10));
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Check(Body(10)).refusal.status, 402);
  limiter_.Release(first.value->ticket);
  EXPECT_TRUE(Check(Body(10)).ok());
}

TEST_F(GuardrailsTest, AnUnreadableSpendFailsClosedByDefaultAndOpenOnRequest) {
  store_down_ = true;
  PutKey([](keys::ServiceKey& k) { k.guardrails.credit_limit = 1000; });
  EXPECT_EQ(Check().refusal.status, 503);
  GuardrailOptions open;
  open.failure_mode = config::FailureMode::kAllow;
  Guardrails lenient(open, index_, limiter_, clock_);
  auto verdict = lenient.Check(kSecret, Endpoint::kChatCompletions, Body(), catalog_);
  ASSERT_TRUE(verdict.ok());
  EXPECT_FALSE(verdict.value->ticket.valid());
}

TEST_F(GuardrailsTest, EmbeddingsReserveTheirInputOnly) {
  PutKey([](keys::ServiceKey& k) { k.guardrails.tpm_limit = 1000; });
  auto verdict = Check(R"({"model":"mock/echo","input":["abcd","ef"]})", kSecret,
                       Endpoint::kEmbeddings);
  ASSERT_TRUE(verdict.ok()) << verdict.refusal.body;
  EXPECT_EQ(verdict.value->call.worst.completion_tokens, 0);
  EXPECT_EQ(verdict.value->call.worst.prompt_tokens, 4 + 2 + 2 * kPerInputTokens);
}

}  // namespace
}  // namespace keygate::proxy
