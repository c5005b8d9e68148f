#include "store/key_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "store/sqlite/sqlite_store.h"
#include "store/store_contract.h"

namespace keygate::store::testing {
namespace {

using keys::AuditEntry;
using keys::ProvisioningKey;
using keys::ServiceKey;

Result<StoreHandle> OpenSqlite(const std::string& dir) {
  auto store = SqliteStore::Open(dir + "/keygate.db", SqliteOptions{});
  if (!store.ok()) return store.error();
  StoreHandle handle;
  SqliteStore* raw = store->get();
  handle.keys = raw;
  handle.audit = raw;
  handle.usage = raw;
  handle.owner = std::move(*store);
  return handle;
}

}  // namespace

// ---------------------------------------------------------------- backends

// A PostgreSQL backend adds one entry here.
std::vector<Backend> Backends() { return {Backend{"Sqlite", OpenSqlite}}; }

// ---------------------------------------------------------------- fixture

// FNV-1a: deterministic, and unlike a real digest needs no crypto library.
std::string HexId(const std::string& seed) {
  std::string out;
  for (uint64_t round = 0; round < 4; ++round) {
    uint64_t h = 14695981039346656037ULL ^ round;
    for (unsigned char c : seed) h = (h ^ c) * 1099511628211ULL;
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
    out += buf;
  }
  return out;
}

std::string MakeTempDir() {
  std::string pattern = ::testing::TempDir() + "keygate_store_XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp failed for " << pattern;
    return {};
  }
  return pattern;
}

void KeyStoreContractTest::SetUp() {
  dir_ = MakeTempDir();
  ASSERT_FALSE(dir_.empty());
  auto opened = GetParam().open(dir_);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  handle_ = std::move(*opened);
}

void KeyStoreContractTest::TearDown() {
  handle_ = StoreHandle{};
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void KeyStoreContractTest::Reopen() {
  handle_ = StoreHandle{};
  auto opened = GetParam().open(dir_);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  handle_ = std::move(*opened);
}

void KeyStoreContractTest::CreateOrg(const std::string& org_id) {
  keys::Organization org{org_id, "Org " + org_id, kT0};
  keys::OwnerCredential owner{HexId("owner" + org_id), org_id, "first owner", "ok-kg-••••abcd",
                              kT0};
  Status created =
      keys().CreateOrganization(org, owner, Audit(org_id, "organization.create", org_id));
  ASSERT_TRUE(created.ok()) << created.error().message;
}

AuditEntry KeyStoreContractTest::Audit(const std::string& org_id, const std::string& action,
                                       const std::string& target) {
  AuditEntry entry;
  entry.org_id = org_id;
  entry.at = kT0;
  entry.actor = "owner:abc";
  entry.actor_name = "first owner";
  entry.action = action;
  entry.target = target;
  entry.changes_json = "{}";
  entry.request_id = "req-1";
  return entry;
}

ProvisioningKey KeyStoreContractTest::MakeProvisioningKey(const std::string& org_id,
                                                          const std::string& name) {
  ProvisioningKey key;
  key.hash = HexId("pk" + org_id + name);
  key.org_id = org_id;
  key.name = name;
  key.masked = "pk-kg-••••" + key.hash.substr(0, 4);
  key.created_at = kT0;
  return key;
}

ServiceKey KeyStoreContractTest::MakeServiceKey(const std::string& org_id,
                                                const std::string& name) {
  ServiceKey key;
  key.hash = HexId("sk" + org_id + name);
  key.org_id = org_id;
  key.name = name;
  key.masked = "sk-kg-••••" + key.hash.substr(0, 4);
  key.created_by = "owner:abc";
  key.lineage = key.hash;
  key.created_at = kT0;
  return key;
}

ServiceKey KeyStoreContractTest::InsertKey(const std::string& org_id, const std::string& name,
                                           const std::function<void(ServiceKey*)>& customize) {
  ServiceKey key = MakeServiceKey(org_id, name);
  if (customize) customize(&key);
  Status inserted =
      keys().InsertServiceKey(&key, std::nullopt, Audit(org_id, "service_key.create", key.hash));
  EXPECT_TRUE(inserted.ok()) << inserted.error().message;
  return key;
}

std::vector<std::string> KeyStoreContractTest::Names(const ServiceKeyPage& page) {
  std::vector<std::string> names;
  for (const ServiceKey& key : page.keys) names.push_back(key.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Backends, KeyStoreContractTest, ::testing::ValuesIn(Backends()),
                         [](const ::testing::TestParamInfo<Backend>& info) {
                           return info.param.name;
                         });

// ---------------------------------------------------------------- organizations and owners

TEST_P(KeyStoreContractTest, CreatesOrganizationWithItsOwnerCredential) {
  CreateOrg("org_a");
  auto org = keys().GetOrganization("org_a");
  ASSERT_TRUE(org.ok()) << org.error().message;
  EXPECT_EQ(org->name, "Org org_a");
  EXPECT_EQ(org->created_at, kT0);
  auto owner = keys().GetOwnerCredential(HexId("ownerorg_a"));
  ASSERT_TRUE(owner.ok()) << owner.error().message;
  EXPECT_EQ(owner->org_id, "org_a");
  EXPECT_EQ(owner->name, "first owner");
  EXPECT_EQ(owner->masked, "ok-kg-••••abcd");
}

TEST_P(KeyStoreContractTest, UnknownOrganizationAndOwnerAreNotFound) {
  EXPECT_EQ(keys().GetOrganization("org_none").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(keys().GetOwnerCredential(HexId("nobody")).error().code, ErrorCode::kNotFound);
}

TEST_P(KeyStoreContractTest, DuplicateOrganizationIdIsConflictAndWritesNothing) {
  CreateOrg("org_a");
  keys::Organization again{"org_a", "again", kT0};
  keys::OwnerCredential owner{HexId("second owner"), "org_a", "second", "ok-kg-••••ffff", kT0};
  Status status =
      keys().CreateOrganization(again, owner, Audit("org_a", "organization.create", ""));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kConflict);
  EXPECT_EQ(keys().GetOwnerCredential(owner.hash).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(keys().GetOrganization("org_a")->name, "Org org_a");
}

TEST_P(KeyStoreContractTest, AddsOwnerCredentialsToAnExistingOrganizationOnly) {
  CreateOrg("org_a");
  keys::OwnerCredential second{HexId("second owner"), "org_a", "second", "ok-kg-••••ffff", kT0};
  Status added = keys().InsertOwnerCredential(second, Audit("org_a", "owner.create", second.hash));
  ASSERT_TRUE(added.ok()) << added.error().message;
  auto stored = keys().GetOwnerCredential(second.hash);
  ASSERT_TRUE(stored.ok()) << stored.error().message;
  EXPECT_EQ(stored->org_id, "org_a");
  EXPECT_EQ(stored->name, "second");
  EXPECT_TRUE(keys().GetOwnerCredential(HexId("ownerorg_a")).ok());  // the first stays
  store::AuditQuery query;
  query.org_id = "org_a";
  query.target = second.hash;
  auto entries = audit().ListAudit(query);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->entries.size(), 1u);
  EXPECT_EQ(entries->entries[0].action, "owner.create");

  keys::OwnerCredential stray{HexId("stray"), "org_none", "stray", "ok-kg-••••eeee", kT0};
  Status refused = keys().InsertOwnerCredential(stray, Audit("org_none", "owner.create", ""));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(keys().GetOwnerCredential(stray.hash).error().code, ErrorCode::kNotFound);
}

TEST_P(KeyStoreContractTest, ListsEveryOrganization) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  auto orgs = keys().ListOrganizations();
  ASSERT_TRUE(orgs.ok());
  ASSERT_EQ(orgs->size(), 2u);
  EXPECT_EQ((*orgs)[0].id, "org_a");
  EXPECT_EQ((*orgs)[1].id, "org_b");
}

// ---------------------------------------------------------------- provisioning keys

TEST_P(KeyStoreContractTest, InsertsAndGetsProvisioningKey) {
  CreateOrg("org_a");
  ProvisioningKey key = MakeProvisioningKey("org_a", "ci");
  ASSERT_TRUE(
      keys().InsertProvisioningKey(key, Audit("org_a", "provisioning_key.create", key.hash)).ok());
  auto got = keys().GetProvisioningKey(key.hash);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->name, "ci");
  EXPECT_EQ(got->org_id, "org_a");
  EXPECT_EQ(got->masked, key.masked);
  EXPECT_FALSE(got->disabled);
  EXPECT_EQ(got->created_at, kT0);
  EXPECT_FALSE(got->last_used_at.has_value());
  EXPECT_EQ(keys().GetProvisioningKey(HexId("missing")).error().code, ErrorCode::kNotFound);
}

TEST_P(KeyStoreContractTest, DuplicateProvisioningKeyNameInOrgIsConflictNamingName) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  ASSERT_TRUE(keys()
                  .InsertProvisioningKey(MakeProvisioningKey("org_a", "ci"),
                                         Audit("org_a", "provisioning_key.create", ""))
                  .ok());
  ProvisioningKey dup = MakeProvisioningKey("org_a", "ci");
  dup.hash = HexId("another secret");
  Status status = keys().InsertProvisioningKey(dup, Audit("org_a", "provisioning_key.create", ""));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kConflict);
  EXPECT_EQ(status.error().param, "name");
  // The same name in another organization is fine.
  EXPECT_TRUE(keys()
                  .InsertProvisioningKey(MakeProvisioningKey("org_b", "ci"),
                                         Audit("org_b", "provisioning_key.create", ""))
                  .ok());
}

TEST_P(KeyStoreContractTest, ProvisioningKeyOfUnknownOrganizationIsNotFound) {
  Status status = keys().InsertProvisioningKey(MakeProvisioningKey("org_none", "ci"),
                                               Audit("org_none", "provisioning_key.create", ""));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kNotFound);
}

TEST_P(KeyStoreContractTest, ListsProvisioningKeysOfOneOrganization) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  for (const char* name : {"one", "two"}) {
    ASSERT_TRUE(keys()
                    .InsertProvisioningKey(MakeProvisioningKey("org_a", name),
                                           Audit("org_a", "provisioning_key.create", ""))
                    .ok());
  }
  ASSERT_TRUE(keys()
                  .InsertProvisioningKey(MakeProvisioningKey("org_b", "other"),
                                         Audit("org_b", "provisioning_key.create", ""))
                  .ok());
  auto list = keys().ListProvisioningKeys("org_a");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "one");
  EXPECT_EQ((*list)[1].name, "two");
  EXPECT_TRUE(keys().ListProvisioningKeys("org_none")->empty());
}

TEST_P(KeyStoreContractTest, UpdatesProvisioningKeyNameAndDisabled) {
  CreateOrg("org_a");
  ProvisioningKey key = MakeProvisioningKey("org_a", "ci");
  ASSERT_TRUE(
      keys().InsertProvisioningKey(key, Audit("org_a", "provisioning_key.create", "")).ok());
  key.name = "deploy";
  key.disabled = true;
  ASSERT_TRUE(
      keys().UpdateProvisioningKey(key, Audit("org_a", "provisioning_key.disable", key.hash)).ok());
  auto got = keys().GetProvisioningKey(key.hash);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "deploy");
  EXPECT_TRUE(got->disabled);
}

TEST_P(KeyStoreContractTest, AProvisioningKeyWriteFromAStaleReadIsAConflict) {
  CreateOrg("org_a");
  ProvisioningKey key = MakeProvisioningKey("org_a", "ci");
  ASSERT_TRUE(keys().InsertProvisioningKey(key, Audit("org_a", "x", "")).ok());
  const ProvisioningKey as_read = key;
  ProvisioningKey disabled = key;
  disabled.disabled = true;
  ASSERT_TRUE(keys().UpdateProvisioningKey(disabled, Audit("org_a", "x", ""), &as_read).ok());
  ProvisioningKey renamed = as_read;  // made from the read before the disable
  renamed.name = "deploy";
  Status refused = keys().UpdateProvisioningKey(renamed, Audit("org_a", "y", ""), &as_read);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().reason, store::kStaleWrite);
  EXPECT_TRUE(keys().GetProvisioningKey(key.hash)->disabled);
  EXPECT_EQ(keys().GetProvisioningKey(key.hash)->name, "ci");
  ProvisioningKey ghost = MakeProvisioningKey("org_a", "ghost");
  EXPECT_EQ(keys().UpdateProvisioningKey(ghost, Audit("org_a", "y", ""), &ghost).error().code,
            ErrorCode::kNotFound);
}

TEST_P(KeyStoreContractTest, UpdateProvisioningKeyToTakenNameIsConflict) {
  CreateOrg("org_a");
  ProvisioningKey first = MakeProvisioningKey("org_a", "first");
  ProvisioningKey second = MakeProvisioningKey("org_a", "second");
  ASSERT_TRUE(
      keys().InsertProvisioningKey(first, Audit("org_a", "provisioning_key.create", "")).ok());
  ASSERT_TRUE(
      keys().InsertProvisioningKey(second, Audit("org_a", "provisioning_key.create", "")).ok());
  second.name = "first";
  Status status =
      keys().UpdateProvisioningKey(second, Audit("org_a", "provisioning_key.update", ""));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kConflict);
  EXPECT_EQ(status.error().param, "name");
  EXPECT_EQ(keys().GetProvisioningKey(second.hash)->name, "second");
}

TEST_P(KeyStoreContractTest, UpdateOrDeleteOfMissingOrForeignProvisioningKeyIsNotFound) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  ProvisioningKey key = MakeProvisioningKey("org_a", "ci");
  ASSERT_TRUE(
      keys().InsertProvisioningKey(key, Audit("org_a", "provisioning_key.create", "")).ok());
  ProvisioningKey foreign = key;
  foreign.org_id = "org_b";
  EXPECT_EQ(keys().UpdateProvisioningKey(foreign, Audit("org_b", "x", "")).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(
      keys()
          .UpdateProvisioningKey(MakeProvisioningKey("org_a", "ghost"), Audit("org_a", "x", ""))
          .error()
          .code,
      ErrorCode::kNotFound);
  EXPECT_EQ(keys().DeleteProvisioningKey("org_b", key.hash, Audit("org_b", "x", "")).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(
      keys().DeleteProvisioningKey("org_a", HexId("ghost"), Audit("org_a", "x", "")).error().code,
      ErrorCode::kNotFound);
  EXPECT_TRUE(keys().GetProvisioningKey(key.hash).ok());
}

TEST_P(KeyStoreContractTest, DeletesProvisioningKeyAndFreesItsName) {
  CreateOrg("org_a");
  ProvisioningKey key = MakeProvisioningKey("org_a", "ci");
  ASSERT_TRUE(
      keys().InsertProvisioningKey(key, Audit("org_a", "provisioning_key.create", "")).ok());
  ASSERT_TRUE(keys()
                  .DeleteProvisioningKey("org_a", key.hash,
                                         Audit("org_a", "provisioning_key.delete", key.hash))
                  .ok());
  EXPECT_EQ(keys().GetProvisioningKey(key.hash).error().code, ErrorCode::kNotFound);
  ProvisioningKey reuse = MakeProvisioningKey("org_a", "ci");
  reuse.hash = HexId("new secret");
  EXPECT_TRUE(
      keys().InsertProvisioningKey(reuse, Audit("org_a", "provisioning_key.create", "")).ok());
}

// ---------------------------------------------------------------- projects

TEST_P(KeyStoreContractTest, InsertsNewProjectWithServiceKey) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  keys::Project project{"proj_1", "org_a", "search", kT0};
  ServiceKey key = MakeServiceKey("org_a", "k");
  key.project_id = project.id;
  key.project_name = project.name;
  ASSERT_TRUE(
      keys().InsertServiceKey(&key, project, Audit("org_a", "service_key.create", key.hash)).ok());
  auto by_id = keys().GetProject("org_a", "proj_1");
  ASSERT_TRUE(by_id.ok()) << by_id.error().message;
  EXPECT_EQ(by_id->name, "search");
  auto by_name = keys().FindProjectByName("org_a", "search");
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, "proj_1");
  EXPECT_EQ(keys().GetServiceKey(key.hash)->project_name, "search");
  // Another org sees nothing (spec §2: a miss across tenants is NotFound).
  EXPECT_EQ(keys().GetProject("org_b", "proj_1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(keys().FindProjectByName("org_b", "search").error().code, ErrorCode::kNotFound);
}

TEST_P(KeyStoreContractTest, ANewProjectNameCreatedMeanwhileIsJoinedNotDuplicated) {
  CreateOrg("org_a");
  ServiceKey first = MakeServiceKey("org_a", "first");
  first.project_id = "proj_1";
  ASSERT_TRUE(keys()
                  .InsertServiceKey(&first, keys::Project{"proj_1", "org_a", "search", kT0},
                                    Audit("org_a", "service_key.create", ""))
                  .ok());
  ServiceKey second = MakeServiceKey("org_a", "second");
  second.project_id = "proj_2";
  // Two calls named the same new project; the first created it, the second joins it, and its
  // audit entry names the project it joined.
  keys::AuditEntry entry = Audit("org_a", "service_key.create", "second");
  entry.changes_json = R"({"project_id":{"before":null,"after":"proj_2"}})";
  Status status = keys().InsertServiceKey(&second, keys::Project{"proj_2", "org_a", "search", kT0},
                                          entry);
  ASSERT_TRUE(status.ok()) << status.error().message;
  EXPECT_EQ(second.project_id, "proj_1");
  auto stored = keys().GetServiceKey(second.hash);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->project_id, "proj_1");
  EXPECT_EQ(keys().GetProject("org_a", "proj_2").error().code, ErrorCode::kNotFound);
  store::AuditQuery query;
  query.org_id = "org_a";
  query.target = "second";
  auto entries = audit().ListAudit(query);
  ASSERT_TRUE(entries.ok()) << entries.error().message;
  ASSERT_EQ(entries->entries.size(), 1u);
  EXPECT_EQ(entries->entries[0].changes_json, R"({"project_id":{"before":null,"after":"proj_1"}})");
  // The same on an update.
  ServiceKey third = MakeServiceKey("org_a", "third");
  ASSERT_TRUE(
      keys().InsertServiceKey(&third, std::nullopt, Audit("org_a", "service_key.create", "")).ok());
  third.project_id = "proj_3";
  ASSERT_TRUE(keys()
                  .UpdateServiceKey(&third, keys::Project{"proj_3", "org_a", "search", kT0},
                                    Audit("org_a", "service_key.update", ""))
                  .ok());
  EXPECT_EQ(keys().GetServiceKey(third.hash)->project_id, "proj_1");
}

TEST_P(KeyStoreContractTest, ServiceKeyInAnotherOrganizationsProjectIsNotFound) {
  CreateOrg("org_a");
  CreateOrg("org_b");
  ServiceKey owner_key = MakeServiceKey("org_a", "k");
  owner_key.project_id = "proj_1";
  ASSERT_TRUE(keys()
                  .InsertServiceKey(&owner_key, keys::Project{"proj_1", "org_a", "p", kT0},
                                    Audit("org_a", "service_key.create", ""))
                  .ok());
  ServiceKey intruder = MakeServiceKey("org_b", "k");
  intruder.project_id = "proj_1";
  Status status = keys().InsertServiceKey(&intruder, std::nullopt, Audit("org_b", "x", ""));
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kNotFound);
}

}  // namespace keygate::store::testing
