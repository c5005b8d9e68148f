// How often one organization may call the management API (limits.management_rps_per_org and
// limits.management_burst_per_org): a token bucket per organization, so that one org's
// provisioning key flooding creates or lists cannot slow every other org's management calls
// (audit Z: other orgs' median went from 1.4 to 38 ms). A bucket holds at most `burst`
// requests and fills at `per_second`; a request takes one, or is told how long until one is
// there (a 429 with Retry-After). Only management calls count: model calls have each key's
// own RPM and TPM.
//
// Tokens are counted in thousandths, so that filling at `per_second` a second is `per_second`
// thousandths a millisecond: integer arithmetic, exact, whatever the rate.
//
// Time never runs backwards inside a bucket: a `now` older than one already seen fills nothing.
//
// Thread safety: RequestBucket is not thread-safe; OrgRequestLimiter is (one mutex: a lookup
// and a few additions per management call, which runs on the blocking pool anyway).
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"

namespace keygate::limits {

class RequestBucket {
 public:
  // A full bucket. REQUIRES: per_second >= 1, 1 <= burst <= 10^12.
  RequestBucket(int64_t per_second, int64_t burst, UnixMillis now);

  // Takes one request and returns 0, or, the bucket holding less than one, takes nothing and
  // returns the milliseconds until it holds one (at least 1).
  int64_t TryTake(UnixMillis now);

 private:
  static constexpr int64_t kMilli = 1000;  // thousandths of a request per request

  int64_t per_second_;
  int64_t capacity_;  // burst, in thousandths
  int64_t held_;      // thousandths of a request in the bucket
  UnixMillis filled_at_;
};

class OrgRequestLimiter {
 public:
  // `per_second` 0 admits everything (no bucket is kept). `clock` must outlive this.
  OrgRequestLimiter(int64_t per_second, int64_t burst, const Clock& clock);

  // 0 if organization `org_id` may make a management call now (counted), or the milliseconds
  // until it may.
  int64_t TryTake(std::string_view org_id);

  int64_t per_second() const { return per_second_; }
  int64_t burst() const { return burst_; }

 private:
  const int64_t per_second_;
  const int64_t burst_;
  const Clock& clock_;
  std::mutex mu_;
  // One bucket per organization that made a management call (organizations are made by the
  // CLI alone, so the map grows with them, not with callers).
  std::unordered_map<std::string, RequestBucket> buckets_;
};

}  // namespace keygate::limits
