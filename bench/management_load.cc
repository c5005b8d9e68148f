// Load driver for the management plane (issue 2's benchmark; not a test):
//   management_load HOST PORT PROVISIONING_KEY [CLIENTS=64] [SECONDS=10] [LIST_KEYS=100000]
// 1. CLIENTS threads create service keys over keep-alive connections for SECONDS: durable
//    creations per second (each 201 is sent only after its group commit is fsynced).
// 2. Tops the org up to LIST_KEYS keys, then times 100 list pages of 100 for each of: the first
//    page, a middle offset, and a tag + status filter: p50 and p99 latency in ms.
// Prints one `name value unit` line per figure, for bench/run.sh.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "testing/http_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using keygate::testing::TestHttpClient;

int64_t CreateFor(const std::string& host, uint16_t port, const std::string& pk, int clients,
                  Clock::time_point until, int64_t cap) {
  std::atomic<int64_t> created{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      TestHttpClient client(host, port);
      for (int i = 0; Clock::now() < until && created.load() < cap; ++i) {
        auto reply = client.Post("/prod/createServiceKey",
                                 R"({"api_key_name":"load-)" + std::to_string(c) + "-" +
                                     std::to_string(i) + R"(","tags":["load"],"rpm_limit":100})",
                                 pk);
        if (reply.status != 201) {
          std::fprintf(stderr, "create failed: %d %s\n", reply.status, reply.body.c_str());
          return;
        }
        created.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  return created.load();
}

double Percentile(std::vector<double> samples, double p) {
  std::sort(samples.begin(), samples.end());
  return samples[static_cast<size_t>(p * (samples.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s HOST PORT PROVISIONING_KEY [CLIENTS] [SECONDS] [LIST_KEYS]\n",
                 argv[0]);
    return 2;
  }
  const std::string host = argv[1];
  const auto port = static_cast<uint16_t>(std::stoi(argv[2]));
  const std::string pk = argv[3];
  const int clients = argc > 4 ? std::stoi(argv[4]) : 64;
  const int seconds = argc > 5 ? std::stoi(argv[5]) : 10;
  const int64_t list_keys = argc > 6 ? std::stoll(argv[6]) : 100'000;

  auto start = Clock::now();
  int64_t created = CreateFor(host, port, pk, clients, start + std::chrono::seconds(seconds),
                              list_keys);
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("durable_creates_per_s %.0f creates/s\n", created / elapsed);
  std::fflush(stdout);

  if (created < list_keys) {
    CreateFor(host, port, pk, clients, Clock::now() + std::chrono::minutes(10), list_keys - created);
  }
  TestHttpClient client(host, port);
  const std::vector<std::pair<std::string, std::string>> targets = {
      {"list_first_page", "/prod/getServiceKeys?limit=100"},
      {"list_offset_50000", "/prod/getServiceKeys?limit=100&offset=50000"},
      {"list_tag_and_status", "/prod/getServiceKeys?limit=100&tags=load&status=active"}};
  for (const auto& [name, target] : targets) {
    client.Get(target, pk);  // warm caches
    std::vector<double> ms;
    for (int i = 0; i < 100; ++i) {
      auto t0 = Clock::now();
      auto reply = client.Get(target, pk);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (reply.status != 200) {
        std::fprintf(stderr, "list failed: %d\n", reply.status);
        return 1;
      }
    }
    std::printf("%s_p50 %.2f ms\n", name.c_str(), Percentile(ms, 0.5));
    std::printf("%s_p99 %.2f ms\n", name.c_str(), Percentile(ms, 0.99));
  }
  return 0;
}
