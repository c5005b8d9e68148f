// Holds SQLite's write lock on a keygate store, as another process would, until Release():
// every write keygate tries meanwhile waits out its busy timeout and fails.
#pragma once

#include <sqlite3.h>

#include <gtest/gtest.h>

#include <string>

namespace keygate::testing {

class StoreLock {
 public:
  explicit StoreLock(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db_, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);
  }
  ~StoreLock() { Release(); }
  void Release() {
    if (db_ == nullptr) return;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace keygate::testing
