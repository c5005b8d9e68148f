#include "keys/key_service.h"

#include <algorithm>
#include <utility>

#include "keys/secrets.h"

namespace keygate::keys {
namespace {

// Tries of a read-change-write whose record another writer changed meanwhile (the store's
// Conflict with reason kStaleWrite): each reads the record again and redoes the change on it.
constexpr int kStaleWriteTries = 8;

// Runs `attempt` until it does not fail for a stale read, kStaleWriteTries times at most (then
// its Conflict is the answer: the record is being changed faster than it can be written).
template <class Attempt>
auto RetryStale(Attempt attempt) -> decltype(attempt()) {
  for (int tries = 1;; ++tries) {
    auto result = attempt();
    const bool stale = !result.ok() && result.error().code == ErrorCode::kConflict &&
                       result.error().reason == store::kStaleWrite;
    if (!stale || tries == kStaleWriteTries) return result;
  }
}

constexpr int64_t kMsPerSecond = 1000;
constexpr size_t kDigestHexChars = 64;

bool LooksLikeDigest(std::string_view s) {
  return s.size() == kDigestHexChars &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// spec §3 step 1 for GET /api/v1/key, in its order: unknown or revoked 401, expired 401,
// disabled 403. `key` may be null (no such key).
Status RefuseIfUnusable(const ServiceKey* key, UnixMillis now) {
  if (key == nullptr || RevokedAt(*key, now)) return Error::Unauthenticated("invalid API key");
  if (key->guardrails.expires_at && *key->guardrails.expires_at <= now) {
    return Error::Unauthenticated("this API key has expired", "key_expired");
  }
  if (key->disabled) return Error::PermissionDenied("this API key is disabled", "key_disabled");
  return OkStatus();
}

// A rotated key in its grace period is held to its successor's models and limits (decision
// 0002): a change of its own would be acknowledged and do nothing. Its expiry, its disabled
// flag and everything else may still change: those hold it as they hold any key.
Status RefuseLimitsOfAStandIn(const ServiceKey& before, const ServiceKey& after, UnixMillis now) {
  if (!before.revoke_at.has_value() || *before.revoke_at <= now) return OkStatus();
  const Guardrails& was = before.guardrails;
  const Guardrails& is = after.guardrails;
  // The same models in another order are the same list.
  auto sorted = [](std::optional<std::vector<std::string>> models) {
    if (models) std::sort(models->begin(), models->end());
    return models;
  };
  // The model's field names, which each dialect renames to its own (RenameParam).
  const char* field = sorted(was.models) != sorted(is.models) ? "models"
                      : was.credit_limit != is.credit_limit     ? "credit_limit"
                      : was.reset_interval != is.reset_interval ? "reset_budget_interval"
                      : was.rpm_limit != is.rpm_limit           ? "rpm_limit"
                      : was.tpm_limit != is.tpm_limit           ? "tpm_limit"
                                                                : nullptr;
  if (field == nullptr) return OkStatus();
  // The field in the message too, for v2, whose errors carry no param (each dialect renames
  // it in both).
  return Error::Conflict(std::string(field) +
                             " cannot change: this key was rotated, and until its grace period "
                             "ends it stands in for the key that replaced it and is held to that "
                             "key's models and limits. Change them there, or disable or delete "
                             "this key.",
                         field);
}

Error NoSuchKey() { return Error::NotFound("no such key"); }

template <class T>
void ApplyPatch(const Patch<T>& patch, std::optional<T>* field) {
  if (patch.has_value()) *field = *patch;
}

void ApplyStringPatch(const Patch<std::string>& patch, std::string* field) {
  if (patch.has_value()) *field = patch->value_or("");
}

}  // namespace

std::string Caller::Actor() const {
  switch (kind) {
    case CallerKind::kOwner: return "owner:" + id;
    case CallerKind::kProvisioningKey: return "pk:" + id;
    case CallerKind::kServiceKey: return "sk:" + id;
  }
  return "unknown";
}

KeyService::KeyService(store::KeyStore& store, store::AuditLog& audit, KeyIndex& index,
                       const Clock& clock, SecretSource& secrets, KeyPrefixes prefixes, Logger& log)
    : store_(store),
      audit_(audit),
      index_(index),
      clock_(clock),
      secrets_(secrets),
      prefixes_(std::move(prefixes)),
      log_(log) {}

// ---------------------------------------------------------------- authentication

Result<Caller> KeyService::Authenticate(std::string_view bearer_token) {
  if (bearer_token.empty()) {
    return Error::Unauthenticated("missing Authorization: Bearer <key> header", "missing_api_key");
  }
  const std::string digest = Sha256Hex(bearer_token);
  // Provisioning keys and owners are few and read from the store, so that a disable or a
  // delete holds on every replica at once (spec §2: a disabled provisioning key gets 401).
  if (auto pk = store_.GetProvisioningKey(digest); pk.ok()) {
    if (!ConstantTimeEquals(pk->hash, digest)) return Error::Unauthenticated("invalid API key");
    if (pk->disabled) {
      return Error::Unauthenticated("this provisioning key is disabled", "key_disabled");
    }
    NoteUsed(digest);
    return Caller{CallerKind::kProvisioningKey, pk->org_id, pk->hash, pk->name, pk->masked};
  } else if (pk.error().code != ErrorCode::kNotFound) {
    return pk.error();
  }
  if (auto owner = store_.GetOwnerCredential(digest); owner.ok()) {
    if (!ConstantTimeEquals(owner->hash, digest)) return Error::Unauthenticated("invalid API key");
    return Caller{CallerKind::kOwner, owner->org_id, owner->hash, owner->name, owner->masked};
  } else if (owner.error().code != ErrorCode::kNotFound) {
    return owner.error();
  }
  IndexedCredential indexed = index_.Find(digest);
  if (indexed.kind == CredentialKind::kServiceKey &&
      !RevokedAt(*indexed.service_key, clock_.NowMs()) &&
      ConstantTimeEquals(indexed.service_key->hash, digest)) {
    return Caller{CallerKind::kServiceKey, indexed.service_key->org_id, digest,
                  indexed.service_key->name, indexed.service_key->masked};
  }
  return Error::Unauthenticated("invalid API key");
}

Status KeyService::RequireManager(const Caller& caller) {
  if (caller.kind == CallerKind::kServiceKey) {
    return Error::PermissionDenied(
        "a service key cannot call the key-management API; use a provisioning key");
  }
  return OkStatus();
}

Status KeyService::RequireOwner(const Caller& caller) {
  if (caller.kind != CallerKind::kOwner) {
    return Error::PermissionDenied("only an organization owner may do this");
  }
  return OkStatus();
}

Status KeyService::CheckOrgClaim(const Caller& caller, const std::optional<std::string>& org_id) {
  if (org_id.has_value() && *org_id != caller.org_id) {  // "" names no org: 404 too
    return Error::NotFound("no such organization");
  }
  return OkStatus();
}

// ---------------------------------------------------------------- organizations

namespace {

// The audit entry of a command line write (no request, no caller key).
AuditEntry CliAudit(const std::string& org_id, UnixMillis at, std::string actor_name,
                    std::string action, std::string target, std::string changes_json) {
  AuditEntry audit;
  audit.org_id = org_id;
  audit.at = at;
  audit.actor = "cli";
  audit.actor_name = std::move(actor_name);
  audit.action = std::move(action);
  audit.target = std::move(target);
  audit.changes_json = std::move(changes_json);
  return audit;
}

}  // namespace

Result<IssuedOrganization> KeyService::CreateOrganization(const std::string& name) {
  KG_RETURN_IF_ERROR(CheckName(name, "org"));
  const UnixMillis now = clock_.NowMs();
  IssuedOrganization out;
  out.org = Organization{RandomId("org_", secrets_), name, now};
  out.owner_secret = GenerateSecret(prefixes_.owner, secrets_);
  OwnerCredential owner{Sha256Hex(out.owner_secret), out.org.id, "owner",
                        MaskSecret(prefixes_.owner, out.owner_secret), now};
  const AuditEntry audit =
      CliAudit(out.org.id, now, "keygate init", "organization.create", out.org.id, "{}");
  KG_RETURN_IF_ERROR(store_.CreateOrganization(out.org, owner, audit));
  index_.UpsertOther(owner.hash, CredentialKind::kOwner, owner.org_id, false);
  log_.Info("organization.created", {{"org_id", out.org.id}, {"owner", owner.masked}});
  return out;
}

Result<IssuedOwner> KeyService::CreateOwnerCredential(const std::string& org_id,
                                                      const std::string& name) {
  KG_RETURN_IF_ERROR(CheckName(name, "name"));
  const UnixMillis now = clock_.NowMs();
  IssuedOwner out;
  out.secret = GenerateSecret(prefixes_.owner, secrets_);
  out.owner = OwnerCredential{Sha256Hex(out.secret), org_id, name,
                              MaskSecret(prefixes_.owner, out.secret), now};
  std::string changes = "{\"name\":{\"before\":null,\"after\":";
  AppendJsonString(&changes, name);
  changes += "}}";
  KG_RETURN_IF_ERROR(store_.InsertOwnerCredential(
      out.owner, CliAudit(org_id, now, "keygate owner create", "owner.create", out.owner.hash,
                          std::move(changes))));
  index_.UpsertOther(out.owner.hash, CredentialKind::kOwner, org_id, false);
  log_.Info("owner.created", {{"org_id", org_id}, {"owner", out.owner.masked}});
  return out;
}

// ---------------------------------------------------------------- provisioning keys

Result<IssuedProvisioningKey> KeyService::CreateProvisioningKey(const Caller& caller,
                                                                const std::string& name,
                                                                const std::string& request_id) {
  KG_RETURN_IF_ERROR(RequireOwner(caller));
  KG_RETURN_IF_ERROR(CheckName(name, "name"));
  IssuedProvisioningKey out;
  out.secret = GenerateSecret(prefixes_.provisioning, secrets_);
  out.key.hash = Sha256Hex(out.secret);
  out.key.org_id = caller.org_id;
  out.key.name = name;
  out.key.masked = MaskSecret(prefixes_.provisioning, out.secret);
  out.key.created_at = clock_.NowMs();
  std::string changes = "{\"name\":{\"before\":null,\"after\":";
  AppendJsonString(&changes, name);
  changes += "}}";
  KG_RETURN_IF_ERROR(store_.InsertProvisioningKey(
      out.key, MakeAudit(caller, "provisioning_key.create", out.key.hash, changes, request_id)));
  index_.UpsertOther(out.key.hash, CredentialKind::kProvisioningKey, out.key.org_id, false);
  log_.Info("provisioning_key.created",
            {{"org_id", caller.org_id}, {"key", out.key.masked}, {"request_id", request_id}});
  return out;
}

Result<std::vector<ProvisioningKey>> KeyService::ListProvisioningKeys(const Caller& caller) {
  KG_RETURN_IF_ERROR(RequireOwner(caller));
  return store_.ListProvisioningKeys(caller.org_id);
}

Result<ProvisioningKey> KeyService::LoadOwnedProvisioningKey(const Caller& caller,
                                                             const std::string& id) {
  if (!LooksLikeDigest(id)) return Error::NotFound("no such provisioning key");
  auto key = store_.GetProvisioningKey(id);
  if (!key.ok()) {
    if (key.error().code == ErrorCode::kNotFound) return Error::NotFound("no such provisioning key");
    return key.error();
  }
  if (key->org_id != caller.org_id) return Error::NotFound("no such provisioning key");
  return key;
}

Result<ProvisioningKey> KeyService::UpdateProvisioningKey(const Caller& caller,
                                                          const std::string& id,
                                                          const std::optional<std::string>& name,
                                                          std::optional<bool> disabled,
                                                          const std::string& request_id) {
  KG_RETURN_IF_ERROR(RequireOwner(caller));
  return RetryStale([&]() -> Result<ProvisioningKey> {
    auto loaded = LoadOwnedProvisioningKey(caller, id);
    if (!loaded.ok()) return loaded.error();
    return UpdateLoadedProvisioningKey(caller, *loaded, name, disabled, request_id);
  });
}

Result<ProvisioningKey> KeyService::UpdateLoadedProvisioningKey(
    const Caller& caller, const ProvisioningKey& loaded, const std::optional<std::string>& name,
    std::optional<bool> disabled, const std::string& request_id) {
  ProvisioningKey key = loaded;
  std::string changes = "{";
  if (name.has_value()) {
    KG_RETURN_IF_ERROR(CheckName(*name, "name"));
    changes += "\"name\":{\"before\":";
    AppendJsonString(&changes, key.name);
    changes += ",\"after\":";
    AppendJsonString(&changes, *name);
    changes += "}";
    key.name = *name;
  }
  if (disabled.has_value()) {
    if (changes.size() > 1) changes += ",";
    changes += std::string("\"disabled\":{\"before\":") + (key.disabled ? "true" : "false") +
               ",\"after\":" + (*disabled ? "true" : "false") + "}";
    key.disabled = *disabled;
  }
  changes += "}";
  // As for a service key: an update that changes nothing writes nothing.
  if (key.name == loaded.name && key.disabled == loaded.disabled) return loaded;
  const char* action = !disabled.has_value() ? "provisioning_key.update"
                       : *disabled           ? "provisioning_key.disable"
                                             : "provisioning_key.enable";
  KG_RETURN_IF_ERROR(store_.UpdateProvisioningKey(
      key, MakeAudit(caller, action, key.hash, changes, request_id), &loaded));
  index_.UpsertOther(key.hash, CredentialKind::kProvisioningKey, key.org_id, key.disabled);
  return key;
}

Status KeyService::DeleteProvisioningKey(const Caller& caller, const std::string& id,
                                         const std::string& request_id) {
  KG_RETURN_IF_ERROR(RequireOwner(caller));
  auto loaded = LoadOwnedProvisioningKey(caller, id);
  if (!loaded.ok()) return loaded.error();
  KG_RETURN_IF_ERROR(store_.DeleteProvisioningKey(
      caller.org_id, id, MakeAudit(caller, "provisioning_key.delete", id, "{}", request_id)));
  index_.Remove(id);
  return OkStatus();
}

// ---------------------------------------------------------------- service keys

Status KeyService::ResolveProject(const Caller& caller, const KeyFields& fields, ServiceKey* key,
                                  std::optional<Project>* new_project) {
  const bool id_given = fields.project_id.has_value() && fields.project_id->has_value() &&
                        !(*fields.project_id)->empty();
  const bool name_given = fields.project_name.has_value() && fields.project_name->has_value() &&
                          !(*fields.project_name)->empty();
  if (id_given) {
    auto project = store_.GetProject(caller.org_id, **fields.project_id);
    if (!project.ok()) {
      if (project.error().code != ErrorCode::kNotFound) return project.error();
      return Error{ErrorCode::kNotFound, "no such project_id in this organization", "project_id",
                   "project_not_found"};
    }
    if (name_given && **fields.project_name != project->name) {
      return Error::InvalidArgument("project_name does not match project_id", "project_name");
    }
    key->project_id = project->id;
    key->project_name = project->name;
    return OkStatus();
  }
  if (name_given) {
    const std::string& name = **fields.project_name;
    auto project = store_.FindProjectByName(caller.org_id, name);
    if (project.ok()) {
      key->project_id = project->id;
      key->project_name = project->name;
      return OkStatus();
    }
    if (project.error().code != ErrorCode::kNotFound) return project.error();
    // Checked when it makes a project: one named under older rules can still be named.
    KG_RETURN_IF_ERROR(CheckName(name, "project_name"));
    // spec dialects.md: an unknown project_name creates the project.
    Project created{RandomId("proj_", secrets_), caller.org_id, name, clock_.NowMs()};
    key->project_id = created.id;
    key->project_name = created.name;
    *new_project = std::move(created);
    return OkStatus();
  }
  // Explicit nulls clear the project on update.
  if (fields.project_id.has_value() || fields.project_name.has_value()) {
    key->project_id.clear();
    key->project_name.clear();
  }
  return OkStatus();
}

Status KeyService::ApplyFields(const Caller& caller, const KeyFields& fields, bool creating,
                               ServiceKey* key, std::optional<Project>* new_project) {
  if (fields.name.has_value()) {
    // Checked only when set (a changed name): a key named under older rules can still be
    // disabled, by a client that sends its whole record back too.
    if (creating || *fields.name != key->name) KG_RETURN_IF_ERROR(CheckName(*fields.name, "name"));
    key->name = *fields.name;
  }
  KG_RETURN_IF_ERROR(ResolveProject(caller, fields, key, new_project));
  Guardrails& g = key->guardrails;
  ApplyPatch(fields.models, &g.models);
  ApplyPatch(fields.credit_limit, &g.credit_limit);
  if (fields.reset_interval.has_value()) {
    g.reset_interval = fields.reset_interval->value_or(ResetInterval::kNever);
  }
  ApplyPatch(fields.rpm_limit, &g.rpm_limit);
  ApplyPatch(fields.tpm_limit, &g.tpm_limit);
  ApplyPatch(fields.expires_at, &g.expires_at);
  if (fields.disabled.has_value()) key->disabled = *fields.disabled;
  ApplyStringPatch(fields.metadata_json, &key->metadata_json);
  if (fields.tags.has_value()) key->tags = fields.tags->value_or(std::vector<std::string>{});
  if (fields.include_byok_in_limit.has_value()) {
    key->include_byok_in_limit = *fields.include_byok_in_limit;
  }
  ApplyStringPatch(fields.creator_user_id, &key->creator_user_id);
  ApplyStringPatch(fields.external_user, &key->external_user);
  if (creating && !fields.name.has_value()) {
    return Error::InvalidArgument("name is required", "name");
  }
  const bool expiry_changed = fields.expires_at.has_value() && fields.expires_at->has_value();
  const bool models_changed = creating || fields.models.has_value();
  return ValidateServiceKey(*key, clock_.NowMs(), expiry_changed, models_changed);
}

Result<IssuedServiceKey> KeyService::CreateServiceKey(const Caller& caller,
                                                      const KeyFields& fields, KeySource source,
                                                      const std::string& request_id) {
  KG_RETURN_IF_ERROR(RequireManager(caller));
  if (source == KeySource::kWorkspace && caller.kind != CallerKind::kOwner) {
    return Error::PermissionDenied("provisioning keys cannot create workspace keys");
  }
  IssuedServiceKey out;
  ServiceKey& key = out.key;
  key.org_id = caller.org_id;
  key.source = source;
  key.created_at = clock_.NowMs();
  key.created_by = caller.Actor();
  std::optional<Project> new_project;
  KG_RETURN_IF_ERROR(ApplyFields(caller, fields, /*creating=*/true, &key, &new_project));
  // The secret is made only after validation passed, and never leaves this function but in
  // the answer.
  out.secret = GenerateSecret(prefixes_.service, secrets_);
  key.hash = Sha256Hex(out.secret);
  key.masked = MaskSecret(prefixes_.service, out.secret);
  key.lineage = key.hash;
  AuditEntry audit = MakeAudit(caller, "service_key.create", key.hash,
                               DiffServiceKeys(nullptr, key), request_id);
  KG_RETURN_IF_ERROR(store_.InsertServiceKey(&key, new_project, audit));
  index_.UpsertServiceKey(key);
  log_.Info("service_key.created", {{"org_id", key.org_id},
                                    {"key", key.masked},
                                    {"hash", key.hash.substr(0, 12)},
                                    {"request_id", request_id}});
  return out;
}

Result<ServiceKey> KeyService::LoadOwnedKey(const Caller& caller, const std::string& hash) {
  KG_RETURN_IF_ERROR(RequireManager(caller));
  if (!LooksLikeDigest(hash)) return NoSuchKey();
  // spec §2: another org's key is indistinguishable from a key that does not exist, in its
  // answer and in its time (the store does not read it: audit Z).
  auto key = store_.GetServiceKeyOfOrg(caller.org_id, hash);
  if (!key.ok()) {
    if (key.error().code == ErrorCode::kNotFound) return NoSuchKey();
    return key.error();
  }
  if (key->org_id != caller.org_id || RevokedAt(*key, clock_.NowMs())) return NoSuchKey();
  if (key->source == KeySource::kWorkspace && caller.kind != CallerKind::kOwner) {
    return Error::PermissionDenied("provisioning keys cannot access workspace keys");
  }
  return key;
}

Result<store::ServiceKeyPage> KeyService::ListServiceKeys(const Caller& caller,
                                                          const ServiceKeyListOptions& options) {
  KG_RETURN_IF_ERROR(RequireManager(caller));
  store::ServiceKeyQuery query;
  query.org_id = caller.org_id;
  query.source = options.source;
  if (caller.kind == CallerKind::kProvisioningKey) {
    if (options.source == KeySource::kWorkspace) {
      return Error::PermissionDenied("provisioning keys cannot list workspace keys");
    }
    query.source = KeySource::kRouter;
  }
  if (options.limit < 1 || options.limit > ValidationLimits::kMaxPageSize) {
    return Error::InvalidArgument("limit must be between 1 and 1000", "limit");
  }
  if (options.offset < 0) return Error::InvalidArgument("offset must be >= 0", "offset");
  // The store's text match ends a pattern at a NUL: "\0abc" would match every key.
  if (options.search.find('\0') != std::string::npos) {
    return Error::InvalidArgument("search must not contain a NUL character", "search");
  }
  // Filters no key can meet are answered here, before they reach the store, whose query
  // would grow with them (SQLite refuses a LIKE pattern over 50,000 bytes, and ~1,000 tags):
  // keys having all of more distinct tags than a key may hold, or a name longer than a
  // name may be.
  if (Utf8Chars(options.search) > ValidationLimits::kMaxNameChars) {
    return store::ServiceKeyPage{};
  }
  if (options.tags.size() > ValidationLimits::kMaxTags) {
    std::vector<std::string> distinct = options.tags;
    std::sort(distinct.begin(), distinct.end());
    if (std::unique(distinct.begin(), distinct.end()) - distinct.begin() >
        static_cast<std::ptrdiff_t>(ValidationLimits::kMaxTags)) {
      return store::ServiceKeyPage{};
    }
  }
  query.project_id = options.project_id;
  if (query.project_id.empty() && !options.project_name.empty()) {
    auto project = store_.FindProjectByName(caller.org_id, options.project_name);
    if (!project.ok()) {
      if (project.error().code != ErrorCode::kNotFound) return project.error();
      return store::ServiceKeyPage{};
    }
    query.project_id = project->id;
  }
  query.tags = options.tags;
  query.status = options.status;
  query.include_disabled = options.include_disabled;
  query.search = options.search;
  query.now = clock_.NowMs();
  query.limit = options.limit;
  query.offset = options.offset;
  query.starting_after = options.starting_after;
  query.newest_first = options.newest_first;
  return store_.ListServiceKeys(query);
}

Result<ServiceKey> KeyService::GetServiceKey(const Caller& caller, const std::string& hash) {
  return LoadOwnedKey(caller, hash);
}

Result<ServiceKey> KeyService::GetOwnServiceKey(const Caller& caller) {
  if (caller.kind != CallerKind::kServiceKey) {
    return Error::PermissionDenied("only a service key has a service key record");
  }
  // The store, not the index: the answer must reflect the latest write of any replica.
  auto key = store_.GetServiceKey(caller.id);
  if (!key.ok()) {
    if (key.error().code == ErrorCode::kNotFound) return Error::Unauthenticated("invalid API key");
    return key.error();
  }
  const UnixMillis now = clock_.NowMs();
  KG_RETURN_IF_ERROR(RefuseIfUnusable(&*key, now));
  if (key->revoke_at.has_value()) {
    // In its grace period it stands in for its successor: what its calls are held to, as the
    // data plane holds them (decision 0002).
    const auto successor = index_.Successor(LineageOf(*key));
    KG_RETURN_IF_ERROR(RefuseIfUnusable(successor.get(), now));
    // It stops at the earliest of its own expiry, its successor's and its grace period's end:
    // the instant a client holding this secret must have switched by (audit L).
    const std::optional<UnixMillis> own_expiry = key->guardrails.expires_at;
    key->guardrails = successor->guardrails;
    for (const std::optional<UnixMillis>& end : {own_expiry, key->revoke_at}) {
      if (end && (!key->guardrails.expires_at || *end < *key->guardrails.expires_at)) {
        key->guardrails.expires_at = end;
      }
    }
  }
  return key;
}

Result<ServiceKey> KeyService::UpdateServiceKey(const Caller& caller, const std::string& hash,
                                                const KeyFields& fields,
                                                const std::string& request_id) {
  return RetryStale([&]() -> Result<ServiceKey> {
    auto loaded = LoadOwnedKey(caller, hash);
    if (!loaded.ok()) return loaded.error();
    const ServiceKey before = *loaded;
    ServiceKey key = before;
    std::optional<Project> new_project;
    KG_RETURN_IF_ERROR(ApplyFields(caller, fields, /*creating=*/false, &key, &new_project));
    std::string changes = DiffServiceKeys(&before, key);
    // An update that changes nothing (an empty body, or a record sent back as it was) writes
    // nothing: no updated_at, no audit entry (dialects.md: an empty body changes nothing).
    if (changes == "{}" && !new_project.has_value()) return before;
    key.updated_at = clock_.NowMs();
    KG_RETURN_IF_ERROR(RefuseLimitsOfAStandIn(before, key, *key.updated_at));
    AuditEntry audit =
        MakeAudit(caller, "service_key.update", key.hash, std::move(changes), request_id);
    KG_RETURN_IF_ERROR(store_.UpdateServiceKey(&key, new_project, audit));
    index_.UpsertServiceKey(key);
    return key;
  });
}

Status KeyService::DeleteServiceKey(const Caller& caller, const std::string& hash,
                                    const std::string& request_id) {
  return RetryStale([&] { return DeleteServiceKeyOnce(caller, hash, request_id); });
}

std::mutex& KeyService::LineageLock(const std::string& lineage) {
  return lineage_locks_[DigestHash{}(lineage) % lineage_locks_.size()];
}

Status KeyService::DeleteServiceKeyOnce(const Caller& caller, const std::string& hash,
                                        const std::string& request_id) {
  auto loaded = LoadOwnedKey(caller, hash);
  if (!loaded.ok()) return loaded.error();
  // Held through the revocation of its stand-ins. (What was read before it is checked by the
  // write's version.)
  std::lock_guard<std::mutex> lineage_lock(LineageLock(LineageOf(*loaded)));
  ServiceKey key = *loaded;
  const UnixMillis now = clock_.NowMs();
  key.revoke_at = now;
  key.updated_at = now;
  // Before: the end of a rotation's grace period, if one was running.
  const std::string changes = "{\"revoked_at\":" + TimeChangeJson(loaded->revoke_at, now) + "}";
  KG_RETURN_IF_ERROR(store_.UpdateServiceKey(
      &key, std::nullopt, MakeAudit(caller, "service_key.delete", key.hash, changes, request_id)));
  index_.UpsertServiceKey(key);
  log_.Info("service_key.revoked", {{"org_id", key.org_id}, {"key", key.masked},
                                    {"request_id", request_id}});
  EndStandInsOf(caller, key, request_id);
  return OkStatus();
}

void KeyService::EndStandInsOf(const Caller& caller, const ServiceKey& deleted,
                               const std::string& request_id) {
  const std::string& lineage = LineageOf(deleted);
  if (index_.Successor(lineage) != nullptr) return;  // another key carries the lineage on
  for (const auto& stand_in : index_.StandIns(lineage, clock_.NowMs())) {
    // The data plane refuses it already (no successor); this makes its record say so, and
    // keeps a later rotation of it from giving it a successor again.
    Status revoked = RetryStale([&]() -> Status {
      auto loaded = store_.GetServiceKey(stand_in->hash);
      if (!loaded.ok()) return loaded.error();
      // Looked at again after each read: a rotation of it that committed meanwhile (its write
      // is why a retry reads again) has given it a successor.
      if (index_.Successor(lineage) != nullptr) return OkStatus();
      ServiceKey key = *loaded;
      const UnixMillis now = clock_.NowMs();
      if (RevokedAt(key, now)) return OkStatus();
      key.revoke_at = now;
      key.updated_at = now;
      const std::string changes = "{\"revoked_at\":" + TimeChangeJson(loaded->revoke_at, now) +
                                  ",\"successor_deleted\":\"" + deleted.hash + "\"}";
      KG_RETURN_IF_ERROR(store_.UpdateServiceKey(
          &key, std::nullopt,
          MakeAudit(caller, "service_key.delete", key.hash, changes, request_id)));
      index_.UpsertServiceKey(key);
      return OkStatus();
    });
    if (!revoked.ok()) {
      // It stays refused by the data plane; its record shows it until its grace ends.
      log_.Error("service_key.stand_in_not_revoked",
                 {{"key", stand_in->masked}, {"error", revoked.error().message},
                  {"request_id", request_id}});
    }
  }
}

Result<RotatedServiceKey> KeyService::RotateServiceKey(const Caller& caller,
                                                       const std::string& hash,
                                                       int64_t grace_seconds,
                                                       const std::string& request_id) {
  if (grace_seconds < 0 || grace_seconds > ValidationLimits::kMaxGraceSeconds) {
    return Error::InvalidArgument("grace_period_seconds must be between 0 and 2592000",
                                  "grace_period_seconds");
  }
  return RetryStale([&] { return RotateServiceKeyOnce(caller, hash, grace_seconds, request_id); });
}

Result<RotatedServiceKey> KeyService::RotateServiceKeyOnce(const Caller& caller,
                                                           const std::string& hash,
                                                           int64_t grace_seconds,
                                                           const std::string& request_id) {
  auto loaded = LoadOwnedKey(caller, hash);
  if (!loaded.ok()) return loaded.error();
  // Held through the read of its successor and the index's update.
  std::lock_guard<std::mutex> lineage_lock(LineageLock(LineageOf(*loaded)));
  ServiceKey old_key = *loaded;
  const UnixMillis now = clock_.NowMs();
  const UnixMillis revoke_at = now + grace_seconds * kMsPerSecond;
  // A second rotation within a grace period may only shorten the old key's life.
  old_key.revoke_at = old_key.revoke_at ? std::min(*old_key.revoke_at, revoke_at) : revoke_at;
  old_key.updated_at = now;

  RotatedServiceKey out;
  out.secret = GenerateSecret(prefixes_.service, secrets_);
  ServiceKey& fresh = out.key;
  fresh = *loaded;  // every guardrail, tag and metadata; same lineage, so spend carries over
  if (loaded->revoke_at.has_value()) {
    // Rotated before and in its grace period, it stands in for its successor, whose record is
    // the credential's as it is now (decision 0002): the new key copies that one, not the
    // models and limits this key no longer counts, nor a state the owner changed since
    // (audit K: a successor disabled after a leak came back to life in the copy).
    if (const auto successor = index_.Successor(LineageOf(*loaded)); successor != nullptr) {
      auto current = store_.GetServiceKey(successor->hash);
      if (!current.ok()) return current.error();
      // Deleted meanwhile: this key is being revoked with it (EndStandInsOf).
      if (RevokedAt(*current, now)) return NoSuchKey();
      fresh = *current;
    }
  }
  fresh.hash = Sha256Hex(out.secret);
  fresh.masked = MaskSecret(prefixes_.service, out.secret);
  fresh.created_at = now;
  fresh.updated_at.reset();
  fresh.last_used_at.reset();
  fresh.revoke_at.reset();
  fresh.created_by = caller.Actor();
  out.old_hash = old_key.hash;
  out.revoke_at = *old_key.revoke_at;

  // revoke_at before: an earlier rotation's, when the key is rotated again in its grace period.
  const std::string changes = "{\"replaced_by\":{\"before\":null,\"after\":\"" + fresh.hash +
                              "\"},\"revoke_at\":" +
                              TimeChangeJson(loaded->revoke_at, out.revoke_at) + "}";
  KG_RETURN_IF_ERROR(store_.RotateServiceKey(
      &old_key, &fresh, MakeAudit(caller, "service_key.rotate", old_key.hash, changes, request_id)));
  // The new key first: the old one, once it shows its grace period, stands in for it.
  index_.UpsertServiceKey(fresh);
  index_.UpsertServiceKey(old_key);
  log_.Info("service_key.rotated", {{"org_id", fresh.org_id}, {"old", old_key.masked},
                                    {"new", fresh.masked}, {"grace_s", grace_seconds},
                                    {"request_id", request_id}});
  return out;
}

// ---------------------------------------------------------------- audit and usage

Result<store::AuditPage> KeyService::ListAudit(const Caller& caller, store::AuditQuery query) {
  KG_RETURN_IF_ERROR(RequireOwner(caller));
  if (query.limit < 1 || query.limit > ValidationLimits::kMaxPageSize) {
    return Error::InvalidArgument("limit must be between 1 and 1000", "limit");
  }
  query.org_id = caller.org_id;
  return audit_.ListAudit(query);
}

AuditEntry KeyService::MakeAudit(const Caller& caller, std::string action, std::string target,
                                 std::string changes_json, const std::string& request_id) const {
  AuditEntry entry;
  entry.org_id = caller.org_id;
  entry.at = clock_.NowMs();
  entry.actor = caller.Actor();
  entry.actor_name = caller.name;
  entry.action = std::move(action);
  entry.target = std::move(target);
  entry.changes_json = std::move(changes_json);
  entry.request_id = request_id;
  return entry;
}

void KeyService::NoteUsed(std::string_view hash) { NoteUsed(hash, clock_.NowMs()); }

void KeyService::NoteUsed(std::string_view hash, UnixMillis at) {
  TouchShard& shard = touched_[DigestHash{}(hash) % kTouchShards];
  std::lock_guard lock(shard.mu);
  if (auto it = shard.at.find(hash); it != shard.at.end()) {
    it->second = std::max(it->second, at);
  } else {
    shard.at.emplace(std::string(hash), at);
  }
}

Status KeyService::FlushLastUsed() {
  std::vector<store::KeyStore::Touch> batch;
  for (TouchShard& shard : touched_) {
    TouchMap taken;
    {
      std::lock_guard lock(shard.mu);
      taken.swap(shard.at);
    }
    for (auto& [hash, at] : taken) batch.push_back({hash, at});
  }
  if (batch.empty()) return OkStatus();
  return store_.TouchLastUsed(batch);
}

}  // namespace keygate::keys
