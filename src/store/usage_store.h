// Usage records of the data plane and the spend totals they feed (spec data-plane.md,
// "Cost and usage"). Records arrive in batches from the usage writer (at most 100 ms behind).
// Totals are kept per lineage (see keys::ServiceKey::lineage) and per UTC day.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/money.h"
#include "common/status.h"

namespace keygate::store {

struct UsageRecord {
  std::string key_hash;
  std::string lineage;
  std::string org_id;
  std::string model;
  std::string provider;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  MicroUsd cost = 0;
  int status = 0;  // HTTP status answered to the caller
  int64_t latency_ms = 0;
  int64_t ttfb_ms = 0;
  std::string request_id;
  UnixMillis at = 0;
};

// Spend of one lineage summed over days >= each bound (days since the epoch, UTC).
struct SpendSums {
  MicroUsd total = 0;
  MicroUsd since_day = 0;
  MicroUsd since_week = 0;
  MicroUsd since_month = 0;
};

struct DayBounds {
  int64_t today = 0;        // days since epoch of today (UTC)
  int64_t week_start = 0;   // Monday of this week
  int64_t month_start = 0;  // the 1st of this month
};

// One call's place in the rolling windows of its lineage (spec §3 RPM and TPM).
struct CallInWindow {
  std::string_view lineage;  // valid during the callback that is given it
  UnixMillis at = 0;         // the record's `at`, when the call ended
  int64_t tokens = 0;        // prompt + completion
};

struct DailyUsage {
  int64_t day = 0;  // days since epoch
  MicroUsd cost = 0;
  int64_t requests = 0;
  int64_t tokens = 0;
};

// A call admitted and not settled yet, kept so that a crash does not forget it (decision
// 0011, "A crash"): its record as it would be charged at most (its reservation), `at` its
// admission time, status 0.
struct OpenCall {
  uint64_t id = 0;  // unique among the open calls
  UsageRecord call;
};

// What one PruneUsageBefore removed.
struct PrunedUsage {
  int64_t batches = 0;  // stored batches (a lineage's records of one usage batch)
  int64_t records = 0;
  bool more = false;  // the bound was reached: another write may find more
};

// The most a lineage's daily total holds of each of cost (micro-dollars: about $562 million),
// prompt tokens, completion tokens and calls; a day past it stays at it. So a sum over 16,384
// days (44 years) of totals cannot wrap (audit Z: an upstream reporting absurd usage for a key
// without limits turned its totals negative, and a negative spend admitted every call). A
// credit limit is at most $300 million (UsdFromDouble), below it.
inline constexpr int64_t kMostUsageOfADay = INT64_MAX >> 14;

class UsageStore {
 public:
  virtual ~UsageStore() = default;
  // Appends the records and adds them to the per-lineage daily totals, in one transaction;
  // each total saturates at kMostUsageOfADay.
  virtual Status AppendUsage(const std::vector<UsageRecord>& records) = 0;
  // Sums for each lineage asked for (absent lineages get zeros).
  virtual Result<std::map<std::string, SpendSums>> SpendFor(
      const std::vector<std::string>& lineages, const DayBounds& bounds) = 0;
  // Spend since day `from_day` (inclusive) of one lineage: used to seed budgets at start.
  virtual Result<MicroUsd> SpendSince(const std::string& lineage, int64_t from_day) = 0;
  // Per-day series for the console chart, days >= from_day.
  virtual Result<std::vector<DailyUsage>> DailySeries(const std::string& lineage,
                                                      int64_t from_day) = 0;
  // Gives `fn` every recorded call with since <= at <= until, one at a time (a busy minute is
  // a million records: none is kept), each lineage's in the order they were recorded, which is
  // nearly, not exactly, the order of `at`. A restarted process puts the calls of the last
  // window back into its RPM and TPM windows. Returns Unavailable if the store cannot be read.
  virtual Status ForEachCallBetween(UnixMillis since, UnixMillis until,
                                    const std::function<void(const CallInWindow&)>& fn) = 0;
  // Latest records of one key, newest first.
  virtual Result<std::vector<UsageRecord>> RecentUsage(const std::string& lineage,
                                                       int64_t limit) = 0;
  // In one transaction, keeps the calls `opened` and forgets those `closed` (by id; an id not
  // kept is ignored). A store without it loses the calls in flight in a crash.
  virtual Status UpdateOpenCalls(const std::vector<OpenCall>& opened,
                                 const std::vector<uint64_t>& closed) {
    (void)opened;
    (void)closed;
    return OkStatus();
  }
  // Every open call kept: at start, those a crashed process left.
  virtual Result<std::vector<OpenCall>> OpenCalls() { return std::vector<OpenCall>{}; }
  // Forgets the oldest stored batches of records whose every record is older than `before`
  // (usage.retention_days), in one write: the oldest while the records before each are under
  // `max_records` (so the last may cross it), and always one if any is due. The totals
  // (SpendFor, SpendSince, DailySeries) keep counting them. The newest batch stays whatever its
  // age, so that record ids are never reused. Returns what was forgotten. A store without it
  // keeps every record.
  virtual Result<PrunedUsage> PruneUsageBefore(UnixMillis before, int64_t max_records) {
    (void)before;
    (void)max_records;
    return PrunedUsage{};
  }
};

}  // namespace keygate::store
