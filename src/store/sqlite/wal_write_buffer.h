// A SQLite VFS that coalesces the write connection's WAL writes.
//
// SQLite writes a commit's frames to the WAL one system call at a time, two per page (the
// 24-byte frame header, then the page), all at consecutive offsets, and then fsyncs the WAL.
// A group commit of a few dozen key creations writes a few hundred pages, so the writer
// thread spent more time entering the kernel than copying data. This VFS wraps the default
// one: for a WAL file it gathers consecutive writes in memory and hands them to the file in
// one write when anything else touches that file (sync, read, truncate, size, lock, close, a
// write elsewhere) or the buffer reaches its limit. Every other file (the database, its
// shared memory, journals) passes straight through.
//
// Durability and visibility are unchanged: SQLite acknowledges a commit only after xSync on
// the WAL, which writes the buffer first (and reports its error, if any, as the sync's); and
// other connections only read frames that a commit has published in the WAL index, which
// SQLite does after that sync. The connection's own reads of the WAL write the buffer first.
//
// Thread safety: the VFS may be used by any number of connections at once; each open file is
// used by one connection at a time, as SQLite requires of every VFS file.
#pragma once

namespace keygate::store::sqlite {

// The name under which the VFS is registered (not as the default VFS). Registers it on the
// first call; later calls return the same name. Returns nullptr if SQLite has no default VFS
// to wrap (then open without it).
const char* WalWriteBufferVfsName();

}  // namespace keygate::store::sqlite
