// A service key as every dialect shows it: the stored record plus the derived status, spend
// figures and the next budget reset. Three codecs render the same KeyView, so a key reads
// the same in every dialect (spec dialects.md: one key store, three wire formats).
//
// Thread safety: KeyViewer methods may be called concurrently.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "keys/model.h"
#include "store/usage_store.h"

namespace keygate::dialects {

struct KeyView {
  keys::ServiceKey key;
  keys::KeyStatus status = keys::KeyStatus::kActive;
  keys::UsageTotals usage;
  std::optional<UnixMillis> budget_resets_at;  // nullopt when the budget never resets
  // credit_limit - current_period spend (never below 0); nullopt when unlimited.
  std::optional<MicroUsd> limit_remaining;
};

// The data plane's live figures (in-flight spend not yet in the store, the current minute's
// requests and tokens). Optional: without it, views show the store's figures only.
class LiveUsage {
 public:
  virtual ~LiveUsage() = default;
  // Calls `read_store` (which reads the stored spend of `lineages`), then returns what the
  // store does not hold yet of each lineage's spend at `now` (total, daily, weekly, monthly),
  // so that every usage record counts once: in the store's answer or here. A lineage with
  // nothing pending may have no entry.
  virtual Result<std::unordered_map<std::string, keys::UsageTotals>> ReadWithUnflushed(
      const std::vector<std::string>& lineages, UnixMillis now,
      const std::function<Status()>& read_store) const = 0;
  // Sets the requests and tokens of the current minute in `totals` for `key`'s lineage.
  virtual void AddWindows(const keys::ServiceKey& key, UnixMillis now,
                          keys::UsageTotals* totals) const = 0;
  // The x-ratelimit-* header lines (http::Response::header_lines text) of `key` at `now`, for
  // an answer that takes nothing from its windows; "" without RPM and TPM limits.
  virtual std::string RateLimitLines(const keys::ServiceKey& key, UnixMillis now) const = 0;
};

class KeyViewer {
 public:
  // Neither reference is owned.
  KeyViewer(store::UsageStore& usage, const Clock& clock) : usage_(usage), clock_(clock) {}
  // Not owned; may be null. REQUIRES: called before serving.
  void SetLiveUsage(const LiveUsage* live) { live_ = live; }

  // Views of `keys`, with usage read from the store in one query. Unavailable on store failure.
  Result<std::vector<KeyView>> Views(std::vector<keys::ServiceKey> keys) const;
  Result<KeyView> View(keys::ServiceKey key) const;
  // The view of a key created by this very request (not a rotation's replacement, which
  // inherits its lineage's spend): its lineage is its own fresh hash and nothing has used it
  // yet, so neither the store nor the live figures are asked. Same answer as View(), without
  // its two store reads.
  KeyView ViewNew(keys::ServiceKey key) const;
  // Spend, requests and tokens of `key`'s lineage (its predecessors' included) per UTC day
  // over the last `days` days, today included, oldest first: a row for every day, zeros where
  // nothing was used. From the store, so up to the usage writer's interval behind.
  // REQUIRES: days >= 1.
  Result<std::vector<store::DailyUsage>> Daily(const keys::ServiceKey& key, int64_t days) const;
  // The latest `limit` usage records of `key`'s lineage, newest first (from the store, as
  // Daily). InvalidArgument naming "limit" outside 1..1000.
  Result<std::vector<store::UsageRecord>> Recent(const keys::ServiceKey& key,
                                                 int64_t limit) const;
  // The live x-ratelimit-* header lines of `key` now ("" without the live figures).
  std::string RateLimitLines(const keys::ServiceKey& key) const {
    return live_ != nullptr ? live_->RateLimitLines(key, clock_.NowMs()) : std::string();
  }

 private:
  // The view of `key` given its lineage's stored spend `sums` at `now`, plus the live figures
  // if `add_live`.
  KeyView Build(keys::ServiceKey key, const store::SpendSums& sums, UnixMillis now,
                bool add_live) const;

  store::UsageStore& usage_;
  const Clock& clock_;
  const LiveUsage* live_ = nullptr;
};

}  // namespace keygate::dialects
