#include "http/metrics.h"

#include <cstdio>

#include "common/ascii.h"

namespace keygate::http {
namespace {

void AppendSeconds(double seconds, std::string* out) {
  char text[32];
  const int length = std::snprintf(text, sizeof text, "%.6g", seconds);
  out->append(text, static_cast<size_t>(length));
}

void AppendLabels(std::string_view route, std::string_view method, int status, std::string* out) {
  out->append("route=\"");
  AppendLabelValue(route, out);
  out->append("\",method=\"");
  AppendLabelValue(method, out);
  out->append("\",status=\"");
  AppendDecimal(static_cast<uint64_t>(status), out);
  out->push_back('"');
}

}  // namespace

void AppendLabelValue(std::string_view value, std::string* out) {
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

HttpMetrics::HttpMetrics(size_t shards) {
  for (size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

template <size_t N>
void HttpMetrics::Histogram<N>::Add(int64_t us, const std::array<double, N>& bounds) {
  ++count;
  sum_us += us;
  const double seconds = static_cast<double>(us) / 1e6;
  for (size_t i = 0; i < N; ++i) {
    if (seconds <= bounds[i]) {
      ++buckets[i];
      break;
    }
  }
}

template <size_t N>
void HttpMetrics::Histogram<N>::Merge(const Histogram& other) {
  count += other.count;
  sum_us += other.sum_us;
  for (size_t i = 0; i < N; ++i) buckets[i] += other.buckets[i];
}

void HttpMetrics::Record(size_t shard, std::string_view route, std::string_view method,
                         int status, int64_t duration_us, int64_t overhead_us) {
  Shard& target = *shards_[shard];
  std::lock_guard<std::mutex> lock(target.mu);
  auto it = target.series.find(SeriesKeyView{route, method, status});
  if (it == target.series.end()) {
    it = target.series.emplace(SeriesKey{std::string(route), std::string(method), status}, Series{})
             .first;
  }
  it->second.duration.Add(duration_us, kBucketSeconds);
  if (overhead_us >= 0) it->second.overhead.Add(overhead_us, kOverheadBucketSeconds);
}

template <size_t N>
void HttpMetrics::Histogram<N>::AppendTo(std::string_view name, std::string_view labels,
                                         const std::array<double, N>& bounds,
                                         std::string* out) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= N; ++i) {
    out->append(name).append("_bucket{").append(labels).append(",le=\"");
    if (i < N) {
      cumulative += buckets[i];
      AppendSeconds(bounds[i], out);
    } else {
      cumulative = count;
      out->append("+Inf");
    }
    out->append("\"} ");
    AppendDecimal(cumulative, out);
    out->push_back('\n');
  }
  out->append(name).append("_sum{").append(labels).append("} ");
  AppendSeconds(static_cast<double>(sum_us) / 1e6, out);
  out->append("\n").append(name).append("_count{").append(labels).append("} ");
  AppendDecimal(count, out);
  out->push_back('\n');
}

void HttpMetrics::AppendPrometheus(std::string* out) const {
  SeriesMap total;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    for (const auto& [key, series] : shard->series) {
      Series& sum = total[key];
      sum.duration.Merge(series.duration);
      sum.overhead.Merge(series.overhead);
    }
  }
  out->append("# HELP keygate_http_requests_total HTTP requests answered, by route pattern, "
              "method and status.\n# TYPE keygate_http_requests_total counter\n");
  for (const auto& [key, series] : total) {
    out->append("keygate_http_requests_total{");
    AppendLabels(key.route, key.method, key.status, out);
    out->append("} ");
    AppendDecimal(series.duration.count, out);
    out->push_back('\n');
  }
  out->append("# HELP keygate_http_request_duration_seconds Time from a request's first byte to "
              "its answer's last.\n# TYPE keygate_http_request_duration_seconds histogram\n");
  std::string labels;
  for (const auto& [key, series] : total) {
    labels.clear();
    AppendLabels(key.route, key.method, key.status, &labels);
    series.duration.AppendTo("keygate_http_request_duration_seconds", labels, kBucketSeconds,
                             out);
  }
  // By route only: the share is the gateway's, whatever the upstream answered.
  std::map<std::string_view, Histogram<kOverheadBucketSeconds.size()>> overhead;
  for (const auto& [key, series] : total) {
    if (series.overhead.count > 0) overhead[key.route].Merge(series.overhead);
  }
  out->append("# HELP keygate_proxy_overhead_seconds Time a proxied call spent in keygate, "
              "outside its upstream call: from the request's first byte to the upstream "
              "call's start, and from the upstream answer's end to the answer's last byte "
              "written (so a slow client's reading counts).\n"
              "# TYPE keygate_proxy_overhead_seconds histogram\n");
  for (const auto& [route, h] : overhead) {
    labels.assign("route=\"");
    AppendLabelValue(route, &labels);
    labels.push_back('"');
    h.AppendTo("keygate_proxy_overhead_seconds", labels, kOverheadBucketSeconds, out);
  }
}

}  // namespace keygate::http
