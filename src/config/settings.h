// The table of keygate's scalar settings (after DuckDB's settings.hpp): each setting is one
// self-describing entry (its dotted YAML name, environment variable, default, accepted values,
// description and a validator that parses text into a typed member of Settings). The same
// table drives config-file validation, environment overrides, `keygate serve --help`
// (SettingsHelp) and docs/configuration.md, so a setting cannot exist in one and not the
// others. Providers and models are not scalar settings; they live in config.h.
//
// Precedence, lowest first: the defaults below, the YAML file, the environment, then any
// explicit overrides (command-line flags) applied with ApplySetting.
//
// Thread safety: the table is immutable static data and every function is pure or touches
// only the Settings passed in; a Settings value is safe to share read-only between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "common/log.h"
#include "common/status.h"

namespace keygate::config {

// What the data plane does when the limiter's store (Redis, or the SQL store) is unreachable,
// after Envoy's `failure_mode_deny`.
enum class FailureMode {
  kDeny,   // fail closed: answer 503 and forward nothing (the default)
  kAllow,  // fail open: forward without enforcing RPM, TPM or budget
};

// Which backend `store` names.
enum class StoreKind {
  kSqlite,    // `store` empty (SQLite file in the data dir) or `sqlite:PATH`
  kPostgres,  // `store` is a postgres:// or postgresql:// URL
};

// The typed value of every scalar setting. Default member values equal the table's defaults
// (a unit test holds them together).
struct Settings {
  std::string listen = "127.0.0.1:8080";  // as configured, HOST:PORT
  std::string listen_host = "127.0.0.1";  // IPv6 without brackets
  uint16_t listen_port = 8080;            // 0 = any free port
  std::string data_dir = "./data";
  std::string store_url;  // as configured; empty = SQLite in data_dir
  StoreKind store_kind = StoreKind::kSqlite;
  std::string redis_url;  // empty = no Redis: windows and spend are local to this process
  int64_t max_body_bytes = 10'485'760;
  int64_t max_body_memory_bytes = 268'435'456;
  int64_t header_timeout_s = 10;
  int64_t idle_timeout_s = 75;
  int64_t drain_timeout_s = 20;
  int64_t max_connections = 10'000;
  int64_t max_service_keys_per_org = 100'000;
  int64_t management_rps_per_org = 100;  // 0: not limited
  int64_t management_burst_per_org = 1000;
  int64_t io_threads = 0;  // 0: one per core
  int64_t usage_flush_interval_ms = 50;
  int64_t usage_retention_days = 0;  // 0: keep every usage record
  LogLevel log_level = LogLevel::kInfo;
  std::string service_key_prefix = "sk-kg-";
  std::string provisioning_key_prefix = "pk-kg-";
  std::string owner_key_prefix = "ok-kg-";
  FailureMode failure_mode = FailureMode::kDeny;

  // The SQLite database file: the path of `sqlite:PATH`, or `<data_dir>/keygate.db` when
  // `store` is empty. REQUIRES: store_kind == StoreKind::kSqlite.
  std::string SqlitePath() const;

  bool operator==(const Settings&) const = default;
};

// One row of the settings table.
struct SettingInfo {
  std::string_view name;           // dotted YAML path, e.g. "limits.max_body_bytes"
  std::string_view env;            // environment variable that overrides it
  std::string_view default_value;  // the default, as the text a user would write
  std::string_view accepts;        // the accepted values, e.g. "integer 1..300"
  std::string_view description;    // one sentence for --help and the docs
  // Parses `text` into `settings`. On success returns OK and sets the typed member(s). On a
  // bad value returns InvalidArgument whose message is the complaint alone ("must be
  // HOST:PORT, got 'x'"), without the setting's name or location, which the caller adds;
  // `settings` is then unchanged.
  Status (*apply)(std::string_view text, Settings* settings);
};

// Every setting, in documentation order. The span refers to static storage.
std::span<const SettingInfo> AllSettings();

// The entry named `name` (dotted, exact), or nullptr when there is none.
const SettingInfo* FindSetting(std::string_view name);

// Sets one setting from text, e.g. a command-line flag: ApplySetting("listen", "0.0.0.0:80",
// &s). Returns OK, or InvalidArgument "<name>: <complaint>" for a bad value, or
// InvalidArgument "unknown setting <name>". `settings` is unchanged on error.
Status ApplySetting(std::string_view name, std::string_view text, Settings* settings);

// Checks the rules that span several settings, and the values this build cannot serve:
// - the three key prefixes must be distinct and none may start with another, or a secret's kind
//   would be ambiguous: InvalidArgument naming both settings, with `param` the one to blame,
//   the later one in table order unless only the earlier was set (`is_set(name)`: true when the
//   setting was given a value rather than keeping its default; null: every setting was);
// - a postgres:// store or a redis URL: InvalidArgument "store: ..." or "redis: ...", `param`
//   naming the setting (several replicas sharing a store are not built yet; a Redis URL ignored
//   would leave each replica its own limits). The message never repeats the URL, which may hold
//   a password.
Status ValidateSettings(const Settings& settings,
                        const std::function<bool(std::string_view)>& is_set = nullptr);

// The settings part of `keygate serve --help`: every setting with its accepted values,
// default, environment variable and description, one block per setting.
std::string SettingsHelp();

// "info", "debug", ... as accepted by the log_level setting.
std::string_view LogLevelName(LogLevel level);
// "deny" or "allow".
std::string_view FailureModeName(FailureMode mode);

}  // namespace keygate::config
