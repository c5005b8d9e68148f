// The in-process check of every model call (issue 3 target: at most 1 µs): authenticate the
// bearer key against the KeyIndex, read the body, check the model scope and sizes, and admit
// through the LocalLimiter with RPM, TPM and a monthly budget all set; then settle, as the
// relay does. Simulated time moves 1 ms per call so the rolling windows prune as in service.
// The parts are measured on their own too, to show where the time goes.
#include <benchmark/benchmark.h>

#include <string>

#include "keys/key_index.h"
#include "keys/secrets.h"
#include "limits/local_limiter.h"
#include "proxy/guardrails.h"
#include "proxy/key_digest.h"
#include "proxy/openai_request.h"

namespace keygate::proxy {
namespace {

constexpr UnixMillis kStartMs = 1'700'000'000'000;
constexpr const char* kSecret = "sk-kg-4Jq8wZ0mT3cRyV7nB2xL9pK5sD1fH6gA0eU3iO8tY2w";
// The "same small chat completion" the HTTP benchmark sends.
constexpr const char* kBody =
    R"({"model":"mock/echo","messages":[{"role":"system","content":"You are terse."},)"
    R"({"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16})";

// A clock the benchmark moves by hand.
class SteppingClock final : public Clock {
 public:
  UnixMillis NowMs() const override { return now_ms_; }
  int64_t MonotonicNs() const override { return now_ms_ * 1'000'000; }
  void Step() { ++now_ms_; }

 private:
  UnixMillis now_ms_ = kStartMs;
};

// The benchmark's model, after `extra_models` others (a gateway's catalog often lists hundreds).
config::Catalog MakeCatalog(int extra_models = 0) {
  config::Catalog catalog;
  config::ProviderConfig mock;
  mock.name = "mock";
  mock.base_url = "http://127.0.0.1:9090/v1";
  catalog.providers.push_back(mock);
  for (int i = 0; i < extra_models; ++i) {
    config::ModelConfig other;
    other.id = "mock/model-" + std::to_string(i);
    other.provider = "mock";
    other.upstream = other.id.substr(5);
    other.context_tokens = 8192;
    catalog.models.push_back(other);
  }
  config::ModelConfig echo;
  echo.id = "mock/echo";
  echo.provider = "mock";
  echo.upstream = "echo";
  echo.input_micro_usd_per_mtok = 1'000'000;
  echo.output_micro_usd_per_mtok = 2'000'000;
  echo.context_tokens = 8192;
  echo.max_output_tokens = 1024;
  catalog.models.push_back(echo);
  return catalog;
}

// Everything a Guardrails needs, with one busy key whose limits never refuse.
struct Bench {
  explicit Bench(int extra_models = 0)
      : limiter([](const std::string&, UnixMillis) -> Result<MicroUsd> { return 0; }),
        guardrails(GuardrailOptions{}, index, limiter, clock) {
    keys::ServiceKey key;
    key.hash = keys::Sha256Hex(kSecret);
    key.lineage = key.hash;
    key.guardrails.rpm_limit = 1'000'000'000;
    key.guardrails.tpm_limit = 1'000'000'000'000;
    key.guardrails.credit_limit = kMaxMicroUsd;
    key.guardrails.reset_interval = keys::ResetInterval::kMonthly;
    key.guardrails.models = std::vector<std::string>{"openai/*", "mock/*"};
    key.version = 1;
    index.UpsertServiceKey(key);
    catalog = *ResolveCatalog(MakeCatalog(extra_models),
                              [](const char*) -> const char* { return nullptr; });
  }

  SteppingClock clock;
  keys::KeyIndex index;
  limits::LocalLimiter limiter;
  Guardrails guardrails;
  std::shared_ptr<const ResolvedCatalog> catalog;
};

// Argument: how many models the catalog lists before the one called.
void BM_CheckAndSettle(benchmark::State& state) {
  Bench bench(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    bench.clock.Step();
    Verdict<Admission> verdict =
        bench.guardrails.Check(kSecret, Endpoint::kChatCompletions, kBody, bench.catalog);
    if (!verdict.ok()) {
      state.SkipWithError("a call was refused");
      return;
    }
    bench.limiter.Settle(verdict.value->ticket, 30, 40, bench.clock.NowMs());
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_CheckAndSettle)->Arg(0)->Arg(500);

// Steps 1 and 2 alone: authenticate, read the body, check the model.
void BM_Prepare(benchmark::State& state) {
  Bench bench;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        bench.guardrails.Prepare(kSecret, Endpoint::kChatCompletions, kBody, bench.catalog));
  }
}
BENCHMARK(BM_Prepare);

// Steps 3 and 4 and the settlement, on a call prepared once (each round copies it: two
// reference counts and two strings).
void BM_AdmitAndSettle(benchmark::State& state) {
  Bench bench;
  const Verdict<PreparedCall> prepared =
      bench.guardrails.Prepare(kSecret, Endpoint::kChatCompletions, kBody, bench.catalog);
  if (!prepared.ok()) {
    state.SkipWithError("the call was refused");
    return;
  }
  for (auto _ : state) {
    bench.clock.Step();
    PreparedCall call = *prepared.value;
    call.now = bench.clock.NowMs();
    Verdict<Admission> verdict = bench.guardrails.Admit(std::move(call));
    if (!verdict.ok()) {
      state.SkipWithError("a call was refused");
      return;
    }
    bench.limiter.Settle(verdict.value->ticket, 30, 40, bench.clock.NowMs());
    benchmark::DoNotOptimize(verdict);
  }
}
BENCHMARK(BM_AdmitAndSettle);

void BM_Authenticate(benchmark::State& state) {
  Bench bench;
  for (auto _ : state) benchmark::DoNotOptimize(bench.guardrails.Authenticate(kSecret));
}
BENCHMARK(BM_Authenticate);

void BM_Sha256OfTheKey(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(keys::Sha256Hex(kSecret));
}
BENCHMARK(BM_Sha256OfTheKey);

void BM_KeyDigestHex(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(KeyDigestHex(kSecret));
}
BENCHMARK(BM_KeyDigestHex);

void BM_ParseBody(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(ParseChatRequest(kBody));
}
BENCHMARK(BM_ParseBody);

void BM_UpstreamBody(benchmark::State& state) {
  auto request = ParseChatRequest(kBody);
  for (auto _ : state) {
    benchmark::DoNotOptimize(UpstreamBody(*request, "echo", {"max_tokens", 1024}));
  }
}
BENCHMARK(BM_UpstreamBody);

}  // namespace
}  // namespace keygate::proxy
