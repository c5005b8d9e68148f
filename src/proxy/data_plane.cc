#include "proxy/data_plane.h"

#include <array>
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/json_writer.h"
#include "http/error_response.h"
#include "proxy/key_digest.h"

namespace keygate::proxy {
namespace {

// The path parameters of GET /v1/models/{model}/...: a model's id ("provider/vendor/model"),
// its slashes sent as path separators, in up to this many segments.
constexpr std::array<const char*, 8> kModelIdSegments = {"model", "s2", "s3", "s4",
                                                         "s5",    "s6", "s7", "s8"};
static_assert(kModelIdSegments.size() == config::kMaxModelIdSegments);

std::shared_ptr<const ResolvedCatalog> ResolveOrThrow(const config::Catalog& catalog,
                                                      const config::GetEnv& getenv) {
  auto resolved = ResolveCatalog(catalog, getenv);
  if (!resolved.ok()) throw std::invalid_argument(resolved.error().message);
  return *resolved;
}

// A budget is loaded per lineage and per interval: the `loaded_` entry (keys::LineageOf) and
// this bit of `key`'s.
unsigned IntervalBit(const keys::ServiceKey& key) {
  return 1u << static_cast<unsigned>(key.guardrails.reset_interval);
}

constexpr std::chrono::milliseconds kHousekeepingInterval{60'000};

// One model in OpenAI's shape, with the catalog's context and output limits.
void WriteModel(const config::ModelConfig& model, JsonWriter* w) {
  w->BeginObject().Key("id").String(model.id).Key("object").String("model");
  w->Key("created").Int(0).Key("owned_by").String(model.provider);
  w->Key("context_length").Int(model.context_tokens);
  w->Key("max_output_tokens").Int(model.max_output_tokens).EndObject();
}

}  // namespace

DataPlane::DataPlane(DataPlaneDeps deps, DataPlaneOptions options, const config::Catalog& catalog,
                     config::GetEnv getenv)
    : deps_(std::move(deps)),
      options_(std::move(options)),
      getenv_(std::move(getenv)),
      catalog_(ResolveOrThrow(catalog, getenv_)),
      guardrails_(options_.guardrails, deps_.index, deps_.limiter, deps_.clock),
      usage_writer_(deps_.usage_store, deps_.log,
                    [this] {
                      UsageWriterOptions writer = options_.usage_writer;
                      writer.task_interval = kHousekeepingInterval;
                      return writer;
                    }()),
      upstream_(options_.upstream),
      live_usage_(deps_.limiter, usage_writer_),
      environment_{deps_.limiter, usage_writer_, upstream_, deps_.clock, deps_.log,
                   options_.max_response_bytes, metrics_},
      cold_pool_(std::make_unique<boost::asio::thread_pool>(
          static_cast<size_t>(std::max(options_.cold_path_threads, 1)))) {}

void DataPlane::WarnUnusableProviders(const ResolvedCatalog& catalog) {
  for (const auto& [name, target] : catalog.targets) {
    if (target->unusable_reason.empty()) continue;
    deps_.log.Warn("proxy.provider_unusable", {{"provider", target->provider},
                                               {"reason", target->unusable_reason},
                                               {"effect", "its model calls are refused 503"}});
  }
}

DataPlane::~DataPlane() { Shutdown(); }

void DataPlane::Register(http::Router& router) {
  router.Add(
      "POST", "/v1/chat/completions",
      [this](http::Request& request, std::shared_ptr<http::Responder> responder) {
        HandleCall(Endpoint::kChatCompletions, request, std::move(responder));
      },
      http::Execution::kInline);
  router.Add(
      "POST", "/v1/embeddings",
      [this](http::Request& request, std::shared_ptr<http::Responder> responder) {
        HandleCall(Endpoint::kEmbeddings, request, std::move(responder));
      },
      http::Execution::kInline);
  // The list, and one model: its id's slashes are path separators as the SDKs send them
  // (up to kModelIdSegments segments), or %2F inside one segment; counted as one route,
  // `/v1/models/{model}` (audit DD: as `/v1/models/{model}/{s2}`, the name of no route).
  std::string pattern = "/v1/models";
  for (size_t segments = 0; segments <= kModelIdSegments.size(); ++segments) {
    if (segments > 0) pattern.append("/{").append(kModelIdSegments[segments - 1]).append("}");
    router.Add(
        "GET", pattern,
        [this](http::Request& request, std::shared_ptr<http::Responder> responder) {
          HandleModels(request, std::move(responder));
        },
        http::Execution::kInline, segments > 0 ? "/v1/models/{model}" : "");
  }
}

void Register(http::Router& router, DataPlane& data_plane) { data_plane.Register(router); }

void DataPlane::Start() {
  // When serving only: the CLI's commands build a data plane too, and serve no model call.
  WarnUnusableProviders(*catalog_.load());
  usage_writer_.Start([this] { Housekeeping(); });
}

void DataPlane::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    cold_pool_->join();
    usage_writer_.Stop();
    upstream_.CloseIdle();
  });
}

Status DataPlane::ReloadCatalog(const config::Catalog& catalog) {
  const size_t models_in_use = catalog_.load()->catalog.models.size();
  if (catalog.models.empty() && models_in_use > 0) {
    // Most likely a file caught mid-write, or emptied by mistake: taking it would make every
    // model call a 404 at once.
    return Error::InvalidArgument("the reloaded config declares no models; keeping the " +
                                  std::to_string(models_in_use) +
                                  " in use (to remove them all, restart keygate)");
  }
  auto resolved = ResolveCatalog(catalog, getenv_);
  if (!resolved.ok()) return resolved.error();
  catalog_.store(*resolved);
  WarnUnusableProviders(**resolved);
  deps_.log.Info("proxy.catalog_reloaded",
                 {{"providers", static_cast<uint64_t>(catalog.providers.size())},
                  {"models", static_cast<uint64_t>(catalog.models.size())},
                  {"note", "providers and models only; other settings take a restart"}});
  return OkStatus();
}

void DataPlane::HandleCall(Endpoint endpoint, http::Request& request,
                           std::shared_ptr<http::Responder> responder) {
  if (request.io == nullptr) {
    return responder->Send(
        http::ErrorResponse(Error::Internal("data plane call without a connection io_context")));
  }
  boost::asio::io_context& io = *request.io;
  if (AnsweredFromStore(request, responder)) return;
  Verdict<PreparedCall> prepared =
      guardrails_.Prepare(request.BearerToken(), endpoint, request.body, catalog_.load());
  if (!prepared.ok()) {
    metrics_.CountRejection(prepared.reason);
    return responder->Send(std::move(prepared.refusal));
  }
  PreparedCall& call = *prepared.value;
  if (deps_.note_used) deps_.note_used(call.key->hash, call.now);
  // The token is a view into a header's string, which the headers' move leaves in place.
  const std::string_view caller_secret = request.BearerToken();
  http::HeaderList forward =
      ForwardableHeaders(std::move(request.headers), caller_secret, options_.key_prefixes);
  if (!MayReadStore(*call.key)) {
    return AdmitAndForward(std::move(call), std::move(forward), io, std::move(responder));
  }
  // The Limiter may read this lineage's spend from the store: never on an io thread.
  boost::asio::post(*cold_pool_, [this, call = std::move(call), forward = std::move(forward), &io,
                                  responder = std::move(responder)]() mutable {
    call.now = deps_.clock.NowMs();  // judged when admitted, after the wait for a thread
    AdmitAndForward(std::move(call), std::move(forward), io, std::move(responder));
  });
}

bool DataPlane::UsageStalled() const {
  return usage_writer_.Lag(std::chrono::steady_clock::now()) > kMaxUsageLag;
}

void DataPlane::AppendMetrics(std::string* out) const {
  metrics_.AppendPrometheus(out);
  const double lag = std::chrono::duration<double>(
                         usage_writer_.Lag(std::chrono::steady_clock::now()))
                         .count();
  out->append(
      "# HELP keygate_usage_lag_seconds How long the oldest usage record not yet committed "
      "has waited for the store (0 when the store keeps up; model calls are refused past " +
      std::to_string(kMaxUsageLag.count()) +
      " ms with failure_mode deny).\n# TYPE keygate_usage_lag_seconds gauge\n"
      "keygate_usage_lag_seconds " +
      std::to_string(lag) +
      "\n# HELP keygate_usage_pending_records Usage records not yet committed to the store.\n"
      "# TYPE keygate_usage_pending_records gauge\nkeygate_usage_pending_records " +
      std::to_string(usage_writer_.pending()) + "\n");
}

void DataPlane::AdmitAndForward(PreparedCall call, http::HeaderList forward_headers,
                                boost::asio::io_context& io,
                                std::shared_ptr<http::Responder> responder) {
  if (options_.guardrails.failure_mode == config::FailureMode::kDeny && UsageStalled()) {
    // Its spend could be recorded nowhere a restart would find it (see kMaxUsageLag).
    metrics_.CountRejection("usage_unrecorded");
    http::Response refusal = http::ErrorResponse(
        Error{ErrorCode::kUnavailable,
              "Usage cannot be recorded: the store has not taken usage records for over " +
                  std::to_string(kMaxUsageLag.count()) +
                  " ms, so model calls are refused until it does (failure_mode deny).",
              "", "usage_unrecorded"});
    refusal.headers.emplace_back("Retry-After", "1");
    return responder->Send(std::move(refusal));
  }
  const std::shared_ptr<const keys::ServiceKey> key = call.key;
  Verdict<Admission> admitted = guardrails_.Admit(std::move(call));
  // Any answer but 503 means the Limiter holds the lineage's spend now.
  if (admitted.ok() || admitted.refusal.status != HttpStatusFor(ErrorCode::kUnavailable)) {
    MarkLoaded(*key);
  }
  if (!admitted.ok()) {
    metrics_.CountRejection(admitted.reason);
    return responder->Send(std::move(admitted.refusal));
  }
  auto model_call = std::make_shared<ModelCall>(environment_, std::move(*admitted.value),
                                                std::move(responder), std::move(forward_headers));
  model_call->Start(io);
}

bool DataPlane::AnsweredFromStore(const http::Request& request,
                                  std::shared_ptr<http::Responder>& responder) {
  const std::string_view token = request.BearerToken();
  if (!guardrails_.IsUnindexedManagementKey(token)) return false;
  boost::asio::post(*cold_pool_, [this, digest = KeyDigestHex(token),
                                  responder = std::move(responder)] {
    keys::IndexedCredential found;
    if (deps_.find_management_credential) {
      Result<keys::IndexedCredential> stored = deps_.find_management_credential(digest);
      if (!stored.ok()) {
        deps_.log.Warn("proxy.credential_lookup_failed", {{"error", stored.error().message}});
        return responder->Send(http::ErrorResponse(
            Error::Unavailable("The key store is unavailable; retry in a moment.")));
      }
      found = *stored;
    }
    const Error refusal = Guardrails::ManagementCredentialRefusal(found);
    metrics_.CountRejection(ReasonOf(refusal));
    responder->Send(http::ErrorResponse(refusal));
  });
  return true;
}

bool DataPlane::IsLoaded(const keys::ServiceKey& key) {
  std::shared_lock<std::shared_mutex> lock(loaded_mu_);
  const auto it = loaded_.find(keys::LineageOf(key));
  return it != loaded_.end() && (it->second & IntervalBit(key)) != 0;
}

bool DataPlane::MayReadStore(const keys::ServiceKey& key) {
  return key.guardrails.credit_limit.has_value() && !IsLoaded(key);
}

void DataPlane::MarkLoaded(const keys::ServiceKey& key) {
  if (!key.guardrails.credit_limit.has_value() || IsLoaded(key)) return;
  std::unique_lock<std::shared_mutex> lock(loaded_mu_);
  loaded_[keys::LineageOf(key)] |= IntervalBit(key);
}

void DataPlane::Housekeeping() {
  if (!deps_.evict_idle) return;
  // Forget first, evict second: a lineage evicted now is routed to the cold path when it
  // comes back, since its spend must then be read again.
  {
    std::unique_lock<std::shared_mutex> lock(loaded_mu_);
    loaded_.clear();
  }
  deps_.evict_idle(deps_.clock.NowMs());
}

void DataPlane::HandleModels(http::Request& request, std::shared_ptr<http::Responder> responder) {
  if (AnsweredFromStore(request, responder)) return;
  auto key = guardrails_.Authenticate(request.BearerToken());
  if (!key.ok()) {
    metrics_.CountRejection(ReasonOf(key.error()));
    return responder->Send(http::ErrorResponse(key.error()));
  }
  const std::shared_ptr<const ResolvedCatalog> catalog = catalog_.load();
  JsonWriter w;
  const std::string_view wanted = request.PathParam("model");
  if (wanted.empty()) {
    w.BeginObject().Key("object").String("list").Key("data").BeginArray();
    const ModelScope scope((*key)->guardrails.models);
    for (const config::ModelConfig& model : catalog->catalog.models) {
      if (scope.Allows(model.id)) WriteModel(model, &w);
    }
    w.EndArray().EndObject();
  } else {
    // GET /v1/models/{model}: the SDKs' retrieve. A model this key may not call is as unknown
    // to it as one the catalog lacks.
    std::string id(wanted);
    for (size_t i = 1; i < kModelIdSegments.size(); ++i) {
      const std::string_view part = request.PathParam(kModelIdSegments[i]);
      if (!part.empty()) id.append("/").append(part);
    }
    const ResolvedModel* model = catalog->Find(id);
    if (model == nullptr || !ModelAllowed((*key)->guardrails.models, model->config->id)) {
      return responder->Send(http::ErrorResponse(
          Error{ErrorCode::kNotFound,
                "The model " + QuotedModel(id) + " does not exist or this key may not call it.",
                "model",
                "model_not_found"}));
    }
    WriteModel(*model->config, &w);
  }
  http::Response response = http::JsonResponse(200, w.Take());
  // spec §3: every successful answer carries the key's x-ratelimit-* (taking nothing here).
  response.header_lines = RateLimitLinesFor(deps_.limiter, **key, deps_.clock.NowMs());
  responder->Send(std::move(response));
}

}  // namespace keygate::proxy
