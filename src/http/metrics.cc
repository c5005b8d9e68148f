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

void HttpMetrics::Record(size_t shard, std::string_view route, std::string_view method,
                         int status, int64_t duration_us) {
  Shard& target = *shards_[shard];
  std::lock_guard<std::mutex> lock(target.mu);
  auto it = target.series.find(SeriesKeyView{route, method, status});
  if (it == target.series.end()) {
    it = target.series.emplace(SeriesKey{std::string(route), std::string(method), status}, Series{})
             .first;
  }
  Series& series = it->second;
  ++series.count;
  series.sum_us += duration_us;
  const double seconds = static_cast<double>(duration_us) / 1e6;
  for (size_t i = 0; i < kBucketSeconds.size(); ++i) {
    if (seconds <= kBucketSeconds[i]) {
      ++series.buckets[i];
      break;
    }
  }
}

void HttpMetrics::AppendPrometheus(std::string* out) const {
  SeriesMap total;
  for (const auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    for (const auto& [key, series] : shard->series) {
      Series& sum = total[key];
      sum.count += series.count;
      sum.sum_us += series.sum_us;
      for (size_t i = 0; i < series.buckets.size(); ++i) sum.buckets[i] += series.buckets[i];
    }
  }
  out->append("# HELP keygate_http_requests_total HTTP requests answered, by route pattern, "
              "method and status.\n# TYPE keygate_http_requests_total counter\n");
  for (const auto& [key, series] : total) {
    out->append("keygate_http_requests_total{");
    AppendLabels(key.route, key.method, key.status, out);
    out->append("} ");
    AppendDecimal(series.count, out);
    out->push_back('\n');
  }
  out->append("# HELP keygate_http_request_duration_seconds Time from a request's first byte to "
              "its answer's last.\n# TYPE keygate_http_request_duration_seconds histogram\n");
  for (const auto& [key, series] : total) {
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= kBucketSeconds.size(); ++i) {
      out->append("keygate_http_request_duration_seconds_bucket{");
      AppendLabels(key.route, key.method, key.status, out);
      out->append(",le=\"");
      if (i < kBucketSeconds.size()) {
        cumulative += series.buckets[i];
        AppendSeconds(kBucketSeconds[i], out);
      } else {
        cumulative = series.count;
        out->append("+Inf");
      }
      out->append("\"} ");
      AppendDecimal(cumulative, out);
      out->push_back('\n');
    }
    out->append("keygate_http_request_duration_seconds_sum{");
    AppendLabels(key.route, key.method, key.status, out);
    out->append("} ");
    AppendSeconds(static_cast<double>(series.sum_us) / 1e6, out);
    out->append("\nkeygate_http_request_duration_seconds_count{");
    AppendLabels(key.route, key.method, key.status, out);
    out->append("} ");
    AppendDecimal(series.count, out);
    out->push_back('\n');
  }
}

}  // namespace keygate::http
