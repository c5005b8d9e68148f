// How often an organization may call the management API (limits.management_rps_per_org and
// limits.management_burst_per_org): token buckets per organization, so that one org cannot
// create or change keys (and grow the store and the key index every org shares) as fast as the
// store commits (audit Z: 17,000 keys with 15 KB of metadata in 20 s). A bucket holds at most
// `burst` calls and fills at `per_second`; a call takes one, or is told how long until one is
// there (a 429 with Retry-After). A refused call still costs its authentication, so the
// buckets bound what an org writes, not how many requests its clients send (decision 0012).
//
// Each organization has three buckets, one per kind of caller: its owners', its provisioning
// keys' and its service keys' (a service key reading itself, GET /api/v1/key, or calling a
// route it may not). So a runaway provisioning key cannot keep the owners from disabling it
// (the review: 2 of 50 owner calls got through such a flood), nor a fleet of service keys
// polling their limits lock out the keys that manage them.
//
// Tokens are counted in thousandths, so that filling at `per_second` a second is `per_second`
// thousandths a millisecond: integer arithmetic, exact, whatever the rate. Time is the clock's
// monotonic time (a wall clock stepped back an hour would refill nothing for an hour).
//
// Thread safety: RequestBucket is not thread-safe; OrgRequestLimiter is (one mutex: a lookup
// and a few additions per management call, which runs on the blocking pool anyway).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"

namespace keygate::limits {

class RequestBucket {
 public:
  // A full bucket. REQUIRES: per_second >= 1, 1 <= burst <= 10^12.
  RequestBucket(int64_t per_second, int64_t burst, int64_t now_ms);

  // Takes one call and returns 0, or, the bucket holding less than one, takes nothing and
  // returns the milliseconds until it holds one (at least 1). A `now_ms` older than one seen
  // already fills nothing.
  int64_t TryTake(int64_t now_ms);

 private:
  static constexpr int64_t kMilli = 1000;  // thousandths of a call per call

  int64_t per_second_;
  int64_t capacity_;  // burst, in thousandths
  int64_t held_;      // thousandths of a call in the bucket
  int64_t filled_at_ms_;
};

// Who makes a management call: each kind has its own bucket in each organization.
enum class CallerClass { kOwner, kProvisioningKey, kServiceKey };

// What OrgRequestLimiter::TryTake decided.
struct Pacing {
  int64_t wait_ms = 0;  // 0: the call may go; else the milliseconds until it may
  // Set on a refusal at most once a minute per bucket: the calls refused since the last time
  // (this one included), for the log line that tells an operator who is paced.
  int64_t refused_to_log = 0;
};

class OrgRequestLimiter {
 public:
  static constexpr int64_t kLogEveryMs = 60'000;

  // `per_second` 0 admits everything (no bucket is kept). `clock` must outlive this.
  OrgRequestLimiter(int64_t per_second, int64_t burst, const Clock& clock);

  // Counts a management call of organization `org_id`'s caller of class `caller` if its bucket
  // holds one.
  Pacing TryTake(std::string_view org_id, CallerClass caller);

  int64_t per_second() const { return per_second_; }
  int64_t burst() const { return burst_; }

 private:
  struct OrgBuckets {
    struct Entry {
      RequestBucket bucket;
      int64_t refused_unlogged = 0;
      int64_t logged_at_ms = -1;  // -1: never
    };
    std::array<Entry, 3> by_class;  // indexed by CallerClass
  };
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view name) const { return std::hash<std::string_view>()(name); }
  };

  const int64_t per_second_;
  const int64_t burst_;
  const Clock& clock_;
  std::mutex mu_;
  // The buckets of each organization that made a management call (organizations are made by
  // the CLI alone, so the map grows with them, not with callers).
  std::unordered_map<std::string, OrgBuckets, NameHash, std::equal_to<>> orgs_;
};

}  // namespace keygate::limits
