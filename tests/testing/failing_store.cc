#include "testing/failing_store.h"

#include <string>

namespace keygate::testing {

void FailingStore::Heal() {
  fail_next_writes_.store(0);
  fail_all_writes_.store(false);
  fail_all_reads_.store(false);
}

void FailingStore::AfterNextRotation(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(hook_mu_);
  after_next_rotation_ = std::move(fn);
}

void FailingStore::BeforeNextWrite(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(hook_mu_);
  before_next_write_ = std::move(fn);
}

Status FailingStore::AdmitWrite(const char* what) {
  bool fail = fail_all_writes_.load();
  if (!fail) {
    // Claim one of the pending failures, if any, without letting two writers take the last.
    int64_t pending = fail_next_writes_.load();
    while (pending > 0 && !fail_next_writes_.compare_exchange_weak(pending, pending - 1)) {
    }
    fail = pending > 0;
  }
  if (fail) {
    failed_writes_.fetch_add(1);
    return Error::Unavailable(std::string("injected write failure: ") + what);
  }
  forwarded_writes_.fetch_add(1);
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> lock(hook_mu_);
    hook.swap(before_next_write_);
  }
  if (hook) hook();
  return OkStatus();
}

Status FailingStore::AdmitRead(const char* what) const {
  if (fail_all_reads_.load()) {
    return Error::Unavailable(std::string("injected read failure: ") + what);
  }
  return OkStatus();
}

// ---------------------------------------------------------------- KeyStore

Status FailingStore::CreateOrganization(const keys::Organization& org,
                                        const keys::OwnerCredential& owner,
                                        const keys::AuditEntry& audit) {
  KG_RETURN_IF_ERROR(AdmitWrite("CreateOrganization"));
  return keys_.CreateOrganization(org, owner, audit);
}

Result<keys::Organization> FailingStore::GetOrganization(const std::string& org_id) {
  KG_RETURN_IF_ERROR(AdmitRead("GetOrganization"));
  return keys_.GetOrganization(org_id);
}

Result<std::vector<keys::Organization>> FailingStore::ListOrganizations() {
  KG_RETURN_IF_ERROR(AdmitRead("ListOrganizations"));
  return keys_.ListOrganizations();
}

Result<keys::OwnerCredential> FailingStore::GetOwnerCredential(const std::string& hash) {
  KG_RETURN_IF_ERROR(AdmitRead("GetOwnerCredential"));
  return keys_.GetOwnerCredential(hash);
}

Status FailingStore::InsertOwnerCredential(const keys::OwnerCredential& owner,
                                           const keys::AuditEntry& audit) {
  KG_RETURN_IF_ERROR(AdmitWrite("InsertOwnerCredential"));
  return keys_.InsertOwnerCredential(owner, audit);
}

Status FailingStore::InsertProvisioningKey(const keys::ProvisioningKey& key,
                                           const keys::AuditEntry& audit) {
  KG_RETURN_IF_ERROR(AdmitWrite("InsertProvisioningKey"));
  return keys_.InsertProvisioningKey(key, audit);
}

Result<keys::ProvisioningKey> FailingStore::GetProvisioningKey(const std::string& hash) {
  KG_RETURN_IF_ERROR(AdmitRead("GetProvisioningKey"));
  return keys_.GetProvisioningKey(hash);
}

Result<std::vector<keys::ProvisioningKey>> FailingStore::ListProvisioningKeys(
    const std::string& org_id) {
  KG_RETURN_IF_ERROR(AdmitRead("ListProvisioningKeys"));
  return keys_.ListProvisioningKeys(org_id);
}

Status FailingStore::UpdateProvisioningKey(const keys::ProvisioningKey& key,
                                           const keys::AuditEntry& audit,
                                           const keys::ProvisioningKey* as_read) {
  KG_RETURN_IF_ERROR(AdmitWrite("UpdateProvisioningKey"));
  return keys_.UpdateProvisioningKey(key, audit, as_read);
}

Status FailingStore::DeleteProvisioningKey(const std::string& org_id, const std::string& hash,
                                           const keys::AuditEntry& audit) {
  KG_RETURN_IF_ERROR(AdmitWrite("DeleteProvisioningKey"));
  return keys_.DeleteProvisioningKey(org_id, hash, audit);
}

Result<keys::Project> FailingStore::GetProject(const std::string& org_id,
                                               const std::string& project_id) {
  KG_RETURN_IF_ERROR(AdmitRead("GetProject"));
  return keys_.GetProject(org_id, project_id);
}

Result<keys::Project> FailingStore::FindProjectByName(const std::string& org_id,
                                                      const std::string& name) {
  KG_RETURN_IF_ERROR(AdmitRead("FindProjectByName"));
  return keys_.FindProjectByName(org_id, name);
}

Status FailingStore::InsertServiceKey(keys::ServiceKey* key,
                                      const std::optional<keys::Project>& new_project,
                                      const keys::AuditEntry& audit) {
  KG_RETURN_IF_ERROR(AdmitWrite("InsertServiceKey"));
  return keys_.InsertServiceKey(key, new_project, audit);
}

Status FailingStore::UpdateServiceKey(keys::ServiceKey* key,
                                      const std::optional<keys::Project>& new_project,
                                      const keys::AuditEntry& audit) {
  KG_RETURN_IF_ERROR(AdmitWrite("UpdateServiceKey"));
  return keys_.UpdateServiceKey(key, new_project, audit);
}

Status FailingStore::RotateServiceKey(keys::ServiceKey* old_key, keys::ServiceKey* new_key,
                                      const keys::AuditEntry& audit) {
  KG_RETURN_IF_ERROR(AdmitWrite("RotateServiceKey"));
  KG_RETURN_IF_ERROR(keys_.RotateServiceKey(old_key, new_key, audit));
  std::function<void()> hook;
  {
    std::lock_guard<std::mutex> lock(hook_mu_);
    hook.swap(after_next_rotation_);
  }
  if (hook) hook();
  return OkStatus();
}

Result<keys::ServiceKey> FailingStore::GetServiceKey(const std::string& hash) {
  KG_RETURN_IF_ERROR(AdmitRead("GetServiceKey"));
  return keys_.GetServiceKey(hash);
}

Result<keys::ServiceKey> FailingStore::GetServiceKeyOfOrg(const std::string& org_id,
                                                         const std::string& hash) {
  KG_RETURN_IF_ERROR(AdmitRead("GetServiceKeyOfOrg"));
  return keys_.GetServiceKeyOfOrg(org_id, hash);
}

Result<store::ServiceKeyPage> FailingStore::ListServiceKeys(const store::ServiceKeyQuery& query) {
  KG_RETURN_IF_ERROR(AdmitRead("ListServiceKeys"));
  return keys_.ListServiceKeys(query);
}

Result<std::vector<keys::ServiceKey>> FailingStore::ServiceKeysChangedSince(int64_t after_version,
                                                                            int64_t max) {
  KG_RETURN_IF_ERROR(AdmitRead("ServiceKeysChangedSince"));
  return keys_.ServiceKeysChangedSince(after_version, max);
}

Result<std::vector<keys::ServiceKey>> FailingStore::AllLiveServiceKeys(UnixMillis now) {
  KG_RETURN_IF_ERROR(AdmitRead("AllLiveServiceKeys"));
  return keys_.AllLiveServiceKeys(now);
}

Status FailingStore::TouchLastUsed(const std::vector<Touch>& touches) {
  KG_RETURN_IF_ERROR(AdmitWrite("TouchLastUsed"));
  return keys_.TouchLastUsed(touches);
}

// ---------------------------------------------------------------- AuditLog

Result<store::AuditPage> FailingStore::ListAudit(const store::AuditQuery& query) {
  KG_RETURN_IF_ERROR(AdmitRead("ListAudit"));
  return audit_.ListAudit(query);
}

// ---------------------------------------------------------------- UsageStore

Status FailingStore::AppendUsage(const std::vector<store::UsageRecord>& records) {
  KG_RETURN_IF_ERROR(AdmitWrite("AppendUsage"));
  return usage_.AppendUsage(records);
}

Result<std::map<std::string, store::SpendSums>> FailingStore::SpendFor(
    const std::vector<std::string>& lineages, const store::DayBounds& bounds) {
  KG_RETURN_IF_ERROR(AdmitRead("SpendFor"));
  return usage_.SpendFor(lineages, bounds);
}

Result<MicroUsd> FailingStore::SpendSince(const std::string& lineage, int64_t from_day) {
  KG_RETURN_IF_ERROR(AdmitRead("SpendSince"));
  return usage_.SpendSince(lineage, from_day);
}

Result<std::vector<store::DailyUsage>> FailingStore::DailySeries(const std::string& lineage,
                                                                 int64_t from_day) {
  KG_RETURN_IF_ERROR(AdmitRead("DailySeries"));
  return usage_.DailySeries(lineage, from_day);
}

Status FailingStore::ForEachCallBetween(UnixMillis since, UnixMillis until,
                                        const std::function<void(const store::CallInWindow&)>& fn) {
  KG_RETURN_IF_ERROR(AdmitRead("ForEachCallBetween"));
  return usage_.ForEachCallBetween(since, until, fn);
}

Result<std::vector<store::UsageRecord>> FailingStore::RecentUsage(const std::string& lineage,
                                                                  int64_t limit) {
  KG_RETURN_IF_ERROR(AdmitRead("RecentUsage"));
  return usage_.RecentUsage(lineage, limit);
}

Status FailingStore::UpdateOpenCalls(const std::vector<store::OpenCall>& opened,
                                     const std::vector<uint64_t>& closed) {
  KG_RETURN_IF_ERROR(AdmitWrite("UpdateOpenCalls"));
  return usage_.UpdateOpenCalls(opened, closed);
}

Result<std::vector<store::OpenCall>> FailingStore::OpenCalls() {
  KG_RETURN_IF_ERROR(AdmitRead("OpenCalls"));
  return usage_.OpenCalls();
}

}  // namespace keygate::testing
