// The contract suite of the store interfaces (KeyStore, AuditLog, UsageStore), run against
// every backend with INSTANTIATE_TEST_SUITE_P(Backends, KeyStoreContractTest, ...) in
// key_store_contract_test.cc. A backend is a factory that opens (or reopens) a store at a
// location; adding PostgreSQL means adding one factory to Backends().
//
// Thread safety: fixtures are per test; the stores they open are thread-safe.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "keys/model.h"
#include "store/audit_log.h"
#include "store/key_store.h"
#include "store/usage_store.h"

namespace keygate::store::testing {

// An opened store. `owner` owns the backend object, which implements all three interfaces.
struct StoreHandle {
  std::unique_ptr<KeyStore> owner;
  KeyStore* keys = nullptr;
  AuditLog* audit = nullptr;
  UsageStore* usage = nullptr;
};

struct Backend {
  std::string name;  // test-name suffix: letters and digits only
  // Opens the store kept under directory `dir`; called again with the same `dir` to reopen.
  std::function<Result<StoreHandle>(const std::string& dir)> open;
};

// Every backend the contract runs against.
std::vector<Backend> Backends();

// A fresh directory under the test temp dir. The caller removes it.
std::string MakeTempDir();

// A deterministic 64-character hex id derived from `seed`, shaped like a key digest.
std::string HexId(const std::string& seed);

inline constexpr UnixMillis kT0 = 1'700'000'000'000;  // 2023-11-14T22:13:20Z

class KeyStoreContractTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Closes the store and opens it again at the same location.
  void Reopen();
  KeyStore& keys() { return *handle_.keys; }
  AuditLog& audit() { return *handle_.audit; }
  UsageStore& usage() { return *handle_.usage; }

  // Creates organization `org_id` with one owner credential; asserts success.
  void CreateOrg(const std::string& org_id);
  static keys::AuditEntry Audit(const std::string& org_id, const std::string& action,
                                const std::string& target);
  static keys::ProvisioningKey MakeProvisioningKey(const std::string& org_id,
                                                   const std::string& name);
  // A service key of `org_id` whose hash is derived from `name` (64 hex-ish characters).
  static keys::ServiceKey MakeServiceKey(const std::string& org_id, const std::string& name);
  // Inserts MakeServiceKey(org_id, name) after `customize`; asserts success.
  keys::ServiceKey InsertKey(const std::string& org_id, const std::string& name,
                             const std::function<void(keys::ServiceKey*)>& customize = {});
  // The names of the keys of a page, in page order.
  static std::vector<std::string> Names(const ServiceKeyPage& page);

  std::string dir_;
  StoreHandle handle_;
};

}  // namespace keygate::store::testing
