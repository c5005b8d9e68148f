#include "testing/failing_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>

#include "store/sqlite/sqlite_store.h"
#include "store/store_contract.h"

namespace keygate::testing {
namespace {

using store::testing::kT0;

class FailingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = store::testing::MakeTempDir();
    auto opened = store::SqliteStore::Open(dir_ + "/keygate.db", {});
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    real_ = std::move(*opened);
    failing_ = std::make_unique<FailingStore>(*real_);
    keys::OwnerCredential owner{"owner-hash", "org_a", "owner", "ok-kg-••••0000", kT0};
    ASSERT_TRUE(failing_->CreateOrganization({"org_a", "A", kT0}, owner, Audit()).ok());
  }
  void TearDown() override {
    failing_.reset();
    real_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static keys::AuditEntry Audit() {
    keys::AuditEntry entry;
    entry.org_id = "org_a";
    entry.action = "test";
    return entry;
  }
  static keys::ProvisioningKey Pk(const std::string& name) {
    keys::ProvisioningKey key;
    key.hash = "hash-" + name;
    key.org_id = "org_a";
    key.name = name;
    key.created_at = kT0;
    return key;
  }

  std::string dir_;
  std::unique_ptr<store::SqliteStore> real_;
  std::unique_ptr<FailingStore> failing_;
};

TEST_F(FailingStoreTest, ForwardsWhenHealthy) {
  ASSERT_TRUE(failing_->InsertProvisioningKey(Pk("one"), Audit()).ok());
  EXPECT_EQ(failing_->GetProvisioningKey("hash-one")->name, "one");
  EXPECT_EQ(real_->GetProvisioningKey("hash-one")->name, "one");
  EXPECT_EQ(failing_->forwarded_writes(), 2);
  EXPECT_EQ(failing_->failed_writes(), 0);
}

TEST_F(FailingStoreTest, FailsTheNextNWritesWithoutTouchingTheRealStore) {
  failing_->FailNextWrites(2);
  Status first = failing_->InsertProvisioningKey(Pk("one"), Audit());
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, ErrorCode::kUnavailable);
  EXPECT_FALSE(failing_->AppendUsage({store::UsageRecord{}}).ok());
  EXPECT_TRUE(failing_->InsertProvisioningKey(Pk("two"), Audit()).ok());
  EXPECT_EQ(real_->GetProvisioningKey("hash-one").error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(real_->GetProvisioningKey("hash-two").ok());
  EXPECT_EQ(failing_->failed_writes(), 2);
  // Reads were never affected.
  EXPECT_TRUE(failing_->ListProvisioningKeys("org_a").ok());
}

TEST_F(FailingStoreTest, FailsEveryWriteOrReadWhileSwitchedOn) {
  failing_->SetFailAllWrites(true);
  keys::ServiceKey key;
  key.hash = "sk";
  key.org_id = "org_a";
  EXPECT_FALSE(failing_->InsertServiceKey(&key, std::nullopt, Audit()).ok());
  EXPECT_FALSE(failing_->TouchLastUsed({{"sk", kT0}}).ok());
  EXPECT_FALSE(failing_->DeleteProvisioningKey("org_a", "x", Audit()).ok());
  failing_->SetFailAllReads(true);
  EXPECT_EQ(failing_->GetOrganization("org_a").error().code, ErrorCode::kUnavailable);
  store::AuditQuery query;
  query.org_id = "org_a";
  EXPECT_FALSE(failing_->ListAudit(query).ok());
  failing_->Heal();
  EXPECT_TRUE(failing_->GetOrganization("org_a").ok());
  EXPECT_TRUE(failing_->InsertProvisioningKey(Pk("after"), Audit()).ok());
  EXPECT_EQ(failing_->failed_writes(), 3);
}

}  // namespace
}  // namespace keygate::testing
