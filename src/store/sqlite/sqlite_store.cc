// SqliteStore: opening and closing, the read and write paths, organizations, owner
// credentials, provisioning keys, projects and last-used stamps. Service keys live in
// sqlite_service_keys.cc; the audit log and usage in sqlite_audit_usage.cc.
#include "store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <filesystem>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "keys/secrets.h"
#include "store/sqlite/group_commit_writer.h"
#include "store/sqlite/read_pool.h"
#include "store/sqlite/row_codec.h"
#include "store/sqlite/schema.h"
#include "store/sqlite/store_statements.h"
#include "store/sqlite/wal_checkpointer.h"
#include "store/sqlite/wal_write_buffer.h"

namespace keygate::store {

using sqlite::Connection;
using sqlite::ForEachRow;
using sqlite::ReadOneRow;
using sqlite::RunSql;
using sqlite::RunSqlCountingChanges;
using sqlite::SqlValue;

namespace {

constexpr int kMaxReadConnections = 64;
constexpr int kMaxBatchWrites = 100'000;
// WAL length (pages) at which the background thread starts checkpointing (SQLite's own
// automatic checkpoint threshold), and at which the writer finishes the job itself.
constexpr int64_t kBackgroundCheckpointFrames = 1000;
constexpr int64_t kWriterCheckpointFrames = 4000;
// Page cache of each connection, in KiB (SQLite's default is 2 MiB): the writer's random
// index inserts (key hashes) and a deep list page's index scan stay in memory.
constexpr const char* kCacheSizePragma = "PRAGMA cache_size=-65536";

Status ValidateOptions(const std::string& path, const SqliteOptions& options) {
  if (path.empty() || path == ":memory:" || path.starts_with("file:")) {
    return Error::InvalidArgument("the sqlite store needs a file path, got '" + path + "'", "path");
  }
  if (options.busy_timeout_ms < 0) {
    return Error::InvalidArgument("busy_timeout_ms must be >= 0", "busy_timeout_ms");
  }
  if (options.read_connections < 1 || options.read_connections > kMaxReadConnections) {
    return Error::InvalidArgument("read_connections must be between 1 and 64", "read_connections");
  }
  if (options.max_service_keys_per_org < 0) {
    return Error::InvalidArgument("max_service_keys_per_org must be >= 0",
                                  "max_service_keys_per_org");
  }
  if (options.max_batch_writes < 1 || options.max_batch_writes > kMaxBatchWrites) {
    return Error::InvalidArgument("max_batch_writes must be between 1 and 100000",
                                  "max_batch_writes");
  }
  return OkStatus();
}

}  // namespace

Status SqliteStore::CreateDirectoryFor(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return OkStatus();
  std::error_code ec;
  const bool created = std::filesystem::create_directories(parent, ec);
  if (ec) {
    return Error::Unavailable("cannot create directory " + parent.string() +
                              " for sqlite database " + path + ": " + ec.message());
  }
  // A directory keygate makes is its own: the store (key digests, names, metadata, usage)
  // is no one else's to read. One the operator made keeps the modes they gave it.
  if (created) {
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::replace, ec);
  }
  return OkStatus();
}

namespace {

// Whether `conn`'s file is a keygate store this build may open, read before anything is
// written to it. An empty database (a new or zero-length file: no table, view, index or
// trigger, user_version and application_id 0) is one to create. Anything else must have
// keygate's own schema_migrations (exactly the columns version and applied_at, integer versions
// from 1) and, past version 0, keygate's organizations table: another program's
// database (even one with a schema_migrations of its own, as golang-migrate and Rails keep)
// is refused, and so is a newer keygate's store. Neither is touched (not even switched to WAL).
Status CheckIsKeygateStore(Connection& conn) {
  auto not_ours = [&conn](const std::string& why) {
    return Error::Unavailable("sqlite database " + conn.path() + " is not a keygate store (" +
                              why + "); point --data (or store) at a keygate store or an "
                              "empty directory");
  };
  auto single = [&conn](const std::string& sql) -> Result<std::string> {
    auto stmt = conn.Prepare(sql);
    if (!stmt.ok()) return stmt.error();
    auto row = stmt->Step();
    if (!row.ok()) return row.error();
    return *row ? stmt->ColumnText(0) : std::string();
  };
  auto objects = single(
      "SELECT group_concat(type || ' ' || name, ', ') FROM (SELECT type, name FROM sqlite_master "
      "WHERE name NOT LIKE 'sqlite_%' ORDER BY name = 'schema_migrations' DESC, name LIMIT 4)");
  if (!objects.ok()) return objects.error();
  if (objects->empty()) {
    auto user_version = single("PRAGMA user_version");
    auto application_id = single("PRAGMA application_id");
    if (!user_version.ok()) return user_version.error();
    if (!application_id.ok()) return application_id.error();
    if (*user_version != "0" || *application_id != "0") {
      return not_ours("no tables, but user_version " + *user_version + " and application_id " +
                      *application_id + " set by another program");
    }
    return OkStatus();  // a new store
  }
  if (objects->rfind("table schema_migrations", 0) != 0) {
    return not_ours("it holds " + *objects + "... and no schema_migrations");
  }
  auto columns = single(
      "SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_info("
      "'schema_migrations') ORDER BY cid)");
  if (!columns.ok()) return columns.error();
  if (*columns != "version,applied_at") {
    return not_ours("its schema_migrations has the columns " + *columns +
                    ", not keygate's version,applied_at");
  }
  // Keygate stamps its versions from 1 up, as integers.
  auto rows = single("SELECT count(*) FROM schema_migrations");
  auto odd = single(
      "SELECT count(*) FROM schema_migrations WHERE typeof(version) != 'integer' OR version < 1");
  auto has_first = single("SELECT count(*) FROM schema_migrations WHERE version = 1");
  if (!rows.ok()) return rows.error();
  if (!odd.ok()) return odd.error();
  if (!has_first.ok()) return has_first.error();
  if (*odd != "0" || (*rows != "0" && *has_first != "1")) {
    return not_ours("its schema_migrations does not hold keygate's versions, from 1");
  }
  if (*rows == "0") {
    auto others = single("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                         "AND name != 'schema_migrations'");
    if (!others.ok()) return others.error();
    if (*others != "0") return not_ours("it holds tables beside an empty schema_migrations");
    return OkStatus();  // an init cut short before its first step
  }
  auto organizations = single(
      "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'organizations'");
  if (!organizations.ok()) return organizations.error();
  if (*organizations != "1") return not_ours("it has no organizations table");
  return sqlite::CheckSchemaNotNewer(conn);
}

// spec §5: WAL so readers run beside the writer; synchronous=FULL so that COMMIT returns only
// after the WAL is fsynced (acknowledged means durable); foreign keys enforced.
Status ConfigureWriteConnection(Connection& conn) {
  // SQLite silently opens a write-protected file read-only; fail now, not on the first write.
  if (sqlite3_db_readonly(conn.db(), "main") == 1) {
    return Error::Unavailable("sqlite database " + conn.path() + " is read-only");
  }
  auto mode = conn.PragmaValue("PRAGMA journal_mode=WAL");
  if (!mode.ok()) return mode.error();
  if (*mode != "wal") {
    return Error::Unavailable("sqlite database " + conn.path() +
                              " cannot use WAL journal mode (it reports '" + *mode + "')");
  }
  KG_RETURN_IF_ERROR(conn.Exec("PRAGMA synchronous=FULL"));
  KG_RETURN_IF_ERROR(conn.Exec("PRAGMA foreign_keys=ON"));
  KG_RETURN_IF_ERROR(conn.Exec(kCacheSizePragma));
  // A -wal or -shm this user cannot write (left by a start under another user, say) leaves
  // the file read-write but every write refused, while reads and /readyz go on (audit V).
  if (Status probe = conn.Exec("BEGIN IMMEDIATE; ROLLBACK"); !probe.ok()) {
    (void)conn.Exec("ROLLBACK");
    return Error::Unavailable("sqlite database " + conn.path() + " takes no write (" +
                              probe.error().message +
                              "): is another process holding its write lock, or are it, its "
                              "-wal and its -shm not writable by this user?");
  }
  return OkStatus();
}

// The checkpointer's own connection. synchronous=FULL: a checkpoint fsyncs the database file
// before SQLite may reuse the WAL it copied.
Result<std::unique_ptr<Connection>> OpenCheckpointConnection(const std::string& path,
                                                             int busy_timeout_ms) {
  auto conn = Connection::Open(path, SQLITE_OPEN_READWRITE, busy_timeout_ms);
  if (!conn.ok()) return conn.error();
  KG_RETURN_IF_ERROR((*conn)->Exec("PRAGMA synchronous=FULL"));
  return conn;
}

// A file as opened (its device and inode): a file put at its path later (a backup moved into
// place, a -wal re-created) is not the one keygate writes. {} if there is none, or if it cannot
// be looked at (then `*stat_errno`, if given, says why; it is 0 when stat() succeeded).
StoreFileId IdentifyFile(const std::string& path, int* stat_errno = nullptr) {
  struct stat st {};
  const bool seen = ::stat(path.c_str(), &st) == 0;
  if (stat_errno != nullptr) *stat_errno = seen ? 0 : errno;
  if (!seen) return {};
  return StoreFileId{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

// A -wal or -shm left by a start under another user that this one cannot read or write: SQLite
// would say only "unable to open database file", or open the store and refuse every write.
Status CheckCompanionsUsable(const std::string& path) {
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string file = path + suffix;
    struct stat link {};
    if (::lstat(file.c_str(), &link) != 0) continue;  // none yet
    // A directory or a symbolic link (SQLite follows none to a -wal or -shm) is no file SQLite
    // can use: it said only "unable to open database file" (audit AA). A link's -wal may hold
    // committed writes: the file it points to goes in its place (the review).
    if (S_ISLNK(link.st_mode)) {
      return Error::Unavailable("sqlite database " + path + ": " + file +
                                " is a symbolic link, which SQLite does not follow: put the "
                                "file it points to in its place (a -wal holds committed "
                                "writes), or remove a link to nothing");
    }
    if (!S_ISREG(link.st_mode)) {
      return Error::Unavailable("sqlite database " + path + ": " + file + " is " +
                                (S_ISDIR(link.st_mode) ? "a directory" : "not a regular file") +
                                ", which SQLite cannot use; move it away (keygate makes it anew)");
    }
    if (::faccessat(AT_FDCWD, file.c_str(), R_OK | W_OK, AT_EACCESS) == 0) continue;
    const std::string cause = std::system_category().message(errno);
    return Error::Unavailable("sqlite database " + path + ": " + file +
                              " cannot be read and written by this user (" + cause +
                              "): was keygate run as another user on this data directory?");
  }
  return OkStatus();
}

}  // namespace

Status StoreFiles::Check() {
  std::lock_guard<std::mutex> lock(mu_);
  if (gone_) return *gone_;
  // While a connection is open in WAL mode, SQLite keeps both companions of the file, as they
  // were when it opened them.
  const std::pair<std::string, StoreFileId> files[] = {
      {path_, db_}, {path_ + "-wal", wal_}, {path_ + "-shm", shm_}};
  for (const auto& [file, opened] : files) {
    int stat_errno = 0;
    const StoreFileId now = IdentifyFile(file, &stat_errno);
    if (stat_errno != 0 && stat_errno != ENOENT) {
      // No verdict on the file (the directory's mode changed, say): this check fails, the next
      // may pass (the review).
      return Error::Unavailable("sqlite database " + path_ + ": cannot look at " + file + ": " +
                                std::system_category().message(stat_errno));
    }
    if (now == opened) continue;
    gone_ = Error::Unavailable("sqlite database " + path_ + ": " + file + " was " +
                               (now == StoreFileId{} ? "removed" : "replaced") +
                               " while keygate has it open; restart keygate (until then no "
                               "write is taken)");
    gone_->reason = kStoreFilesRemoved;
    return *gone_;
  }
  return OkStatus();
}

namespace {

// Errors while opening name the file, whatever step failed.
Error WithPath(const std::string& path, const Error& error) {
  if (error.message.find(path) != std::string::npos) return error;
  return Error{error.code, "sqlite database " + path + ": " + error.message, error.param,
               error.reason};
}

keys::Project ReadProject(const sqlite::Statement& stmt) {
  return keys::Project{stmt.ColumnText(0), stmt.ColumnText(1), stmt.ColumnText(2),
                       stmt.ColumnInt(3)};
}

}  // namespace

// ---------------------------------------------------------------- lifecycle

SqliteStore::SqliteStore(std::string path, std::shared_ptr<StoreFiles> files,
                         int64_t max_service_keys_per_org,
                         std::unique_ptr<sqlite::WalCheckpointer> checkpointer,
                         std::unique_ptr<sqlite::GroupCommitWriter> writer,
                         std::unique_ptr<sqlite::ReadPool> readers)
    : path_(std::move(path)),
      files_(std::move(files)),
      max_service_keys_per_org_(max_service_keys_per_org),
      checkpointer_(std::move(checkpointer)),
      writer_(std::move(writer)),
      readers_(std::move(readers)) {}

SqliteStore::~SqliteStore() { Close(); }

std::string DatabaseFileOf(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_symlink(path, ec)) return path;
  const std::filesystem::path target = std::filesystem::canonical(path, ec);
  return ec ? path : target.string();  // a link to nothing: SQLite's own error names it
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& given,
                                                       const SqliteOptions& options) {
  const std::string path = DatabaseFileOf(given);
  KG_RETURN_IF_ERROR(ValidateOptions(path, options));
  KG_RETURN_IF_ERROR(CreateDirectoryFor(path));
  KG_RETURN_IF_ERROR(CheckCompanionsUsable(path));
  // A database file keygate creates is readable by its owner only (as are its -wal and -shm,
  // which SQLite creates with the database's mode).
  std::error_code missing;
  const bool creating = !std::filesystem::exists(path, missing);
  // The write connection gathers each commit's WAL frames into one write (wal_write_buffer.h).
  auto conn = Connection::Open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                               options.busy_timeout_ms, sqlite::WalWriteBufferVfsName());
  if (!conn.ok()) return conn.error();
  if (creating) {
    std::error_code ignored;  // a file system without modes keeps its own
    std::filesystem::permissions(
        path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
        std::filesystem::perm_options::replace, ignored);
  }
  if (Status store = CheckIsKeygateStore(**conn); !store.ok()) return WithPath(path, store.error());
  if (Status configured = ConfigureWriteConnection(**conn); !configured.ok()) {
    return WithPath(path, configured.error());
  }
  const SystemClock system_clock;
  const Clock& clock = options.clock != nullptr ? *options.clock : system_clock;
  if (Status migrated = sqlite::ApplyMigrations(**conn, clock); !migrated.ok()) {
    return WithPath(path, migrated.error());
  }
  auto checkpoint_conn = OpenCheckpointConnection(path, options.busy_timeout_ms);
  if (!checkpoint_conn.ok()) return WithPath(path, checkpoint_conn.error());
  auto checkpointer = std::make_unique<sqlite::WalCheckpointer>(
      std::move(*checkpoint_conn), kBackgroundCheckpointFrames, kWriterCheckpointFrames);
  checkpointer->Attach(**conn);
  sqlite::WalCheckpointer* raw_checkpointer = checkpointer.get();
  // The WAL and the shared memory exist from the probe's write lock on (ConfigureWriteConnection)
  // and stay while keygate holds connections open.
  auto files = std::make_shared<StoreFiles>(path, IdentifyFile(path), IdentifyFile(path + "-wal"),
                                            IdentifyFile(path + "-shm"));
  // A commit is acknowledged only while the files it went to are the ones a restart reads
  // (three stat calls before a batch and three after, beside its fsync).
  auto writer = std::make_unique<sqlite::GroupCommitWriter>(
      std::move(*conn), static_cast<size_t>(options.max_batch_writes),
      [raw_checkpointer](Connection& writer_conn) { raw_checkpointer->AfterBatch(writer_conn); },
      [files] { return files->Check(); });
  auto readers =
      std::make_unique<sqlite::ReadPool>(path, options.read_connections, options.busy_timeout_ms);
  return std::unique_ptr<SqliteStore>(new SqliteStore(path, files, options.max_service_keys_per_org,
                                                      std::move(checkpointer), std::move(writer),
                                                      std::move(readers)));
}

Result<SqliteStore::CheckpointResult> SqliteStore::CheckpointNow() {
  // On the write connection: it has had the WAL open since the first write, while a connection
  // opening it now would open a new file at the removed one's path.
  CheckpointResult result;
  Status ran = writer_->SubmitAlone([&result](Connection& conn) -> Status {
    int wal_frames = 0;
    int copied_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(conn.db(), nullptr, SQLITE_CHECKPOINT_FULL, &wal_frames,
                                       &copied_frames);
    result = CheckpointResult{wal_frames, copied_frames};
    if (rc != SQLITE_OK || copied_frames < wal_frames) {
      return Error::Unavailable("checkpoint of " + conn.path() + " copied " +
                                std::to_string(copied_frames) + " of " +
                                std::to_string(wal_frames) + " frames: " + sqlite3_errstr(rc));
    }
    // Then the WAL is emptied: one still at the path (the database replaced by a backup, or
    // only the -shm removed) would otherwise be replayed onto whatever file is there at the
    // next start (audit AA: onto a restored backup, which it corrupted).
    rc = sqlite3_wal_checkpoint_v2(conn.db(), nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr,
                                   nullptr);
    if (rc != SQLITE_OK) {
      return Error::Unavailable("checkpoint of " + conn.path() + " copied every frame but could "
                                "not empty the WAL: " + sqlite3_errstr(rc));
    }
    return OkStatus();
  });
  if (!ran.ok()) return ran.error();
  return result;
}

void SqliteStore::Close() {
  // The write connection is the last to close, so it checkpoints the WAL and removes it. The
  // checkpointer object outlives it (its WAL hook points there); only its thread stops first.
  readers_->Close();
  checkpointer_->Stop();
  writer_->Stop();
}

int64_t SqliteStore::SchemaVersion() { return sqlite::LatestSchemaVersion(); }

SqliteStore::WriteStats SqliteStore::GetWriteStats() const {
  const sqlite::GroupCommitWriter::Stats stats = writer_->GetStats();
  return WriteStats{stats.batches, stats.writes, stats.failed_batches};
}

Status SqliteStore::Write(const ConnFn& fn) { return writer_->Submit(fn); }

Status SqliteStore::Read(const ConnFn& fn) {
  try {
    auto lease = readers_->Acquire();
    if (!lease.ok()) return lease.error();
    Connection& conn = lease->conn();
    sqlite::Transaction tx(conn);
    KG_RETURN_IF_ERROR(tx.Begin());
    KG_RETURN_IF_ERROR(fn(conn));
    return tx.Commit();
  } catch (const std::exception& e) {
    return Error::Internal(std::string("store read threw: ") + e.what());
  } catch (...) {
    return Error::Internal("store read threw a non-standard exception");
  }
}

Status SqliteStore::ReadOneStatement(const ConnFn& fn) {
  try {
    auto lease = readers_->Acquire();
    if (!lease.ok()) return lease.error();
    return fn(lease->conn());
  } catch (const std::exception& e) {
    return Error::Internal(std::string("store read threw: ") + e.what());
  } catch (...) {
    return Error::Internal("store read threw a non-standard exception");
  }
}

// ---------------------------------------------------------------- organizations and owners

namespace {

Status InsertOwner(Connection& conn, const keys::OwnerCredential& owner) {
  return RunSql(conn,
                "INSERT INTO owner_credentials (hash, org_id, name, masked, created_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5)",
                {owner.hash, owner.org_id, owner.name, owner.masked, owner.created_at});
}

}  // namespace

Status SqliteStore::CreateOrganization(const keys::Organization& org,
                                       const keys::OwnerCredential& owner,
                                       const keys::AuditEntry& audit) {
  return Write([&](Connection& conn) -> Status {
    KG_RETURN_IF_ERROR(
        RunSql(conn, "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, ?3)",
               {org.id, org.name, org.created_at}));
    KG_RETURN_IF_ERROR(InsertOwner(conn, owner));
    return sqlite::InsertAuditEntry(conn, audit);
  });
}

Result<keys::Organization> SqliteStore::GetOrganization(const std::string& org_id) {
  keys::Organization org;
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return ReadOneRow(conn, "SELECT id, name, created_at FROM organizations WHERE id = ?1",
                      {org_id}, "organization not found", [&](const sqlite::Statement& row) {
                        org = {row.ColumnText(0), row.ColumnText(1), row.ColumnInt(2)};
                        return OkStatus();
                      });
  }));
  return org;
}

Result<std::vector<keys::Organization>> SqliteStore::ListOrganizations() {
  std::vector<keys::Organization> orgs;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return ForEachRow(conn,
                      "SELECT id, name, created_at FROM organizations ORDER BY created_at, id", {},
                      [&](const sqlite::Statement& row) {
                        orgs.push_back({row.ColumnText(0), row.ColumnText(1), row.ColumnInt(2)});
                        return OkStatus();
                      });
  }));
  return orgs;
}

Result<SqliteStore::IssuedPrefixes> SqliteStore::KeyPrefixesIssued() {
  IssuedPrefixes prefixes;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    // A masked secret is its prefix, the dots, then its last characters.
    return ForEachRow(conn,
                      "SELECT DISTINCT kind, substr(masked, 1, instr(masked, ?1) - 1) FROM ("
                      "SELECT 'm' AS kind, masked FROM provisioning_keys UNION ALL "
                      "SELECT 'm', masked FROM owner_credentials UNION ALL "
                      "SELECT 's', masked FROM service_keys)",
                      {std::string(keys::kMaskDots)}, [&](const sqlite::Statement& row) {
                        (row.ColumnText(0) == "m" ? prefixes.management : prefixes.service)
                            .push_back(row.ColumnText(1));
                        return OkStatus();
                      });
  }));
  return prefixes;
}

Result<keys::OwnerCredential> SqliteStore::GetOwnerCredential(const std::string& hash) {
  keys::OwnerCredential owner;
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return ReadOneRow(
        conn,
        "SELECT hash, org_id, name, masked, created_at FROM owner_credentials WHERE hash = ?1",
        {hash}, "owner credential not found", [&](const sqlite::Statement& row) {
          owner = {row.ColumnText(0), row.ColumnText(1), row.ColumnText(2), row.ColumnText(3),
                   row.ColumnInt(4)};
          return OkStatus();
        });
  }));
  return owner;
}

Status SqliteStore::InsertOwnerCredential(const keys::OwnerCredential& owner,
                                          const keys::AuditEntry& audit) {
  return Write([&](Connection& conn) -> Status {
    KG_RETURN_IF_ERROR(ReadOneRow(conn, "SELECT 1 FROM organizations WHERE id = ?1",
                                  {owner.org_id}, "organization not found",
                                  [](const sqlite::Statement&) { return OkStatus(); }));
    KG_RETURN_IF_ERROR(InsertOwner(conn, owner));
    return sqlite::InsertAuditEntry(conn, audit);
  });
}

// ---------------------------------------------------------------- provisioning keys

Status SqliteStore::InsertProvisioningKey(const keys::ProvisioningKey& key,
                                          const keys::AuditEntry& audit) {
  return Write([&](Connection& conn) -> Status {
    KG_RETURN_IF_ERROR(RunSql(conn,
                              "INSERT INTO provisioning_keys (hash, org_id, name, masked, "
                              "disabled, created_at, last_used_at) "
                              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                              {key.hash, key.org_id, key.name, key.masked,
                               SqlValue::Bool(key.disabled), key.created_at, key.last_used_at}));
    return sqlite::InsertAuditEntry(conn, audit);
  });
}

Result<keys::ProvisioningKey> SqliteStore::GetProvisioningKey(const std::string& hash) {
  keys::ProvisioningKey key;
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return ReadOneRow(conn,
                      std::string("SELECT ") + sqlite::kProvisioningKeyColumns +
                          " FROM provisioning_keys WHERE hash = ?1",
                      {hash}, "provisioning key not found", [&](const sqlite::Statement& row) {
                        key = sqlite::ReadProvisioningKey(row);
                        return OkStatus();
                      });
  }));
  return key;
}

Result<std::vector<keys::ProvisioningKey>> SqliteStore::ListProvisioningKeys(
    const std::string& org_id) {
  std::vector<keys::ProvisioningKey> out;
  KG_RETURN_IF_ERROR(Read([&](Connection& conn) {
    return ForEachRow(conn,
                      std::string("SELECT ") + sqlite::kProvisioningKeyColumns +
                          " FROM provisioning_keys WHERE org_id = ?1 ORDER BY created_at, rowid",
                      {org_id}, [&](const sqlite::Statement& row) {
                        out.push_back(sqlite::ReadProvisioningKey(row));
                        return OkStatus();
                      });
  }));
  return out;
}

Status SqliteStore::UpdateProvisioningKey(const keys::ProvisioningKey& key,
                                          const keys::AuditEntry& audit,
                                          const keys::ProvisioningKey* as_read) {
  return Write([&](Connection& conn) -> Status {
    Result<int64_t> changed =
        as_read == nullptr
            ? RunSqlCountingChanges(conn,
                                    "UPDATE provisioning_keys SET name = ?1, disabled = ?2 "
                                    "WHERE hash = ?3 AND org_id = ?4",
                                    {key.name, SqlValue::Bool(key.disabled), key.hash, key.org_id})
            : RunSqlCountingChanges(conn,
                                    "UPDATE provisioning_keys SET name = ?1, disabled = ?2 "
                                    "WHERE hash = ?3 AND org_id = ?4 AND name = ?5 AND "
                                    "disabled = ?6",
                                    {key.name, SqlValue::Bool(key.disabled), key.hash, key.org_id,
                                     as_read->name, SqlValue::Bool(as_read->disabled)});
    if (!changed.ok()) return changed.error();
    if (*changed == 0) {
      // Gone, or changed since it was read.
      KG_RETURN_IF_ERROR(sqlite::ReadOneRow(
          conn, "SELECT 1 FROM provisioning_keys WHERE hash = ?1 AND org_id = ?2",
          {key.hash, key.org_id}, "provisioning key not found",
          [](const sqlite::Statement&) { return OkStatus(); }));
      return Error{ErrorCode::kConflict, "the provisioning key changed since it was read", "",
                   store::kStaleWrite};
    }
    return sqlite::InsertAuditEntry(conn, audit);
  });
}

Status SqliteStore::DeleteProvisioningKey(const std::string& org_id, const std::string& hash,
                                          const keys::AuditEntry& audit) {
  // spec §2: the service keys it made keep working; they refer to it only by name in
  // created_by, so nothing else changes.
  return Write([&](Connection& conn) -> Status {
    auto changed = RunSqlCountingChanges(
        conn, "DELETE FROM provisioning_keys WHERE hash = ?1 AND org_id = ?2", {hash, org_id});
    if (!changed.ok()) return changed.error();
    if (*changed == 0) return Error::NotFound("provisioning key not found");
    return sqlite::InsertAuditEntry(conn, audit);
  });
}

// ---------------------------------------------------------------- projects

Result<keys::Project> SqliteStore::GetProject(const std::string& org_id,
                                              const std::string& project_id) {
  keys::Project project;
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return ReadOneRow(
        conn, "SELECT id, org_id, name, created_at FROM projects WHERE id = ?1 AND org_id = ?2",
        {project_id, org_id}, "project not found", [&](const sqlite::Statement& row) {
          project = ReadProject(row);
          return OkStatus();
        });
  }));
  return project;
}

Result<keys::Project> SqliteStore::FindProjectByName(const std::string& org_id,
                                                     const std::string& name) {
  keys::Project project;
  KG_RETURN_IF_ERROR(ReadOneStatement([&](Connection& conn) {
    return ReadOneRow(
        conn, "SELECT id, org_id, name, created_at FROM projects WHERE org_id = ?1 AND name = ?2",
        {org_id, name}, "project not found", [&](const sqlite::Statement& row) {
          project = ReadProject(row);
          return OkStatus();
        });
  }));
  return project;
}

// ---------------------------------------------------------------- last used

Status SqliteStore::TouchLastUsed(const std::vector<Touch>& touches) {
  if (touches.empty()) return OkStatus();
  // One row update per key, with its latest stamp, whatever the batch holds.
  std::unordered_map<std::string, UnixMillis> latest;
  for (const Touch& touch : touches) {
    auto [it, inserted] = latest.emplace(touch.hash, touch.at);
    if (!inserted) it->second = std::max(it->second, touch.at);
  }
  return Write([&](Connection& conn) -> Status {
    for (const auto& [hash, at] : latest) {
      // Never moves a stamp backwards, and never bumps version: the in-memory index does not
      // need last_used_at from the store.
      auto changed =
          RunSqlCountingChanges(conn,
                                "UPDATE service_keys SET last_used_at = ?2 "
                                "WHERE hash = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                                {hash, at});
      if (!changed.ok()) return changed.error();
      if (*changed > 0) continue;
      KG_RETURN_IF_ERROR(RunSql(conn,
                                "UPDATE provisioning_keys SET last_used_at = ?2 "
                                "WHERE hash = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                                {hash, at}));
    }
    return OkStatus();
  });
}

}  // namespace keygate::store
