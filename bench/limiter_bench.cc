// Admit + Settle on LocalLimiter, the guardrail work of every model call (spec §3 steps 3-5),
// with RPM, TPM and a monthly budget all set: for one busy key, and for 10,000 keys taken in
// turn (every key's state cold in cache). Simulated time moves 1 ms per call, so the rolling
// windows prune as they would in service. Target: well under 1 µs per Admit + Settle.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/money.h"
#include "limits/local_limiter.h"

namespace keygate::limits {
namespace {

constexpr UnixMillis kStartMs = 1'700'000'000'000;
constexpr int kKeyCount = 10'000;
constexpr int64_t kWorstCaseTokens = 1'000;
constexpr int64_t kActualTokens = 600;
constexpr MicroUsd kWorstCaseCost = 2'000;
constexpr MicroUsd kActualCost = 1'200;

LocalLimiter MakeLimiter() {
  return LocalLimiter([](const std::string&, UnixMillis) -> Result<MicroUsd> { return 0; });
}

// Limits high enough that every call is admitted: the cost measured is the full admission.
// `lineage` must outlive the request.
AdmitRequest BusyRequest(const std::string& lineage) {
  AdmitRequest request;
  request.lineage = lineage;
  request.rpm_limit = 1'000'000'000;
  request.tpm_limit = 1'000'000'000'000;
  request.credit_limit = kMaxMicroUsd;
  request.reset_interval = keys::ResetInterval::kMonthly;
  request.worst_case_tokens = kWorstCaseTokens;
  request.worst_case_cost = kWorstCaseCost;
  return request;
}

// Lineages look like the real ones: 64 hex characters. The requests view `lineages`.
std::vector<AdmitRequest> ManyRequests(std::vector<std::string>* lineages) {
  lineages->clear();
  lineages->reserve(kKeyCount);
  for (int i = 0; i < kKeyCount; ++i) {
    char lineage[65];
    std::snprintf(lineage, sizeof(lineage), "%064x", i * 2'654'435'761u);
    lineages->emplace_back(lineage);
  }
  std::vector<AdmitRequest> requests;
  for (const std::string& lineage : *lineages) requests.push_back(BusyRequest(lineage));
  return requests;
}

// One Admit and its Settle; false (and the benchmark stopped) if the call was refused.
bool AdmitAndSettle(benchmark::State& state, LocalLimiter& limiter, AdmitRequest& request,
                    UnixMillis now) {
  request.now = now;
  const Decision decision = limiter.Admit(request);
  if (!decision.allowed()) {
    state.SkipWithError("a call was refused");
    return false;
  }
  limiter.Settle(decision.ticket, kActualTokens, kActualCost, now);
  return true;
}

void BM_AdmitSettleOneKey(benchmark::State& state) {
  LocalLimiter limiter = MakeLimiter();
  const std::string lineage(64, 'a');
  AdmitRequest request = BusyRequest(lineage);
  UnixMillis now = kStartMs;
  for (auto _ : state) {
    if (!AdmitAndSettle(state, limiter, request, ++now)) break;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AdmitSettleOneKey);

void BM_AdmitSettleManyKeysRoundRobin(benchmark::State& state) {
  LocalLimiter limiter = MakeLimiter();
  std::vector<std::string> lineages;
  std::vector<AdmitRequest> requests = ManyRequests(&lineages);
  UnixMillis now = kStartMs;
  for (AdmitRequest& request : requests) AdmitAndSettle(state, limiter, request, now);  // seeded
  size_t next = 0;
  for (auto _ : state) {
    if (!AdmitAndSettle(state, limiter, requests[next], ++now)) break;
    next = next + 1 == requests.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AdmitSettleManyKeysRoundRobin);

// Two threads on one limiter: one shared key (they contend on its shard) and 10,000 keys
// (they rarely meet on a shard).
LocalLimiter& SharedLimiter() {
  static LocalLimiter limiter = MakeLimiter();
  return limiter;
}

void BM_AdmitSettleOneKeyThreaded(benchmark::State& state) {
  const std::string lineage(64, 'b');
  AdmitRequest request = BusyRequest(lineage);
  UnixMillis now = kStartMs;
  for (auto _ : state) {
    if (!AdmitAndSettle(state, SharedLimiter(), request, ++now)) break;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AdmitSettleOneKeyThreaded)->Threads(2)->UseRealTime();

void BM_AdmitSettleManyKeysThreaded(benchmark::State& state) {
  std::vector<std::string> lineages;
  std::vector<AdmitRequest> requests = ManyRequests(&lineages);
  size_t next = static_cast<size_t>(state.thread_index()) * (requests.size() / 2);
  UnixMillis now = kStartMs;
  for (auto _ : state) {
    if (!AdmitAndSettle(state, SharedLimiter(), requests[next], ++now)) break;
    next = next + 1 == requests.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AdmitSettleManyKeysThreaded)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace keygate::limits
