// The one key service behind every management dialect and the owner API: authentication of
// management callers, who-may-do-what (spec §2), validation (dialects.md "Common rules"),
// and every lifecycle operation on provisioning and service keys, each written to the store
// with its audit entry before it returns.
//
// Dialects parse their wire JSON into KeyFields and render the results; no rule lives in a
// dialect. Errors are values: InvalidArgument (naming the wire field through `param`, which
// dialects may rename), Unauthenticated, PermissionDenied, NotFound (also for another org's
// keys), Conflict, Unavailable (store).
//
// Thread safety: every method may be called concurrently; it blocks on the store.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/digest_hash.h"
#include "common/log.h"
#include "common/secret_source.h"
#include "common/status.h"
#include "keys/key_index.h"
#include "keys/model.h"
#include "store/audit_log.h"
#include "store/key_store.h"

namespace keygate::keys {

// absent (nullopt), explicit null (optional holding nullopt), or a value.
template <class T>
using Patch = std::optional<std::optional<T>>;

// Input of create and update, already type-checked by a dialect. On create, absent and null
// mean the same; on update, absent leaves a field alone and null clears it.
struct KeyFields {
  std::optional<std::string> name;
  Patch<std::string> project_id;
  Patch<std::string> project_name;
  Patch<std::vector<std::string>> models;
  Patch<MicroUsd> credit_limit;
  Patch<ResetInterval> reset_interval;
  Patch<int64_t> rpm_limit;
  Patch<int64_t> tpm_limit;
  Patch<UnixMillis> expires_at;
  std::optional<bool> disabled;
  Patch<std::string> metadata_json;  // a serialized JSON object
  Patch<std::vector<std::string>> tags;
  std::optional<bool> include_byok_in_limit;
  Patch<std::string> creator_user_id;
  Patch<std::string> external_user;
};

enum class CallerKind {
  kOwner,            // an owner credential
  kProvisioningKey,  // an enabled provisioning key
  kServiceKey,       // a service key (may call models, may not manage)
};

struct Caller {
  CallerKind kind = CallerKind::kServiceKey;
  std::string org_id;
  std::string id;    // the credential's digest
  std::string name;
  std::string masked;  // the credential's masked form ("pk-kg-••••a91c"), for display
  // The audit actor: "owner:<id>" or "pk:<id>" or "sk:<id>".
  std::string Actor() const;
};

struct KeyPrefixes {
  std::string service = "sk-kg-";
  std::string provisioning = "pk-kg-";
  std::string owner = "ok-kg-";
};

// spec dialects.md: the size limits of "Common rules".
struct ValidationLimits {
  static constexpr size_t kMaxNameChars = 256;
  static constexpr size_t kMaxMetadataBytes = 16 * 1024;
  static constexpr size_t kMaxTags = 64;
  static constexpr size_t kMaxTagChars = 256;
  static constexpr size_t kMaxModels = 1000;
  static constexpr size_t kMaxModelChars = 256;
  static constexpr int64_t kMaxRateLimit = 1'000'000'000;
  static constexpr int64_t kMaxGraceSeconds = 30LL * 24 * 3600;
  static constexpr int64_t kMaxPageSize = 1000;
};

// A name (of a key, an organization, a project, an owner credential): 1 to 256 characters of
// valid UTF-8 (characters, not bytes: a name in CJK script may take three bytes a character),
// not whitespace alone.
// InvalidArgument naming `param` otherwise. Text from JSON is valid UTF-8 already; text from
// the command line may not be, and would make every JSON answer that quotes it invalid.
Status CheckName(std::string_view name, std::string_view param);
// The characters of `s`, read as UTF-8 (the bytes that do not continue a character).
size_t Utf8Chars(std::string_view s);

struct ServiceKeyListOptions {
  std::optional<KeySource> source;  // nullopt: router for provisioning keys, all for owners
  std::string project_id;
  std::string project_name;         // resolved to an id; an unknown name lists nothing
  std::vector<std::string> tags;
  std::optional<KeyStatus> status;
  bool include_disabled = true;
  std::string search;
  int64_t limit = 100;
  int64_t offset = 0;
  std::string starting_after;
  bool newest_first = false;
};

struct IssuedServiceKey {
  ServiceKey key;
  std::string secret;  // shown once
};

struct RotatedServiceKey {
  ServiceKey key;       // the new key
  std::string secret;   // shown once
  std::string old_hash;
  UnixMillis revoke_at = 0;
};

struct IssuedProvisioningKey {
  ProvisioningKey key;
  std::string secret;
};

struct IssuedOrganization {
  Organization org;
  std::string owner_secret;
};

struct IssuedOwner {
  OwnerCredential owner;
  std::string secret;
};

class KeyService {
 public:
  // None of the references are owned; all must outlive the service.
  KeyService(store::KeyStore& store, store::AuditLog& audit, KeyIndex& index, const Clock& clock,
             SecretSource& secrets, KeyPrefixes prefixes, Logger& log);

  // --- authentication (management plane) ---
  // The caller behind a bearer token. Unauthenticated ("missing_api_key"/"invalid_api_key")
  // for an absent or unknown token and for a disabled provisioning key (spec §2).
  Result<Caller> Authenticate(std::string_view bearer_token);
  // PermissionDenied unless the caller is an owner or a provisioning key.
  static Status RequireManager(const Caller& caller);
  // PermissionDenied unless the caller is an owner.
  static Status RequireOwner(const Caller& caller);

  // --- organizations and owners (CLI) ---
  Result<IssuedOrganization> CreateOrganization(const std::string& name);
  // Another owner credential of organization `org_id` (NotFound if there is none), named
  // `name` (1 to 256 characters); the secret is returned once.
  Result<IssuedOwner> CreateOwnerCredential(const std::string& org_id, const std::string& name);

  // --- provisioning keys (owners only) ---
  Result<IssuedProvisioningKey> CreateProvisioningKey(const Caller& caller, const std::string& name,
                                                      const std::string& request_id);
  Result<std::vector<ProvisioningKey>> ListProvisioningKeys(const Caller& caller);
  // `name` and `disabled` optional; NotFound for another org's key.
  Result<ProvisioningKey> UpdateProvisioningKey(const Caller& caller, const std::string& id,
                                                const std::optional<std::string>& name,
                                                std::optional<bool> disabled,
                                                const std::string& request_id);
  Status DeleteProvisioningKey(const Caller& caller, const std::string& id,
                               const std::string& request_id);

  // --- service keys (owners and provisioning keys) ---
  // `org_id_claim` is the body's org_id if any: another org's id answers NotFound.
  Result<IssuedServiceKey> CreateServiceKey(const Caller& caller, const KeyFields& fields,
                                            KeySource source, const std::string& request_id);
  Result<store::ServiceKeyPage> ListServiceKeys(const Caller& caller,
                                                const ServiceKeyListOptions& options);
  // NotFound for unknown, revoked, or another org's key; PermissionDenied for a workspace key
  // asked by a provisioning key.
  Result<ServiceKey> GetServiceKey(const Caller& caller, const std::string& hash);
  // The stored record of a service-key caller reading itself (GET /api/v1/key), checked as the
  // data plane checks a call (spec §3 step 1). PermissionDenied unless `caller` is a service
  // key; Unauthenticated ("invalid_api_key") if the key has been revoked since it was
  // authenticated, ("key_expired") from its expiry on; PermissionDenied ("key_disabled") for a
  // disabled key; Unavailable on store failure.
  Result<ServiceKey> GetOwnServiceKey(const Caller& caller);
  Result<ServiceKey> UpdateServiceKey(const Caller& caller, const std::string& hash,
                                      const KeyFields& fields, const std::string& request_id);
  // Revokes at once; the data plane refuses the key from the next request.
  Status DeleteServiceKey(const Caller& caller, const std::string& hash,
                          const std::string& request_id);
  // spec §3 Rotation: a new key with every guardrail, tag and metadata, the same lineage (so
  // spend carries over); the old key works until now + grace_seconds.
  Result<RotatedServiceKey> RotateServiceKey(const Caller& caller, const std::string& hash,
                                             int64_t grace_seconds, const std::string& request_id);

  // --- audit log (owners only) ---
  Result<store::AuditPage> ListAudit(const Caller& caller, store::AuditQuery query);

  // Confirms that `org_id` (from a request body) names the caller's org; NotFound otherwise.
  static Status CheckOrgClaim(const Caller& caller, const std::optional<std::string>& org_id);

  // last_used_at is recorded in memory and written in batches by FlushLastUsed().
  void NoteUsed(std::string_view hash);
  // The same, used at `at` (a caller that has read the clock already).
  void NoteUsed(std::string_view hash, UnixMillis at);
  Status FlushLastUsed();

  const KeyPrefixes& prefixes() const { return prefixes_; }
  const Clock& clock() const { return clock_; }

 private:
  Result<ServiceKey> LoadOwnedKey(const Caller& caller, const std::string& hash);
  // One try of each write that reads a record, changes it and writes it back (the public
  // function retries one whose record changed meanwhile).
  Result<ProvisioningKey> UpdateLoadedProvisioningKey(const Caller& caller,
                                                      const ProvisioningKey& loaded,
                                                      const std::optional<std::string>& name,
                                                      std::optional<bool> disabled,
                                                      const std::string& request_id);
  Status DeleteServiceKeyOnce(const Caller& caller, const std::string& hash,
                              const std::string& request_id);
  // After `deleted` is: if no live key carries its lineage on, revokes the rotated keys that
  // stood in for it (decision 0002).
  void EndStandInsOf(const Caller& caller, const ServiceKey& deleted,
                     const std::string& request_id);
  Result<RotatedServiceKey> RotateServiceKeyOnce(const Caller& caller, const std::string& hash,
                                                 int64_t grace_seconds,
                                                 const std::string& request_id);
  Status ApplyFields(const Caller& caller, const KeyFields& fields, bool creating,
                     ServiceKey* key, std::optional<Project>* new_project);
  Status ResolveProject(const Caller& caller, const KeyFields& fields, ServiceKey* key,
                        std::optional<Project>* new_project);
  AuditEntry MakeAudit(const Caller& caller, std::string action, std::string target,
                       std::string changes_json, const std::string& request_id) const;
  Result<ProvisioningKey> LoadOwnedProvisioningKey(const Caller& caller, const std::string& id);

  // Rotations and deletes of one lineage, one at a time (striped by the lineage's hash): a
  // rotation of a stand-in reads its successor, and a delete of a successor revokes its
  // stand-ins, so two of them at once could each act on what the other is changing (audit L:
  // a rotation answered 201 for a key revoked a millisecond later). One process writes a
  // store's service keys.
  std::mutex& LineageLock(const std::string& lineage);
  std::array<std::mutex, 64> lineage_locks_;

  store::KeyStore& store_;
  store::AuditLog& audit_;
  KeyIndex& index_;
  const Clock& clock_;
  SecretSource& secrets_;
  const KeyPrefixes prefixes_;
  Logger& log_;

  // last_used_at marks by digest, split so that calls noting different keys (every model
  // call notes its key) rarely wait for one another.
  using TouchMap = std::unordered_map<std::string, UnixMillis, DigestHash, std::equal_to<>>;
  struct alignas(64) TouchShard {
    std::mutex mu;
    TouchMap at;  // guarded by mu
  };
  static constexpr size_t kTouchShards = 16;
  std::array<TouchShard, kTouchShards> touched_;
};

// Checks a complete key against the rules of dialects.md "Common rules" at `now`.
// InvalidArgument naming the model field ("models", "credit_limit", ...). The expiry and the
// models list are checked only when `expiry_changed` and `models_changed`: a key stored under
// older rules can still be renamed or disabled without restating them. The name is checked
// where it is set (CheckName), for the same reason.
Status ValidateServiceKey(const ServiceKey& key, UnixMillis now, bool expiry_changed,
                          bool models_changed);

// {"field": {"before": x, "after": y}, ...} for every field that differs; never a secret.
// Times are ISO 8601 UTC strings, as everywhere in the dialects.
std::string DiffServiceKeys(const ServiceKey* before, const ServiceKey& after);

// An audit change of one time field: {"before": t0, "after": t1}, each an ISO 8601 UTC string
// or null.
std::string TimeChangeJson(std::optional<UnixMillis> before, std::optional<UnixMillis> after);

}  // namespace keygate::keys
