#include "server/app.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>

#include "common/money.h"
#include "common/thread_name.h"
#include "dialects/common/key_view.h"
#include "dialects/common/management.h"
#include "dialects/fastrouter/fastrouter.h"
#include "dialects/openrouter/openrouter.h"
#include "dialects/routerkeys/routerkeys.h"
#include "http/router.h"
#include "http/server.h"
#include "limits/local_limiter.h"
#include "limits/period.h"
#include "owner/owner_api.h"
#include "proxy/data_plane.h"
#include "server/openapi.h"
#include "server/usage_pruner.h"
#include "store/sqlite/sqlite_store.h"

namespace keygate::server {
namespace {

constexpr auto kBackgroundTick = std::chrono::milliseconds(500);
constexpr int64_t kIndexBatch = 10'000;

keys::KeyPrefixes PrefixesFrom(const config::Settings& s) {
  return keys::KeyPrefixes{s.service_key_prefix, s.provisioning_key_prefix, s.owner_key_prefix};
}

// Every kind of key's prefix: what the server masks in answers and logs, and what the data
// plane keeps from the providers.
std::vector<std::string> PrefixListFrom(const config::Settings& s) {
  return {s.service_key_prefix, s.provisioning_key_prefix, s.owner_key_prefix};
}

// Adds each prefix of `issued` not in `prefixes` yet.
void AddPrefixes(const std::vector<std::string>& issued, std::vector<std::string>& prefixes) {
  for (const std::string& prefix : issued) {
    if (!prefix.empty() && std::find(prefixes.begin(), prefixes.end(), prefix) == prefixes.end()) {
      prefixes.push_back(prefix);
    }
  }
}

http::ServerOptions ServerOptionsFrom(const config::Settings& s) {
  http::ServerOptions o;
  o.host = s.listen_host;
  o.port = s.listen_port;
  o.max_body_bytes = static_cast<size_t>(s.max_body_bytes);
  o.max_body_memory_bytes = static_cast<size_t>(s.max_body_memory_bytes);
  o.header_timeout_s = static_cast<int>(s.header_timeout_s);
  o.idle_timeout_s = static_cast<int>(s.idle_timeout_s);
  o.drain_timeout_s = static_cast<int>(s.drain_timeout_s);
  o.max_connections = static_cast<size_t>(s.max_connections);
  o.io_threads = static_cast<int>(s.io_threads);
  o.secret_prefixes = PrefixListFrom(s);
  return o;
}

proxy::DataPlaneOptions DataPlaneOptionsFrom(const config::Settings& s) {
  proxy::DataPlaneOptions o;
  o.guardrails.management_key_prefixes = {s.provisioning_key_prefix, s.owner_key_prefix};
  o.guardrails.failure_mode = s.failure_mode;
  o.usage_writer.flush_interval = std::chrono::milliseconds(s.usage_flush_interval_ms);
  o.key_prefixes = PrefixListFrom(s);
  return o;
}

}  // namespace

struct App::Parts {
  Parts(const config::Config& cfg, Logger& logger, const Clock& clk, SecretSource& rng,
        std::unique_ptr<store::SqliteStore> db)
      : config(cfg),
        log(logger),
        clock(clk),
        store(std::move(db)),
        keys(*store, *store, index, clock, rng, PrefixesFrom(cfg.settings), log),
        viewer(*store, clock),
        org_requests(cfg.settings.management_rps_per_org, cfg.settings.management_burst_per_org,
                     clock),
        management{keys, viewer, log, org_requests},
        server(ServerOptionsFrom(cfg.settings), router, log),
        pruner(UsagePrunerOptions{.retention_days = cfg.settings.usage_retention_days},
               [this](UnixMillis before, int64_t max_records) {
                 return store->PruneUsageBefore(before, max_records);
               },
               clock, log) {
    BuildDataPlane();
  }

  void RegisterRoutes();
  Status LoadIndex();
  Status RestoreWindows();
  void BackgroundLoop();
  void ApplyIndexChanges();
  void SaveWritesOfARemovedWal();
  void BuildDataPlane();
  Result<keys::IndexedCredential> FindManagementCredential(const std::string& digest);
  void ReloadCatalog();

  const config::Config config;
  Logger& log;
  const Clock& clock;
  std::unique_ptr<store::SqliteStore> store;
  bool files_removed_logged = false;  // the background thread's, as the next two
  bool removed_wal_saved = false;
  bool removed_wal_failure_logged = false;
  // The background thread's: KeyIndex::DropRevoked, first one interval after the start.
  std::optional<UnixMillis> next_revoked_drop;
  keys::KeyIndex index;
  keys::KeyService keys;
  dialects::KeyViewer viewer;
  limits::OrgRequestLimiter org_requests;
  dialects::ManagementContext management;
  std::string config_path;  // re-read on SIGHUP for the catalog; empty = no file
  std::vector<config::SettingOverride> overrides;  // the start's, for the reload's checks
  // The data plane sits before the server: calls in flight hold references to it until the
  // server's io_context is gone.
  std::unique_ptr<limits::LocalLimiter> limiter;
  std::unique_ptr<proxy::DataPlane> data_plane;
  http::Router router;
  http::Server server;
  UsagePruner pruner;  // the background thread's

  std::mutex background_mu;
  std::condition_variable background_cv;
  bool stopping = false;
  std::thread background;
};

void App::Parts::RegisterRoutes() {
  // A key put in a URL is masked in the 404 and 405 that quote it, as in the logs.
  router.SetSecretPrefixes(PrefixListFrom(config.settings));
  router.Add("GET", "/healthz",
             [](http::Request&, std::shared_ptr<http::Responder> responder) {
               responder->Send(dialects::Json(200, R"({"status":"ok"})"));
             },
             http::Execution::kInline);
  // spec §6: Prometheus text. Counts only, no key or secret, so it needs no credential (bind
  // keygate to an internal address, or filter /metrics at the edge, to keep it private).
  router.Add("GET", "/metrics",
             [this](http::Request&, std::shared_ptr<http::Responder> responder) {
               http::Response response;
               response.content_type = "text/plain; version=0.0.4; charset=utf-8";
               server.AppendMetrics(&response.body);
               data_plane->AppendMetrics(&response.body);
               response.body.append(
                   "# HELP keygate_service_keys Service keys the data plane can authenticate "
                   "now (live, rotated ones in their grace period included).\n"
                   "# TYPE keygate_service_keys gauge\nkeygate_service_keys ");
               const auto counted = index.CountServiceKeys(clock.NowMs());
               response.body.append(std::to_string(counted.live))
                   .append(
                       "\n# HELP keygate_index_service_key_records Service-key records the "
                       "in-memory index holds: those and the keys revoked in the last minute "
                       "or two.\n# TYPE keygate_index_service_key_records gauge\n"
                       "keygate_index_service_key_records ")
                   .append(std::to_string(counted.records))
                   .append("\n# HELP keygate_log_lines_dropped_total Log lines dropped because "
                           "the log's reader stopped reading and the backlog was full.\n"
                           "# TYPE keygate_log_lines_dropped_total counter\n"
                           "keygate_log_lines_dropped_total ")
                   .append(std::to_string(log.dropped()))
                   .push_back('\n');
               responder->Send(std::move(response));
             });  // blocking pool: counting the index walks every key
  router.Add("GET", "/readyz", [this](http::Request&, std::shared_ptr<http::Responder> responder) {
    auto orgs = store->ListOrganizations();
    if (!orgs.ok()) {
      return responder->Send(dialects::Json(503, R"({"status":"unavailable","store":"down"})"));
    }
    if (Status files = store->CheckFilesInPlace(); !files.ok()) {
      // Logged once, by the background loop (a probe every second would repeat it).
      return responder->Send(
          dialects::Json(503, R"({"status":"unavailable","store":"files removed"})"));
    }
    if (config.settings.failure_mode == config::FailureMode::kDeny &&
        data_plane->UsageStalled()) {
      // It answers reads but takes no usage, and model calls are refused. (With failure_mode
      // allow they go on, unrecorded: this replica stays in rotation, as the operator chose.)
      return responder->Send(dialects::Json(
          503, R"({"status":"unavailable","store":"not taking usage records"})"));
    }
    responder->Send(dialects::Json(200, R"({"status":"ready","store":"ok"})"));
  });
  // The management dialects: one line each (a new dialect is one folder and one line here).
  dialects::fastrouter::Register(router, management);
  proxy::Register(router, *data_plane);
  dialects::openrouter::Register(router, management);
  dialects::routerkeys::Register(router, management);
  owner::Register(router, management);
  RegisterOpenApi(router);
}

void App::Parts::BuildDataPlane() {
  // Budgets are seeded from the usage since the period's start: what the store committed and
  // what the usage writer holds yet (decision 0007).
  limiter = std::make_unique<limits::LocalLimiter>(
      [this](const std::string& lineage, UnixMillis period_start) -> Result<MicroUsd> {
        auto read_store = [&] {
          return store->SpendSince(lineage, limits::DayIndex(period_start));
        };
        if (data_plane == nullptr) return read_store();
        return data_plane->usage_writer().SpendSince(lineage, period_start, read_store);
      });
  proxy::DataPlaneDeps deps{
      index,
      *limiter,
      *store,
      clock,
      log,
      [this](const std::string& hash, UnixMillis at) { keys.NoteUsed(hash, at); },
      [this](UnixMillis now) { limiter->EvictIdle(now); },
      [this](const std::string& digest) { return FindManagementCredential(digest); }};
  proxy::DataPlaneOptions options = DataPlaneOptionsFrom(config.settings);
  // Credentials issued under an earlier prefix: a provisioning key or owner credential is
  // refused as one (403) on the data plane too, not as an unknown key (401); and no key of any
  // kind goes upstream in a forwarded header.
  if (auto issued = store->KeyPrefixesIssued(); issued.ok()) {
    AddPrefixes(issued->management, options.guardrails.management_key_prefixes);
    AddPrefixes(issued->management, options.key_prefixes);
    AddPrefixes(issued->service, options.key_prefixes);
  } else {
    log.Warn("index.prefixes_unread", {{"error", issued.error().message}});
  }
  data_plane = std::make_unique<proxy::DataPlane>(std::move(deps), std::move(options),
                                                  config.catalog, &std::getenv);
  viewer.SetLiveUsage(&data_plane->live_usage());
}

// For the data plane: a management-prefixed secret this process has not indexed (made by the
// CLI in another process) is looked up in the store, as KeyService::Authenticate does.
Result<keys::IndexedCredential> App::Parts::FindManagementCredential(const std::string& digest) {
  keys::IndexedCredential found;
  if (auto pk = store->GetProvisioningKey(digest); pk.ok()) {
    found.kind = keys::CredentialKind::kProvisioningKey;
    found.org_id = pk->org_id;
    found.disabled = pk->disabled;
    return found;
  } else if (pk.error().code != ErrorCode::kNotFound) {
    return pk.error();
  }
  if (auto owner = store->GetOwnerCredential(digest); owner.ok()) {
    found.kind = keys::CredentialKind::kOwner;
    found.org_id = owner->org_id;
    return found;
  } else if (owner.error().code != ErrorCode::kNotFound) {
    return owner.error();
  }
  return found;
}

// SIGHUP (on the server's blocking pool): the catalog is re-read; connections stay up.
void App::Parts::ReloadCatalog() {
  if (config_path.empty()) {
    log.Warn("config.reload_skipped", {{"reason", "keygate was started without --config"}});
    return;
  }
  auto catalog = config::LoadCatalog(config_path, &std::getenv, overrides);
  Status status = catalog.ok() ? data_plane->ReloadCatalog(*catalog) : Status(catalog.error());
  if (!status.ok()) log.Error("config.reload_failed", {{"error", status.error().message}});
}

Status App::Parts::LoadIndex() {
  auto live = store->AllLiveServiceKeys(clock.NowMs());
  if (!live.ok()) return live.error();
  for (const keys::ServiceKey& key : *live) index.UpsertServiceKey(key);
  log.Info("index.loaded", {{"service_keys", static_cast<int64_t>(live->size())}});
  return OkStatus();
}

// spec §3: no rolling window holds more than its RPM or TPM, across a restart too. The calls
// of the last window, as the store recorded them, go back into the limiter before serving.
// First, the calls a crashed process left in flight (decision 0011, "A crash") are charged at
// their reservation, as usage records of status 0: what they could have cost at most.
// (Calls younger than a flush interval when the previous process died are lost with it.)
Status App::Parts::RestoreWindows() {
  auto open = store->OpenCalls();
  if (!open.ok()) return open.error();
  if (!open->empty()) {
    std::vector<store::UsageRecord> records;
    std::vector<uint64_t> ids;
    MicroUsd cost = 0;
    for (store::OpenCall& call : *open) {
      cost += call.call.cost;
      ids.push_back(call.id);
      records.push_back(std::move(call.call));
    }
    // Charged, then forgotten: a crash between the two charges them again, never not at all.
    KG_RETURN_IF_ERROR(store->AppendUsage(records));
    KG_RETURN_IF_ERROR(store->UpdateOpenCalls({}, ids));
    log.Warn("usage.open_calls_charged", {{"calls", static_cast<uint64_t>(records.size())},
                                          {"cost_micro_usd", cost},
                                          {"why", "in flight when the previous process ended"}});
  }
  const UnixMillis now = clock.NowMs();
  int64_t calls = 0;
  KG_RETURN_IF_ERROR(store->ForEachCallBetween(
      now - limiter->window_ms(), now, [this, &calls](const store::CallInWindow& call) {
        limiter->RestoreCall(call.lineage, call.at, call.tokens);
        ++calls;
      }));
  log.Info("limits.windows_restored", {{"calls", calls}});
  return OkStatus();
}

// Writes of other replicas (and of the CLI) reach this one's index within a tick.
void App::Parts::ApplyIndexChanges() {
  auto changed = store->ServiceKeysChangedSince(index.max_version(), kIndexBatch);
  if (!changed.ok()) {
    log.Warn("index.refresh_failed", {{"error", changed.error().message}});
    return;
  }
  const UnixMillis now = clock.NowMs();
  for (const keys::ServiceKey& key : *changed) index.ApplyStoredChange(key, now);
}

// The removed WAL lives on while keygate holds it open: a crash before a clean stop would lose
// the writes acknowledged since the last checkpoint (audit X). Copied into the database file
// at once, they are safe from then on (a removed database file keeps nothing, whatever is done).
// The WAL is emptied too, so that one left at its path is never replayed onto another file.
void App::Parts::SaveWritesOfARemovedWal() {
  auto checkpoint = store->CheckpointNow();
  if (!checkpoint.ok()) {
    if (!removed_wal_failure_logged) {
      log.Error("store.checkpoint_failed", {{"error", checkpoint.error().message}});  // once
      removed_wal_failure_logged = true;
    }
    return;
  }
  removed_wal_saved = true;
  log.Info("store.checkpointed", {{"wal_frames", checkpoint->wal_frames},
                                  {"copied_frames", checkpoint->copied_frames}});
}

void App::Parts::BackgroundLoop() {
  NameThisThread("kg-index");
  std::unique_lock lock(background_mu);
  while (!stopping) {
    background_cv.wait_for(lock, kBackgroundTick);
    lock.unlock();
    ApplyIndexChanges();
    if (Status files = store->CheckFilesInPlace(); !files.ok() && !files_removed_logged) {
      log.Error("store.files_removed", {{"error", files.error().message}});  // once
      files_removed_logged = true;
    }
    // Again at every tick until it succeeds (a reader's snapshot may hold it off).
    if (files_removed_logged && !removed_wal_saved) SaveWritesOfARemovedWal();
    if (auto flushed = keys.FlushLastUsed(); !flushed.ok()) {
      log.Warn("last_used.flush_failed", {{"error", flushed.error().message}});
    }
    pruner.Tick();
    // A scan of the whole index: once per kRevokedKeptMs, so that it holds the keys revoked in
    // the last two minutes at most.
    if (const UnixMillis now = clock.NowMs(); !next_revoked_drop || now >= *next_revoked_drop) {
      if (next_revoked_drop) index.DropRevoked(now);
      next_revoked_drop = now + keys::KeyIndex::kRevokedKeptMs;
    }
    lock.lock();
  }
}

Result<std::unique_ptr<App>> App::Open(const config::Config& config, Logger& log,
                                       const Clock& clock, SecretSource& secrets,
                                       std::string config_path,
                                       std::vector<config::SettingOverride> overrides) {
  // LoadConfig refuses what ValidateSettings refuses, naming the file's line; a Config built
  // otherwise is held to the same rules (a PostgreSQL store or a Redis URL must never quietly
  // become this process's SQLite store and windows).
  KG_RETURN_IF_ERROR(config::ValidateSettings(config.settings));
  const std::string path = config.settings.SqlitePath();
  store::SqliteOptions options;
  options.max_service_keys_per_org = config.settings.max_service_keys_per_org;
  auto db = store::SqliteStore::Open(path, options);  // makes its directory
  if (!db.ok()) return db.error();
  auto parts = std::make_unique<Parts>(config, log, clock, secrets, std::move(*db));
  parts->config_path = std::move(config_path);
  parts->overrides = std::move(overrides);
  parts->RegisterRoutes();
  KG_RETURN_IF_ERROR(parts->LoadIndex());
  return std::unique_ptr<App>(new App(std::move(parts)));
}

App::App(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

App::~App() {
  Stop();
  if (parts_->background.joinable()) parts_->background.join();
}

Result<uint16_t> App::Start() {
  // Before the first call is accepted (and only to serve: the CLI opens the App too).
  if (Status restored = parts_->RestoreWindows(); !restored.ok()) {
    return Error{restored.error().code,
                 "store " + parts_->config.settings.SqlitePath() +
                     ": charging the calls a previous process left in flight and refilling the "
                     "rate windows: " + restored.error().message,
                 {}, {}};
  }
  auto port = parts_->server.Start();
  if (!port.ok()) return port;
  if (parts_->config.settings.usage_retention_days == 0) {
    parts_->log.Info("usage.retention", {{"retention_days", int64_t{0}},
                                         {"note", "every usage record is kept (100-130 bytes "
                                                  "a call); usage.retention_days bounds them"}});
  }
  parts_->background = std::thread([this] { parts_->BackgroundLoop(); });
  parts_->data_plane->Start();
  parts_->server.OnSighup([this] { parts_->ReloadCatalog(); });
  return port;
}

Status App::Run() {
  const Status served = parts_->server.Run();
  parts_->data_plane->Shutdown();  // flushes usage; closes idle upstream connections
  {
    std::lock_guard lock(parts_->background_mu);
    parts_->stopping = true;
  }
  parts_->background_cv.notify_all();
  if (parts_->background.joinable()) parts_->background.join();
  if (auto flushed = parts_->keys.FlushLastUsed(); !flushed.ok()) {
    parts_->log.Warn("last_used.flush_failed", {{"error", flushed.error().message}});
  }
  const proxy::UnstoredUsage lost = parts_->data_plane->usage_writer().LostAtStop();
  if (lost.records > 0 || lost.open_calls > 0) {
    // A supervisor must not take this stop for a clean one.
    return Error::Unavailable(
        "stopped without storing " + std::to_string(lost.records) + " usage records (" +
        FormatUsd(lost.cost) + " USD) and " + std::to_string(lost.open_calls) +
        " calls in flight: the store refused them; their keys' spend does not include them");
  }
  if (!served.ok()) return served;
  if (Status files = parts_->store->CheckFilesInPlace(); !files.ok()) {
    // Whatever this run stored went to files no restart reads: not a clean stop either.
    return Error::Unavailable("stopped with the store's files gone: " + files.error().message);
  }
  parts_->log.Info("server.stopped");
  return OkStatus();
}

void App::Stop() { parts_->server.Stop(); }

keys::KeyService& App::key_service() { return parts_->keys; }

}  // namespace keygate::server
