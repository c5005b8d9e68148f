#include "keys/key_index.h"

#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace keygate::keys {

KeyIndex::Shard& KeyIndex::ShardFor(std::string_view hash) const {
  return shards_[DigestHash{}(hash) % kShards];
}

void KeyIndex::UpsertServiceKey(const ServiceKey& key) {
  auto snapshot = std::make_shared<const ServiceKey>(key);
  {
    Shard& shard = ShardFor(key.hash);
    std::unique_lock lock(shard.mu);
    IndexedCredential& slot = shard.entries[key.hash];
    // Writes can race (local write vs. poller): the higher version wins.
    if (slot.service_key && slot.service_key->version > key.version) return;
    slot.kind = CredentialKind::kServiceKey;
    slot.service_key = snapshot;
    // The key carries its org; an empty org_id here keeps Find() (every model call) from
    // copying it.
    slot.org_id.clear();
  }
  if (LineageOf(key) != key.hash) NoteSuccessor(snapshot);
  NoteVersion(key.version);
}

void KeyIndex::NoteVersion(int64_t version) {
  std::unique_lock lock(version_mu_);
  if (version > max_version_) max_version_ = version;
}

bool KeyIndex::RevokedLongAgo(const ServiceKey& key, UnixMillis now) {
  return key.revoke_at.has_value() && *key.revoke_at <= now - kRevokedKeptMs;
}

void KeyIndex::ApplyStoredChange(const ServiceKey& key, UnixMillis now) {
  if (!RevokedLongAgo(key, now)) return UpsertServiceKey(key);
  {
    Shard& shard = ShardFor(key.hash);
    std::unique_lock lock(shard.mu);
    const auto it = shard.entries.find(key.hash);
    if (it != shard.entries.end() && it->second.service_key &&
        it->second.service_key->version <= key.version) {
      shard.entries.erase(it);
    }
  }
  {
    std::unique_lock lock(successors_mu_);
    if (const auto it = successors_.find(key.lineage); it != successors_.end()) {
      std::erase_if(it->second, [&](const std::shared_ptr<const ServiceKey>& held) {
        return held->hash == key.hash && held->version <= key.version;
      });
      if (it->second.empty()) successors_.erase(it);
    }
  }
  NoteVersion(key.version);
}

size_t KeyIndex::DropRevoked(UnixMillis now) {
  size_t dropped = 0;
  std::vector<std::string> doomed;
  std::vector<std::shared_ptr<const ServiceKey>> freed;  // released after the locks (review)
  for (Shard& shard : shards_) {
    // Found under the shared lock, which model calls' Find() share: the exclusive one only
    // to erase, and only when there is something to erase (the review: a scan of 30,000
    // records under it stalled every io thread authenticating in that shard for ~5 ms).
    doomed.clear();
    {
      std::shared_lock lock(shard.mu);
      for (const auto& [hash, held] : shard.entries) {
        if (held.service_key != nullptr && RevokedLongAgo(*held.service_key, now)) {
          doomed.push_back(hash);
        }
      }
    }
    if (doomed.empty()) continue;
    std::unique_lock lock(shard.mu);
    for (const std::string& hash : doomed) {
      const auto it = shard.entries.find(hash);
      // Upserted again meanwhile (a later version): checked again.
      if (it == shard.entries.end() || it->second.service_key == nullptr ||
          !RevokedLongAgo(*it->second.service_key, now)) {
        continue;
      }
      freed.push_back(std::move(it->second.service_key));
      shard.entries.erase(it);
      ++dropped;
    }
  }
  std::unique_lock lock(successors_mu_);
  for (auto it = successors_.begin(); it != successors_.end();) {
    std::erase_if(it->second, [now](const std::shared_ptr<const ServiceKey>& key) {
      return RevokedLongAgo(*key, now);
    });
    it = it->second.empty() ? successors_.erase(it) : std::next(it);
  }
  return dropped;
}

void KeyIndex::NoteSuccessor(const std::shared_ptr<const ServiceKey>& key) {
  std::unique_lock lock(successors_mu_);
  auto& keys = successors_[key->lineage];
  for (auto& held : keys) {
    if (held->hash != key->hash) continue;
    // Two upserts of one key may get here in either order: the higher version stays.
    if (held->version <= key->version) held = key;
    return;
  }
  keys.push_back(key);
}

std::shared_ptr<const ServiceKey> KeyIndex::Successor(std::string_view lineage) const {
  std::shared_lock lock(successors_mu_);
  const auto it = successors_.find(lineage);
  if (it == successors_.end()) return nullptr;
  std::shared_ptr<const ServiceKey> newest;
  for (const auto& key : it->second) {
    if (key->revoke_at.has_value()) continue;  // rotated again, or deleted
    if (!newest || std::tie(key->created_at, key->version) >
                       std::tie(newest->created_at, newest->version)) {
      newest = key;
    }
  }
  return newest;
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

std::vector<std::shared_ptr<const ServiceKey>> KeyIndex::StandIns(std::string_view lineage,
                                                                  UnixMillis now) const {
  std::vector<std::shared_ptr<const ServiceKey>> keys;
  auto in_grace = [now](const ServiceKey& key) {
    return key.revoke_at.has_value() && *key.revoke_at > now;
  };
  if (const IndexedCredential original = Find(lineage);
      original.service_key != nullptr && in_grace(*original.service_key)) {
    keys.push_back(original.service_key);
  }
  std::shared_lock lock(successors_mu_);
  if (const auto it = successors_.find(lineage); it != successors_.end()) {
    for (const auto& key : it->second) {
      if (in_grace(*key)) keys.push_back(key);
    }
  }
  return keys;
}

int64_t KeyIndex::max_version() const {
  std::shared_lock lock(version_mu_);
  return max_version_;
}

KeyIndex::ServiceKeyCounts KeyIndex::CountServiceKeys(UnixMillis now) const {
  ServiceKeyCounts counts;
  for (Shard& shard : shards_) {
    std::shared_lock lock(shard.mu);
    for (const auto& [hash, cred] : shard.entries) {
      if (cred.service_key == nullptr) continue;
      ++counts.records;
      counts.live += !RevokedAt(*cred.service_key, now);
    }
  }
  return counts;
}

}  // namespace keygate::keys
