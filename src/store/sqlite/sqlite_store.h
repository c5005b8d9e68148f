// The embedded store (spec §5): organizations, keys, projects, the audit log and usage in one
// SQLite file in WAL mode. Implements KeyStore, AuditLog and UsageStore with the contracts
// written in those headers.
//
// Durability: the write connection runs with synchronous=FULL, so a write's Status is OK only
// after its transaction is fsynced; a `kill -9` at any moment loses no acknowledged write.
// Writes from every thread go through one writer thread that commits them in groups (one
// fsync per group; see group_commit_writer.h); each caller still gets its own Status, and an
// audit entry commits in the same transaction as the write it describes. Reads use a small
// pool of read-only connections that run beside the writer.
//
// Schema: versioned migrations (schema.h), applied by Open(). A file written by a newer
// keygate is refused.
//
// Errors: NotFound for a missing row; Conflict naming the field for a uniqueness violation
// ("name" for provisioning keys, "project_name" for projects); Unavailable for any storage
// fault (I/O error, disk full, database locked too long) and after Close(); Internal for
// keygate's own faults (corrupt row, malformed SQL). Storage faults are never InvalidArgument.
// No exception escapes.
//
// Thread safety: every method may be called concurrently from any thread, Close() included
// (calls racing it either complete or get Unavailable). Destruction REQUIRES that no other
// call is in flight.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "keys/model.h"
#include "store/audit_log.h"
#include "store/key_store.h"
#include "store/usage_store.h"

namespace keygate::store {

// A file by its device and inode (0, 0: none).
struct StoreFileId {
  uint64_t device = 0;
  uint64_t inode = 0;
  bool operator==(const StoreFileId&) const = default;
};

// The files an open store writes, as it opened them (the database, its -wal and its -shm), and
// whether one of them has been found removed or replaced since: for good, since a file put
// back at a path (a `touch`, an sqlite3 shell re-creating the -wal: audit AA) is not the one
// keygate has open. Thread-safe.
class StoreFiles {
 public:
  StoreFiles(std::string path, StoreFileId db, StoreFileId wal, StoreFileId shm)
      : path_(std::move(path)), db_(db), wal_(wal), shm_(shm) {}
  // OK while every file is at its path; Unavailable naming the first found gone, from then on.
  Status Check();

 private:
  const std::string path_;
  const StoreFileId db_, wal_, shm_;
  std::mutex mu_;
  std::optional<Error> gone_;  // guarded by mu_
};

// The database file SQLite opens for `path`: the file a symbolic link at `path` points to (SQLite
// follows it, and keeps the -wal and -shm beside that file, so every check of them looks
// there), else `path` itself.
std::string DatabaseFileOf(const std::string& path);

namespace sqlite {
class Connection;
class GroupCommitWriter;
class ReadPool;
class WalCheckpointer;
}  // namespace sqlite

// Settings of the SQLite store. Defaults suit a single gateway process.
struct SqliteOptions {
  // How long a connection waits for a lock held elsewhere (a checkpoint, the CLI writing the
  // same file) before the call fails with Unavailable. REQUIRES: >= 0.
  int busy_timeout_ms = 5000;
  // Read-only connections in the pool; more concurrent readers wait. REQUIRES: 1..64.
  int read_connections = 4;
  // Most writes committed in one transaction (one fsync). REQUIRES: 1..100000.
  int max_batch_writes = 512;
  // Most service keys an organization may hold: never revoked (disabled and expired ones
  // included) or in a rotation's grace period. A create, or a rotation with a grace period,
  // that would pass it is refused (InsertServiceKey, RotateServiceKey); 0: no limit.
  // REQUIRES: >= 0.
  int64_t max_service_keys_per_org = 0;
  // Stamps schema_migrations.applied_at. Not owned; must outlive Open(). nullptr = the
  // system clock.
  const Clock* clock = nullptr;
};

class SqliteStore final : public KeyStore, public AuditLog, public UsageStore {
 public:
  // Counters of the group-commit writer, for metrics and tests.
  struct WriteStats {
    int64_t batches = 0;         // transactions the writer ran
    int64_t writes = 0;          // writes it ran in them
    int64_t failed_batches = 0;  // transactions that could not begin or commit
  };

  // Opens (creating it, and its parent directory, if needed) the database file at `path`
  // (DatabaseFileOf(path), which path() then names),
  // switches it to WAL, applies pending schema migrations and starts the writer thread.
  // Returns the store on success; InvalidArgument naming the option for options out of range;
  // Unavailable naming the path and SQLite's message if the file cannot be created, opened or
  // put in WAL mode, or if it holds a schema from a newer keygate; the mapped error of a
  // failing migration. The caller owns the store.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                   const SqliteOptions& options);

  // Close().
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Commits every write already queued, joins the writer thread, waits for reads in flight
  // and closes every connection. Every later call returns Unavailable. Idempotent.
  void Close();

  // Creates the directory of the database file at `path` when missing, readable by its owner
  // only (a directory that exists keeps its modes). Unavailable naming it if it cannot.
  static Status CreateDirectoryFor(const std::string& path);

  // The schema version this store has brought its file to.
  static int64_t SchemaVersion();
  const std::string& path() const { return path_; }

  // OK while the files the open store writes are where it opened them; Unavailable naming the
  // file otherwise: the database renamed, removed or replaced (another file moved to its
  // path), or its -wal or -shm removed (an operator cleaning up, say). Writes would then go to
  // files no restart reads: every write batch is checked so before it runs ("not applied") and
  // after its commit, and fails Unavailable (nothing acknowledged is lost). Reads the file
  // system only (no SQL); safe from any thread.
  Status CheckFilesInPlace() const { return files_->Check(); }

  // The WAL's length in frames before a checkpoint, and how many of them it copied.
  struct CheckpointResult {
    int64_t wal_frames = 0;
    int64_t copied_frames = 0;
  };
  // Copies every write committed so far from the WAL into the database file (a FULL checkpoint
  // on the write connection, between two batches), then empties the WAL (TRUNCATE), for when
  // CheckFilesInPlace() finds a file gone: a removed WAL lives on only while keygate holds it
  // open, so a crash would lose the writes acknowledged since the last checkpoint (a clean stop
  // copies them too); a WAL left at its path beside a replaced database would be replayed onto
  // that file at the next start. Unavailable if the store is closed or the checkpoint could not
  // copy every frame or empty the WAL (a reader held a snapshot past the busy timeout).
  Result<CheckpointResult> CheckpointNow();
  WriteStats GetWriteStats() const;

  // KeyStore. InsertServiceKey stores an empty lineage as the key's own hash (an original
  // key) and writes it back to `key`; RotateServiceKey gives an empty new_key->lineage the
  // old key's.
  Status CreateOrganization(const keys::Organization& org, const keys::OwnerCredential& owner,
                            const keys::AuditEntry& audit) override;
  Result<keys::Organization> GetOrganization(const std::string& org_id) override;
  Result<std::vector<keys::Organization>> ListOrganizations() override;
  Result<keys::OwnerCredential> GetOwnerCredential(const std::string& hash) override;
  // The readable prefixes stored credentials were issued under (those of the configuration at
  // the time), each once: of provisioning keys and owner credentials, and of service keys.
  struct IssuedPrefixes {
    std::vector<std::string> management;
    std::vector<std::string> service;
  };
  Result<IssuedPrefixes> KeyPrefixesIssued();
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
  Result<ServiceKeyPage> ListServiceKeys(const ServiceKeyQuery& query) override;
  Result<std::vector<keys::ServiceKey>> ServiceKeysChangedSince(int64_t after_version,
                                                                int64_t max) override;
  Result<std::vector<keys::ServiceKey>> AllLiveServiceKeys(UnixMillis now) override;
  Status TouchLastUsed(const std::vector<Touch>& touches) override;

  // AuditLog
  Result<AuditPage> ListAudit(const AuditQuery& query) override;

  // UsageStore
  Status AppendUsage(const std::vector<UsageRecord>& records) override;
  Result<std::map<std::string, SpendSums>> SpendFor(const std::vector<std::string>& lineages,
                                                    const DayBounds& bounds) override;
  Result<MicroUsd> SpendSince(const std::string& lineage, int64_t from_day) override;
  Result<std::vector<DailyUsage>> DailySeries(const std::string& lineage,
                                              int64_t from_day) override;
  Status ForEachCallBetween(UnixMillis since, UnixMillis until,
                            const std::function<void(const CallInWindow&)>& fn) override;
  Result<std::vector<UsageRecord>> RecentUsage(const std::string& lineage, int64_t limit) override;
  Status UpdateOpenCalls(const std::vector<OpenCall>& opened,
                         const std::vector<uint64_t>& closed) override;
  Result<std::vector<OpenCall>> OpenCalls() override;
  Result<PrunedUsage> PruneUsageBefore(UnixMillis before, int64_t max_records) override;

 private:
  using ConnFn = std::function<Status(sqlite::Connection&)>;

  SqliteStore(std::string path, std::shared_ptr<StoreFiles> files,
              int64_t max_service_keys_per_org,
              std::unique_ptr<sqlite::WalCheckpointer> checkpointer,
              std::unique_ptr<sqlite::GroupCommitWriter> writer,
              std::unique_ptr<sqlite::ReadPool> readers);

  // Runs `fn` as one write of the next group commit (see group_commit_writer.h).
  Status Write(const ConnFn& fn);
  // Runs `fn` on a pooled read connection inside one read transaction (one snapshot).
  Status Read(const ConnFn& fn);
  // As Read, for an `fn` that runs a single statement: that statement is its own read
  // transaction, so no BEGIN and COMMIT are run around it.
  Status ReadOneStatement(const ConnFn& fn);

  // usage_keys ids by key_hash (schema version 4), so that AppendUsage writes integer
  // references. Touched only by AppendUsage's closures, on the writer thread. Emptied there
  // after any rollback that may have undone an id it holds, before the next id is used:
  // SQLite hands a rolled-back id to the next new key.
  struct UsageKeyCache {
    std::unordered_map<std::string, int64_t> ids;
    int64_t failed_batches_seen = 0;  // WriteStats::failed_batches when last checked
  };

  const std::string path_;
  const std::shared_ptr<StoreFiles> files_;  // shared with the writer's check
  const int64_t max_service_keys_per_org_;  // 0: no limit
  UsageKeyCache usage_keys_;
  // Declared before the writer: the writer's connection calls into it until the writer stops.
  std::unique_ptr<sqlite::WalCheckpointer> checkpointer_;
  std::unique_ptr<sqlite::GroupCommitWriter> writer_;
  std::unique_ptr<sqlite::ReadPool> readers_;
};

}  // namespace keygate::store
