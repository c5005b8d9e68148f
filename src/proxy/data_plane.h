// The data plane (spec data-plane.md): OpenAI's API in front of the configured providers, every
// call held to its service key's guardrails.
//
//   POST /v1/chat/completions  plain and streamed
//   POST /v1/embeddings        cost from input tokens
//   GET  /v1/models            the catalog's models this key may call, in OpenAI's list format
//   GET  /v1/models/{model}    one of them (404 model_not_found for any other)
//
// Each handler runs inline on the io thread and never blocks it: authentication reads the
// in-memory KeyIndex, guardrail state lives in the Limiter, usage goes to the UsageWriter's
// queue, and the upstream exchange is asynchronous. The one exception, a lineage's first call
// with a budget in this process (whose spend the Limiter must read from the store), is checked
// on a small pool of the data plane's own.
//
// The catalog is swapped whole by ReloadCatalog() (SIGHUP); calls in flight keep the catalog
// they started with, and no connection is dropped.
//
// Each upstream exchange runs on the shard of the connection that asked for it
// (http::Request::io), so a call never changes thread.
//
// Lifetime: Start() before serving; Shutdown() after Server::Run() has returned and before the
// Server (whose io_contexts the exchanges use) is destroyed.
//
// Thread safety: handlers run concurrently on every io thread; ReloadCatalog() may be called
// from any thread; Start() and Shutdown() from the main thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/digest_hash.h"
#include "common/log.h"
#include "common/status.h"
#include "config/config.h"
#include "http/handler.h"
#include "http/router.h"
#include "keys/key_index.h"
#include "limits/limiter.h"
#include "proxy/guardrails.h"
#include "proxy/live_usage.h"
#include "proxy/model_call.h"
#include "proxy/resolved_catalog.h"
#include "proxy/proxy_metrics.h"
#include "proxy/upstream_client.h"
#include "proxy/usage_writer.h"
#include "store/usage_store.h"

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace keygate::proxy {

// How far behind the store usage may fall (a store refusing or hanging on writes) before the
// data plane, with failure_mode deny, refuses new model calls with 503 and /readyz says so:
// calls admitted meanwhile are spend that a crash or a stop that cannot store it would forget.
// A healthy batch commits in well under this; a store waiting on another process's lock gives
// up only after its own 5 s busy timeout, so the lag, not the failure, is what is watched.
inline constexpr std::chrono::milliseconds kMaxUsageLag{1000};

struct DataPlaneOptions {
  GuardrailOptions guardrails;
  size_t max_response_bytes = 64 * 1024 * 1024;  // a complete upstream answer above: 502
  UsageWriterOptions usage_writer;
  UpstreamClientOptions upstream;
  int cold_path_threads = 2;  // checks that may read the store (first call of a lineage)
  // Every kind of keygate key's prefix: a caller's header holding one is not forwarded.
  std::vector<std::string> key_prefixes = {"sk-kg-", "pk-kg-", "ok-kg-"};
};

// What the data plane uses and does not own; everything must outlive it.
struct DataPlaneDeps {
  const keys::KeyIndex& index;
  limits::Limiter& limiter;
  store::UsageStore& usage_store;
  const Clock& clock;
  Logger& log;
  // Marks a service key used at a time (last_used_at, written in batches by its owner). May be
  // empty.
  std::function<void(const std::string& hash, UnixMillis at)> note_used;
  // Drops idle guardrail state (LocalLimiter::EvictIdle); run once a minute. May be empty.
  std::function<void(UnixMillis now)> evict_idle;
  // Reads the provisioning key or owner credential with this digest from the store (kind kNone
  // if there is none), for a management-prefixed secret the index does not hold. Blocking; run
  // on the data plane's own pool. May be empty (every such secret is then unknown).
  std::function<Result<keys::IndexedCredential>(const std::string& digest)>
      find_management_credential;
};

class DataPlane {
 public:
  // Resolves `catalog` (API keys read through `getenv`). Throws std::invalid_argument if a
  // provider's base_url cannot be used (start-up only; LoadConfig refuses such files first).
  DataPlane(DataPlaneDeps deps, DataPlaneOptions options, const config::Catalog& catalog,
            config::GetEnv getenv);
  ~DataPlane();
  DataPlane(const DataPlane&) = delete;
  DataPlane& operator=(const DataPlane&) = delete;

  // Registers the data plane's routes, all Execution::kInline.
  void Register(http::Router& router);

  // Starts the usage writer.
  void Start();
  // Finishes the cold-path checks, writes every pending usage record, closes idle upstream
  // connections. Idempotent.
  void Shutdown();

  // Replaces the catalog (spec data-plane.md: reloadable without restart). Returns OK, or
  // InvalidArgument (the old catalog stays) if a provider cannot be resolved.
  Status ReloadCatalog(const config::Catalog& catalog);

  // The live figures for KeyViewer::SetLiveUsage.
  const dialects::LiveUsage& live_usage() const { return live_usage_; }
  // The usage writer (tests and shutdown).
  UsageWriter& usage_writer() { return usage_writer_; }
  // Whether usage has fallen more than kMaxUsageLag behind the store (see kMaxUsageLag).
  bool UsageStalled() const;
  // Appends the data plane's counters (proxy_metrics.h) and the usage writer's backlog in
  // Prometheus' text format.
  void AppendMetrics(std::string* out) const;

 private:
  void HandleCall(Endpoint endpoint, http::Request& request,
                  std::shared_ptr<http::Responder> responder);
  void HandleModels(http::Request& request, std::shared_ptr<http::Responder> responder);
  // Admits `call` and forwards it, or answers the refusal.
  void AdmitAndForward(PreparedCall call, http::HeaderList forward_headers,
                       boost::asio::io_context& io,
                       std::shared_ptr<http::Responder> responder);
  // Answers a management-prefixed secret the index does not hold (Guardrails::
  // IsUnindexedManagementKey) from the store, on the cold pool; returns false, leaving
  // `responder` alone, for any other secret.
  bool AnsweredFromStore(const http::Request& request,
                         std::shared_ptr<http::Responder>& responder);
  // True if admitting `key` may read the store (its budget is not loaded in this process).
  bool MayReadStore(const keys::ServiceKey& key);
  void MarkLoaded(const keys::ServiceKey& key);
  bool IsLoaded(const keys::ServiceKey& key);
  void Housekeeping();
  // Logs a warning for each provider of `catalog` whose calls will be refused (no API key in
  // its environment variable): at Start() and at each reload, before any caller finds out.
  void WarnUnusableProviders(const ResolvedCatalog& catalog);

  DataPlaneDeps deps_;
  const DataPlaneOptions options_;
  const config::GetEnv getenv_;
  std::atomic<std::shared_ptr<const ResolvedCatalog>> catalog_;
  Guardrails guardrails_;
  ProxyMetrics metrics_;
  UsageWriter usage_writer_;
  UpstreamClient upstream_;
  LimiterLiveUsage live_usage_;
  CallEnvironment environment_;
  std::unique_ptr<boost::asio::thread_pool> cold_pool_;
  // The budgets whose spend the Limiter holds (see MayReadStore()): per lineage root, one bit
  // per reset interval. Looked up by view on every call; written the first time only.
  std::shared_mutex loaded_mu_;
  std::unordered_map<std::string, unsigned, DigestHash, std::equal_to<>>
      loaded_;  // guarded by loaded_mu_
  std::once_flag shutdown_once_;
};

// Registers `data_plane`'s routes on `router` (the composition root's one call).
void Register(http::Router& router, DataPlane& data_plane);

}  // namespace keygate::proxy
