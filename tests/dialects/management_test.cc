// What a management caller is told of an error (ShownToCaller).
#include "dialects/common/management.h"

#include <gtest/gtest.h>

#include <string>

namespace keygate::dialects {
namespace {

TEST(ManagementTest, AnInternalErrorShowsOnlyTheRequestId) {
  const Error internal = Error::Internal(
      "prepare SELECT k.seq FROM service_keys k WHERE EXISTS (...): too large");
  const Error shown = ShownToCaller(internal, "req_abc");
  EXPECT_EQ(shown.code, ErrorCode::kInternal);
  EXPECT_EQ(shown.message.find("SELECT"), std::string::npos) << shown.message;
  EXPECT_NE(shown.message.find("req_abc"), std::string::npos) << shown.message;
}

TEST(ManagementTest, OtherErrorsAreShownAsTheyAre) {
  for (const Error &error :
       {Error::InvalidArgument("limit must be between 1 and 1000", "limit"),
        Error::NotFound("no such key"), Error::PermissionDenied("not yours")}) {
    const Error shown = ShownToCaller(error, "req_abc");
    EXPECT_EQ(shown.code, error.code);
    EXPECT_EQ(shown.message, error.message);
    EXPECT_EQ(shown.param, error.param);
  }
}

// Audit BB (session 22): a store's failure showed SQLite's words and the data directory's path.
TEST(ManagementTest, AnUnavailableStoreShowsWhetherARetryHelpsAndTheRequestId) {
  const Error busy =
      Error::Unavailable("sqlite step INSERT INTO audit_log ...: database is locked");
  Error removed = Error::Unavailable("not applied: sqlite database /var/lib/kg/keygate.db: "
                                     "keygate.db-wal was removed while keygate has it open");
  removed.reason = store::kStoreFilesRemoved;
  for (const Error& error : {busy, removed}) {
    const Error shown = ShownToCaller(error, "req_abc");
    EXPECT_EQ(shown.code, ErrorCode::kUnavailable);
    EXPECT_EQ(shown.reason, error.reason);
    for (const char* detail : {"sqlite", "INSERT", "/var/lib", "locked"}) {
      EXPECT_EQ(shown.message.find(detail), std::string::npos) << shown.message;
    }
    EXPECT_NE(shown.message.find("req_abc"), std::string::npos) << shown.message;
  }
  EXPECT_NE(ShownToCaller(busy, "r").message.find("retry"), std::string::npos);
  EXPECT_NE(ShownToCaller(removed, "r").message.find("restarted"), std::string::npos);
}

} // namespace
} // namespace keygate::dialects
