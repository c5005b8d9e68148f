#include "store/key_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/store_contract.h"

namespace keygate::store::testing {
namespace {

using keys::AuditEntry;
using keys::ProvisioningKey;
using keys::ServiceKey;

}  // namespace

// ---------------------------------------------------------------- service keys

TEST_P(KeyStoreContractTest, ServiceKeyRoundTripsEveryField) {
  CreateOrg("org_a");
  ServiceKey key = MakeServiceKey("org_a", "full");
  key.source = keys::KeySource::kWorkspace;
  key.guardrails.models = std::vector<std::string>{"openai/gpt-4o", "anthropic/*", "q\"uote\\é"};
  key.guardrails.credit_limit = 12'500'000;
  key.guardrails.reset_interval = keys::ResetInterval::kWeekly;
  key.guardrails.rpm_limit = 60;
  key.guardrails.tpm_limit = 100'000;
  key.guardrails.expires_at = kT0 + 86'400'000;
  key.disabled = true;
  key.metadata_json = R"({"team":"search","n":[1,2]})";
  key.tags = {"prod", "team:search", "ünï\ncode"};
  key.include_byok_in_limit = true;
  key.creator_user_id = "user_1";
  key.external_user = "ext_9";
  key.lineage = HexId("original");
  key.updated_at = kT0 + 5;
  key.last_used_at = kT0 + 6;
  key.revoke_at = kT0 + 7;
  ASSERT_TRUE(
      keys()
          .InsertServiceKey(&key, std::nullopt, Audit("org_a", "service_key.create", key.hash))
          .ok());
  EXPECT_GT(key.version, 0);
  auto got = keys().GetServiceKey(key.hash);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->org_id, "org_a");
  EXPECT_EQ(got->name, "full");
  EXPECT_EQ(got->masked, key.masked);
  EXPECT_EQ(got->source, keys::KeySource::kWorkspace);
  EXPECT_EQ(got->guardrails.models, key.guardrails.models);
  EXPECT_EQ(got->guardrails.credit_limit, 12'500'000);
  EXPECT_EQ(got->guardrails.reset_interval, keys::ResetInterval::kWeekly);
  EXPECT_EQ(got->guardrails.rpm_limit, 60);
  EXPECT_EQ(got->guardrails.tpm_limit, 100'000);
  EXPECT_EQ(got->guardrails.expires_at, kT0 + 86'400'000);
  EXPECT_TRUE(got->disabled);
  EXPECT_EQ(got->metadata_json, key.metadata_json);
  EXPECT_EQ(got->tags, key.tags);
  EXPECT_TRUE(got->include_byok_in_limit);
  EXPECT_EQ(got->creator_user_id, "user_1");
  EXPECT_EQ(got->external_user, "ext_9");
  EXPECT_EQ(got->created_by, "owner:abc");
  EXPECT_EQ(got->lineage, key.lineage);
  EXPECT_EQ(got->created_at, kT0);
  EXPECT_EQ(got->updated_at, kT0 + 5);
  EXPECT_EQ(got->last_used_at, kT0 + 6);
  EXPECT_EQ(got->revoke_at, kT0 + 7);
  EXPECT_EQ(got->version, key.version);
}

TEST_P(KeyStoreContractTest, UnsetOptionalFieldsStayUnset) {
  CreateOrg("org_a");
  ServiceKey key = InsertKey("org_a", "bare");
  auto got = keys().GetServiceKey(key.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->guardrails.models.has_value());
  EXPECT_FALSE(got->guardrails.credit_limit.has_value());
  EXPECT_EQ(got->guardrails.reset_interval, keys::ResetInterval::kNever);
  EXPECT_FALSE(got->guardrails.rpm_limit.has_value());
  EXPECT_FALSE(got->guardrails.expires_at.has_value());
  EXPECT_TRUE(got->metadata_json.empty());
  EXPECT_TRUE(got->tags.empty());
  EXPECT_TRUE(got->project_id.empty());
  EXPECT_TRUE(got->creator_user_id.empty());
  EXPECT_FALSE(got->updated_at.has_value());
  EXPECT_FALSE(got->revoke_at.has_value());
  // An empty model list is not "every model".
  ServiceKey none = InsertKey(
      "org_a", "none", [](ServiceKey* k) { k->guardrails.models = std::vector<std::string>{}; });
  ASSERT_TRUE(keys().GetServiceKey(none.hash)->guardrails.models.has_value());
  EXPECT_TRUE(keys().GetServiceKey(none.hash)->guardrails.models->empty());
}

TEST_P(KeyStoreContractTest, DuplicateServiceKeyHashIsConflict) {
  CreateOrg("org_a");
  InsertKey("org_a", "k");
  ServiceKey again = MakeServiceKey("org_a", "k");
  Status status = keys().InsertServiceKey(&again, std::nullopt, Audit("org_a", "x", ""));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kConflict);
  EXPECT_EQ(keys().GetServiceKey(HexId("none")).error().code, ErrorCode::kNotFound);
}

// Another org's key is not found by an org's lookup, as one that does not exist (spec §2);
// the store never reads it for that org (audit Z timed the difference).
TEST_P(KeyStoreContractTest, AnOrgsLookupFindsOnlyItsOwnKeys) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  const ServiceKey mine = InsertKey("org_a", "mine");
  const ServiceKey theirs = InsertKey("org_b", "theirs");
  auto found = keys().GetServiceKeyOfOrg("org_a", mine.hash);
  ASSERT_TRUE(found.ok()) << found.error().message;
  EXPECT_EQ(found->name, "mine");
  EXPECT_EQ(found->org_id, "org_a");
  EXPECT_EQ(keys().GetServiceKeyOfOrg("org_a", theirs.hash).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(keys().GetServiceKeyOfOrg("org_b", mine.hash).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(keys().GetServiceKeyOfOrg("org_a", HexId("none")).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(keys().GetServiceKeyOfOrg("org_b", theirs.hash)->name, "theirs");
}

TEST_P(KeyStoreContractTest, UpdateReplacesMutableFieldsAndBumpsVersion) {
  CreateOrg("org_a");
  ServiceKey key = InsertKey("org_a", "before", [](ServiceKey* k) {
    k->tags = {"a", "b"};
    k->guardrails.rpm_limit = 10;
  });
  const int64_t inserted_version = key.version;
  key.name = "after";
  key.tags = {"c"};
  key.guardrails.rpm_limit.reset();
  key.guardrails.credit_limit = 5;
  key.disabled = true;
  key.updated_at = kT0 + 1000;
  ASSERT_TRUE(
      keys()
          .UpdateServiceKey(&key, std::nullopt, Audit("org_a", "service_key.update", key.hash))
          .ok());
  EXPECT_GT(key.version, inserted_version);
  auto got = keys().GetServiceKey(key.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "after");
  EXPECT_EQ(got->tags, std::vector<std::string>{"c"});
  EXPECT_FALSE(got->guardrails.rpm_limit.has_value());
  EXPECT_EQ(got->guardrails.credit_limit, 5);
  EXPECT_TRUE(got->disabled);
  EXPECT_EQ(got->updated_at, kT0 + 1000);
  EXPECT_EQ(got->version, key.version);
  EXPECT_EQ(got->created_at, kT0);
}

TEST_P(KeyStoreContractTest, UpdateOfMissingOrForeignServiceKeyIsNotFound) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  ServiceKey ghost = MakeServiceKey("org_a", "ghost");
  EXPECT_EQ(keys().UpdateServiceKey(&ghost, std::nullopt, Audit("org_a", "x", "")).error().code,
            ErrorCode::kNotFound);
  ServiceKey key = InsertKey("org_a", "mine");
  ServiceKey foreign = key;
  foreign.org_id = "org_b";
  foreign.name = "stolen";
  EXPECT_EQ(keys().UpdateServiceKey(&foreign, std::nullopt, Audit("org_b", "x", "")).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(keys().GetServiceKey(key.hash)->name, "mine");
}

TEST_P(KeyStoreContractTest, VersionStrictlyIncreasesAcrossEveryServiceKeyWrite) {
  CreateOrg("org_a");
  int64_t last = 0;
  ServiceKey a = InsertKey("org_a", "a");
  EXPECT_GT(a.version, last);
  last = a.version;
  ServiceKey b = InsertKey("org_a", "b");
  EXPECT_GT(b.version, last);
  last = b.version;
  a.name = "a2";
  ASSERT_TRUE(keys().UpdateServiceKey(&a, std::nullopt, Audit("org_a", "x", "")).ok());
  EXPECT_GT(a.version, last);
  last = a.version;
  ServiceKey fresh = MakeServiceKey("org_a", "b-rotated");
  b.revoke_at = kT0;
  ASSERT_TRUE(
      keys().RotateServiceKey(&b, &fresh, Audit("org_a", "service_key.rotate", b.hash)).ok());
  EXPECT_GT(b.version, last);
  EXPECT_GT(fresh.version, b.version);
  last = fresh.version;
  // A failed write does not burn anything visible: the next one is still greater.
  ServiceKey dup = MakeServiceKey("org_a", "a");
  EXPECT_FALSE(keys().InsertServiceKey(&dup, std::nullopt, Audit("org_a", "x", "")).ok());
  ServiceKey c = InsertKey("org_a", "c");
  EXPECT_GT(c.version, last);
  // Touching last_used_at is not a version change.
  ASSERT_TRUE(keys().TouchLastUsed({{c.hash, kT0 + 1}}).ok());
  EXPECT_EQ(keys().GetServiceKey(c.hash)->version, c.version);
}

// A write made from a record read at an older version is refused, whole (read, change,
// write: a concurrent write must not be undone).
TEST_P(KeyStoreContractTest, AWriteFromAStaleReadIsAConflictAndWritesNothing) {
  CreateOrg("org_a");
  ServiceKey key = InsertKey("org_a", "a");
  ServiceKey stale = key;
  key.guardrails.rpm_limit = 7;
  ASSERT_TRUE(keys().UpdateServiceKey(&key, std::nullopt, Audit("org_a", "x", "")).ok());
  stale.revoke_at = kT0;
  Status refused = keys().UpdateServiceKey(&stale, std::nullopt, Audit("org_a", "y", ""));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kConflict);
  EXPECT_EQ(refused.error().reason, store::kStaleWrite);
  ServiceKey fresh = MakeServiceKey("org_a", "a-rotated");
  Status rotated = keys().RotateServiceKey(&stale, &fresh, Audit("org_a", "z", ""));
  ASSERT_FALSE(rotated.ok());
  EXPECT_EQ(rotated.error().reason, store::kStaleWrite);
  EXPECT_EQ(keys().GetServiceKey(fresh.hash).error().code, ErrorCode::kNotFound);
  const ServiceKey stored = *keys().GetServiceKey(key.hash);
  EXPECT_FALSE(stored.revoke_at.has_value());
  EXPECT_EQ(stored.guardrails.rpm_limit, 7);
  EXPECT_EQ(stored.version, key.version);
  // Read at the current version, it goes through.
  stale = stored;
  stale.revoke_at = kT0;
  EXPECT_TRUE(keys().UpdateServiceKey(&stale, std::nullopt, Audit("org_a", "y", "")).ok());
}

TEST_P(KeyStoreContractTest, RotateWritesBothRowsInOneTransaction) {
  CreateOrg("org_a");
  ServiceKey old_key = InsertKey("org_a", "old", [](ServiceKey* k) { k->tags = {"t"}; });
  ServiceKey new_key = old_key;
  new_key.hash = HexId("rotated");
  new_key.name = "old";
  new_key.lineage = old_key.lineage;
  old_key.revoke_at = kT0 + 60'000;
  old_key.updated_at = kT0;
  ASSERT_TRUE(
      keys()
          .RotateServiceKey(&old_key, &new_key, Audit("org_a", "service_key.rotate", old_key.hash))
          .ok());
  auto old_row = keys().GetServiceKey(old_key.hash);
  auto new_row = keys().GetServiceKey(new_key.hash);
  ASSERT_TRUE(old_row.ok());
  ASSERT_TRUE(new_row.ok());
  EXPECT_EQ(old_row->revoke_at, kT0 + 60'000);
  EXPECT_EQ(new_row->lineage, old_key.lineage);
  EXPECT_EQ(new_row->tags, std::vector<std::string>{"t"});
  EXPECT_FALSE(new_row->revoke_at.has_value());
}

TEST_P(KeyStoreContractTest, FailedRotateLeavesOldKeyUntouched) {
  CreateOrg("org_a");
  ServiceKey taken = InsertKey("org_a", "taken");
  ServiceKey old_key = InsertKey("org_a", "old");
  const int64_t old_version = old_key.version;
  ServiceKey new_key = MakeServiceKey("org_a", "taken");  // hash collides with `taken`
  old_key.revoke_at = kT0;
  Status status =
      keys().RotateServiceKey(&old_key, &new_key, Audit("org_a", "service_key.rotate", ""));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kConflict);
  auto old_row = keys().GetServiceKey(old_key.hash);
  ASSERT_TRUE(old_row.ok());
  EXPECT_FALSE(old_row->revoke_at.has_value());
  EXPECT_EQ(old_row->version, old_version);
  EXPECT_EQ(keys().GetServiceKey(taken.hash)->name, "taken");
}

TEST_P(KeyStoreContractTest, ServiceKeysChangedSinceFollowsVersionOrder) {
  CreateOrg("org_a");
  ServiceKey a = InsertKey("org_a", "a");
  ServiceKey b = InsertKey("org_a", "b");
  ServiceKey c = InsertKey("org_a", "c");
  a.name = "a2";
  a.revoke_at = kT0;  // revoked keys are included
  ASSERT_TRUE(keys().UpdateServiceKey(&a, std::nullopt, Audit("org_a", "x", "")).ok());

  auto all = keys().ServiceKeysChangedSince(0, 100);
  ASSERT_TRUE(all.ok());
  std::vector<std::string> names;
  for (const ServiceKey& key : *all) names.push_back(key.name);
  EXPECT_EQ(names, (std::vector<std::string>{"b", "c", "a2"}));

  auto after_b = keys().ServiceKeysChangedSince(b.version, 1);
  ASSERT_TRUE(after_b.ok());
  ASSERT_EQ(after_b->size(), 1u);
  EXPECT_EQ((*after_b)[0].name, "c");
  EXPECT_TRUE(keys().ServiceKeysChangedSince(a.version, 100)->empty());
  EXPECT_EQ(c.version + 1, a.version);
}

TEST_P(KeyStoreContractTest, AllLiveServiceKeysSkipsRevokedOnes) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  InsertKey("org_a", "live");
  InsertKey("org_b", "other-org");
  InsertKey("org_a", "grace", [](ServiceKey* k) { k->revoke_at = kT0 + 10; });
  InsertKey("org_a", "revoked", [](ServiceKey* k) { k->revoke_at = kT0; });
  InsertKey("org_a", "disabled", [](ServiceKey* k) { k->disabled = true; });
  auto live = keys().AllLiveServiceKeys(kT0);
  ASSERT_TRUE(live.ok());
  std::vector<std::string> names;
  for (const ServiceKey& key : *live) names.push_back(key.name);
  EXPECT_EQ(names, (std::vector<std::string>{"live", "other-org", "grace", "disabled"}));
}

TEST_P(KeyStoreContractTest, TouchLastUsedOnlyMovesForward) {
  CreateOrg("org_a");
  ServiceKey key = InsertKey("org_a", "k");
  ProvisioningKey pk = MakeProvisioningKey("org_a", "ci");
  ASSERT_TRUE(keys().InsertProvisioningKey(pk, Audit("org_a", "x", "")).ok());
  ASSERT_TRUE(keys()
                  .TouchLastUsed({{key.hash, kT0 + 50},
                                  {pk.hash, kT0 + 70},
                                  {key.hash, kT0 + 60},
                                  {HexId("unknown"), kT0}})
                  .ok());
  EXPECT_EQ(keys().GetServiceKey(key.hash)->last_used_at, kT0 + 60);
  EXPECT_EQ(keys().GetProvisioningKey(pk.hash)->last_used_at, kT0 + 70);
  ASSERT_TRUE(keys().TouchLastUsed({{key.hash, kT0 + 1}, {pk.hash, kT0 + 2}}).ok());
  EXPECT_EQ(keys().GetServiceKey(key.hash)->last_used_at, kT0 + 60);
  EXPECT_EQ(keys().GetProvisioningKey(pk.hash)->last_used_at, kT0 + 70);
  EXPECT_TRUE(keys().TouchLastUsed({}).ok());
}

// ---------------------------------------------------------------- durability and concurrency

TEST_P(KeyStoreContractTest, EverythingIsThereAfterReopening) {
  CreateOrg("org_a");
  ProvisioningKey pk = MakeProvisioningKey("org_a", "ci");
  ASSERT_TRUE(
      keys().InsertProvisioningKey(pk, Audit("org_a", "provisioning_key.create", pk.hash)).ok());
  ServiceKey key = InsertKey("org_a", "k", [](ServiceKey* k) { k->tags = {"x"}; });
  UsageRecord record;
  record.key_hash = key.hash;
  record.lineage = key.lineage;
  record.org_id = "org_a";
  record.cost = 42;
  record.at = kT0;
  ASSERT_TRUE(usage().AppendUsage({record}).ok());

  Reopen();
  EXPECT_TRUE(keys().GetOrganization("org_a").ok());
  EXPECT_EQ(keys().GetProvisioningKey(pk.hash)->name, "ci");
  auto got = keys().GetServiceKey(key.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->tags, std::vector<std::string>{"x"});
  EXPECT_EQ(got->version, key.version);
  EXPECT_EQ(*usage().SpendSince(key.lineage, 0), 42);
  AuditQuery query;
  query.org_id = "org_a";
  EXPECT_EQ(audit().ListAudit(query)->entries.size(), 3u);
  // The counters survive too: the next write gets a higher version.
  ServiceKey next = InsertKey("org_a", "next");
  EXPECT_GT(next.version, key.version);
}

TEST_P(KeyStoreContractTest, SixtyFourThreadsOfFiftyInsertsAllLand) {
  constexpr int kThreads = 64;
  constexpr int kPerThread = 50;
  CreateOrg("org_a");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        ServiceKey key = MakeServiceKey("org_a", "t" + std::to_string(t) + "-" + std::to_string(i));
        if (!keys()
                 .InsertServiceKey(&key, std::nullopt,
                                   Audit("org_a", "service_key.create", key.hash))
                 .ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  ServiceKeyQuery query;
  query.org_id = "org_a";
  query.now = kT0;
  query.limit = 1;
  EXPECT_EQ(keys().ListServiceKeys(query)->total, kThreads * kPerThread);
  // Every version distinct.
  auto changed = keys().ServiceKeysChangedSince(0, kThreads * kPerThread + 1);
  ASSERT_TRUE(changed.ok());
  std::set<int64_t> versions;
  for (const ServiceKey& key : *changed) versions.insert(key.version);
  EXPECT_EQ(versions.size(), static_cast<size_t>(kThreads * kPerThread));
}

TEST_P(KeyStoreContractTest, FailingWriteDoesNotFailConcurrentNeighbours) {
  constexpr int kThreads = 16;
  CreateOrg("org_a");
  // Every thread inserts a unique name, and all of them also race for one shared name: exactly
  // one wins, the others get Conflict, and none of the unique inserts is affected.
  std::atomic<int> unique_ok{0};
  std::atomic<int> shared_ok{0};
  std::atomic<int> shared_conflict{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ProvisioningKey mine = MakeProvisioningKey("org_a", "unique-" + std::to_string(t));
      if (keys()
              .InsertProvisioningKey(mine, Audit("org_a", "provisioning_key.create", mine.hash))
              .ok()) {
        ++unique_ok;
      }
      ProvisioningKey shared = MakeProvisioningKey("org_a", "shared");
      shared.hash = HexId("shared" + std::to_string(t));
      Status status = keys().InsertProvisioningKey(
          shared, Audit("org_a", "provisioning_key.create", shared.hash));
      if (status.ok()) {
        ++shared_ok;
      } else if (status.error().code == ErrorCode::kConflict && status.error().param == "name") {
        ++shared_conflict;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(unique_ok.load(), kThreads);
  EXPECT_EQ(shared_ok.load(), 1);
  EXPECT_EQ(shared_conflict.load(), kThreads - 1);
  EXPECT_EQ(keys().ListProvisioningKeys("org_a")->size(), static_cast<size_t>(kThreads + 1));
  // Only the writes that succeeded were audited.
  AuditQuery query;
  query.org_id = "org_a";
  query.limit = 1000;
  query.actor = "owner:abc";
  auto page = audit().ListAudit(query);
  ASSERT_TRUE(page.ok());
  int creates = 0;
  for (const AuditEntry& entry : page->entries) {
    if (entry.action == "provisioning_key.create") ++creates;
  }
  EXPECT_EQ(creates, kThreads + 1);
}

}  // namespace keygate::store::testing
