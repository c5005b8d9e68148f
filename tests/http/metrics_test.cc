#include "http/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace keygate::http {
namespace {

TEST(HttpMetricsTest, SumsTheShardsIntoCumulativeHistograms) {
  HttpMetrics metrics(2);
  metrics.Record(0, "/v1/chat/completions", "POST", 200, 800);      // 0.8 ms
  metrics.Record(1, "/v1/chat/completions", "POST", 200, 40'000);   // 40 ms
  metrics.Record(1, "/v1/chat/completions", "POST", 429, 100);
  metrics.Record(0, "unmatched", "GET", 404, 50);
  std::string text;
  metrics.AppendPrometheus(&text);
  EXPECT_NE(text.find("# TYPE keygate_http_requests_total counter\n"), std::string::npos);
  EXPECT_NE(text.find(R"(keygate_http_requests_total{route="/v1/chat/completions",method="POST",status="200"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(keygate_http_requests_total{route="/v1/chat/completions",method="POST",status="429"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(keygate_http_requests_total{route="unmatched",method="GET",status="404"} 1)"),
            std::string::npos);
  const std::string series = R"({route="/v1/chat/completions",method="POST",status="200",le=")";
  // Cumulative: one answer under 1 ms, both under 50 ms, both in +Inf.
  EXPECT_NE(text.find("keygate_http_request_duration_seconds_bucket" + series + "0.001\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("keygate_http_request_duration_seconds_bucket" + series + "0.025\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("keygate_http_request_duration_seconds_bucket" + series + "0.05\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find("keygate_http_request_duration_seconds_bucket" + series + "+Inf\"} 2"),
            std::string::npos);
  EXPECT_NE(text.find(R"(keygate_http_request_duration_seconds_sum{route="/v1/chat/completions",method="POST",status="200"} 0.0408)"),
            std::string::npos);
}

// The gateway's own share of proxied calls: by route only, summed over methods, statuses and
// shards, in fine buckets; none for routes that made no upstream call.
TEST(HttpMetricsTest, OverheadIsAFineHistogramByRoute) {
  HttpMetrics metrics(2);
  metrics.Record(0, "/v1/chat/completions", "POST", 200, 300'000, 40);
  metrics.Record(1, "/v1/chat/completions", "POST", 502, 2'000, 120);
  metrics.Record(1, "/v1/chat/completions", "POST", 401, 30);  // refused: no upstream call
  metrics.Record(0, "/metrics", "GET", 200, 80);
  std::string text;
  metrics.AppendPrometheus(&text);
  EXPECT_NE(text.find("# TYPE keygate_proxy_overhead_seconds histogram\n"), std::string::npos);
  const std::string bucket =
      R"(keygate_proxy_overhead_seconds_bucket{route="/v1/chat/completions",le=")";
  EXPECT_NE(text.find(bucket + "3e-05\"} 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find(bucket + "5e-05\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find(bucket + "0.0001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find(bucket + "0.00015\"} 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find(bucket + "+Inf\"} 2\n"), std::string::npos) << text;
  const std::string route = R"({route="/v1/chat/completions"})";
  EXPECT_NE(text.find("keygate_proxy_overhead_seconds_sum" + route + " 0.00016\n"),
            std::string::npos);
  EXPECT_NE(text.find("keygate_proxy_overhead_seconds_count" + route + " 2\n"),
            std::string::npos);
  EXPECT_EQ(text.find(R"(keygate_proxy_overhead_seconds_count{route="/metrics"})"),
            std::string::npos);
  // The request durations still count every answer.
  EXPECT_NE(text.find("keygate_http_request_duration_seconds_count{route=\"/v1/chat/completions\","
                      "method=\"POST\",status=\"401\"} 1"),
            std::string::npos);
}

TEST(HttpMetricsTest, EscapesLabelValues) {
  std::string out;
  AppendLabelValue("a\"b\\c\nd", &out);
  EXPECT_EQ(out, R"(a\"b\\c\nd)");
}

}  // namespace
}  // namespace keygate::http
