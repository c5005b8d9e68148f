// The durable home of tenants and keys. Implementations: store/sqlite/ (embedded default);
// a PostgreSQL one can sit beside it behind this same interface.
//
// Contract for every write: it is durable (fsynced) before it returns OK, and the audit entry
// passed with it commits in the same transaction, or neither does. Writes from many threads
// may be batched into one group commit; each caller still gets its own Status.
// Each write assigns ServiceKey::version from one strictly increasing counter, so that
// ServiceKeysChangedSince() can feed the in-memory index of every replica.
//
// Errors: NotFound for a missing row, Conflict for a uniqueness violation (naming the field),
// Unavailable when the database cannot be written (disk full, I/O error).
//
// Thread safety: every method may be called concurrently from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "keys/model.h"

namespace keygate::store {

// The reason of the Conflict a write gets when the record it was made from has changed since
// it was read (UpdateServiceKey, RotateServiceKey, UpdateProvisioningKey): read it again.
inline constexpr const char* kStaleWrite = "stale_write";

// The reason of the Unavailable every write gets from a store whose files were removed or
// replaced under it, until a restart: no retry helps before then.
inline constexpr const char* kStoreFilesRemoved = "store_files_removed";

struct ServiceKeyQuery {
  std::string org_id;                    // REQUIRED
  std::optional<keys::KeySource> source; // nullopt = every source
  std::string project_id;                // "" = every project
  std::vector<std::string> tags;         // keys having all of them
  std::optional<keys::KeyStatus> status; // evaluated at `now`
  bool include_disabled = true;          // false hides disabled keys (OpenRouter default)
  std::string search;                    // case-insensitive name substring; "" = no filter
  UnixMillis now = 0;                    // REQUIRED: revoked keys (revoke_at <= now) are hidden
  int64_t limit = 100;                   // REQUIRES: 1..1000
  int64_t offset = 0;                    // REQUIRES: >= 0
  std::string starting_after;            // cursor: hash of the last key of the previous page
  bool newest_first = false;             // default order is creation order, oldest first
};

struct ServiceKeyPage {
  std::vector<keys::ServiceKey> keys;
  int64_t total = 0;      // matches across all pages (ignores offset/limit/cursor)
  bool has_more = false;  // more rows after this page
};

class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // --- organizations and owners ---
  // Creates an organization with its first owner credential.
  virtual Status CreateOrganization(const keys::Organization& org,
                                    const keys::OwnerCredential& owner,
                                    const keys::AuditEntry& audit) = 0;
  virtual Result<keys::Organization> GetOrganization(const std::string& org_id) = 0;
  virtual Result<std::vector<keys::Organization>> ListOrganizations() = 0;
  // NotFound if no owner credential has this digest.
  virtual Result<keys::OwnerCredential> GetOwnerCredential(const std::string& hash) = 0;
  // Adds an owner credential to an existing organization (NotFound if there is none).
  virtual Status InsertOwnerCredential(const keys::OwnerCredential& owner,
                                       const keys::AuditEntry& audit) = 0;

  // --- provisioning keys ---
  // Conflict (param "name") if the org already has a provisioning key of that name.
  virtual Status InsertProvisioningKey(const keys::ProvisioningKey& key,
                                       const keys::AuditEntry& audit) = 0;
  // NotFound if no provisioning key has this digest (in any org).
  virtual Result<keys::ProvisioningKey> GetProvisioningKey(const std::string& hash) = 0;
  virtual Result<std::vector<keys::ProvisioningKey>> ListProvisioningKeys(
      const std::string& org_id) = 0;
  // Replaces name and disabled. NotFound, Conflict (name). With `as_read` (the record `key` was
  // made from), only if the stored name and disabled are still as read: otherwise Conflict with
  // reason kStaleWrite, nothing written (a concurrent update would be silently undone).
  virtual Status UpdateProvisioningKey(const keys::ProvisioningKey& key,
                                       const keys::AuditEntry& audit,
                                       const keys::ProvisioningKey* as_read = nullptr) = 0;
  // NotFound if it is not a provisioning key of `org_id`.
  virtual Status DeleteProvisioningKey(const std::string& org_id, const std::string& hash,
                                       const keys::AuditEntry& audit) = 0;

  // --- projects ---
  virtual Result<keys::Project> GetProject(const std::string& org_id,
                                           const std::string& project_id) = 0;
  virtual Result<keys::Project> FindProjectByName(const std::string& org_id,
                                                  const std::string& name) = 0;

  // --- service keys ---
  // Inserts `key` (and `new_project` first, if given). Sets key->version. A `new_project`
  // whose name its org has by now (a concurrent write created it) is not created again: the
  // key joins the stored one (key->project_id is set to its id). The same for UpdateServiceKey.
  // A store with a quota of service keys per organization refuses one more with
  // PermissionDenied (reason key_quota_exceeded).
  virtual Status InsertServiceKey(keys::ServiceKey* key,
                                  const std::optional<keys::Project>& new_project,
                                  const keys::AuditEntry& audit) = 0;
  // Replaces every mutable field of the stored row with `key`'s (name, project, guardrails,
  // disabled, metadata, tags, updated_at, revoke_at...). Sets key->version. NotFound. A
  // non-zero key->version is the version `key` was read at: if the stored row has changed
  // since, Conflict with reason kStaleWrite and nothing written (read, change, write: two
  // writers of one key must not undo each other, a revocation least of all).
  virtual Status UpdateServiceKey(keys::ServiceKey* key,
                                  const std::optional<keys::Project>& new_project,
                                  const keys::AuditEntry& audit) = 0;
  // One transaction: writes old_key (with its revoke_at set; its version checked as
  // UpdateServiceKey's) and inserts new_key. A store with a quota refuses a rotation that adds
  // a key past it (the old one in its grace period) with PermissionDenied (key_quota_exceeded).
  virtual Status RotateServiceKey(keys::ServiceKey* old_key, keys::ServiceKey* new_key,
                                  const keys::AuditEntry& audit) = 0;
  // The stored row, revoked or not. NotFound.
  virtual Result<keys::ServiceKey> GetServiceKey(const std::string& hash) = 0;
  // The same, of `org_id` only: another org's key is NotFound, as one that does not exist, and
  // costs the same to look for (its row is never decoded: audit Z timed 7-12 µs between them).
  virtual Result<keys::ServiceKey> GetServiceKeyOfOrg(const std::string& org_id,
                                                      const std::string& hash) = 0;
  // InvalidArgument (param "starting_after") if the cursor names no key of the org.
  virtual Result<ServiceKeyPage> ListServiceKeys(const ServiceKeyQuery& query) = 0;
  // Up to `max` keys (revoked included) with version > `after_version`, by version.
  virtual Result<std::vector<keys::ServiceKey>> ServiceKeysChangedSince(int64_t after_version,
                                                                       int64_t max) = 0;
  // Every key that is not revoked at `now`, for loading the in-memory index at start.
  virtual Result<std::vector<keys::ServiceKey>> AllLiveServiceKeys(UnixMillis now) = 0;

  // Best-effort, batched: last_used_at of service or provisioning keys. Not audited.
  struct Touch {
    std::string hash;
    UnixMillis at = 0;
  };
  virtual Status TouchLastUsed(const std::vector<Touch>& touches) = 0;
};

}  // namespace keygate::store
