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

}  // namespace
}  // namespace keygate::keys
