// What the data plane counts for GET /metrics (spec §6): calls refused by the guardrails, by
// reason (the error's machine-readable code), and upstream calls that failed, by provider and
// outcome. Both label sets are small and closed (error codes, configured providers).
//
// Thread safety: every method may be called from any thread (one mutex; counting happens only
// on refusals and failures, never on a successful call).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace keygate::proxy {

class ProxyMetrics {
 public:
  void CountRejection(std::string_view reason);
  void CountUpstreamFailure(std::string_view provider, std::string_view outcome);

  // Appends keygate_rejections_total and keygate_upstream_errors_total (HELP and TYPE lines
  // always, so that a scraper sees the families before the first event).
  void AppendPrometheus(std::string* out) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t, std::less<>> rejections_;                 // guarded by mu_
  std::map<std::pair<std::string, std::string>, uint64_t> upstream_failures_;  // guarded by mu_
};

}  // namespace keygate::proxy
