#include "limits/request_bucket.h"

#include <algorithm>

namespace keygate::limits {

RequestBucket::RequestBucket(int64_t per_second, int64_t burst, UnixMillis now)
    : per_second_(per_second), capacity_(burst * kMilli), held_(capacity_), filled_at_(now) {}

int64_t RequestBucket::TryTake(UnixMillis now) {
  if (now > filled_at_) {
    const int64_t room = capacity_ - held_;
    const int64_t elapsed = now - filled_at_;
    // Compared before multiplying: a bucket idle for years would overflow the product.
    held_ = elapsed >= room / per_second_ + 1 ? capacity_ : held_ + elapsed * per_second_;
    held_ = std::min(held_, capacity_);
    filled_at_ = now;
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

int64_t OrgRequestLimiter::TryTake(std::string_view org_id) {
  if (per_second_ <= 0) return 0;
  const UnixMillis now = clock_.NowMs();
  std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(org_id));
  if (it == buckets_.end()) {
    it = buckets_.emplace(std::string(org_id), RequestBucket(per_second_, burst_, now)).first;
  }
  return it->second.TryTake(now);
}

}  // namespace keygate::limits
