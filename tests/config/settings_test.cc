#include "config/settings.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace keygate::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string EnvNameFor(std::string_view setting) {
  std::string env = "KEYGATE_";
  for (char c : setting) env.push_back(c == '.' ? '_' : static_cast<char>(std::toupper(c)));
  return env;
}

TEST(SettingsTest, TableDefaultsEqualTheStructDefaults) {
  Settings from_table;
  from_table.listen = "changed";  // every member must be rewritten from the table
  from_table.max_body_bytes = 1;
  for (const SettingInfo& info : AllSettings()) {
    ASSERT_TRUE(info.apply(info.default_value, &from_table).ok()) << info.name;
  }
  EXPECT_EQ(from_table, Settings{});
}

TEST(SettingsTest, EveryEntryDescribesItself) {
  std::set<std::string_view> names;
  for (const SettingInfo& info : AllSettings()) {
    EXPECT_TRUE(names.insert(info.name).second) << "duplicate " << info.name;
    EXPECT_EQ(info.env, EnvNameFor(info.name));
    EXPECT_FALSE(info.accepts.empty()) << info.name;
    EXPECT_FALSE(info.description.empty()) << info.name;
    EXPECT_NE(info.apply, nullptr) << info.name;
    EXPECT_EQ(FindSetting(info.name), &info);
  }
  for (std::string_view required :
       {"listen", "data", "store", "redis", "limits.max_body_bytes", "limits.header_timeout_s",
        "limits.idle_timeout_s", "limits.max_connections", "io_threads", "usage.flush_interval_ms",
        "usage.retention_days", "log_level", "key_prefixes.service", "key_prefixes.provisioning",
        "key_prefixes.owner", "failure_mode"}) {
    EXPECT_NE(FindSetting(required), nullptr) << required;
  }
  EXPECT_EQ(FindSetting("limits"), nullptr);
}

TEST(SettingsTest, HelpListsEverySettingWithDefaultAndEnvironment) {
  std::string help = SettingsHelp();
  for (const SettingInfo& info : AllSettings()) {
    EXPECT_THAT(help, HasSubstr(std::string(info.name))) << info.name;
    EXPECT_THAT(help, HasSubstr("env " + std::string(info.env))) << info.name;
    EXPECT_THAT(help, HasSubstr(std::string(info.description))) << info.name;
  }
  EXPECT_THAT(help, HasSubstr("default 127.0.0.1:8080"));
  EXPECT_THAT(help, HasSubstr("default 10485760"));
}

TEST(SettingsTest, OperatorDocsListEverySetting) {
  std::ifstream in(std::string(KEYGATE_SOURCE_DIR) + "/docs/configuration.md");
  ASSERT_TRUE(in) << "docs/configuration.md is missing";
  std::stringstream docs;
  docs << in.rdbuf();
  for (const SettingInfo& info : AllSettings()) {
    EXPECT_THAT(docs.str(), HasSubstr("`" + std::string(info.name) + "`")) << info.name;
    EXPECT_THAT(docs.str(), HasSubstr("`" + std::string(info.env) + "`")) << info.name;
  }
}

TEST(SettingsTest, ListenAcceptsHostsAndIpv6) {
  Settings s;
  ASSERT_TRUE(ApplySetting("listen", "[::1]:0", &s).ok());
  EXPECT_EQ(s.listen_host, "::1");
  EXPECT_EQ(s.listen_port, 0);
  ASSERT_TRUE(ApplySetting("listen", "gateway.internal:443", &s).ok());
  EXPECT_EQ(s.listen_host, "gateway.internal");
  EXPECT_EQ(s.listen, "gateway.internal:443");
  for (const char* bad : {"", ":80", "host", "host:", "host:-1", "host:65536", "host:8o", "[]:1",
                          "[zz]:1", "a b:1", "::1:80"}) {
    Settings before;
    Status status = ApplySetting("listen", bad, &before);
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_EQ(before, Settings{}) << "changed on error: " << bad;
  }
}

TEST(SettingsTest, StoreUrlsSelectTheBackend) {
  Settings s;
  ASSERT_TRUE(ApplySetting("store", "sqlite:/var/lib/kg.db", &s).ok());
  EXPECT_EQ(s.store_kind, StoreKind::kSqlite);
  EXPECT_EQ(s.SqlitePath(), "/var/lib/kg.db");
  ASSERT_TRUE(ApplySetting("store", "sqlite:///var/lib/kg.db", &s).ok());
  EXPECT_EQ(s.SqlitePath(), "/var/lib/kg.db");
  ASSERT_TRUE(ApplySetting("store", "sqlite:rel/kg.db", &s).ok());
  EXPECT_EQ(s.SqlitePath(), "rel/kg.db");
  ASSERT_TRUE(ApplySetting("store", "postgresql://kg:secret@db:5432/kg", &s).ok());
  EXPECT_EQ(s.store_kind, StoreKind::kPostgres);
  ASSERT_TRUE(ApplySetting("store", "", &s).ok());
  EXPECT_EQ(s.store_kind, StoreKind::kSqlite);
  ASSERT_TRUE(ApplySetting("data", "/srv/kg/", &s).ok());
  EXPECT_EQ(s.SqlitePath(), "/srv/kg/keygate.db");
  for (const char* bad : {"sqlite:", "sqlite://", "postgres://", "mysql://x/y", "/path/kg.db"}) {
    EXPECT_FALSE(ApplySetting("store", bad, &s).ok()) << bad;
  }
}

TEST(SettingsTest, UrlComplaintsNeverEchoAPassword) {
  Settings s;
  Status status = ApplySetting("store", "pg://kg:hunter2@db/kg", &s);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error().message, Not(HasSubstr("hunter2")));
  status = ApplySetting("redis", "http://:hunter2@cache", &s);
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.error().message, Not(HasSubstr("hunter2")));
}

TEST(SettingsTest, RedisUrls) {
  Settings s;
  EXPECT_TRUE(ApplySetting("redis", "redis://127.0.0.1:6379/2", &s).ok());
  EXPECT_TRUE(ApplySetting("redis", "rediss://:pw@cache.example:6380", &s).ok());
  EXPECT_TRUE(ApplySetting("redis", "", &s).ok());
  EXPECT_FALSE(ApplySetting("redis", "redis://", &s).ok());
  EXPECT_FALSE(ApplySetting("redis", "127.0.0.1:6379", &s).ok());
}

TEST(SettingsTest, IntegerLimitsHoldTheirBounds) {
  Settings s;
  EXPECT_TRUE(ApplySetting("limits.max_body_bytes", "1024", &s).ok());
  EXPECT_TRUE(ApplySetting("limits.max_body_bytes", "1073741824", &s).ok());
  EXPECT_EQ(s.max_body_bytes, 1073741824);
  for (const char* bad :
       {"1023", "1073741825", "-5", "+5", " 5", "5 ", "5k", "0x10", "", "99999999999999999999"}) {
    EXPECT_FALSE(ApplySetting("limits.max_body_bytes", bad, &s).ok()) << bad;
  }
  EXPECT_EQ(ApplySetting("limits.header_timeout_s", "301", &s).error().message,
            "limits.header_timeout_s: must be an integer in 1..300, got '301'");
  EXPECT_TRUE(ApplySetting("limits.max_connections", "1000000", &s).ok());
  EXPECT_FALSE(ApplySetting("limits.max_connections", "1000001", &s).ok());
  EXPECT_TRUE(ApplySetting("io_threads", "0", &s).ok());
  EXPECT_TRUE(ApplySetting("io_threads", "3", &s).ok());
  EXPECT_EQ(s.io_threads, 3);
  EXPECT_FALSE(ApplySetting("io_threads", "-1", &s).ok());
  EXPECT_FALSE(ApplySetting("io_threads", "257", &s).ok());
  // Usage may be at most 100 ms behind in the store (spec §5): the wait leaves as much again
  // for the commit itself.
  EXPECT_EQ(Settings{}.usage_flush_interval_ms, 50);
  EXPECT_TRUE(ApplySetting("usage.flush_interval_ms", "1", &s).ok());
  EXPECT_TRUE(ApplySetting("usage.flush_interval_ms", "20", &s).ok());
  EXPECT_EQ(s.usage_flush_interval_ms, 20);
  EXPECT_TRUE(ApplySetting("usage.flush_interval_ms", "50", &s).ok());
  EXPECT_FALSE(ApplySetting("usage.flush_interval_ms", "0", &s).ok());
  EXPECT_FALSE(ApplySetting("usage.flush_interval_ms", "51", &s).ok());
  EXPECT_EQ(Settings{}.usage_retention_days, 0);  // nothing removed unless asked (review)
  EXPECT_TRUE(ApplySetting("usage.retention_days", "90", &s).ok());
  EXPECT_EQ(s.usage_retention_days, 90);
  EXPECT_TRUE(ApplySetting("usage.retention_days", "0", &s).ok());  // keep every record
  EXPECT_EQ(s.usage_retention_days, 0);
  EXPECT_TRUE(ApplySetting("usage.retention_days", "36500", &s).ok());
  EXPECT_FALSE(ApplySetting("usage.retention_days", "-1", &s).ok());
  EXPECT_FALSE(ApplySetting("usage.retention_days", "36501", &s).ok());
}

TEST(SettingsTest, EnumsAndPrefixes) {
  Settings s;
  ASSERT_TRUE(ApplySetting("log_level", "warn", &s).ok());
  EXPECT_EQ(s.log_level, LogLevel::kWarn);
  EXPECT_FALSE(ApplySetting("log_level", "WARN", &s).ok());
  ASSERT_TRUE(ApplySetting("failure_mode", "allow", &s).ok());
  EXPECT_EQ(s.failure_mode, FailureMode::kAllow);
  EXPECT_EQ(FailureModeName(s.failure_mode), "allow");
  ASSERT_TRUE(ApplySetting("key_prefixes.service", "acme_sk-", &s).ok());
  EXPECT_EQ(s.service_key_prefix, "acme_sk-");
  for (const char* bad : {"", "has space", "way-too-long-prefix-", "sk.kg"}) {
    EXPECT_FALSE(ApplySetting("key_prefixes.owner", bad, &s).ok()) << bad;
  }
  EXPECT_THAT(ApplySetting("nope", "1", &s).error().message, HasSubstr("unknown setting nope"));
}

TEST(SettingsTest, KeyPrefixesMustBeDistinguishable) {
  Settings s;
  EXPECT_TRUE(ValidateSettings(s).ok());
  s.owner_key_prefix = s.service_key_prefix;
  EXPECT_FALSE(ValidateSettings(s).ok());
  s.owner_key_prefix = "sk-kg-own-";  // starts with the service prefix: ambiguous
  Status status = ValidateSettings(s);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().param, "key_prefixes.owner");
  // Only the earlier one was set: it is blamed.
  auto only_service = [](std::string_view name) { return name == "key_prefixes.service"; };
  s = Settings{};
  s.service_key_prefix = s.owner_key_prefix;
  EXPECT_EQ(ValidateSettings(s, only_service).error().param, "key_prefixes.service");
  EXPECT_EQ(ValidateSettings(s).error().param, "key_prefixes.owner");
}

TEST(SettingsTest, BackendsNotBuiltAreRefused) {
  Settings s;
  ASSERT_TRUE(ApplySetting("store", "postgres://kg@db/keygate", &s).ok());
  EXPECT_EQ(ValidateSettings(s).error().param, "store");
  s = Settings{};
  ASSERT_TRUE(ApplySetting("redis", "redis://cache:6379", &s).ok());
  EXPECT_EQ(ValidateSettings(s).error().param, "redis");
}

}  // namespace
}  // namespace keygate::config
