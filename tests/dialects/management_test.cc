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
        Error::NotFound("no such key"),
        Error::Unavailable("the store is busy")}) {
    const Error shown = ShownToCaller(error, "req_abc");
    EXPECT_EQ(shown.code, error.code);
    EXPECT_EQ(shown.message, error.message);
    EXPECT_EQ(shown.param, error.param);
  }
}

} // namespace
} // namespace keygate::dialects
