// keygate's one model of tenants and keys (spec README §1, §3). Every dialect translates
// to and from these structs; nothing here knows about JSON or HTTP.
//
// Times are UnixMillis (UTC). Money is MicroUsd. Optional fields use std::optional, where
// nullopt means "unset" (null on the wire).
//
// Thread safety: plain values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/money.h"

namespace keygate::keys {

// spec §3 reset_budget_interval.
enum class ResetInterval {
  kNever,    // null on the wire: spend accumulates forever
  kDaily,    // periods start at 00:00 UTC
  kWeekly,   // periods start Monday 00:00 UTC
  kMonthly,  // periods start on the 1st at 00:00 UTC
};

// spec §1 `source`.
enum class KeySource {
  kRouter,     // made through a provisioning key (or an owner via a dialect)
  kWorkspace,  // made by an owner in the console; provisioning keys may not touch it
};

// Derived display status of a service key.
enum class KeyStatus {
  kActive,    // usable
  kDisabled,  // disabled flag set
  kExpired,   // expires_at has passed
};

struct Organization {
  std::string id;    // "org_" + 16 hex
  std::string name;
  UnixMillis created_at = 0;
};

struct Project {
  std::string id;    // "proj_" + 16 hex
  std::string org_id;
  std::string name;  // unique in the org
  UnixMillis created_at = 0;
};

struct OwnerCredential {
  std::string hash;  // SHA-256 hex of the secret; also its id
  std::string org_id;
  std::string name;
  std::string masked;
  UnixMillis created_at = 0;
};

struct ProvisioningKey {
  std::string hash;  // SHA-256 hex of the secret; the public id
  std::string org_id;
  std::string name;  // unique in the org
  std::string masked;
  bool disabled = false;
  UnixMillis created_at = 0;
  std::optional<UnixMillis> last_used_at;
};

// spec §3: every guardrail of a service key.
struct Guardrails {
  std::optional<std::vector<std::string>> models;  // nullopt = every model
  std::optional<MicroUsd> credit_limit;            // nullopt = unlimited
  ResetInterval reset_interval = ResetInterval::kNever;
  std::optional<int64_t> rpm_limit;  // > 0
  std::optional<int64_t> tpm_limit;  // > 0
  std::optional<UnixMillis> expires_at;
};

struct ServiceKey {
  std::string hash;  // SHA-256 hex of the secret; the public id in every dialect
  std::string org_id;
  std::string name;
  std::string masked;  // "sk-kg-••••a91c"
  std::string project_id;    // empty = no project
  std::string project_name;  // denormalised for reads
  KeySource source = KeySource::kRouter;
  Guardrails guardrails;
  bool disabled = false;
  std::string metadata_json;  // a JSON object as given, or empty for null
  std::vector<std::string> tags;
  bool include_byok_in_limit = false;  // OpenRouter field, stored
  std::string creator_user_id;         // OpenRouter field, stored ("" = null)
  std::string external_user;           // OpenRouter external.user, stored ("" = null)
  std::string created_by;   // actor id: "owner:<hash-prefix>" or "pk:<hash>"
  // All keys descended from one original by rotation share a lineage (the original's hash);
  // spend, budgets and rolling windows are counted per lineage, so rotation never resets them.
  std::string lineage;
  UnixMillis created_at = 0;
  std::optional<UnixMillis> updated_at;  // nullopt until the first update
  std::optional<UnixMillis> last_used_at;
  // Set by rotation with a grace period (the key works until then) or by delete (now).
  std::optional<UnixMillis> revoke_at;
  int64_t version = 0;  // store-assigned, strictly increasing across all writes
};

// The lineage `key`'s spend and windows count in: its `lineage`, or its own hash when that is
// unset.
inline const std::string& LineageOf(const ServiceKey& key) {
  return key.lineage.empty() ? key.hash : key.lineage;
}

// Status as shown on the wire, at `now`.
KeyStatus StatusAt(const ServiceKey& key, UnixMillis now);
// True if the key is revoked at `now` (deleted, or past its rotation grace period).
bool RevokedAt(const ServiceKey& key, UnixMillis now);

const char* ToString(ResetInterval interval);   // "daily", "weekly", "monthly"; "" for kNever
const char* ToString(KeySource source);         // "router", "workspace"
const char* ToString(KeyStatus status);         // "active", "disabled", "expired"

// Spend figures of a lineage, in micro-dollars, at a given instant.
struct UsageTotals {
  MicroUsd total = 0;
  MicroUsd daily = 0;    // since today 00:00 UTC
  MicroUsd weekly = 0;   // since Monday 00:00 UTC
  MicroUsd monthly = 0;  // since the 1st 00:00 UTC
  MicroUsd current_period = 0;  // in the key's own budget period (== total when kNever)
  int64_t tokens_current_minute = 0;
  int64_t requests_current_minute = 0;
};

// One audit-log entry (spec §2: who, what, which key, before and after, never a secret).
struct AuditEntry {
  int64_t id = 0;  // store-assigned: its place in its organization's log (1, 2, ...)
  std::string org_id;
  UnixMillis at = 0;
  std::string actor;        // "owner:<id>" or "pk:<hash>"
  std::string actor_name;
  std::string action;       // "service_key.create", "provisioning_key.disable", ...
  std::string target;       // hash of the key acted on
  std::string changes_json; // {"field": {"before": x, "after": y}, ...}
  std::string request_id;
};

}  // namespace keygate::keys
