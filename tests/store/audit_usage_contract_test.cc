#include "store/audit_log.h"

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common/time_format.h"
#include "store/store_contract.h"
#include "store/usage_store.h"

namespace keygate::store::testing {
namespace {

using keys::AuditEntry;
using keys::ProvisioningKey;
using Strings = std::vector<std::string>;

constexpr int64_t kMsPerDay = 86'400'000;

AuditQuery AuditFor(const std::string& org_id, int64_t limit = 100) {
  AuditQuery query;
  query.org_id = org_id;
  query.limit = limit;
  return query;
}

Strings Actions(const AuditPage& page) {
  Strings actions;
  for (const AuditEntry& entry : page.entries) actions.push_back(entry.action);
  return actions;
}

UnixMillis At(int64_t year, unsigned month, unsigned day, int64_t ms_into_day = 0) {
  return DaysFromCivil(year, month, day) * kMsPerDay + ms_into_day;
}

UsageRecord Record(const std::string& lineage, MicroUsd cost, UnixMillis at) {
  UsageRecord record;
  record.key_hash = lineage + "-current";
  record.lineage = lineage;
  record.org_id = "org_a";
  record.model = "gpt-4o";
  record.provider = "openai";
  record.prompt_tokens = 10;
  record.completion_tokens = 5;
  record.cost = cost;
  record.status = 200;
  record.latency_ms = 120;
  record.ttfb_ms = 30;
  record.request_id = "req-" + std::to_string(at);
  record.at = at;
  return record;
}

}  // namespace

// ---------------------------------------------------------------- audit log

TEST_P(KeyStoreContractTest, AuditEntriesCommitWithTheirWritesNewestFirst) {
  CreateOrg("org_a");
  ProvisioningKey pk = MakeProvisioningKey("org_a", "ci");
  AuditEntry create = Audit("org_a", "provisioning_key.create", pk.hash);
  create.changes_json = R"({"name":{"before":null,"after":"ci"}})";
  create.request_id = "req-create";
  create.at = kT0 + 1;
  ASSERT_TRUE(keys().InsertProvisioningKey(pk, create).ok());
  pk.disabled = true;
  ASSERT_TRUE(
      keys().UpdateProvisioningKey(pk, Audit("org_a", "provisioning_key.disable", pk.hash)).ok());
  ASSERT_TRUE(keys()
                  .DeleteProvisioningKey("org_a", pk.hash,
                                         Audit("org_a", "provisioning_key.delete", pk.hash))
                  .ok());

  auto page = audit().ListAudit(AuditFor("org_a"));
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_EQ(Actions(*page), (Strings{"provisioning_key.delete", "provisioning_key.disable",
                                     "provisioning_key.create", "organization.create"}));
  EXPECT_FALSE(page->has_more);
  const AuditEntry& created = page->entries[2];
  EXPECT_GT(created.id, page->entries[3].id);
  EXPECT_LT(created.id, page->entries[1].id);
  EXPECT_EQ(created.org_id, "org_a");
  EXPECT_EQ(created.at, kT0 + 1);
  EXPECT_EQ(created.actor, "owner:abc");
  EXPECT_EQ(created.actor_name, "first owner");
  EXPECT_EQ(created.target, pk.hash);
  EXPECT_EQ(created.changes_json, create.changes_json);
  EXPECT_EQ(created.request_id, "req-create");
}

// An entry's id is its place in its own organization's log (audit, 2026-12-07: one sequence
// for all let an owner count another org's actions between two of its own), and the cursor
// pages by it.
TEST_P(KeyStoreContractTest, AuditIdsAreNumberedPerOrganization) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(keys()
                    .InsertProvisioningKey(MakeProvisioningKey("org_a", "a" + std::to_string(i)),
                                           Audit("org_a", "provisioning_key.create", ""))
                    .ok());
    ASSERT_TRUE(keys()
                    .InsertProvisioningKey(MakeProvisioningKey("org_b", "b" + std::to_string(i)),
                                           Audit("org_b", "provisioning_key.create", ""))
                    .ok());
  }
  for (const char* org : {"org_a", "org_b"}) {
    auto page = audit().ListAudit(AuditFor(org));
    ASSERT_TRUE(page.ok()) << page.error().message;
    std::vector<int64_t> ids;
    for (const AuditEntry& entry : page->entries) ids.push_back(entry.id);
    EXPECT_EQ(ids, (std::vector<int64_t>{4, 3, 2, 1})) << org;  // organization.create first
    AuditQuery older = AuditFor(org, 2);
    older.before_id = 3;
    auto next = audit().ListAudit(older);
    ASSERT_TRUE(next.ok());
    ASSERT_EQ(next->entries.size(), 2u);
    EXPECT_EQ(next->entries[0].id, 2);
    EXPECT_EQ(next->entries[1].id, 1);
    EXPECT_FALSE(next->has_more);
  }
}

TEST_P(KeyStoreContractTest, FailedWriteLeavesNoAuditEntry) {
  CreateOrg("org_a");
  ASSERT_TRUE(keys()
                  .InsertProvisioningKey(MakeProvisioningKey("org_a", "ci"),
                                         Audit("org_a", "provisioning_key.create", ""))
                  .ok());
  ProvisioningKey dup = MakeProvisioningKey("org_a", "ci");
  dup.hash = std::string(64, 'd');
  ASSERT_FALSE(keys().InsertProvisioningKey(dup, Audit("org_a", "should.not.appear", "")).ok());
  keys::ServiceKey ghost = MakeServiceKey("org_a", "ghost");
  ASSERT_FALSE(keys().UpdateServiceKey(&ghost, std::nullopt, Audit("org_a", "nor.this", "")).ok());
  EXPECT_EQ(Actions(*audit().ListAudit(AuditFor("org_a"))),
            (Strings{"provisioning_key.create", "organization.create"}));
}

TEST_P(KeyStoreContractTest, AuditFiltersByActorAndTargetAndPagesBeforeId) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  for (int i = 0; i < 5; ++i) {
    ProvisioningKey pk = MakeProvisioningKey("org_a", "pk" + std::to_string(i));
    AuditEntry entry = Audit("org_a", "provisioning_key.create", i % 2 == 0 ? "even" : "odd");
    entry.actor = i < 3 ? "owner:abc" : "pk:other";
    entry.changes_json = std::to_string(i);
    ASSERT_TRUE(keys().InsertProvisioningKey(pk, entry).ok());
  }
  AuditQuery query = AuditFor("org_a");
  query.actor = "pk:other";
  auto by_actor = audit().ListAudit(query);
  ASSERT_EQ(by_actor->entries.size(), 2u);
  EXPECT_EQ(by_actor->entries[0].changes_json, "4");
  EXPECT_EQ(by_actor->entries[1].changes_json, "3");

  query = AuditFor("org_a", 2);
  query.target = "even";
  auto first = audit().ListAudit(query);
  ASSERT_EQ(first->entries.size(), 2u);
  EXPECT_EQ(first->entries[0].changes_json, "4");
  EXPECT_EQ(first->entries[1].changes_json, "2");
  EXPECT_TRUE(first->has_more);
  query.before_id = first->entries.back().id;
  auto second = audit().ListAudit(query);
  ASSERT_EQ(second->entries.size(), 1u);
  EXPECT_EQ(second->entries[0].changes_json, "0");
  EXPECT_FALSE(second->has_more);

  query = AuditFor("org_a");
  query.actor = "owner:abc";
  query.target = "odd";
  auto both = audit().ListAudit(query);
  ASSERT_EQ(both->entries.size(), 1u);
  EXPECT_EQ(both->entries[0].changes_json, "1");
  // The other org sees only its own creation.
  EXPECT_EQ(Actions(*audit().ListAudit(AuditFor("org_b"))), (Strings{"organization.create"}));
}

TEST_P(KeyStoreContractTest, AuditRejectsBadLimit) {
  EXPECT_EQ(audit().ListAudit(AuditFor("org_a", 0)).error().param, "limit");
  EXPECT_EQ(audit().ListAudit(AuditFor("org_a", 1001)).error().param, "limit");
  EXPECT_EQ(audit().ListAudit(AuditFor("", 10)).error().code, ErrorCode::kInvalidArgument);
}

// ---------------------------------------------------------------- usage

// decision 0011, "A crash": the calls in flight are kept, and forgotten by id; an id kept
// twice is replaced, one never kept is ignored.
TEST_P(KeyStoreContractTest, OpenCallsAreKeptUntilForgotten) {
  auto none = usage().OpenCalls();
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->empty());
  UsageRecord first = Record("lin", 300, kT0);
  first.org_id = "org_a";
  first.model = "mock/echo";
  first.provider = "mock";
  first.request_id = "req_1";
  first.prompt_tokens = 10;
  first.completion_tokens = 20;
  ASSERT_TRUE(usage().UpdateOpenCalls({{7, first}, {9, Record("other", 5, kT0 + 1)}}, {}).ok());
  first.cost = 301;
  ASSERT_TRUE(usage().UpdateOpenCalls({{7, first}}, {9, 12345}).ok());
  auto open = usage().OpenCalls();
  ASSERT_TRUE(open.ok()) << open.error().message;
  ASSERT_EQ(open->size(), 1u);
  const store::OpenCall& kept = open->front();
  EXPECT_EQ(kept.id, 7u);
  EXPECT_EQ(kept.call.lineage, "lin");
  EXPECT_EQ(kept.call.key_hash, first.key_hash);
  EXPECT_EQ(kept.call.org_id, "org_a");
  EXPECT_EQ(kept.call.model, "mock/echo");
  EXPECT_EQ(kept.call.provider, "mock");
  EXPECT_EQ(kept.call.request_id, "req_1");
  EXPECT_EQ(kept.call.at, kT0);
  EXPECT_EQ(kept.call.prompt_tokens, 10);
  EXPECT_EQ(kept.call.completion_tokens, 20);
  EXPECT_EQ(kept.call.cost, 301);
  ASSERT_TRUE(usage().UpdateOpenCalls({}, {7}).ok());
  EXPECT_TRUE(usage().OpenCalls()->empty());
}

TEST_P(KeyStoreContractTest, SpendSumsRespectDayWeekAndMonthBounds) {
  // Wednesday 2024-01-31: the week began Monday 01-29, the month on 01-01.
  const DayBounds bounds{DaysFromCivil(2024, 1, 31), DaysFromCivil(2024, 1, 29),
                         DaysFromCivil(2024, 1, 1)};
  const int64_t last_ms = kMsPerDay - 1;
  ASSERT_TRUE(
      usage()
          .AppendUsage({
              Record("lin", 1, At(2023, 12, 31, last_ms)),      // last year, last month, last week
              Record("lin", 10, At(2024, 1, 1)),                // this month, an earlier week
              Record("lin", 100, At(2024, 1, 28, last_ms)),     // Sunday: still last week
              Record("lin", 1'000, At(2024, 1, 29)),            // Monday 00:00: this week
              Record("lin", 10'000, At(2024, 1, 30, last_ms)),  // yesterday
              Record("lin", 100'000, At(2024, 1, 31)),          // today 00:00
              Record("lin", 1'000'000, At(2024, 1, 31, last_ms)),
              Record("other", 7, At(2024, 1, 31)),
          })
          .ok());
  auto sums = usage().SpendFor({"lin", "other", "absent"}, bounds);
  ASSERT_TRUE(sums.ok()) << sums.error().message;
  ASSERT_EQ(sums->size(), 3u);
  const SpendSums& lin = sums->at("lin");
  EXPECT_EQ(lin.total, 1'111'111);
  EXPECT_EQ(lin.since_day, 1'100'000);
  EXPECT_EQ(lin.since_week, 1'111'000);
  EXPECT_EQ(lin.since_month, 1'111'110);
  EXPECT_EQ(sums->at("other").total, 7);
  EXPECT_EQ(sums->at("other").since_day, 7);
  EXPECT_EQ(sums->at("absent").total, 0);
  EXPECT_TRUE(usage().SpendFor({}, bounds)->empty());

  EXPECT_EQ(*usage().SpendSince("lin", DaysFromCivil(2024, 1, 29)), 1'111'000);
  EXPECT_EQ(*usage().SpendSince("absent", 0), 0);
}

TEST_P(KeyStoreContractTest, AppendUsageAccumulatesAcrossBatches) {
  const UnixMillis day = At(2024, 3, 5, 1000);
  ASSERT_TRUE(usage().AppendUsage({Record("lin", 5, day)}).ok());
  ASSERT_TRUE(
      usage().AppendUsage({Record("lin", 6, day + 1), Record("lin", 7, day + kMsPerDay)}).ok());
  ASSERT_TRUE(usage().AppendUsage({}).ok());
  auto series = usage().DailySeries("lin", DaysFromCivil(2024, 3, 1));
  ASSERT_TRUE(series.ok());
  ASSERT_EQ(series->size(), 2u);
  EXPECT_EQ((*series)[0].day, DaysFromCivil(2024, 3, 5));
  EXPECT_EQ((*series)[0].cost, 11);
  EXPECT_EQ((*series)[0].requests, 2);
  EXPECT_EQ((*series)[0].tokens, 30);
  EXPECT_EQ((*series)[1].day, DaysFromCivil(2024, 3, 6));
  EXPECT_EQ((*series)[1].cost, 7);
  EXPECT_EQ(usage().DailySeries("lin", DaysFromCivil(2024, 3, 6))->size(), 1u);
  EXPECT_TRUE(usage().DailySeries("absent", 0)->empty());
}

// Audit Z: an upstream reporting absurd usage for a key without limits (a cost saturated at
// the int64 maximum, per call) wrapped the daily totals negative, and a negative spend then
// admitted every call past a credit limit set later. Each daily total stops at
// kMostUsageOfADay, so the sums over days stay positive too.
TEST_P(KeyStoreContractTest, DailyTotalsSaturateInsteadOfWrapping) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const UnixMillis day = At(2024, 3, 5, 1000);
  auto absurd = [](UnixMillis at) {
    UsageRecord record = Record("lin", kMax, at);
    record.prompt_tokens = kMax / 2;
    record.completion_tokens = kMax / 2;
    return record;
  };
  // Within one batch, and across batches; on two days.
  ASSERT_TRUE(usage().AppendUsage({absurd(day), absurd(day + 1)}).ok());
  ASSERT_TRUE(usage().AppendUsage({absurd(day + 2), Record("lin", 5, day + 3)}).ok());
  ASSERT_TRUE(usage().AppendUsage({absurd(day + kMsPerDay)}).ok());
  auto series = usage().DailySeries("lin", DaysFromCivil(2024, 3, 1));
  ASSERT_TRUE(series.ok()) << series.error().message;
  ASSERT_EQ(series->size(), 2u);
  for (const DailyUsage& daily : *series) {
    EXPECT_EQ(daily.cost, kMostUsageOfADay);
    EXPECT_EQ(daily.tokens, 2 * kMostUsageOfADay);
  }
  EXPECT_EQ((*series)[0].requests, 4);
  const DayBounds bounds{DaysFromCivil(2024, 3, 6), DaysFromCivil(2024, 3, 4),
                         DaysFromCivil(2024, 3, 1)};
  auto sums = usage().SpendFor({"lin"}, bounds);
  ASSERT_TRUE(sums.ok()) << sums.error().message;
  EXPECT_EQ(sums->at("lin").total, 2 * kMostUsageOfADay);
  EXPECT_EQ(sums->at("lin").since_day, kMostUsageOfADay);
  auto since = usage().SpendSince("lin", DaysFromCivil(2024, 3, 1));
  ASSERT_TRUE(since.ok()) << since.error().message;
  EXPECT_EQ(*since, 2 * kMostUsageOfADay);
}

TEST_P(KeyStoreContractTest, RecentUsageIsNewestFirstAndKeepsEveryField) {
  ASSERT_TRUE(usage()
                  .AppendUsage({Record("lin", 1, kT0), Record("lin", 2, kT0 + 2),
                                Record("lin", 3, kT0 + 1), Record("other", 9, kT0 + 5)})
                  .ok());
  auto recent = usage().RecentUsage("lin", 2);
  ASSERT_TRUE(recent.ok()) << recent.error().message;
  ASSERT_EQ(recent->size(), 2u);
  EXPECT_EQ((*recent)[0].cost, 2);
  EXPECT_EQ((*recent)[1].cost, 3);
  const UsageRecord& r = (*recent)[0];
  const UsageRecord want = Record("lin", 2, kT0 + 2);
  EXPECT_EQ(r.key_hash, want.key_hash);
  EXPECT_EQ(r.lineage, "lin");
  EXPECT_EQ(r.org_id, "org_a");
  EXPECT_EQ(r.model, "gpt-4o");
  EXPECT_EQ(r.provider, "openai");
  EXPECT_EQ(r.prompt_tokens, 10);
  EXPECT_EQ(r.completion_tokens, 5);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.latency_ms, 120);
  EXPECT_EQ(r.ttfb_ms, 30);
  EXPECT_EQ(r.request_id, want.request_id);
  EXPECT_EQ(r.at, kT0 + 2);
  EXPECT_EQ(usage().RecentUsage("lin", 0).error().param, "limit");
}

TEST_P(KeyStoreContractTest, ForEachCallBetweenGivesEveryCallOfTheWindowInEachLineagesOrder) {
  // One batch holds calls on both sides of the lower bound, in one chunk per lineage; the next
  // holds a lineage's later calls, one of them past the upper bound (a clock stepped back).
  UsageRecord big = Record("lin", 1, kT0 + 30);
  big.prompt_tokens = 700;
  big.completion_tokens = 42;
  ASSERT_TRUE(usage()
                  .AppendUsage({Record("lin", 1, kT0 - 1), Record("lin", 1, kT0 + 20), big,
                                Record("other", 1, kT0), Record("other", 1, kT0 - 5000)})
                  .ok());
  ASSERT_TRUE(usage()
                  .AppendUsage({Record("lin", 1, kT0 + 40), Record("old", 1, kT0 - 1),
                                Record("lin", 1, kT0 + 99)})
                  .ok());
  using Call = std::tuple<std::string, UnixMillis, int64_t>;
  auto calls = [this](UnixMillis since, UnixMillis until) {
    std::map<std::string, std::vector<Call>> by_lineage;
    Status status = usage().ForEachCallBetween(since, until, [&](const CallInWindow& call) {
      by_lineage[std::string(call.lineage)].emplace_back(call.lineage, call.at, call.tokens);
    });
    EXPECT_TRUE(status.ok()) << status.error().message;
    return by_lineage;
  };
  // Each lineage's calls in the order they were recorded; the bounds are inclusive.
  const std::map<std::string, std::vector<Call>> want = {
      {"lin", {{"lin", kT0 + 20, 15}, {"lin", kT0 + 30, 742}, {"lin", kT0 + 40, 15}}},
      {"other", {{"other", kT0, 15}}}};
  EXPECT_EQ(calls(kT0, kT0 + 40), want);
  EXPECT_TRUE(calls(kT0 + 100, kT0 + 200).empty());
}

TEST_P(KeyStoreContractTest, ALargeBatchKeepsEveryRecordAndField) {
  // 45 = 32 + 8 + 5 x 1: every statement size the SQLite store uses.
  std::vector<UsageRecord> batch;
  for (int i = 0; i < 45; ++i) batch.push_back(Record("lin", 100 + i, kT0 + i));
  ASSERT_TRUE(usage().AppendUsage(batch).ok());
  auto recent = usage().RecentUsage("lin", 100);
  ASSERT_TRUE(recent.ok()) << recent.error().message;
  ASSERT_EQ(recent->size(), 45u);
  for (int i = 0; i < 45; ++i) {
    const UsageRecord& got = (*recent)[static_cast<size_t>(44 - i)];  // newest first
    const UsageRecord want = Record("lin", 100 + i, kT0 + i);
    EXPECT_EQ(got.cost, want.cost) << i;
    EXPECT_EQ(got.at, want.at) << i;
    EXPECT_EQ(got.request_id, want.request_id) << i;
    EXPECT_EQ(got.key_hash, want.key_hash) << i;
    EXPECT_EQ(got.prompt_tokens, want.prompt_tokens) << i;
  }
  EXPECT_EQ(*usage().SpendSince("lin", 0), 45 * 100 + 44 * 45 / 2);
}

// Many keys of many lineages and orgs, over batches of every statement size and a reopen: each
// record comes back with its own key, lineage and org. Half the lineages' first keys have no
// usage of their own.
TEST_P(KeyStoreContractTest, ManyKeysAndLineagesKeepTheirKeyLineageAndOrg) {
  constexpr int kLineages = 40;
  constexpr int kKeysPerLineage = 3;
  struct Key {
    std::string hash;
    std::string lineage;
    std::string org_id;
  };
  std::vector<Key> keys;
  for (int l = 0; l < kLineages; ++l) {
    const std::string lineage = HexId("lineage-" + std::to_string(l));
    const int first = l % 2 == 0 ? 0 : 1;  // odd lineages: the root key made no calls
    for (int k = first; k < kKeysPerLineage; ++k) {
      keys.push_back(
          Key{k == 0 ? lineage : HexId("key-" + std::to_string(l) + "-" + std::to_string(k)),
              lineage, "org_" + std::to_string(l % 3)});
    }
  }
  std::map<std::string, Strings> want;  // lineage -> records, newest first
  int64_t n = 0;
  // The next call of `key`, added to `batch` and to what its lineage should list.
  auto add_call = [&](const Key& key, std::vector<UsageRecord>* batch) {
    UsageRecord record = Record(key.lineage, n, kT0 + n);
    ++n;
    record.key_hash = key.hash;
    record.org_id = key.org_id;
    batch->push_back(record);
    Strings& records = want[key.lineage];
    records.insert(records.begin(), key.hash + " " + key.org_id + " " + record.request_id);
  };
  auto batch_of = [&](size_t size) {
    std::vector<UsageRecord> batch;
    for (size_t i = 0; i < size; ++i) {
      add_call(keys[static_cast<size_t>(n * 7) % keys.size()], &batch);
    }
    return batch;
  };
  // Runs, as busy keys make them: each key's calls twice in a row, the keys of a lineage next
  // to each other (a record like the one before it in all but its key).
  auto runs_batch = [&] {
    std::vector<UsageRecord> batch;
    for (const Key& key : keys) {
      add_call(key, &batch);
      add_call(key, &batch);
    }
    return batch;
  };
  for (size_t size : {45u, 1u, 100u, 9u}) ASSERT_TRUE(usage().AppendUsage(batch_of(size)).ok());
  ASSERT_TRUE(usage().AppendUsage(runs_batch()).ok());
  Reopen();
  ASSERT_TRUE(usage().AppendUsage(batch_of(keys.size())).ok());

  for (const auto& [lineage, records] : want) {
    auto recent = usage().RecentUsage(lineage, 1000);
    ASSERT_TRUE(recent.ok()) << recent.error().message;
    Strings got;
    for (const UsageRecord& r : *recent) {
      EXPECT_EQ(r.lineage, lineage);
      got.push_back(r.key_hash + " " + r.org_id + " " + r.request_id);
    }
    EXPECT_EQ(got, records) << lineage;
  }
  EXPECT_EQ(want.size(), static_cast<size_t>(kLineages));
}

}  // namespace keygate::store::testing
