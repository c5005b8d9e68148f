// The in-memory index of credentials that the data plane authenticates against without a
// store round trip (spec §5): SHA-256 digest → the service key's current record, plus the
// digests of provisioning keys and owner credentials (so that they can be told apart and
// refused with 403 rather than 401).
//
// Kept current by KeyService on every write of this replica, and by a poller that applies
// KeyStore::ServiceKeysChangedSince() for writes of other replicas.
//
// It also knows, for each lineage that rotation has extended, the key a rotated key in its
// grace period stands in for (Successor()).
//
// Thread safety: all methods may be called concurrently. Find() is lock-sharded and returns
// an immutable snapshot that stays valid after later updates.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/digest_hash.h"
#include "keys/model.h"

namespace keygate::keys {

enum class CredentialKind {
  kNone,             // no credential has this digest
  kServiceKey,       // see the record
  kProvisioningKey,  // management only
  kOwner,            // owner credential
};

struct IndexedCredential {
  CredentialKind kind = CredentialKind::kNone;
  std::shared_ptr<const ServiceKey> service_key;  // set for kServiceKey
  std::string org_id;                             // set for the other kinds only
  bool disabled = false;                          // provisioning keys
};

class KeyIndex {
 public:
  // How long the record of a revoked key (deleted, or rotated and past its grace period) is
  // kept, refused: long enough that an older version of it read before its revocation (the
  // poller's, or a racing local write's) cannot bring it back. Then it is dropped
  // (DropRevoked), and answers as an unknown key: 401 either way.
  static constexpr UnixMillis kRevokedKeptMs = 60'000;

  // Inserts or replaces a service key (ignored if `key.version` is older than what is held).
  void UpsertServiceKey(const ServiceKey& key);
  // UpsertServiceKey for a change read from the store at `now`: a key revoked longer than
  // kRevokedKeptMs before is not kept, and a record of it held is dropped (after a restart
  // the poller reads back every key revoked since the newest live one: audit W).
  void ApplyStoredChange(const ServiceKey& key, UnixMillis now);
  // Drops the records of keys revoked longer than kRevokedKeptMs before `now`; run once per
  // kRevokedKeptMs, the index holds live keys and those revoked in the last two minutes at
  // most, however many are deleted (audit W: a provisioning key deleting keys with large
  // metadata grew memory by ~10 MB/s, for good). Returns how many it dropped.
  size_t DropRevoked(UnixMillis now);
  void UpsertOther(const std::string& hash, CredentialKind kind, const std::string& org_id,
                   bool disabled);
  void Remove(const std::string& hash);
  // A snapshot for `hash` (lowercase hex digest); kind kNone if absent.
  IndexedCredential Find(std::string_view hash) const;
  // The key that calls made with a rotated key of `lineage` are held to while its grace period
  // runs: the newest key of the lineage that was made by rotation and is neither rotated nor
  // deleted itself (no revoke_at). nullptr when there is none: every successor was deleted.
  std::shared_ptr<const ServiceKey> Successor(std::string_view lineage) const;
  // The keys of `lineage` rotated and still in their grace period at `now` (the original key
  // included): the ones that stand in for its successor.
  std::vector<std::shared_ptr<const ServiceKey>> StandIns(std::string_view lineage,
                                                          UnixMillis now) const;
  // The highest service-key version applied so far.
  int64_t max_version() const;
  struct ServiceKeyCounts {
    size_t live = 0;     // not revoked at `now`: the keys that can authenticate
    size_t records = 0;  // held: those and the revoked ones not dropped yet
  };
  // One walk of the index (for /metrics).
  ServiceKeyCounts CountServiceKeys(UnixMillis now) const;

 private:
  static constexpr size_t kShards = 32;
  struct Shard {
    mutable std::shared_mutex mu;
    std::unordered_map<std::string, IndexedCredential, DigestHash, std::equal_to<>> entries;
  };
  Shard& ShardFor(std::string_view hash) const;

  // Notes `key` (a new snapshot of a key made by rotation) among its lineage's successors.
  void NoteSuccessor(const std::shared_ptr<const ServiceKey>& key);
  void NoteVersion(int64_t version);
  // Whether `key` was revoked longer than kRevokedKeptMs before `now`.
  static bool RevokedLongAgo(const ServiceKey& key, UnixMillis now);

  mutable std::array<Shard, kShards> shards_;
  // Lineage -> the keys made by rotation in it, each as last upserted (an original key is
  // never its lineage's successor, so a lineage never rotated has no entry).
  mutable std::shared_mutex successors_mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<const ServiceKey>>, DigestHash,
                     std::equal_to<>>
      successors_;
  mutable std::shared_mutex version_mu_;
  int64_t max_version_ = 0;
};

}  // namespace keygate::keys
