#include "keys/model.h"

namespace keygate::keys {

bool RevokedAt(const ServiceKey& key, UnixMillis now) {
  return key.revoke_at.has_value() && *key.revoke_at <= now;
}

KeyStatus StatusAt(const ServiceKey& key, UnixMillis now) {
  if (key.disabled) return KeyStatus::kDisabled;
  if (key.guardrails.expires_at.has_value() && *key.guardrails.expires_at <= now) {
    return KeyStatus::kExpired;
  }
  return KeyStatus::kActive;
}

const char* ToString(ResetInterval interval) {
  switch (interval) {
    case ResetInterval::kNever: return "";
    case ResetInterval::kDaily: return "daily";
    case ResetInterval::kWeekly: return "weekly";
    case ResetInterval::kMonthly: return "monthly";
  }
  return "";
}

const char* ToString(KeySource source) {
  return source == KeySource::kWorkspace ? "workspace" : "router";
}

const char* ToString(KeyStatus status) {
  switch (status) {
    case KeyStatus::kActive: return "active";
    case KeyStatus::kDisabled: return "disabled";
    case KeyStatus::kExpired: return "expired";
  }
  return "active";
}

}  // namespace keygate::keys
