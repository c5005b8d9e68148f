// A store that forwards to a real one but fails on command, for fault-injection tests (after
// LevelDB's SpecialEnv wrapping EnvWrapper). Tests use it to prove "acknowledged means
// durable" and "every failure releases its reservation": the caller is told Unavailable, and
// the wrapped store never sees the failed write.
//
// Writes are CreateOrganization, Insert/Update/DeleteProvisioningKey,
// Insert/Update/RotateServiceKey, TouchLastUsed and AppendUsage; everything else is a read.
//
// Thread safety: every method may be called concurrently, as on the wrapped store; the
// failure switches may be flipped from any thread at any time.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "keys/model.h"
#include "store/audit_log.h"
#include "store/key_store.h"
#include "store/usage_store.h"

namespace keygate::testing {

class FailingStore final : public store::KeyStore,
                           public store::AuditLog,
                           public store::UsageStore {
 public:
  // Forwards to the three interfaces given, which it does not own and which must outlive it
  // (often one SqliteStore passed three times; see the one-argument form).
  FailingStore(store::KeyStore& keys, store::AuditLog& audit, store::UsageStore& usage)
      : keys_(keys), audit_(audit), usage_(usage) {}
  // Wraps one object that implements all three interfaces.
  template <class Store>
  explicit FailingStore(Store& store) : FailingStore(store, store, store) {}

  // The next `n` writes return Unavailable without reaching the wrapped store. Replaces any
  // count still pending. REQUIRES: n >= 0.
  void FailNextWrites(int64_t n) { fail_next_writes_.store(n); }
  // While on, every write returns Unavailable without reaching the wrapped store.
  void SetFailAllWrites(bool on) { fail_all_writes_.store(on); }
  // While on, every read returns Unavailable (the store is unreachable).
  void SetFailAllReads(bool on) { fail_all_reads_.store(on); }
  // Runs `fn` once, just before the next write reaches the wrapped store: a concurrent writer
  // slipping in between a read and the write made from it. `fn` may use the wrapped store.
  void BeforeNextWrite(std::function<void()> fn);
  // Runs `fn` once, just after the next rotation has been written to the wrapped store: a
  // concurrent request slipping in between a rotation's write and what its writer does next.
  void AfterNextRotation(std::function<void()> fn);
  // Clears every switch and pending count.
  void Heal();

  // Writes refused so far, and writes passed through to the wrapped store.
  int64_t failed_writes() const { return failed_writes_.load(); }
  int64_t forwarded_writes() const { return forwarded_writes_.load(); }

  // KeyStore
  Status CreateOrganization(const keys::Organization& org, const keys::OwnerCredential& owner,
                            const keys::AuditEntry& audit) override;
  Result<keys::Organization> GetOrganization(const std::string& org_id) override;
  Result<std::vector<keys::Organization>> ListOrganizations() override;
  Result<keys::OwnerCredential> GetOwnerCredential(const std::string& hash) override;
  Status InsertOwnerCredential(const keys::OwnerCredential& owner,
                               const keys::AuditEntry& audit) override;
  Status InsertProvisioningKey(const keys::ProvisioningKey& key,
                               const keys::AuditEntry& audit) override;
  Result<keys::ProvisioningKey> GetProvisioningKey(const std::string& hash) override;
  Result<std::vector<keys::ProvisioningKey>> ListProvisioningKeys(
      const std::string& org_id) override;
  Status UpdateProvisioningKey(const keys::ProvisioningKey& key, const keys::AuditEntry& audit,
                               const keys::ProvisioningKey* as_read = nullptr) override;
  Status DeleteProvisioningKey(const std::string& org_id, const std::string& hash,
                               const keys::AuditEntry& audit) override;
  Result<keys::Project> GetProject(const std::string& org_id,
                                   const std::string& project_id) override;
  Result<keys::Project> FindProjectByName(const std::string& org_id,
                                          const std::string& name) override;
  Status InsertServiceKey(keys::ServiceKey* key, const std::optional<keys::Project>& new_project,
                          const keys::AuditEntry& audit) override;
  Status UpdateServiceKey(keys::ServiceKey* key, const std::optional<keys::Project>& new_project,
                          const keys::AuditEntry& audit) override;
  Status RotateServiceKey(keys::ServiceKey* old_key, keys::ServiceKey* new_key,
                          const keys::AuditEntry& audit) override;
  Result<keys::ServiceKey> GetServiceKey(const std::string& hash) override;
  Result<keys::ServiceKey> GetServiceKeyOfOrg(const std::string& org_id,
                                              const std::string& hash) override;
  Result<store::ServiceKeyPage> ListServiceKeys(const store::ServiceKeyQuery& query) override;
  Result<std::vector<keys::ServiceKey>> ServiceKeysChangedSince(int64_t after_version,
                                                                int64_t max) override;
  Result<std::vector<keys::ServiceKey>> AllLiveServiceKeys(UnixMillis now) override;
  Status TouchLastUsed(const std::vector<Touch>& touches) override;

  // AuditLog
  Result<store::AuditPage> ListAudit(const store::AuditQuery& query) override;

  // UsageStore
  Status AppendUsage(const std::vector<store::UsageRecord>& records) override;
  Result<std::map<std::string, store::SpendSums>> SpendFor(const std::vector<std::string>& lineages,
                                                           const store::DayBounds& bounds) override;
  Result<MicroUsd> SpendSince(const std::string& lineage, int64_t from_day) override;
  Result<std::vector<store::DailyUsage>> DailySeries(const std::string& lineage,
                                                     int64_t from_day) override;
  Status ForEachCallBetween(UnixMillis since, UnixMillis until,
                            const std::function<void(const store::CallInWindow&)>& fn) override;
  Result<std::vector<store::UsageRecord>> RecentUsage(const std::string& lineage,
                                                      int64_t limit) override;
  Status UpdateOpenCalls(const std::vector<store::OpenCall>& opened,
                         const std::vector<uint64_t>& closed) override;
  Result<std::vector<store::OpenCall>> OpenCalls() override;

 private:
  // OK if the write named `what` may go through; else the injected Unavailable.
  Status AdmitWrite(const char* what);
  Status AdmitRead(const char* what) const;

  store::KeyStore& keys_;
  store::AuditLog& audit_;
  store::UsageStore& usage_;
  std::atomic<int64_t> fail_next_writes_{0};
  std::atomic<bool> fail_all_writes_{false};
  std::atomic<bool> fail_all_reads_{false};
  std::atomic<int64_t> failed_writes_{0};
  std::atomic<int64_t> forwarded_writes_{0};
  std::mutex hook_mu_;
  std::function<void()> before_next_write_;    // guarded by hook_mu_
  std::function<void()> after_next_rotation_;  // guarded by hook_mu_
};

}  // namespace keygate::testing
