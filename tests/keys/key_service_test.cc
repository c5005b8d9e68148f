#include "keys/key_service.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "keys/secrets.h"
#include "store/sqlite/sqlite_store.h"
#include "testing/failing_store.h"
#include "testing/keygate_process.h"
#include "testing/manual_clock.h"

namespace keygate::keys {
namespace {

class KeyServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::SqliteStore::Open(dir_.path() + "/k.db", store::SqliteOptions{});
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(*opened);
    service_ = std::make_unique<KeyService>(*store_, *store_, index_, clock_, secrets_,
                                            KeyPrefixes{}, log_);
    auto org = service_->CreateOrganization("a");
    ASSERT_TRUE(org.ok());
    owner_ = *service_->Authenticate(org->owner_secret);
    auto pk = service_->CreateProvisioningKey(owner_, "ci", "r1");
    ASSERT_TRUE(pk.ok());
    pk_ = *service_->Authenticate(pk->secret);
    auto other = service_->CreateOrganization("b");
    other_owner_ = *service_->Authenticate(other->owner_secret);
  }

  IssuedServiceKey Create(KeyFields fields) {
    auto issued = service_->CreateServiceKey(pk_, fields, KeySource::kRouter, "r");
    EXPECT_TRUE(issued.ok()) << (issued.ok() ? "" : issued.error().message);
    return issued.ok() ? *issued : IssuedServiceKey{};
  }

  static KeyFields Named(std::string name) {
    KeyFields f;
    f.name = std::move(name);
    return f;
  }

  testing::TempDir dir_;
  testing::ManualClock clock_{1'750'000'000'000};
  OsSecretSource secrets_;
  std::FILE* devnull_ = std::fopen("/dev/null", "w");
  Logger log_{devnull_};
  KeyIndex index_;
  std::unique_ptr<store::SqliteStore> store_;
  std::unique_ptr<KeyService> service_;
  Caller owner_, pk_, other_owner_;
};

// A key stored under older rules (a models entry, a name of spaces, since refused: audits
// 2026-12-07) can still be renamed or disabled: only a models list or a name the update sets
// is checked.
TEST_F(KeyServiceTest, AnUpdateChecksOnlyTheModelsAndTheNameItSets) {
  IssuedServiceKey issued = Create(Named("old"));
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_.path() + "/k.db").c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    const std::string sql =
        "UPDATE service_keys SET models_json = '[\"*/*\"]', name = '   ' WHERE hash = '" +
        issued.key.hash + "'";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  KeyFields disable;
  disable.disabled = true;
  auto disabled = service_->UpdateServiceKey(pk_, issued.key.hash, disable, "r");
  ASSERT_TRUE(disabled.ok()) << disabled.error().message;
  EXPECT_TRUE(disabled->disabled);
  KeyFields models;
  models.models = std::optional<std::vector<std::string>>(std::vector<std::string>{"*/*"});
  auto refused = service_->UpdateServiceKey(pk_, issued.key.hash, models, "r");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().param, "models");
  KeyFields whole_record;  // a client that sends the record back, its name unchanged
  whole_record.name = "   ";
  whole_record.disabled = false;
  auto resent = service_->UpdateServiceKey(pk_, issued.key.hash, whole_record, "r");
  ASSERT_TRUE(resent.ok()) << resent.error().message;
  KeyFields blank;
  blank.name = " \t ";
  auto renamed = service_->UpdateServiceKey(pk_, issued.key.hash, blank, "r");
  ASSERT_FALSE(renamed.ok());
  EXPECT_EQ(renamed.error().param, "name");
  auto created = service_->CreateServiceKey(pk_, Named("  "), KeySource::kRouter, "r");
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().message, "name must not be only whitespace");
}

TEST_F(KeyServiceTest, AuthenticatesEachCredentialKind) {
  EXPECT_EQ(owner_.kind, CallerKind::kOwner);
  EXPECT_EQ(pk_.kind, CallerKind::kProvisioningKey);
  auto key = Create(Named("svc"));
  auto caller = service_->Authenticate(key.secret);
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->kind, CallerKind::kServiceKey);
  EXPECT_EQ(service_->Authenticate("sk-kg-nope").error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(service_->Authenticate("").error().reason, "missing_api_key");
  EXPECT_EQ(KeyService::RequireManager(*caller).error().code, ErrorCode::kPermissionDenied);
}

TEST_F(KeyServiceTest, LastUsedIsKeptInMemoryAndWrittenByTheFlush) {
  std::vector<IssuedServiceKey> keys;
  for (int i = 0; i < 40; ++i) keys.push_back(Create(Named("svc-" + std::to_string(i))));
  const UnixMillis start = clock_.NowMs();
  for (size_t i = 0; i < keys.size(); ++i) {
    clock_.AdvanceMs(1'000);
    service_->NoteUsed(keys[i].key.hash);
  }
  clock_.AdvanceMs(1'000);
  service_->NoteUsed(keys[0].key.hash);  // noted again: the later time wins
  EXPECT_FALSE(store_->GetServiceKey(keys[0].key.hash)->last_used_at.has_value());
  ASSERT_TRUE(service_->FlushLastUsed().ok());
  EXPECT_EQ(store_->GetServiceKey(keys[0].key.hash)->last_used_at,
            start + 1'000 * static_cast<int64_t>(keys.size() + 1));
  for (size_t i = 1; i < keys.size(); ++i) {
    EXPECT_EQ(store_->GetServiceKey(keys[i].key.hash)->last_used_at,
              start + 1'000 * static_cast<int64_t>(i + 1))
        << i;
  }
  // Nothing noted since: a second flush writes nothing and changes nothing.
  clock_.AdvanceMs(1'000);
  ASSERT_TRUE(service_->FlushLastUsed().ok());
  EXPECT_EQ(store_->GetServiceKey(keys[1].key.hash)->last_used_at, start + 2'000);
}

TEST_F(KeyServiceTest, StoresOnlyTheDigestAndMasksTheSecret) {
  auto key = Create(Named("svc"));
  EXPECT_EQ(key.key.hash, Sha256Hex(key.secret));
  EXPECT_EQ(key.key.masked, "sk-kg-••••" + key.secret.substr(key.secret.size() - 4));
  auto stored = store_->GetServiceKey(key.key.hash);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->lineage, key.key.hash);
}

TEST_F(KeyServiceTest, ValidationNamesTheField) {
  struct Case {
    KeyFields fields;
    std::string param;
  };
  std::vector<Case> cases;
  cases.push_back({Named(""), "name"});
  cases.push_back({Named(std::string(257, 'x')), "name"});
  {
    KeyFields f = Named("x");
    f.credit_limit = std::optional<MicroUsd>{0};
    cases.push_back({f, "credit_limit"});
  }
  {
    KeyFields f = Named("x");
    f.rpm_limit = std::optional<int64_t>{-1};
    cases.push_back({f, "rpm_limit"});
  }
  {
    KeyFields f = Named("x");
    f.expires_at = std::optional<UnixMillis>{clock_.NowMs()};
    cases.push_back({f, "expire_key"});
  }
  {
    KeyFields f = Named("x");
    f.models = std::optional<std::vector<std::string>>{{"no-slash"}};
    cases.push_back({f, "models"});
  }
  {
    KeyFields f = Named("x");
    f.metadata_json = std::optional<std::string>{"{\"m\":\"" + std::string(16 * 1024, 'x') + "\"}"};
    cases.push_back({f, "metadata"});
  }
  for (const Case& c : cases) {
    auto r = service_->CreateServiceKey(pk_, c.fields, KeySource::kRouter, "r");
    ASSERT_FALSE(r.ok()) << c.param;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().param, c.param);
  }
}

TEST_F(KeyServiceTest, AnotherOrgsKeyIsNotFoundAndWorkspaceKeysAreForbiddenToProvisioningKeys) {
  auto key = Create(Named("svc"));
  EXPECT_EQ(service_->GetServiceKey(other_owner_, key.key.hash).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_->DeleteServiceKey(other_owner_, key.key.hash, "r").error().code,
            ErrorCode::kNotFound);
  auto ws = service_->CreateServiceKey(owner_, Named("ws"), KeySource::kWorkspace, "r");
  ASSERT_TRUE(ws.ok());
  EXPECT_EQ(service_->GetServiceKey(pk_, ws->key.hash).error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(service_->CreateServiceKey(pk_, Named("w"), KeySource::kWorkspace, "r").error().code,
            ErrorCode::kPermissionDenied);
}

TEST_F(KeyServiceTest, RotationKeepsTheOldKeyUntilTheGracePeriodEndsOnTheInjectedClock) {
  KeyFields f = Named("rot");
  f.credit_limit = std::optional<MicroUsd>{5'000'000};
  f.reset_interval = std::optional<ResetInterval>{ResetInterval::kMonthly};
  f.tags = std::optional<std::vector<std::string>>{{"a", "b"}};
  auto old_key = Create(f);
  auto rotated = service_->RotateServiceKey(pk_, old_key.key.hash, 60, "r");
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(rotated->key.lineage, old_key.key.lineage);
  EXPECT_EQ(rotated->key.guardrails.credit_limit, f.credit_limit->value());
  EXPECT_EQ(rotated->key.tags, old_key.key.tags);
  EXPECT_EQ(rotated->revoke_at, clock_.NowMs() + 60'000);
  // Both work during the grace period.
  EXPECT_TRUE(service_->Authenticate(old_key.secret).ok());
  EXPECT_TRUE(service_->Authenticate(rotated->secret).ok());
  // A second rotation within the grace period works and never lengthens the old key's life.
  auto again = service_->RotateServiceKey(pk_, old_key.key.hash, 3600, "r");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->revoke_at, clock_.NowMs() + 60'000);
  clock_.AdvanceMs(59'999);
  EXPECT_TRUE(service_->Authenticate(old_key.secret).ok());
  clock_.AdvanceMs(1);
  EXPECT_EQ(service_->Authenticate(old_key.secret).error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(service_->GetServiceKey(pk_, old_key.key.hash).error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(service_->Authenticate(rotated->secret).ok());
}

// Decision 0002: in its grace period, a rotated key is held to its successor's models and
// limits, so changing its own is refused rather than acknowledged and ignored.
TEST_F(KeyServiceTest, ARotatedKeysOwnLimitsCannotChangeDuringItsGracePeriod) {
  KeyFields f = Named("leaked");
  f.rpm_limit = std::optional<int64_t>{100};
  f.models = std::optional<std::vector<std::string>>{{"mock/a", "mock/b"}};
  auto old_key = Create(f);
  ASSERT_TRUE(service_->RotateServiceKey(pk_, old_key.key.hash, 600, "r").ok());
  KeyFields rpm;
  rpm.rpm_limit = std::optional<int64_t>{5};
  auto refused = service_->UpdateServiceKey(pk_, old_key.key.hash, rpm, "r");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_EQ(refused.error().param, "rpm_limit");
  EXPECT_EQ(refused.error().message.rfind("rpm_limit cannot change", 0), 0u);
  KeyFields models;
  models.models = std::optional<std::vector<std::string>>{{"mock/echo"}};
  EXPECT_EQ(service_->UpdateServiceKey(pk_, old_key.key.hash, models, "r").error().param,
            "models");
  KeyFields reset;
  reset.reset_interval = std::optional<ResetInterval>{ResetInterval::kDaily};
  EXPECT_EQ(service_->UpdateServiceKey(pk_, old_key.key.hash, reset, "r").error().param,
            "reset_budget_interval");
  // What holds it as any key may change, and limits sent back as they are.
  KeyFields rest = Named("leaked, rotated");
  rest.disabled = true;
  rest.rpm_limit = std::optional<int64_t>{100};
  rest.models = std::optional<std::vector<std::string>>{{"mock/b", "mock/a"}};  // the same list
  auto changed = service_->UpdateServiceKey(pk_, old_key.key.hash, rest, "r");
  ASSERT_TRUE(changed.ok()) << changed.error().message;
  EXPECT_TRUE(changed->disabled);
  // Past its grace period it is gone, like any revoked key.
  clock_.AdvanceMs(600'000);
  EXPECT_EQ(service_->UpdateServiceKey(pk_, old_key.key.hash, rpm, "r").error().code,
            ErrorCode::kNotFound);
}

// Deleting the key that carries a lineage on ends the grace of the keys standing in for it:
// their records, the index and a later rotation all see them revoked.
TEST_F(KeyServiceTest, DeletingTheSuccessorRevokesTheKeysStandingInForIt) {
  auto a = Create(Named("a"));
  auto b = service_->RotateServiceKey(pk_, a.key.hash, 600, "r");
  ASSERT_TRUE(b.ok());
  auto c = service_->RotateServiceKey(pk_, b->key.hash, 600, "r");  // a -> b -> c
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(service_->DeleteServiceKey(pk_, c->key.hash, "r").ok());
  for (const std::string& hash : {a.key.hash, b->key.hash}) {
    EXPECT_EQ(service_->GetServiceKey(pk_, hash).error().code, ErrorCode::kNotFound) << hash;
    EXPECT_TRUE(RevokedAt(*index_.Find(hash).service_key, clock_.NowMs())) << hash;
  }
  EXPECT_EQ(service_->RotateServiceKey(pk_, a.key.hash, 600, "r").error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(service_->Authenticate(a.secret).error().code, ErrorCode::kUnauthenticated);
}

// Audit K: rotating a stand-in again copies the credential as it is now (its successor's
// record), not the limits the stand-in no longer counts: a successor locked down after a leak
// stays locked down in the copy.
TEST_F(KeyServiceTest, RotatingAStandInAgainCopiesItsSuccessorsRecord) {
  KeyFields f = Named("leaked");
  f.credit_limit = std::optional<MicroUsd>{10'000'000};
  auto a = Create(f);
  auto b = service_->RotateServiceKey(pk_, a.key.hash, 600, "r");
  ASSERT_TRUE(b.ok());
  KeyFields lock;
  lock.disabled = true;
  lock.credit_limit = std::optional<MicroUsd>{1};
  ASSERT_TRUE(service_->UpdateServiceKey(pk_, b->key.hash, lock, "r").ok());
  auto c = service_->RotateServiceKey(pk_, a.key.hash, 0, "r");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->key.disabled);
  EXPECT_EQ(c->key.guardrails.credit_limit, std::optional<MicroUsd>{1});
  EXPECT_EQ(index_.Successor(a.key.lineage)->hash, c->key.hash);
  EXPECT_TRUE(index_.Successor(a.key.lineage)->disabled);
}

// GET /api/v1/key with a stand-in's secret shows what its calls are held to (audit K).
TEST_F(KeyServiceTest, AStandInsOwnRecordShowsItsSuccessorsGuardrails) {
  KeyFields f = Named("old");
  f.rpm_limit = std::optional<int64_t>{50};
  auto a = Create(f);
  auto b = service_->RotateServiceKey(pk_, a.key.hash, 600, "r");
  ASSERT_TRUE(b.ok());
  KeyFields tighter;
  tighter.rpm_limit = std::optional<int64_t>{7};
  ASSERT_TRUE(service_->UpdateServiceKey(pk_, b->key.hash, tighter, "r").ok());
  const Caller caller = *service_->Authenticate(a.secret);
  auto own = service_->GetOwnServiceKey(caller);
  ASSERT_TRUE(own.ok()) << own.error().message;
  EXPECT_EQ(own->hash, a.key.hash);
  EXPECT_EQ(own->guardrails.rpm_limit, std::optional<int64_t>{7});
  EXPECT_EQ(own->guardrails.expires_at, clock_.NowMs() + 600'000);  // the grace period's end
  KeyFields soon;  // its own expiry still holds it, and shows when it is the earlier
  soon.expires_at = std::optional<UnixMillis>{clock_.NowMs() + 60'000};
  ASSERT_TRUE(service_->UpdateServiceKey(pk_, a.key.hash, soon, "r").ok());
  EXPECT_EQ(service_->GetOwnServiceKey(caller)->guardrails.expires_at, soon.expires_at->value());
  KeyFields off;
  off.disabled = true;
  ASSERT_TRUE(service_->UpdateServiceKey(pk_, b->key.hash, off, "r").ok());
  EXPECT_EQ(service_->GetOwnServiceKey(caller).error().code, ErrorCode::kPermissionDenied);
}

TEST_F(KeyServiceTest, DeletingOneOfTwoSuccessorsLeavesTheOtherCarryingTheLineage) {
  auto a = Create(Named("a"));
  auto b = service_->RotateServiceKey(pk_, a.key.hash, 600, "r");
  auto c = service_->RotateServiceKey(pk_, a.key.hash, 600, "r");  // a rotated twice
  ASSERT_TRUE(b.ok() && c.ok());
  ASSERT_TRUE(service_->DeleteServiceKey(pk_, c->key.hash, "r").ok());
  EXPECT_TRUE(service_->GetServiceKey(pk_, a.key.hash).ok());
  EXPECT_EQ(index_.Successor(a.key.lineage)->hash, b->key.hash);
}

TEST_F(KeyServiceTest, DeleteRevokesAtOnceAndUpdatesTheIndex) {
  auto key = Create(Named("gone"));
  ASSERT_EQ(index_.Find(key.key.hash).kind, CredentialKind::kServiceKey);
  ASSERT_TRUE(service_->DeleteServiceKey(pk_, key.key.hash, "r").ok());
  auto indexed = index_.Find(key.key.hash);
  ASSERT_TRUE(indexed.service_key);
  EXPECT_TRUE(RevokedAt(*indexed.service_key, clock_.NowMs()));
  EXPECT_FALSE(service_->Authenticate(key.secret).ok());
}

TEST_F(KeyServiceTest, DisabledProvisioningKeyIsUnauthenticated) {
  auto pk = service_->CreateProvisioningKey(owner_, "second", "r");
  ASSERT_TRUE(pk.ok());
  ASSERT_TRUE(service_->UpdateProvisioningKey(owner_, pk->key.hash, std::nullopt, true, "r").ok());
  auto caller = service_->Authenticate(pk->secret);
  ASSERT_FALSE(caller.ok());
  EXPECT_EQ(caller.error().code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(service_->CreateProvisioningKey(pk_, "minted", "r").error().code,
            ErrorCode::kPermissionDenied);
}

}  // namespace
}  // namespace keygate::keys

namespace keygate::keys {
namespace {

// Names count characters, not bytes, and must be UTF-8: a name from the command line is
// copied into audit entries and answers, which would stop being JSON.
TEST(CheckNameTest, CountsCharactersAndRefusesWhatIsNotUtf8) {
  std::string cjk;
  for (int i = 0; i < 256; ++i) cjk += "\xe9\x8d\xb5";  // 鍵, three bytes
  EXPECT_TRUE(CheckName(cjk, "name").ok());
  EXPECT_FALSE(CheckName(cjk + "\xe9\x8d\xb5", "name").ok());
  EXPECT_TRUE(CheckName("deploy \xf0\x9f\x9a\x80", "name").ok());  // an emoji, four bytes
  EXPECT_TRUE(CheckName(std::string(256, 'a'), "name").ok());
  EXPECT_FALSE(CheckName(std::string(257, 'a'), "name").ok());
  for (const std::string& bad : {std::string("\xff"), std::string("a\x80"),
                                 std::string("\xc0\xaf"),          // overlong '/'
                                 std::string("\xed\xa0\x80"),      // a surrogate
                                 std::string("\xf4\x90\x80\x80"),  // above U+10FFFF
                                 std::string("\xe9\x8d")}) {       // cut short
    const Status status = CheckName(bad, "org");
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().param, "org");
    EXPECT_NE(status.error().message.find("UTF-8"), std::string::npos);
  }
  EXPECT_EQ(CheckName("", "project_name").error().message, "project_name must not be empty");
  for (const char* blank : {" ", "   ", "\t", " \n ", "\u00a0", "\u3000", " \u2003\u200b",
                            "\ufeff", "\u200c\u200d", "\u3164", "\u00ad", "\u2800", "\x01",
                            "\u202e\u2064", "\u180e"}) {
    EXPECT_EQ(CheckName(blank, "name").error().message, "name must not be only whitespace")
        << '"' << blank << '"';
  }
  EXPECT_TRUE(CheckName(" a ", "name").ok());
  EXPECT_TRUE(CheckName("\u00a0\u00e9", "name").ok());
}


// Audit, 2026-12-06: a search beginning with NUL matched every key of the org.
TEST_F(KeyServiceTest, ASearchWithANulIsRefused) {
  Create(Named("alpha"));
  ServiceKeyListOptions options;
  options.search = std::string("\0zzz", 4);
  auto listed = service_->ListServiceKeys(pk_, options);
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.error().param, "search");
}

// Audit, 2026-12-06: each write read the whole record, changed it and wrote it back, so a
// write that landed in between was silently undone: a deleted key came back to life, a
// rotated key was never revoked, a disable was lost. Each race below lets another writer land
// between the service's read and its write.
class KeyServiceRaceTest : public KeyServiceTest {
 protected:
  void SetUp() override {
    KeyServiceTest::SetUp();
    failing_ = std::make_unique<testing::FailingStore>(*store_);
    racing_ = std::make_unique<KeyService>(*failing_, *failing_, index_, clock_, secrets_,
                                           KeyPrefixes{}, log_);
  }
  // Writes `change` to the stored key `hash` directly, as another replica's request would.
  void Meanwhile(const std::string& hash, std::function<void(ServiceKey&)> change) {
    failing_->BeforeNextWrite([this, hash, change] {
      auto key = store_->GetServiceKey(hash);
      ASSERT_TRUE(key.ok());
      change(*key);
      ASSERT_TRUE(store_->UpdateServiceKey(&*key, std::nullopt, AuditEntry{}).ok());
    });
  }
  std::unique_ptr<testing::FailingStore> failing_;
  std::unique_ptr<KeyService> racing_;
};

// Audit L: a delete of the successor that slips in right after a new rotation of its stand-in
// is written, before the rotation has indexed its new key. It must wait for the rotation (one
// at a time per lineage), and then find the new successor: the stand-in the rotation answered
// for keeps working. (Without the lock it revoked the stand-in: no successor was indexed yet.)
TEST_F(KeyServiceRaceTest, ADeleteOfTheSuccessorWaitsForARotationOfItsStandIn) {
  auto a = Create(Named("a"));
  auto b = racing_->RotateServiceKey(pk_, a.key.hash, 3600, "r");
  ASSERT_TRUE(b.ok());
  std::thread deleter;
  failing_->AfterNextRotation([&] {
    std::promise<void> done;
    std::future<void> deleted = done.get_future();
    deleter = std::thread([&, done = std::move(done)]() mutable {
      EXPECT_TRUE(racing_->DeleteServiceKey(pk_, b->key.hash, "r").ok());
      done.set_value();
    });
    // It cannot finish while the rotation holds its lineage.
    EXPECT_EQ(deleted.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  });
  auto c = racing_->RotateServiceKey(pk_, a.key.hash, 3600, "r");
  ASSERT_TRUE(c.ok());
  deleter.join();
  EXPECT_TRUE(racing_->GetServiceKey(pk_, a.key.hash).ok());  // still a stand-in, for c
  EXPECT_TRUE(racing_->Authenticate(a.secret).ok());
  EXPECT_EQ(index_.Successor(a.key.lineage)->hash, c->key.hash);
}

// Audit M: an empty PATCH moved updated_at and left an audit entry with no change
// (dialects.md: an empty body is valid and changes nothing). A record sent back as it was is
// the same no-op. A change the diff used to leave out (include_byok_in_limit, creator, external
// user) is still written, and now audited with what it changed.
TEST_F(KeyServiceTest, AnUpdateThatChangesNothingWritesNothing) {
  const IssuedServiceKey issued = Create(Named("same"));
  const std::string hash = issued.key.hash;
  auto entries = [&] {
    store::AuditQuery query;
    query.target = hash;
    auto page = service_->ListAudit(owner_, query);
    EXPECT_TRUE(page.ok());
    return page.ok() ? page->entries : std::vector<AuditEntry>{};
  };
  const size_t audited = entries().size();
  clock_.AdvanceMs(1000);
  auto empty = service_->UpdateServiceKey(pk_, hash, KeyFields{}, "r");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->updated_at.has_value());
  KeyFields same = Named("same");
  same.disabled = false;
  same.tags = std::optional<std::vector<std::string>>{std::vector<std::string>{}};
  ASSERT_TRUE(service_->UpdateServiceKey(pk_, hash, same, "r").ok());
  EXPECT_FALSE(service_->GetServiceKey(pk_, hash)->updated_at.has_value());
  EXPECT_EQ(entries().size(), audited);

  KeyFields byok;
  byok.include_byok_in_limit = true;
  auto changed = service_->UpdateServiceKey(pk_, hash, byok, "r");
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(changed->include_byok_in_limit);
  EXPECT_EQ(changed->updated_at, clock_.NowMs());
  const auto after = entries();
  ASSERT_EQ(after.size(), audited + 1);
  EXPECT_EQ(after[0].changes_json,
            R"({"include_byok_in_limit":{"before":false,"after":true}})");

  // A provisioning key's likewise.
  auto pk = service_->CreateProvisioningKey(owner_, "ci-2", "r");
  ASSERT_TRUE(pk.ok());
  store::AuditQuery query;
  query.target = pk->key.hash;
  ASSERT_EQ(service_->ListAudit(owner_, query)->entries.size(), 1u);
  ASSERT_TRUE(service_->UpdateProvisioningKey(owner_, pk->key.hash, "ci-2", false, "r").ok());
  ASSERT_TRUE(service_->UpdateProvisioningKey(owner_, pk->key.hash, std::nullopt, std::nullopt, "r")
                  .ok());
  EXPECT_EQ(service_->ListAudit(owner_, query)->entries.size(), 1u);
  ASSERT_TRUE(service_->UpdateProvisioningKey(owner_, pk->key.hash, std::nullopt, true, "r").ok());
  EXPECT_EQ(service_->ListAudit(owner_, query)->entries.size(), 2u);
}

// A rotation marks the old key (it then stands in for the lineage's successor) and indexes the
// new one. Indexed the other way round, a call with a stand-in that came between the two found
// no successor and was refused 401, though no key of the lineage had been deleted. A reader
// watches for that while the lineage is rotated again and again.
TEST_F(KeyServiceTest, AStandInAlwaysHasASuccessorWhileItsLineageIsRotated) {
  const IssuedServiceKey first = Create(Named("a"));
  auto newest = service_->RotateServiceKey(pk_, first.key.hash, 3600, "r");
  ASSERT_TRUE(newest.ok());
  std::atomic<bool> done{false};
  std::atomic<int> gaps{0};
  std::atomic<int> looks{0};
  std::thread reader([&] {
    while (!done.load(std::memory_order_relaxed)) {
      gaps += index_.Successor(first.key.lineage) == nullptr;
      ++looks;
    }
  });
  for (int i = 0; i < 300; ++i) {
    clock_.AdvanceMs(1);
    newest = service_->RotateServiceKey(pk_, newest->key.hash, 3600, "r");
    ASSERT_TRUE(newest.ok()) << newest.error().message;
  }
  done = true;
  reader.join();
  EXPECT_GT(looks.load(), 300);
  EXPECT_EQ(gaps.load(), 0);
  EXPECT_EQ(index_.Successor(first.key.lineage)->hash, newest->key.hash);
}

TEST_F(KeyServiceRaceTest, AnUpdateNeverRevivesAKeyDeletedMeanwhile) {
  const std::string hash = Create(Named("svc")).key.hash;
  Meanwhile(hash, [this](ServiceKey& key) { key.revoke_at = clock_.NowMs(); });
  KeyFields f;
  f.rpm_limit = std::optional<int64_t>{5};
  auto updated = racing_->UpdateServiceKey(pk_, hash, f, "r");
  ASSERT_FALSE(updated.ok());
  EXPECT_EQ(updated.error().code, ErrorCode::kNotFound);  // read again: it is gone
  EXPECT_TRUE(store_->GetServiceKey(hash)->revoke_at.has_value());
}

TEST_F(KeyServiceRaceTest, TwoUpdatesOfDifferentFieldsBothStay) {
  const std::string hash = Create(Named("svc")).key.hash;
  Meanwhile(hash, [](ServiceKey& key) { key.guardrails.rpm_limit = 7; });
  KeyFields f;
  f.tpm_limit = std::optional<int64_t>{900};
  ASSERT_TRUE(racing_->UpdateServiceKey(pk_, hash, f, "r").ok());
  const ServiceKey stored = *store_->GetServiceKey(hash);
  EXPECT_EQ(stored.guardrails.rpm_limit, 7);
  EXPECT_EQ(stored.guardrails.tpm_limit, 900);
}

TEST_F(KeyServiceRaceTest, ARotationRevokesTheOldKeyWhateverWasWrittenMeanwhile) {
  const std::string hash = Create(Named("svc")).key.hash;
  Meanwhile(hash, [](ServiceKey& key) { key.name = "renamed"; });
  auto rotated = racing_->RotateServiceKey(pk_, hash, 0, "r");
  ASSERT_TRUE(rotated.ok()) << rotated.error().message;
  const ServiceKey old_key = *store_->GetServiceKey(hash);
  EXPECT_TRUE(old_key.revoke_at.has_value());
  EXPECT_EQ(old_key.name, "renamed");
  EXPECT_EQ(store_->GetServiceKey(rotated->key.hash)->name, "renamed");
}

TEST_F(KeyServiceRaceTest, ADeleteAfterAnUpdateMeanwhileStillRevokes) {
  const std::string hash = Create(Named("svc")).key.hash;
  Meanwhile(hash, [](ServiceKey& key) { key.guardrails.rpm_limit = 3; });
  ASSERT_TRUE(racing_->DeleteServiceKey(pk_, hash, "r").ok());
  EXPECT_TRUE(store_->GetServiceKey(hash)->revoke_at.has_value());
  EXPECT_EQ(store_->GetServiceKey(hash)->guardrails.rpm_limit, 3);
}

TEST_F(KeyServiceRaceTest, ARenameNeverUndoesADisableMeanwhile) {
  auto pk = service_->CreateProvisioningKey(owner_, "to-disable", "r");
  ASSERT_TRUE(pk.ok());
  const std::string id = pk->key.hash;
  failing_->BeforeNextWrite([this, id] {
    auto stored = store_->GetProvisioningKey(id);
    ASSERT_TRUE(stored.ok());
    stored->disabled = true;
    ASSERT_TRUE(store_->UpdateProvisioningKey(*stored, AuditEntry{}).ok());
  });
  auto renamed = racing_->UpdateProvisioningKey(owner_, id, std::string("renamed"), std::nullopt,
                                                "r");
  ASSERT_TRUE(renamed.ok()) << renamed.error().message;
  EXPECT_TRUE(renamed->disabled);
  const ProvisioningKey stored = *store_->GetProvisioningKey(id);
  EXPECT_TRUE(stored.disabled);
  EXPECT_EQ(stored.name, "renamed");
}

}  // namespace
}  // namespace keygate::keys
