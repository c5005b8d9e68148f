#include "proxy/proxy_metrics.h"

#include "http/metrics.h"

namespace keygate::proxy {

void ProxyMetrics::CountRejection(std::string_view reason) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = rejections_.find(reason);
  if (it == rejections_.end()) it = rejections_.emplace(std::string(reason), 0).first;
  ++it->second;
}

void ProxyMetrics::CountUpstreamFailure(std::string_view provider, std::string_view outcome) {
  std::lock_guard<std::mutex> lock(mu_);
  ++upstream_failures_[{std::string(provider), std::string(outcome)}];
}

void ProxyMetrics::AppendPrometheus(std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  out->append("# HELP keygate_rejections_total Model calls refused by keygate, by reason.\n"
              "# TYPE keygate_rejections_total counter\n");
  for (const auto& [reason, count] : rejections_) {
    out->append("keygate_rejections_total{reason=\"");
    http::AppendLabelValue(reason, out);
    out->append("\"} ").append(std::to_string(count)).push_back('\n');
  }
  out->append("# HELP keygate_upstream_errors_total Upstream calls that failed, by provider and "
              "outcome.\n# TYPE keygate_upstream_errors_total counter\n");
  for (const auto& [labels, count] : upstream_failures_) {
    out->append("keygate_upstream_errors_total{provider=\"");
    http::AppendLabelValue(labels.first, out);
    out->append("\",outcome=\"");
    http::AppendLabelValue(labels.second, out);
    out->append("\"} ").append(std::to_string(count)).push_back('\n');
  }
}

}  // namespace keygate::proxy
