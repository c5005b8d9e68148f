#include "keys/key_index.h"

#include <functional>
#include <mutex>

namespace keygate::keys {

KeyIndex::Shard& KeyIndex::ShardFor(std::string_view hash) const {
  return shards_[DigestHash{}(hash) % kShards];
}

void KeyIndex::UpsertServiceKey(const ServiceKey& key) {
  {
    Shard& shard = ShardFor(key.hash);
    std::unique_lock lock(shard.mu);
    IndexedCredential& slot = shard.entries[key.hash];
    // Writes can race (local write vs. poller): the higher version wins.
    if (slot.service_key && slot.service_key->version > key.version) return;
    slot.kind = CredentialKind::kServiceKey;
    slot.service_key = std::make_shared<const ServiceKey>(key);
    // The key carries its org; an empty org_id here keeps Find() (every model call) from
    // copying it.
    slot.org_id.clear();
  }
  std::unique_lock lock(version_mu_);
  if (key.version > max_version_) max_version_ = key.version;
}

void KeyIndex::UpsertOther(const std::string& hash, CredentialKind kind, const std::string& org_id,
                           bool disabled) {
  Shard& shard = ShardFor(hash);
  std::unique_lock lock(shard.mu);
  shard.entries[hash] = IndexedCredential{kind, nullptr, org_id, disabled};
}

void KeyIndex::Remove(const std::string& hash) {
  Shard& shard = ShardFor(hash);
  std::unique_lock lock(shard.mu);
  shard.entries.erase(hash);
}

IndexedCredential KeyIndex::Find(std::string_view hash) const {
  Shard& shard = ShardFor(hash);
  std::shared_lock lock(shard.mu);
  auto it = shard.entries.find(hash);
  if (it == shard.entries.end()) return {};
  return it->second;
}

int64_t KeyIndex::max_version() const {
  std::shared_lock lock(version_mu_);
  return max_version_;
}

size_t KeyIndex::service_key_count(UnixMillis now) const {
  size_t n = 0;
  for (Shard& shard : shards_) {
    std::shared_lock lock(shard.mu);
    for (const auto& [hash, cred] : shard.entries) {
      n += cred.kind == CredentialKind::kServiceKey && cred.service_key != nullptr &&
           !RevokedAt(*cred.service_key, now);
    }
  }
  return n;
}

}  // namespace keygate::keys
