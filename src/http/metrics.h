// What an http::Server counts for GET /metrics (spec §6): requests by route pattern, method and
// status, with a latency histogram per series, in Prometheus' text format. Routes are
// patterns ("/api/v1/keys/{hash}"), never raw paths, so the number of series stays bounded;
// a request that matched no route counts under "unmatched".
//
// The series are kept per shard (an io thread), each behind its own mutex, which only its
// thread and a scrape ever take: recording a request costs an uncontended lock and a map
// lookup, and no allocation once the series exists.
//
// Thread safety: Record() from any thread for its own shard index; AppendPrometheus() from
// any thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace keygate::http {

class HttpMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (then +Inf).
  static constexpr std::array<double, 11> kBucketSeconds = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                            0.25,  0.5,   1,    5,     30};

  // Upper bounds of the buckets of the server's own share of a proxied call, in seconds (then
  // +Inf): fine, since it is microseconds where the call is milliseconds or seconds.
  static constexpr std::array<double, 14> kOverheadBucketSeconds = {
      0.00001, 0.00002, 0.00003, 0.00005, 0.000075, 0.0001, 0.00015,
      0.0002,  0.0003,  0.0005,  0.001,   0.0025,   0.01,   0.1};

  explicit HttpMetrics(size_t shards);

  // Counts one answered request, and its `overhead_us` (the time outside the handler's
  // upstream call) when it made one (>= 0). REQUIRES: shard < the count given to the
  // constructor.
  void Record(size_t shard, std::string_view route, std::string_view method, int status,
              int64_t duration_us, int64_t overhead_us = -1);

  // Appends keygate_http_requests_total, keygate_http_request_duration_seconds and
  // keygate_proxy_overhead_seconds (by route; with HELP and TYPE lines), summed over the
  // shards.
  void AppendPrometheus(std::string* out) const;

 private:
  struct SeriesKey {
    std::string route;
    std::string method;
    int status = 0;
  };
  struct SeriesKeyView {
    std::string_view route;
    std::string_view method;
    int status = 0;
  };
  struct KeyLess {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      // One three-way comparison per string (a request is counted on every call).
      if (const int c = std::string_view(a.route).compare(b.route); c != 0) return c < 0;
      if (const int c = std::string_view(a.method).compare(b.method); c != 0) return c < 0;
      return a.status < b.status;
    }
  };
  template <size_t N>
  struct Histogram {
    uint64_t count = 0;
    int64_t sum_us = 0;
    std::array<uint64_t, N> buckets{};  // not cumulative

    void Add(int64_t us, const std::array<double, N>& bounds);
    void Merge(const Histogram& other);
    // Appends its _bucket, _sum and _count lines as metric `name`, `labels` being the series'
    // label text without braces.
    void AppendTo(std::string_view name, std::string_view labels,
                  const std::array<double, N>& bounds, std::string* out) const;
  };
  struct Series {
    Histogram<kBucketSeconds.size()> duration;
    Histogram<kOverheadBucketSeconds.size()> overhead;  // calls with an upstream call only
  };
  using SeriesMap = std::map<SeriesKey, Series, KeyLess>;
  struct Shard {
    mutable std::mutex mu;
    SeriesMap series;  // guarded by mu
  };

  std::vector<std::unique_ptr<Shard>> shards_;
};

// Appends `value` to `out` escaped for a Prometheus label value (backslash, quote, newline).
void AppendLabelValue(std::string_view value, std::string* out);

}  // namespace keygate::http
