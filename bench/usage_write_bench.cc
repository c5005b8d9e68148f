// What a usage batch costs the store (the data plane's UsageWriter commits one every
// flush_interval): SqliteStore::AppendUsage of N records for one key, on a real file with
// synchronous=FULL, as in service. The commit runs on the store's writer thread, so the
// figures that matter are the process's CPU per batch and per record (user and system, from
// getrusage), reported as counters beside the wall time: a batch has a fixed part (the
// savepoint, the WAL frames of the pages it touches, the fsync) and a part per record.
//
// The data file lives in BENCH_DIR (default: the current directory), so that it sits on the
// disk the gateway's data directory would.
#include <sys/resource.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "store/sqlite/sqlite_store.h"

namespace keygate::store {
namespace {

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::string BenchDir() {
  const char* dir = std::getenv("BENCH_DIR");
  return dir != nullptr ? dir : ".";
}

UsageRecord Record(int64_t i) {
  UsageRecord record;
  record.key_hash = std::string(64, 'a');
  record.lineage = record.key_hash;
  record.org_id = "org_0123456789abcdef";
  record.model = "mock/echo";
  record.provider = "mock";
  record.prompt_tokens = 24;
  record.completion_tokens = 4;
  record.cost = 32;
  record.status = 200;
  record.latency_ms = 1;
  record.ttfb_ms = 1;
  record.request_id = "req_" + std::to_string(i);
  record.at = 1'700'000'000'000 + i;
  return record;
}

void BM_AppendUsageBatch(benchmark::State& state) {
  const std::string path = BenchDir() + "/usage_write_bench.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  auto store = SqliteStore::Open(path, {});
  if (!store.ok()) {
    state.SkipWithError(store.error().message.c_str());
    return;
  }
  const auto batch_size = static_cast<size_t>(state.range(0));
  std::vector<UsageRecord> batch;
  for (size_t i = 0; i < batch_size; ++i) batch.push_back(Record(static_cast<int64_t>(i)));
  const double cpu_before = ProcessCpuSeconds();
  for (auto _ : state) {
    if (Status status = (*store)->AppendUsage(batch); !status.ok()) {
      state.SkipWithError(status.error().message.c_str());
      break;
    }
  }
  const double cpu = ProcessCpuSeconds() - cpu_before;
  const auto batches = static_cast<double>(state.iterations());
  state.counters["cpu_us_per_batch"] = cpu * 1e6 / batches;
  state.counters["cpu_us_per_record"] = cpu * 1e6 / (batches * static_cast<double>(batch_size));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
  store->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
}
BENCHMARK(BM_AppendUsageBatch)->Arg(1)->Arg(20)->Arg(100)->Arg(500)->UseRealTime();

}  // namespace
}  // namespace keygate::store
