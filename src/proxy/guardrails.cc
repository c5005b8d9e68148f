#include "proxy/guardrails.h"

#include <algorithm>
#include <utility>

#include "common/ascii.h"
#include "http/error_response.h"
#include "keys/secrets.h"
#include "proxy/key_digest.h"
#include "proxy/limit_answers.h"

namespace keygate::proxy {
namespace {

Error IncorrectKey() {
  return Error::Unauthenticated("Incorrect API key provided.", "invalid_api_key");
}

// spec §3 step 1, in its order, for a service key the index holds: revoked 401, expired 401,
// disabled 403.
Status RefuseIfUnusable(const keys::ServiceKey& key, UnixMillis now) {
  if (keys::RevokedAt(key, now)) return IncorrectKey();
  if (key.guardrails.expires_at && *key.guardrails.expires_at <= now) {
    return Error::Unauthenticated("This API key has expired.", "key_expired");
  }
  if (key.disabled) return Error::PermissionDenied("This API key is disabled.", "key_disabled");
  return OkStatus();
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return !prefix.empty() && s.substr(0, prefix.size()) == prefix;
}

// Splits "provider/model" at the first '/'; no '/' leaves the provider empty.
std::pair<std::string_view, std::string_view> SplitModel(std::string_view id) {
  const size_t slash = id.find('/');
  if (slash == std::string_view::npos) return {{}, id};
  return {id.substr(0, slash), id.substr(slash + 1)};
}

Error ManagementKeyRefused() {
  return Error::PermissionDenied(
      "provisioning keys and owner credentials manage keys; they cannot call models. Use a "
      "service key.",
      "management_key_not_allowed");
}

// The allowed models as a refusal names them (spec §3 step 2): all of them up to a hundred,
// then how many more (a key may be allowed a thousand, and the refusal goes out on every call
// it makes outside them: 30 KB each).
std::string AllowedList(const std::vector<std::string>& allowed) {
  constexpr size_t kNamed = 100;
  if (allowed.empty()) return "none";
  std::string out;
  for (size_t i = 0; i < allowed.size() && i < kNamed; ++i) {
    if (!out.empty()) out += ", ";
    out += allowed[i];
  }
  if (allowed.size() > kNamed) {
    out += " and " + std::to_string(allowed.size() - kNamed) + " more";
  }
  return out;
}

// The form of `id` that ModelScope compares: its provider part lower-cased, '/', its model part
// (an id without '/' has an empty provider part, as SplitModel reads it).
std::string ScopeKey(std::string_view provider, std::string_view model) {
  std::string key = AsciiLowered(provider);
  key += '/';
  key += model;
  return key;
}

template <class T>
Verdict<T> Refuse(const Error& error) {
  return Verdict<T>{std::nullopt, http::ErrorResponse(error), std::string(ReasonOf(error))};
}

}  // namespace

std::string QuotedModel(std::string_view model) {
  constexpr size_t kQuotedBytes = 256;
  size_t cut = std::min(model.size(), kQuotedBytes);
  // Not inside a UTF-8 character (audit S: its first bytes showed as U+FFFD).
  const auto continues = [&](size_t at) {
    return (static_cast<unsigned char>(model[at]) & 0xC0) == 0x80;
  };
  while (cut > 0 && cut < model.size() && continues(cut)) --cut;
  std::string out = "'";
  out.append(model.substr(0, cut));
  out.append(model.size() > kQuotedBytes ? "...' (" + std::to_string(model.size()) + " bytes)"
                                         : "'");
  return out;
}

bool ModelAllowed(const std::optional<std::vector<std::string>>& allowed,
                  std::string_view requested) {
  if (!allowed.has_value()) return true;
  const auto [provider, model] = SplitModel(requested);
  for (const std::string& entry : *allowed) {
    const auto [allowed_provider, allowed_model] = SplitModel(entry);
    if (!AsciiIEquals(provider, allowed_provider)) continue;
    if (allowed_model == "*" || allowed_model == model) return true;
  }
  return false;
}

ModelScope::ModelScope(const std::optional<std::vector<std::string>>& allowed) {
  if (!allowed.has_value()) {
    every_model_ = true;
    return;
  }
  for (const std::string& entry : *allowed) {
    const auto [provider, model] = SplitModel(entry);
    if (model == "*") {
      every_model_of_.insert(AsciiLowered(provider));
    } else {
      models_.insert(ScopeKey(provider, model));
    }
  }
}

bool ModelScope::Allows(std::string_view requested) const {
  if (every_model_) return true;
  const auto [provider, model] = SplitModel(requested);
  return every_model_of_.count(AsciiLowered(provider)) != 0 ||
         models_.count(ScopeKey(provider, model)) != 0;
}

Guardrails::Guardrails(GuardrailOptions options, const keys::KeyIndex& index,
                       limits::Limiter& limiter, const Clock& clock)
    : options_(std::move(options)), index_(index), limiter_(limiter), clock_(clock) {}

Result<std::shared_ptr<const keys::ServiceKey>> Guardrails::Authenticate(
    std::string_view bearer_token) const {
  return Authenticate(bearer_token, clock_.NowMs());
}

Result<std::shared_ptr<const keys::ServiceKey>> Guardrails::Authenticate(
    std::string_view bearer_token, UnixMillis now) const {
  if (bearer_token.empty()) {
    return Error::Unauthenticated(
        "You didn't provide an API key. Send Authorization: Bearer <service key>.",
        "missing_api_key");
  }
  const KeyDigest key_digest = DigestKey(bearer_token);
  const std::string_view digest = key_digest.view();
  keys::IndexedCredential found = index_.Find(digest);
  if (found.kind != keys::CredentialKind::kServiceKey) return ManagementCredentialRefusal(found);
  std::shared_ptr<const keys::ServiceKey> key = std::move(found.service_key);
  // spec §3 step 1, in its order: unknown (or revoked) 401, expired 401, disabled 403.
  if (!keys::ConstantTimeEquals(key->hash, digest)) return IncorrectKey();
  KG_RETURN_IF_ERROR(RefuseIfUnusable(*key, now));
  if (key->revoke_at.has_value()) return HeldToSuccessor(std::move(key), now);
  return key;
}

// A rotated key in its grace period stands in for its successor (decision 0002): the two share
// one budget and one pair of windows, so its calls are held to the successor's guardrails, and
// refused once the successor is deleted, disabled or expired. Its own record still decides
// whether it is revoked, expired or disabled itself (checked before). The record returned is
// the rotated key's (its hash makes the usage record), with the successor's guardrails.
Result<std::shared_ptr<const keys::ServiceKey>> Guardrails::HeldToSuccessor(
    std::shared_ptr<const keys::ServiceKey> key, UnixMillis now) const {
  const std::shared_ptr<const keys::ServiceKey> successor =
      index_.Successor(keys::LineageOf(*key));
  if (successor == nullptr) return IncorrectKey();
  KG_RETURN_IF_ERROR(RefuseIfUnusable(*successor, now));
  auto held = std::make_shared<keys::ServiceKey>(*key);
  held->guardrails = successor->guardrails;
  return std::shared_ptr<const keys::ServiceKey>(std::move(held));
}

Status Guardrails::CheckModel(const keys::ServiceKey& key, const ModelRequest& request,
                              const ResolvedCatalog& catalog,
                              const ResolvedModel** resolved) const {
  // spec §3 step 2.
  if (!ModelAllowed(key.guardrails.models, request.model)) {
    Error error = Error::PermissionDenied("This key may not call model " +
                                              QuotedModel(request.model) +
                                              ". Allowed models: " +
                                              AllowedList(*key.guardrails.models) + ".",
                                          "model_not_allowed");
    error.param = "model";
    return error;
  }
  *resolved = catalog.Find(request.model);
  if (*resolved == nullptr) {
    return Error{ErrorCode::kNotFound,
                 "The model " + QuotedModel(request.model) +
                     " does not exist in this gateway's catalog.",
                 "model", "model_not_found"};
  }
  const config::ModelConfig* model = (*resolved)->config;
  const int64_t prompt_floor = LargestInputLowerBound(request.prompt);
  if (prompt_floor > model->context_tokens) {
    return Error{ErrorCode::kInvalidArgument,
                 "This model's maximum context length is " +
                     std::to_string(model->context_tokens) + " tokens, but the input has at " +
                     "least " + std::to_string(prompt_floor) + " tokens.",
                 request.endpoint == Endpoint::kEmbeddings ? "input" : "messages",
                 "context_length_exceeded"};
  }
  const int64_t max_output = model->max_output_tokens;
  if (request.max_completion_tokens && max_output > 0 && *request.max_completion_tokens > max_output) {
    return Error::InvalidArgument(std::string(request.cap_member) + " is too large: " +
                                      std::to_string(*request.max_completion_tokens) +
                                      ". This model supports at most " +
                                      std::to_string(max_output) + " completion tokens.",
                                  std::string(request.cap_member));
  }
  return OkStatus();
}

Verdict<PreparedCall> Guardrails::Prepare(std::string_view bearer_token, Endpoint endpoint,
                                          std::string_view body,
                                          std::shared_ptr<const ResolvedCatalog> catalog) const {
  const UnixMillis now = clock_.NowMs();
  auto key = Authenticate(bearer_token, now);
  if (!key.ok()) return Refuse<PreparedCall>(key.error());
  auto request =
      endpoint == Endpoint::kEmbeddings ? ParseEmbeddingsRequest(body) : ParseChatRequest(body);
  if (!request.ok()) return Refuse<PreparedCall>(request.error());
  const ResolvedModel* resolved = nullptr;
  if (Status status = CheckModel(**key, *request, *catalog, &resolved); !status.ok()) {
    return Refuse<PreparedCall>(status.error());
  }
  const config::ModelConfig& model = *resolved->config;
  if (resolved->target == nullptr || !resolved->target->unusable_reason.empty()) {
    return Refuse<PreparedCall>(
        Error::Unavailable(resolved->target ? resolved->target->unusable_reason
                                            : "the provider of " + model.id + " is not declared"));
  }
  PreparedCall call;
  call.now = now;
  call.worst = WorstCaseOf(model, *request);
  call.key = std::move(*key);
  call.catalog = std::move(catalog);
  call.model = &model;
  call.target = resolved->target;
  call.request = std::move(*request);
  return Verdict<PreparedCall>{std::move(call), {}, {}};
}

Verdict<Admission> Guardrails::Admit(PreparedCall call) const {
  const keys::ServiceKey& key = *call.key;
  limits::AdmitRequest ask;
  ask.lineage = keys::LineageOf(key);
  ask.now = call.now;
  ask.rpm_limit = key.guardrails.rpm_limit;
  ask.tpm_limit = key.guardrails.tpm_limit;
  ask.credit_limit = key.guardrails.credit_limit;
  ask.reset_interval = key.guardrails.reset_interval;
  ask.worst_case_tokens = call.worst.tokens();
  ask.worst_case_cost = call.worst.cost;
  // spec §3 steps 3 and 4: RPM, then TPM, then budget, all or nothing.
  limits::Decision decision = limiter_.Admit(ask);
  switch (decision.outcome) {
    case limits::LimitOutcome::kAllow:
      break;
    case limits::LimitOutcome::kRejectRpm:
    case limits::LimitOutcome::kRejectTpm:
    case limits::LimitOutcome::kRejectTpmNeverFits:
      return {std::nullopt,
              RateLimitedResponse(decision, call.worst,
                                  call.request.endpoint == Endpoint::kEmbeddings
                                      ? std::string_view()
                                      : call.request.cap_member,
                                  ask.now),
              decision.outcome == limits::LimitOutcome::kRejectRpm ? "rpm_exceeded"
                                                                   : "tpm_exceeded"};
    case limits::LimitOutcome::kRejectBudget:
      return {std::nullopt,
              BudgetExceededResponse(decision, call.worst, ask.reset_interval, ask.now,
                                     call.request.endpoint == Endpoint::kEmbeddings ||
                                             call.request.max_completion_tokens.has_value()
                                         ? std::string_view()
                                         : call.request.cap_member),
              "budget_exceeded"};
    case limits::LimitOutcome::kStoreUnavailable:
      if (options_.failure_mode == config::FailureMode::kDeny) {
        return Refuse<Admission>(Error::Unavailable(
            "The key's spend could not be read, so its budget cannot be enforced; try again "
            "shortly."));
      }
      // failure_mode allow: forwarded unenforced, with no ticket to settle.
      return Verdict<Admission>{Admission{std::move(call), {}, {}}, {}, {}};
  }
  Admission admission{std::move(call), decision.ticket,
                      RateLimitFigures{decision.requests, decision.tokens, ask.now}};
  return Verdict<Admission>{std::move(admission), {}, {}};
}

Verdict<Admission> Guardrails::Check(std::string_view bearer_token, Endpoint endpoint,
                                     std::string_view body,
                                     std::shared_ptr<const ResolvedCatalog> catalog) const {
  Verdict<PreparedCall> prepared = Prepare(bearer_token, endpoint, body, std::move(catalog));
  if (!prepared.ok()) {
    return {std::nullopt, std::move(prepared.refusal), std::move(prepared.reason)};
  }
  return Admit(std::move(*prepared.value));
}

bool Guardrails::IsUnindexedManagementKey(std::string_view bearer_token) const {
  if (std::none_of(options_.management_key_prefixes.begin(),
                   options_.management_key_prefixes.end(),
                   [&](const std::string& prefix) { return StartsWith(bearer_token, prefix); })) {
    return false;
  }
  return index_.Find(DigestKey(bearer_token).view()).kind == keys::CredentialKind::kNone;
}

Error Guardrails::ManagementCredentialRefusal(const keys::IndexedCredential& found) {
  switch (found.kind) {
    case keys::CredentialKind::kProvisioningKey:
      // spec §2: a disabled provisioning key gets 401 on every call.
      if (found.disabled) {
        return Error::Unauthenticated("this provisioning key is disabled", "key_disabled");
      }
      return ManagementKeyRefused();
    case keys::CredentialKind::kOwner:
      return ManagementKeyRefused();
    case keys::CredentialKind::kServiceKey:
    case keys::CredentialKind::kNone:
      break;
  }
  return IncorrectKey();
}

std::string RateLimitFigures::Lines() const {
  std::string lines;
  AppendRateLimitLines(requests, tokens, at, &lines);
  return lines;
}

}  // namespace keygate::proxy
