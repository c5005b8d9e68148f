#include "limits/request_bucket.h"

#include <algorithm>

namespace keygate::limits {

RequestBucket::RequestBucket(int64_t per_second, int64_t burst, int64_t now_ms)
    : per_second_(per_second), capacity_(burst * kMilli), held_(capacity_), filled_at_ms_(now_ms) {}

int64_t RequestBucket::TryTake(int64_t now_ms) {
  if (now_ms > filled_at_ms_) {
    const int64_t room = capacity_ - held_;
    const int64_t elapsed = now_ms - filled_at_ms_;
    // Compared before multiplying: a bucket idle for years would overflow the product.
    held_ = elapsed >= room / per_second_ + 1 ? capacity_ : held_ + elapsed * per_second_;
    held_ = std::min(held_, capacity_);
    filled_at_ms_ = now_ms;
  }
  if (held_ >= kMilli) {
    held_ -= kMilli;
    return 0;
  }
  const int64_t missing = kMilli - held_;
  return (missing + per_second_ - 1) / per_second_;
}

OrgRequestLimiter::OrgRequestLimiter(int64_t per_second, int64_t burst, const Clock& clock)
    : per_second_(per_second), burst_(burst), clock_(clock) {}

Pacing OrgRequestLimiter::TryTake(std::string_view org_id, CallerClass caller) {
  if (per_second_ <= 0) return {};
  const int64_t now_ms = clock_.MonotonicNs() / 1'000'000;
  std::lock_guard lock(mu_);
  auto it = orgs_.find(org_id);
  if (it == orgs_.end()) {
    const RequestBucket full(per_second_, burst_, now_ms);
    it = orgs_.emplace(std::string(org_id), OrgBuckets{{{{full}, {full}, {full}}}}).first;
  }
  OrgBuckets::Entry& entry = it->second.by_class[static_cast<size_t>(caller)];
  Pacing pacing;
  pacing.wait_ms = entry.bucket.TryTake(now_ms);
  if (pacing.wait_ms == 0) return pacing;
  ++entry.refused_unlogged;
  if (entry.logged_at_ms < 0 || now_ms - entry.logged_at_ms >= kLogEveryMs) {
    pacing.refused_to_log = entry.refused_unlogged;
    entry.refused_unlogged = 0;
    entry.logged_at_ms = now_ms;
  }
  return pacing;
}

}  // namespace keygate::limits
