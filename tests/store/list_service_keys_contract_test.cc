#include "store/key_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "store/store_contract.h"

namespace keygate::store::testing {
namespace {

// The list cases share KeyStoreContractTest's fixture and its instantiation over Backends().
using keys::ServiceKey;
using Strings = std::vector<std::string>;

ServiceKeyQuery Query(const std::string& org_id, int64_t limit = 100) {
  ServiceKeyQuery query;
  query.org_id = org_id;
  query.now = kT0;
  query.limit = limit;
  return query;
}

}  // namespace

TEST_P(KeyStoreContractTest, ListPagesByOffsetInCreationOrder) {
  CreateOrg("org_a");
  for (const char* name : {"k0", "k1", "k2", "k3", "k4"}) InsertKey("org_a", name);
  auto first = keys().ListServiceKeys(Query("org_a", 2));
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(Names(*first), (Strings{"k0", "k1"}));
  EXPECT_EQ(first->total, 5);
  EXPECT_TRUE(first->has_more);

  ServiceKeyQuery query = Query("org_a", 2);
  query.offset = 2;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"k2", "k3"}));
  query.offset = 4;
  auto last = keys().ListServiceKeys(query);
  EXPECT_EQ(Names(*last), (Strings{"k4"}));
  EXPECT_FALSE(last->has_more);
  EXPECT_EQ(last->total, 5);
  query.offset = 10;
  auto beyond = keys().ListServiceKeys(query);
  EXPECT_TRUE(beyond->keys.empty());
  EXPECT_FALSE(beyond->has_more);
  EXPECT_EQ(beyond->total, 5);
}

TEST_P(KeyStoreContractTest, ListExactlyFullPageHasNoMore) {
  CreateOrg("org_a");
  for (const char* name : {"k0", "k1"}) InsertKey("org_a", name);
  auto page = keys().ListServiceKeys(Query("org_a", 2));
  EXPECT_EQ(page->keys.size(), 2u);
  EXPECT_FALSE(page->has_more);
}

TEST_P(KeyStoreContractTest, ListNewestFirst) {
  CreateOrg("org_a");
  for (const char* name : {"k0", "k1", "k2"}) InsertKey("org_a", name);
  ServiceKeyQuery query = Query("org_a", 2);
  query.newest_first = true;
  auto page = keys().ListServiceKeys(query);
  EXPECT_EQ(Names(*page), (Strings{"k2", "k1"}));
  EXPECT_TRUE(page->has_more);
}

TEST_P(KeyStoreContractTest, ListCursorContinuesAfterNamedKeyInEitherOrder) {
  CreateOrg("org_a");
  std::vector<ServiceKey> made;
  for (const char* name : {"k0", "k1", "k2", "k3", "k4"}) made.push_back(InsertKey("org_a", name));
  ServiceKeyQuery query = Query("org_a", 2);
  query.starting_after = made[1].hash;
  auto page = keys().ListServiceKeys(query);
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_EQ(Names(*page), (Strings{"k2", "k3"}));
  EXPECT_TRUE(page->has_more);
  EXPECT_EQ(page->total, 5);  // the cursor is paging, not filtering

  query.starting_after = made[3].hash;
  page = keys().ListServiceKeys(query);
  EXPECT_EQ(Names(*page), (Strings{"k4"}));
  EXPECT_FALSE(page->has_more);

  query.newest_first = true;
  query.starting_after = made[3].hash;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"k2", "k1"}));
  query.offset = 1;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"k1", "k0"}));
}

TEST_P(KeyStoreContractTest, ListCursorMayNameAKeyTheFiltersHide) {
  CreateOrg("org_a");
  InsertKey("org_a", "k0");
  ServiceKey hidden = InsertKey("org_a", "k1", [](ServiceKey* k) { k->revoke_at = kT0 - 1; });
  InsertKey("org_a", "k2");
  ServiceKeyQuery query = Query("org_a");
  query.starting_after = hidden.hash;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"k2"}));
}

TEST_P(KeyStoreContractTest, ListCursorNamingNothingIsInvalidArgument) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  InsertKey("org_a", "k0");
  ServiceKey foreign = InsertKey("org_b", "theirs");
  ServiceKeyQuery query = Query("org_a");
  for (const std::string& cursor : {std::string(64, 'f'), foreign.hash, std::string("x")}) {
    query.starting_after = cursor;
    auto page = keys().ListServiceKeys(query);
    ASSERT_FALSE(page.ok()) << cursor;
    EXPECT_EQ(page.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(page.error().param, "starting_after");
  }
}

TEST_P(KeyStoreContractTest, ListShowsOnlyTheOrgsKeys) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  InsertKey("org_a", "mine");
  InsertKey("org_b", "theirs");
  auto page = keys().ListServiceKeys(Query("org_a"));
  EXPECT_EQ(Names(*page), (Strings{"mine"}));
  EXPECT_EQ(page->total, 1);
  EXPECT_TRUE(keys().ListServiceKeys(Query("org_none"))->keys.empty());
}

TEST_P(KeyStoreContractTest, ListFiltersBySourceAndProject) {
  CreateOrg("org_a");
  InsertKey("org_a", "router");
  InsertKey("org_a", "workspace", [](ServiceKey* k) { k->source = keys::KeySource::kWorkspace; });
  ServiceKey in_project = MakeServiceKey("org_a", "in-project");
  in_project.project_id = "proj_1";
  ASSERT_TRUE(keys()
                  .InsertServiceKey(&in_project, keys::Project{"proj_1", "org_a", "p", kT0},
                                    Audit("org_a", "service_key.create", ""))
                  .ok());
  ServiceKeyQuery query = Query("org_a");
  query.source = keys::KeySource::kWorkspace;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"workspace"}));
  query.source = keys::KeySource::kRouter;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"router", "in-project"}));
  query.source.reset();
  query.project_id = "proj_1";
  auto page = keys().ListServiceKeys(query);
  EXPECT_EQ(Names(*page), (Strings{"in-project"}));
  EXPECT_EQ(page->keys[0].project_name, "p");
  query.project_id = "proj_unknown";
  EXPECT_TRUE(keys().ListServiceKeys(query)->keys.empty());
}

TEST_P(KeyStoreContractTest, ListTagsFilterMeansAllOfThem) {
  CreateOrg("org_a");
  InsertKey("org_a", "ab", [](ServiceKey* k) { k->tags = {"a", "b"}; });
  InsertKey("org_a", "a", [](ServiceKey* k) { k->tags = {"a"}; });
  InsertKey("org_a", "b", [](ServiceKey* k) { k->tags = {"b"}; });
  InsertKey("org_a", "abc", [](ServiceKey* k) { k->tags = {"c", "b", "a"}; });
  InsertKey("org_a", "none");
  ServiceKeyQuery query = Query("org_a");
  query.tags = {"a", "b"};
  auto page = keys().ListServiceKeys(query);
  EXPECT_EQ(Names(*page), (Strings{"ab", "abc"}));
  EXPECT_EQ(page->total, 2);
  query.tags = {"a"};
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"ab", "a", "abc"}));
  query.tags = {"a", "a"};  // repeating a tag asks for nothing more
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"ab", "a", "abc"}));
  query.tags = {"a", "zzz"};
  EXPECT_TRUE(keys().ListServiceKeys(query)->keys.empty());
}

TEST_P(KeyStoreContractTest, ListTagsFilterFollowsUpdates) {
  CreateOrg("org_a");
  ServiceKey key = InsertKey("org_a", "k", [](ServiceKey* k) { k->tags = {"old"}; });
  key.tags = {"new"};
  ASSERT_TRUE(keys().UpdateServiceKey(&key, std::nullopt, Audit("org_a", "x", "")).ok());
  ServiceKeyQuery query = Query("org_a");
  query.tags = {"old"};
  EXPECT_TRUE(keys().ListServiceKeys(query)->keys.empty());
  query.tags = {"new"};
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"k"}));
}

TEST_P(KeyStoreContractTest, ListStatusIsEvaluatedAtNowAndDisabledWins) {
  CreateOrg("org_a");
  InsertKey("org_a", "active");
  InsertKey("org_a", "future", [](ServiceKey* k) { k->guardrails.expires_at = kT0 + 1; });
  InsertKey("org_a", "expired", [](ServiceKey* k) { k->guardrails.expires_at = kT0; });
  InsertKey("org_a", "disabled", [](ServiceKey* k) { k->disabled = true; });
  InsertKey("org_a", "both", [](ServiceKey* k) {
    k->disabled = true;
    k->guardrails.expires_at = kT0 - 10;
  });
  ServiceKeyQuery query = Query("org_a");
  query.status = keys::KeyStatus::kActive;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"active", "future"}));
  query.status = keys::KeyStatus::kExpired;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"expired"}));
  query.status = keys::KeyStatus::kDisabled;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"disabled", "both"}));
  // A moment later "future" has expired too.
  query.now = kT0 + 1;
  query.status = keys::KeyStatus::kExpired;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"future", "expired"}));
}

TEST_P(KeyStoreContractTest, ListCanHideDisabledKeys) {
  CreateOrg("org_a");
  InsertKey("org_a", "on");
  InsertKey("org_a", "off", [](ServiceKey* k) { k->disabled = true; });
  ServiceKeyQuery query = Query("org_a");
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"on", "off"}));
  query.include_disabled = false;
  auto page = keys().ListServiceKeys(query);
  EXPECT_EQ(Names(*page), (Strings{"on"}));
  EXPECT_EQ(page->total, 1);
}

TEST_P(KeyStoreContractTest, ListSearchIsCaseInsensitiveAndTakesWildcardsLiterally) {
  CreateOrg("org_a");
  for (const char* name : {"100% done", "100 percent", "a_b", "axb", "Prod-Key", "back\\slash"}) {
    InsertKey("org_a", name);
  }
  ServiceKeyQuery query = Query("org_a");
  query.search = "100%";
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"100% done"}));
  query.search = "a_b";
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"a_b"}));
  query.search = "_";
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"a_b"}));
  query.search = "%";
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"100% done"}));
  query.search = "PROD";
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"Prod-Key"}));
  query.search = "k\\s";
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"back\\slash"}));
  query.search = "nothing";
  auto page = keys().ListServiceKeys(query);
  EXPECT_TRUE(page->keys.empty());
  EXPECT_EQ(page->total, 0);
}

TEST_P(KeyStoreContractTest, ListHidesRevokedKeys) {
  CreateOrg("org_a");
  InsertKey("org_a", "live");
  InsertKey("org_a", "deleted", [](ServiceKey* k) { k->revoke_at = kT0 - 1; });
  InsertKey("org_a", "revoked-now", [](ServiceKey* k) { k->revoke_at = kT0; });
  InsertKey("org_a", "in-grace", [](ServiceKey* k) { k->revoke_at = kT0 + 1; });
  auto page = keys().ListServiceKeys(Query("org_a"));
  EXPECT_EQ(Names(*page), (Strings{"live", "in-grace"}));
  EXPECT_EQ(page->total, 2);
}

TEST_P(KeyStoreContractTest, ListTotalFollowsRevocationsAndGracePeriods) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  ServiceKey a = InsertKey("org_a", "a");
  ServiceKey b = InsertKey("org_a", "b");
  InsertKey("org_b", "other");
  EXPECT_EQ(keys().ListServiceKeys(Query("org_a"))->total, 2);
  // Rotation with a grace period: both count until the grace period ends.
  ServiceKey b2 = MakeServiceKey("org_a", "b2");
  b.revoke_at = kT0 + 100;
  ASSERT_TRUE(keys().RotateServiceKey(&b, &b2, Audit("org_a", "service_key.rotate", b.hash)).ok());
  EXPECT_EQ(keys().ListServiceKeys(Query("org_a"))->total, 3);
  ServiceKeyQuery later = Query("org_a");
  later.now = kT0 + 100;
  auto page = keys().ListServiceKeys(later);
  EXPECT_EQ(page->total, 2);
  EXPECT_EQ(Names(*page), (Strings{"a", "b2"}));
  // Delete (revoke now), then an update that clears revoke_at again.
  a.revoke_at = kT0;
  ASSERT_TRUE(
      keys().UpdateServiceKey(&a, std::nullopt, Audit("org_a", "service_key.delete", a.hash)).ok());
  EXPECT_EQ(keys().ListServiceKeys(Query("org_a"))->total, 2);
  a.revoke_at.reset();
  ASSERT_TRUE(keys().UpdateServiceKey(&a, std::nullopt, Audit("org_a", "x", a.hash)).ok());
  EXPECT_EQ(keys().ListServiceKeys(Query("org_a"))->total, 3);
  EXPECT_EQ(keys().ListServiceKeys(Query("org_b"))->total, 1);
}

TEST_P(KeyStoreContractTest, ListTotalMatchesTheRowsAfterEveryKindOfWrite) {
  CreateOrg("org_a");
  std::vector<ServiceKey> made;
  for (int i = 0; i < 8; ++i) {
    made.push_back(InsertKey("org_a", "k" + std::to_string(i), [i](ServiceKey* k) {
      k->disabled = i % 3 == 0;
      if (i == 7) k->revoke_at = kT0 + 50;
    }));
  }
  made[1].disabled = true;       // enabled -> disabled
  made[3].disabled = false;      // disabled -> enabled
  made[4].revoke_at = kT0;       // deleted
  made[6].revoke_at = kT0 + 10;  // disabled key put in a grace period
  made[7].revoke_at.reset();     // grace period lifted
  made[7].disabled = true;
  for (int i : {1, 3, 4, 6, 7}) {
    ASSERT_TRUE(keys().UpdateServiceKey(&made[i], std::nullopt, Audit("org_a", "x", "")).ok());
  }
  for (UnixMillis now : {kT0, kT0 + 10, kT0 + 100}) {
    for (bool include_disabled : {true, false}) {
      ServiceKeyQuery query = Query("org_a", 1000);
      query.now = now;
      query.include_disabled = include_disabled;
      auto page = keys().ListServiceKeys(query);
      ASSERT_TRUE(page.ok());
      EXPECT_EQ(page->total, static_cast<int64_t>(page->keys.size()))
          << "now=" << now << " include_disabled=" << include_disabled;
    }
  }
  ServiceKeyQuery query = Query("org_a", 1000);
  query.include_disabled = false;
  EXPECT_EQ(Names(*keys().ListServiceKeys(query)), (Strings{"k2", "k3", "k5"}));
}

TEST_P(KeyStoreContractTest, ListTotalCountsEveryFilteredMatch) {
  CreateOrg("org_a");
  for (int i = 0; i < 7; ++i) {
    InsertKey("org_a", "k" + std::to_string(i), [i](ServiceKey* k) {
      if (i % 2 == 0) k->tags = {"even"};
    });
  }
  ServiceKeyQuery query = Query("org_a", 1);
  query.tags = {"even"};
  query.offset = 1;
  auto page = keys().ListServiceKeys(query);
  EXPECT_EQ(Names(*page), (Strings{"k2"}));
  EXPECT_EQ(page->total, 4);
  EXPECT_TRUE(page->has_more);
}

// Deep offsets of the default filter (every visible key of one source) skip through the
// never-revoked keys and merge those in a grace period: every page must be the same slice of
// the whole list, in both orders, with and without a cursor, whatever sits around the keys
// (other orgs, the other source, deleted, disabled, expired and restored keys).
TEST_P(KeyStoreContractTest, ListOffsetPagesAreSlicesOfTheWholeList) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  std::vector<ServiceKey> made;
  for (int i = 0; i < 30; ++i) {
    if (i % 7 == 3) InsertKey("org_b", "b" + std::to_string(i));
    made.push_back(InsertKey("org_a", "k" + std::to_string(i), [i](ServiceKey* k) {
      if (i % 5 == 4) k->source = keys::KeySource::kWorkspace;
      if (i % 6 == 1) k->revoke_at = kT0 + 1000 + i;  // in a grace period
      if (i % 9 == 2) k->revoke_at = kT0 - 1;         // deleted
      if (i % 4 == 0) k->disabled = true;
      if (i % 8 == 5) k->guardrails.expires_at = kT0 - 5;
    }));
  }
  made[0].revoke_at = kT0 + 5;  // rotated later: now in a grace period
  made[2].revoke_at.reset();    // a deleted key restored
  made[10].revoke_at = kT0;     // deleted now
  for (int i : {0, 2, 10}) {
    ASSERT_TRUE(keys().UpdateServiceKey(&made[i], std::nullopt, Audit("org_a", "x", "")).ok());
  }
  for (bool newest_first : {false, true}) {
    ServiceKeyQuery all = Query("org_a", 1000);
    all.source = keys::KeySource::kRouter;
    all.newest_first = newest_first;
    auto whole = keys().ListServiceKeys(all);
    ASSERT_TRUE(whole.ok()) << whole.error().message;
    const Strings names = Names(*whole);
    ASSERT_GT(names.size(), 10u);
    for (int cursor : {-1, 3, 8}) {
      ServiceKeyQuery query = all;
      query.limit = 3;
      Strings expected = names;
      if (cursor >= 0) {
        query.starting_after = whole->keys[static_cast<size_t>(cursor)].hash;
        expected.erase(expected.begin(), expected.begin() + cursor + 1);
      }
      for (size_t offset = 0; offset <= expected.size() + 1; ++offset) {
        query.offset = static_cast<int64_t>(offset);
        auto page = keys().ListServiceKeys(query);
        ASSERT_TRUE(page.ok()) << page.error().message;
        const size_t from = std::min(offset, expected.size());
        const size_t to = std::min(offset + 3, expected.size());
        EXPECT_EQ(Names(*page), Strings(expected.begin() + from, expected.begin() + to))
            << "offset=" << offset << " cursor=" << cursor << " newest_first=" << newest_first;
        EXPECT_EQ(page->has_more, offset + 3 < expected.size());
        EXPECT_EQ(page->total, static_cast<int64_t>(names.size()));
      }
    }
  }
}

TEST_P(KeyStoreContractTest, ListRejectsBadPaging) {
  CreateOrg("org_a");
  ServiceKeyQuery query = Query("org_a", 0);
  EXPECT_EQ(keys().ListServiceKeys(query).error().param, "limit");
  query.limit = 1001;
  EXPECT_EQ(keys().ListServiceKeys(query).error().param, "limit");
  query.limit = 1000;
  EXPECT_TRUE(keys().ListServiceKeys(query).ok());
  query.offset = -1;
  auto negative = keys().ListServiceKeys(query);
  EXPECT_EQ(negative.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(negative.error().param, "offset");
  EXPECT_EQ(keys().ListServiceKeys(Query("")).error().code, ErrorCode::kInvalidArgument);
}

}  // namespace keygate::store::testing
