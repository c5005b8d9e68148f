// The data plane's live figures for the management answers (dialects::LiveUsage): spend that
// the usage writer has not committed yet, and the current rolling minute's requests and tokens
// from the Limiter, so that `usage` and v2's consumption fields are current to the call.
//
// Thread safety: ReadWithUnflushed and AddWindows may be called from any thread concurrently.
#pragma once

#include <string>

#include "dialects/common/key_view.h"
#include "limits/limiter.h"
#include "proxy/usage_writer.h"

namespace keygate::proxy {

// The x-ratelimit-* header lines (http::Response::header_lines text) of `key` at `now`, as its
// lineage's windows stand, for an answer that is not a model call (nothing is taken from them);
// "" for a key without RPM and TPM limits.
std::string RateLimitLinesFor(limits::Limiter& limiter, const keys::ServiceKey& key,
                              UnixMillis now);

class LimiterLiveUsage final : public dialects::LiveUsage {
 public:
  // Neither reference is owned; both must outlive this object.
  LimiterLiveUsage(limits::Limiter& limiter, UsageWriter& writer)
      : limiter_(limiter), writer_(writer) {}

  // dialects::LiveUsage
  // The uncommitted spend of each lineage (UsageWriter::ReadWithUnflushed).
  Result<std::unordered_map<std::string, keys::UsageTotals>> ReadWithUnflushed(
      const std::vector<std::string>& lineages, UnixMillis now,
      const std::function<Status()>& read_store) const override;
  // The minute's requests and tokens, from the Limiter's windows.
  void AddWindows(const keys::ServiceKey& key, UnixMillis now,
                  keys::UsageTotals* totals) const override;
  std::string RateLimitLines(const keys::ServiceKey& key, UnixMillis now) const override;

 private:
  limits::Limiter& limiter_;
  UsageWriter& writer_;
};

}  // namespace keygate::proxy
