#include "store/sqlite/wal_write_buffer.h"

#include <sqlite3.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "store/sqlite/sqlite_connection.h"

namespace keygate::store::sqlite {
namespace {

constexpr const char* kVfsName = "keygate-wal-write-buffer";
// Most bytes gathered before they are written anyway: a batch of a few hundred pages.
constexpr size_t kBufferBytes = 2 << 20;

// SQLite allocates vfs.szOsFile bytes per open file and gives them to xOpen uninitialized:
// this header, then the wrapped VFS's own file object.
struct BufferedFile {
  sqlite3_file base;     // base.pMethods = &kMethods
  sqlite3_file* real;    // the wrapped file, right after this header
  bool buffered;         // a WAL file: writes are gathered
  char* data;            // gathered bytes (malloc'd on first use), to go at `start`
  size_t size;           // bytes gathered
  sqlite3_int64 start;   // file offset of data[0]
};

constexpr size_t kHeaderBytes = (sizeof(BufferedFile) + 7) & ~size_t{7};

BufferedFile* Self(sqlite3_file* file) { return reinterpret_cast<BufferedFile*>(file); }
sqlite3_file* Real(sqlite3_file* file) { return Self(file)->real; }
sqlite3_vfs* RealVfs(sqlite3_vfs* vfs) { return static_cast<sqlite3_vfs*>(vfs->pAppData); }

// The unix VFS writes at most 128 KiB - 1 bytes per call (it never expects more than a page)
// and reports a longer write as a short one, so the gathered bytes go in chunks of this size.
constexpr size_t kMaxWriteBytes = 31 * 4096;

// Writes what was gathered. The error of that write is the caller's to report.
int Flush(BufferedFile* f) {
  size_t done = 0;
  int rc = SQLITE_OK;
  while (done < f->size && rc == SQLITE_OK) {
    const size_t chunk = f->size - done < kMaxWriteBytes ? f->size - done : kMaxWriteBytes;
    rc = f->real->pMethods->xWrite(f->real, f->data + done, static_cast<int>(chunk),
                                   f->start + static_cast<sqlite3_int64>(done));
    done += chunk;
  }
  f->size = 0;
  return rc;
}

// ---------------------------------------------------------------- io methods

int Close(sqlite3_file* file) {
  BufferedFile* f = Self(file);
  const int flushed = Flush(f);
  std::free(f->data);
  f->data = nullptr;
  const int closed = f->real->pMethods->xClose(f->real);
  return flushed != SQLITE_OK ? flushed : closed;
}

// Writes what the file holds back, then passes the call on to the wrapped file: every call
// that looks at or changes the file beyond appending goes this way.
template <auto Method, class... Args>
int FlushThen(sqlite3_file* file, Args... args) {
  if (const int rc = Flush(Self(file)); rc != SQLITE_OK) return rc;
  return (Real(file)->pMethods->*Method)(Real(file), args...);
}

int Read(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  return FlushThen<&sqlite3_io_methods::xRead>(file, out, amount, offset);
}

int Write(sqlite3_file* file, const void* in, int amount, sqlite3_int64 offset) {
  BufferedFile* f = Self(file);
  if (!f->buffered || amount <= 0) return f->real->pMethods->xWrite(f->real, in, amount, offset);
  const auto bytes = static_cast<size_t>(amount);
  const bool follows = f->size > 0 && offset == f->start + static_cast<sqlite3_int64>(f->size);
  if (!follows || f->size + bytes > kBufferBytes) {
    if (const int rc = Flush(f); rc != SQLITE_OK) return rc;
  }
  if (bytes > kMaxWriteBytes) return f->real->pMethods->xWrite(f->real, in, amount, offset);
  if (f->data == nullptr) {
    f->data = static_cast<char*>(std::malloc(kBufferBytes));
    if (f->data == nullptr) return f->real->pMethods->xWrite(f->real, in, amount, offset);
  }
  if (f->size == 0) f->start = offset;
  std::memcpy(f->data + f->size, in, bytes);
  f->size += bytes;
  return SQLITE_OK;
}

int Truncate(sqlite3_file* file, sqlite3_int64 size) {
  return FlushThen<&sqlite3_io_methods::xTruncate>(file, size);
}

int Sync(sqlite3_file* file, int flags) {
  return FlushThen<&sqlite3_io_methods::xSync>(file, flags);
}

int FileSize(sqlite3_file* file, sqlite3_int64* size) {
  return FlushThen<&sqlite3_io_methods::xFileSize>(file, size);
}

int Lock(sqlite3_file* file, int level) {
  return FlushThen<&sqlite3_io_methods::xLock>(file, level);
}

int Unlock(sqlite3_file* file, int level) {
  return FlushThen<&sqlite3_io_methods::xUnlock>(file, level);
}

int CheckReservedLock(sqlite3_file* file, int* out) {
  return Real(file)->pMethods->xCheckReservedLock(Real(file), out);
}

int FileControl(sqlite3_file* file, int op, void* arg) {
  return FlushThen<&sqlite3_io_methods::xFileControl>(file, op, arg);
}

int SectorSize(sqlite3_file* file) { return Real(file)->pMethods->xSectorSize(Real(file)); }

int DeviceCharacteristics(sqlite3_file* file) {
  return Real(file)->pMethods->xDeviceCharacteristics(Real(file));
}

int ShmMap(sqlite3_file* file, int region, int size, int extend, void volatile** out) {
  sqlite3_file* real = Real(file);
  if (real->pMethods->iVersion < 2 || real->pMethods->xShmMap == nullptr) return SQLITE_IOERR;
  return real->pMethods->xShmMap(real, region, size, extend, out);
}

int ShmLock(sqlite3_file* file, int offset, int n, int flags) {
  sqlite3_file* real = Real(file);
  if (real->pMethods->iVersion < 2 || real->pMethods->xShmLock == nullptr) return SQLITE_IOERR;
  return real->pMethods->xShmLock(real, offset, n, flags);
}

void ShmBarrier(sqlite3_file* file) {
  sqlite3_file* real = Real(file);
  if (real->pMethods->iVersion >= 2 && real->pMethods->xShmBarrier != nullptr) {
    real->pMethods->xShmBarrier(real);
  }
}

int ShmUnmap(sqlite3_file* file, int remove) {
  sqlite3_file* real = Real(file);
  if (real->pMethods->iVersion < 2 || real->pMethods->xShmUnmap == nullptr) return SQLITE_OK;
  return real->pMethods->xShmUnmap(real, remove);
}

int Fetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  sqlite3_file* real = Real(file);
  *out = nullptr;  // "no mapping": SQLite then reads with xRead
  if (Self(file)->buffered) return SQLITE_OK;
  if (real->pMethods->iVersion < 3 || real->pMethods->xFetch == nullptr) return SQLITE_OK;
  return real->pMethods->xFetch(real, offset, amount, out);
}

int Unfetch(sqlite3_file* file, sqlite3_int64 offset, void* page) {
  sqlite3_file* real = Real(file);
  if (real->pMethods->iVersion < 3 || real->pMethods->xUnfetch == nullptr) return SQLITE_OK;
  return real->pMethods->xUnfetch(real, offset, page);
}

constexpr sqlite3_io_methods kMethods = {
    3,         Close,     Read,     Write,      Truncate, Sync,
    FileSize,  Lock,      Unlock,   CheckReservedLock,  FileControl,
    SectorSize, DeviceCharacteristics, ShmMap, ShmLock, ShmBarrier,
    ShmUnmap,  Fetch,     Unfetch,
};

// ---------------------------------------------------------------- vfs methods

int Open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  sqlite3_vfs* real_vfs = RealVfs(vfs);
  BufferedFile* f = Self(file);
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kHeaderBytes);
  f->buffered = (flags & SQLITE_OPEN_WAL) != 0;
  f->data = nullptr;
  f->size = 0;
  f->start = 0;
  const int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
  // On failure SQLite must not call xClose: no methods.
  file->pMethods = rc == SQLITE_OK && f->real->pMethods != nullptr ? &kMethods : nullptr;
  return rc;
}

int Delete(sqlite3_vfs* vfs, const char* name, int sync_dir) {
  return RealVfs(vfs)->xDelete(RealVfs(vfs), name, sync_dir);
}
int Access(sqlite3_vfs* vfs, const char* name, int flags, int* out) {
  return RealVfs(vfs)->xAccess(RealVfs(vfs), name, flags, out);
}
int FullPathname(sqlite3_vfs* vfs, const char* name, int n, char* out) {
  return RealVfs(vfs)->xFullPathname(RealVfs(vfs), name, n, out);
}
void* DlOpen(sqlite3_vfs* vfs, const char* name) {
  return RealVfs(vfs)->xDlOpen(RealVfs(vfs), name);
}
void DlError(sqlite3_vfs* vfs, int n, char* out) { RealVfs(vfs)->xDlError(RealVfs(vfs), n, out); }
void (*DlSym(sqlite3_vfs* vfs, void* handle, const char* symbol))(void) {
  return RealVfs(vfs)->xDlSym(RealVfs(vfs), handle, symbol);
}
void DlClose(sqlite3_vfs* vfs, void* handle) { RealVfs(vfs)->xDlClose(RealVfs(vfs), handle); }
int Randomness(sqlite3_vfs* vfs, int n, char* out) {
  return RealVfs(vfs)->xRandomness(RealVfs(vfs), n, out);
}
int Sleep(sqlite3_vfs* vfs, int micros) { return RealVfs(vfs)->xSleep(RealVfs(vfs), micros); }
int CurrentTime(sqlite3_vfs* vfs, double* out) {
  return RealVfs(vfs)->xCurrentTime(RealVfs(vfs), out);
}
int GetLastError(sqlite3_vfs* vfs, int n, char* out) {
  return RealVfs(vfs)->xGetLastError(RealVfs(vfs), n, out);
}
int CurrentTimeInt64(sqlite3_vfs* vfs, sqlite3_int64* out) {
  sqlite3_vfs* real = RealVfs(vfs);
  if (real->iVersion >= 2 && real->xCurrentTimeInt64 != nullptr) {
    return real->xCurrentTimeInt64(real, out);
  }
  double day = 0;
  const int rc = real->xCurrentTime(real, &day);
  *out = static_cast<sqlite3_int64>(day * 86400000.0);
  return rc;
}

// Registered once for the process and never changed afterwards; SQLite keeps a pointer to it.
sqlite3_vfs* MakeVfs() {
  static sqlite3_vfs vfs;
  DisableSqliteMemoryStatistics();  // sqlite3_vfs_find initializes SQLite
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (real == nullptr) return nullptr;
  vfs = sqlite3_vfs{};
  vfs.iVersion = 2;
  vfs.szOsFile = static_cast<int>(kHeaderBytes) + real->szOsFile;
  vfs.mxPathname = real->mxPathname;
  vfs.zName = kVfsName;
  vfs.pAppData = real;
  vfs.xOpen = Open;
  vfs.xDelete = Delete;
  vfs.xAccess = Access;
  vfs.xFullPathname = FullPathname;
  vfs.xDlOpen = DlOpen;
  vfs.xDlError = DlError;
  vfs.xDlSym = DlSym;
  vfs.xDlClose = DlClose;
  vfs.xRandomness = Randomness;
  vfs.xSleep = Sleep;
  vfs.xCurrentTime = CurrentTime;
  vfs.xGetLastError = GetLastError;
  vfs.xCurrentTimeInt64 = CurrentTimeInt64;
  if (sqlite3_vfs_register(&vfs, /*makeDflt=*/0) != SQLITE_OK) return nullptr;
  return &vfs;
}

}  // namespace

const char* WalWriteBufferVfsName() {
  static std::once_flag once;
  static const char* name = nullptr;
  std::call_once(once, [] { name = MakeVfs() != nullptr ? kVfsName : nullptr; });
  return name;
}

}  // namespace keygate::store::sqlite
