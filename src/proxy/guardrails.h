// The guardrail pipeline of one model call, in the order of spec §3, before a byte goes
// upstream:
//   1. authenticate the bearer key against the in-memory KeyIndex (no store round trip);
//   then read the body (bad input is 400, never forwarded);
//   2. model scope (403 model_not_allowed naming the allowed models), the model in the catalog
//      (404 model_not_found) and its context and output limits (400);
//   3. and 4. the Limiter: RPM, then TPM with the worst-case tokens, then the budget with the
//      worst-case cost (429 with Retry-After, 402 budget_exceeded).
// An admitted call leaves with a Ticket that its relay settles or releases exactly once.
//
// After Envoy's rate-limit filter: GuardrailOptions is parsed once from the settings; a
// Guardrails object holds the options and its clients (index, limiter, clock) and checks any
// number of calls.
//
// Thread safety: every method may be called from any thread concurrently (the KeyIndex and the
// Limiter are thread-safe; the rest is const).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "config/settings.h"
#include "http/handler.h"
#include "keys/key_index.h"
#include "keys/model.h"
#include "limits/limiter.h"
#include "proxy/openai_request.h"
#include "proxy/pricing.h"
#include "proxy/resolved_catalog.h"

namespace keygate::proxy {

struct GuardrailOptions {
  // Secrets with these prefixes may be management credentials (the configured provisioning and
  // owner prefixes, and those of credentials issued under earlier ones); see
  // Guardrails::IsUnindexedManagementKey.
  std::vector<std::string> management_key_prefixes = {"pk-kg-", "ok-kg-"};
  // What kStoreUnavailable turns into: 503 (kDeny), or a call forwarded unenforced (kAllow).
  config::FailureMode failure_mode = config::FailureMode::kDeny;
};

// A call that passed steps 1 and 2 and is ready for the limiter.
struct PreparedCall {
  std::shared_ptr<const keys::ServiceKey> key;
  std::shared_ptr<const ResolvedCatalog> catalog;  // keeps `model` alive
  const config::ModelConfig* model = nullptr;
  std::shared_ptr<const UpstreamTarget> target;
  ModelRequest request;
  WorstCase worst;
  // When the key was authenticated: the time the admission's windows and budget are judged at
  // too, unless the call waits in between (DataPlane reads the clock again then).
  UnixMillis now = 0;
};

// The rate-limit windows as the admission left them: the x-ratelimit-* headers of the answer
// (formatted only when the answer is written, so that the check itself stays cheap).
struct RateLimitFigures {
  std::optional<limits::WindowFigures> requests;
  std::optional<limits::WindowFigures> tokens;
  UnixMillis at = 0;  // the admission's time, which the reset durations count from

  // x-ratelimit-{limit,remaining,reset}-{requests,tokens}, as http::Response::header_lines
  // text; none without limits.
  std::string Lines() const;
};

// A call that passed every step: forward it, then settle or release `ticket`.
struct Admission {
  PreparedCall call;
  // Invalid only when the limiter could not answer and failure_mode is kAllow.
  limits::Ticket ticket;
  RateLimitFigures rate_limits;
};

// The outcome of a step: the call goes on, or `refusal` is the answer.
template <class T>
struct Verdict {
  std::optional<T> value;
  http::Response refusal;
  // Why, as the error's machine-readable code ("invalid_api_key", "rate_limit_exceeded"):
  // the label of the rejection counters. Set with `refusal`.
  std::string reason;

  bool ok() const { return value.has_value(); }
};

// `model` as an error message quotes it: whole up to 256 bytes, else its first 256 bytes and
// how long it was (audit R: a 100 KB model name came back whole in a 404).
std::string QuotedModel(std::string_view model);

// Returns true if `requested` ("provider/model") is within `allowed` (nullopt = every model):
// an entry "provider/model" matches with the provider compared case-insensitively and the
// model exactly; "provider/*" matches every model of the provider.
bool ModelAllowed(const std::optional<std::vector<std::string>>& allowed,
                  std::string_view requested);

// ModelAllowed for many models against one list: the list is read once into sets, so that each
// model costs one lookup or two, not a pass over the list (GET /v1/models with a key allowed a
// thousand models, over a catalog of a thousand). Same answers as ModelAllowed.
class ModelScope {
 public:
  explicit ModelScope(const std::optional<std::vector<std::string>>& allowed);
  bool Allows(std::string_view requested) const;

 private:
  bool every_model_ = false;
  std::unordered_set<std::string> every_model_of_;  // lower-cased providers of "provider/*"
  std::unordered_set<std::string> models_;          // lower-cased provider, '/', model
};

class Guardrails {
 public:
  // None of the references are owned; all must outlive this object.
  Guardrails(GuardrailOptions options, const keys::KeyIndex& index, limits::Limiter& limiter,
             const Clock& clock);

  // Step 1. Returns the service key behind `bearer_token`, or:
  //   Unauthenticated "missing_api_key" for an empty token; "invalid_api_key" for an unknown
  //   or revoked key (revoke_at <= now); "key_expired" from expire_key on; "key_disabled" for a
  //   disabled provisioning key (spec §2);
  //   PermissionDenied "key_disabled" for a disabled service key; "management_key_not_allowed"
  //   for a provisioning key or an owner credential in the index. A secret the index does not
  //   hold is unknown (401), whatever its prefix: see IsUnindexedManagementKey().
  // A rotated key in its grace period comes back with its successor's guardrails, and is
  // refused as its successor is: 401 once the successor is deleted or expired, 403 while it is
  // disabled (KeyIndex::Successor).
  Result<std::shared_ptr<const keys::ServiceKey>> Authenticate(std::string_view bearer_token) const;
  // The same at `now` (revocation and expiry are judged then).
  Result<std::shared_ptr<const keys::ServiceKey>> Authenticate(std::string_view bearer_token,
                                                               UnixMillis now) const;

  // True if `bearer_token` carries a provisioning-key or owner prefix but the index does not
  // hold it: a credential made by the CLI in another process since this one started, or an
  // unknown secret. Only the store can tell which (DataPlane asks it off the io thread, then
  // answers with ManagementCredentialRefusal()).
  bool IsUnindexedManagementKey(std::string_view bearer_token) const;

  // The refusal for a bearer key that names `found` (never a service key): 401 key_disabled for
  // a disabled provisioning key, 403 management_key_not_allowed for a provisioning key or an
  // owner credential, 401 invalid_api_key for none.
  static Error ManagementCredentialRefusal(const keys::IndexedCredential& found);

  // Step 1, then the body and step 2 for a call to `endpoint`. Returns the prepared call, or
  // the refusal: 401/403 from Authenticate, 400 for a body ParseChatRequest or
  // ParseEmbeddingsRequest refuses, 403 model_not_allowed, 404 model_not_found, 400
  // context_length_exceeded when the prompt certainly exceeds the model's context, 400 when
  // max_tokens exceeds the model's maximum output, 503 when the provider has no API key.
  Verdict<PreparedCall> Prepare(std::string_view bearer_token, Endpoint endpoint,
                                std::string_view body,
                                std::shared_ptr<const ResolvedCatalog> catalog) const;

  // Steps 3 and 4, judged at `call.now`. Returns the admission, or the refusal: 429 (RPM, TPM,
  // never fits), 402 budget_exceeded, 503 when the limiter cannot answer and failure_mode is
  // kDeny. May block on the store once per lineage and budget period (the Limiter's spend
  // loader), so callers on an io thread send a lineage's first call elsewhere (DataPlane does,
  // and sets call.now again there). REQUIRES: `call` comes from Prepare (which sets now).
  Verdict<Admission> Admit(PreparedCall call) const;

  // Prepare, then Admit: the whole check, for tests and benchmarks.
  Verdict<Admission> Check(std::string_view bearer_token, Endpoint endpoint,
                           std::string_view body,
                           std::shared_ptr<const ResolvedCatalog> catalog) const;

  const Clock& clock() const { return clock_; }

 private:
  Result<std::shared_ptr<const keys::ServiceKey>> HeldToSuccessor(
      std::shared_ptr<const keys::ServiceKey> key, UnixMillis now) const;
  Status CheckModel(const keys::ServiceKey& key, const ModelRequest& request,
                    const ResolvedCatalog& catalog, const ResolvedModel** resolved) const;

  const GuardrailOptions options_;
  const keys::KeyIndex& index_;
  limits::Limiter& limiter_;
  const Clock& clock_;
};

}  // namespace keygate::proxy
