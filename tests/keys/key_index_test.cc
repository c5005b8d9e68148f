#include "keys/key_index.h"

#include <gtest/gtest.h>

#include <string>

namespace keygate::keys {
namespace {

constexpr const char* kLineage = "1111111111111111111111111111111111111111111111111111111111111111";

// A key made by rotation in kLineage.
ServiceKey Successor(const std::string& hash, UnixMillis created_at, int64_t version) {
  ServiceKey key;
  key.hash = hash;
  key.org_id = "org_1";
  key.lineage = kLineage;
  key.created_at = created_at;
  key.version = version;
  return key;
}

std::string HashOf(const std::shared_ptr<const ServiceKey>& key) {
  return key == nullptr ? "none" : key->hash;
}

TEST(KeyIndexTest, ALineageNeverRotatedHasNoSuccessor) {
  KeyIndex index;
  ServiceKey original;
  original.hash = kLineage;
  original.lineage = kLineage;
  original.version = 1;
  index.UpsertServiceKey(original);
  EXPECT_EQ(index.Successor(kLineage), nullptr);
}

TEST(KeyIndexTest, TheSuccessorIsTheNewestKeyNeitherRotatedNorDeleted) {
  KeyIndex index;
  index.UpsertServiceKey(Successor("a2", 100, 2));
  EXPECT_EQ(HashOf(index.Successor(kLineage)), "a2");
  // The old key rotated a second time within its grace period: the newer one.
  index.UpsertServiceKey(Successor("a3", 200, 3));
  EXPECT_EQ(HashOf(index.Successor(kLineage)), "a3");
  // That one deleted: back to the first successor, still live.
  ServiceKey deleted = Successor("a3", 200, 4);
  deleted.revoke_at = 300;
  index.UpsertServiceKey(deleted);
  EXPECT_EQ(HashOf(index.Successor(kLineage)), "a2");
  // The first successor rotated in turn: its own successor.
  ServiceKey rotated = Successor("a2", 100, 5);
  rotated.revoke_at = 10'000;
  index.UpsertServiceKey(rotated);
  EXPECT_EQ(HashOf(index.Successor(kLineage)), "none");
  index.UpsertServiceKey(Successor("a4", 400, 6));
  EXPECT_EQ(HashOf(index.Successor(kLineage)), "a4");
}

TEST(KeyIndexTest, AnOlderVersionArrivingLateDoesNotBringADeletedSuccessorBack) {
  KeyIndex index;
  ServiceKey deleted = Successor("a2", 100, 7);
  deleted.revoke_at = 150;
  index.UpsertServiceKey(deleted);
  index.UpsertServiceKey(Successor("a2", 100, 6));  // the poller, behind a local write
  EXPECT_EQ(index.Successor(kLineage), nullptr);
  EXPECT_EQ(index.Find("a2").service_key->version, 7);
}

// Audit W: deleted keys were kept whole, for good (~17 KB each with 15 KB of metadata).
TEST(KeyIndexTest, RevokedKeysAreDroppedAMinuteAfterTheirRevocation) {
  constexpr UnixMillis kNow = 1'000'000;
  KeyIndex index;
  ServiceKey original;
  original.hash = kLineage;
  original.lineage = kLineage;
  original.version = 1;
  original.revoke_at = kNow + 3'600'000;  // rotated, in its grace period for an hour
  index.UpsertServiceKey(original);
  ServiceKey rotated_away = Successor("a2", 100, 2);
  rotated_away.revoke_at = kNow - 10'000;  // rotated again, ten seconds ago
  index.UpsertServiceKey(rotated_away);
  index.UpsertServiceKey(Successor("a3", 200, 3));
  ServiceKey deleted = Successor("d1", 50, 4);
  deleted.lineage = "d1";
  deleted.revoke_at = kNow - 10'000;
  index.UpsertServiceKey(deleted);
  EXPECT_EQ(index.DropRevoked(kNow), 0u);  // revoked ten seconds ago: still held, refused
  EXPECT_EQ(index.CountServiceKeys(kNow).records, 4u);
  EXPECT_EQ(index.DropRevoked(kNow + KeyIndex::kRevokedKeptMs - 10'000), 2u);
  EXPECT_EQ(index.CountServiceKeys(kNow).records, 2u);
  EXPECT_EQ(index.Find("d1").kind, CredentialKind::kNone);
  EXPECT_EQ(index.Find("a2").kind, CredentialKind::kNone);
  // The key in its grace period and its successor are there, and stand in as before.
  EXPECT_EQ(HashOf(index.Successor(kLineage)), "a3");
  ASSERT_EQ(index.StandIns(kLineage, kNow).size(), 1u);
  EXPECT_EQ(index.StandIns(kLineage, kNow)[0]->hash, kLineage);
  EXPECT_EQ(index.max_version(), 4);
}

TEST(KeyIndexTest, AStoredChangeOfAKeyRevokedLongAgoIsNotKept) {
  constexpr UnixMillis kNow = 1'000'000;
  KeyIndex index;
  ServiceKey live = Successor("a2", 100, 2);
  index.UpsertServiceKey(live);
  // After a restart the poller reads back keys deleted long ago: none is kept.
  ServiceKey old = Successor("old", 10, 5);
  old.lineage = "old";
  old.revoke_at = kNow - KeyIndex::kRevokedKeptMs;
  index.ApplyStoredChange(old, kNow);
  EXPECT_EQ(index.Find("old").kind, CredentialKind::kNone);
  EXPECT_EQ(index.max_version(), 5);  // read: the poller goes on after it
  // A key held live whose deletion (long ago, by another replica) is read now: dropped.
  ServiceKey gone = live;
  gone.version = 6;
  gone.revoke_at = kNow - KeyIndex::kRevokedKeptMs - 1;
  index.ApplyStoredChange(gone, kNow);
  EXPECT_EQ(index.Find("a2").kind, CredentialKind::kNone);
  EXPECT_EQ(index.Successor(kLineage), nullptr);
  // Revoked within the minute: kept, refused, as UpsertServiceKey does.
  ServiceKey recent = Successor("a3", 200, 7);
  recent.revoke_at = kNow - 1;
  index.ApplyStoredChange(recent, kNow);
  EXPECT_EQ(index.Find("a3").service_key->version, 7);
  EXPECT_EQ(index.CountServiceKeys(kNow).records, 1u);
}

}  // namespace
}  // namespace keygate::keys
