// Reading the audit log. Entries are appended by the KeyStore writes they describe, in the
// same transaction (see key_store.h); this interface only reads them.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "keys/model.h"

namespace keygate::store {

struct AuditQuery {
  std::string org_id;  // REQUIRED
  std::string actor;   // "" = any; else exact actor id ("owner:…", "pk:…")
  std::string target;  // "" = any; else exact key hash
  int64_t limit = 100; // REQUIRES: 1..1000
  int64_t before_id = 0;  // 0 = newest; else entries with id < before_id (cursor paging)
};

struct AuditPage {
  std::vector<keys::AuditEntry> entries;  // newest first
  bool has_more = false;
};

class AuditLog {
 public:
  virtual ~AuditLog() = default;
  virtual Result<AuditPage> ListAudit(const AuditQuery& query) = 0;
};

}  // namespace keygate::store
