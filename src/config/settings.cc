#include "config/settings.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <string>

#include "common/secret_shape.h"

namespace keygate::config {
namespace {

constexpr size_t kMaxEchoedValueBytes = 64;
constexpr size_t kMaxKeyPrefixBytes = kMaxKeyPrefixChars;  // common/secret_shape.h masks by it
constexpr int64_t kMaxPort = 65535;
constexpr std::string_view kSqliteScheme = "sqlite:";
constexpr std::string_view kDefaultSqliteFile = "keygate.db";

// Quotes a user's value for an error message, shortened so that a pasted blob stays readable.
std::string Quoted(std::string_view text) {
  if (text.size() <= kMaxEchoedValueBytes) return "'" + std::string(text) + "'";
  return "'" + std::string(text.substr(0, kMaxEchoedValueBytes)) + "…'";
}

Error Bad(std::string_view complaint) { return Error::InvalidArgument(std::string(complaint)); }

Error BadValue(std::string_view complaint, std::string_view text) {
  return Error::InvalidArgument(std::string(complaint) + ", got " + Quoted(text));
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

bool IsIpv6Char(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

// Parses a whole string of decimal digits. Returns false for anything else or overflow.
bool ParseDecimal(std::string_view text, int64_t* out) {
  if (text.empty()) return false;  // from_chars refuses '+', spaces and trailing junk
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end;
}

Status ApplyListen(std::string_view text, Settings* settings) {
  constexpr std::string_view kComplaint = "must be HOST:PORT (e.g. 127.0.0.1:8080)";
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return BadValue(kComplaint, text);
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.empty() || !std::all_of(host.begin(), host.end(), IsIpv6Char)) {
      return BadValue(kComplaint, text);
    }
  } else if (host.empty() || !std::all_of(host.begin(), host.end(), IsHostChar)) {
    return BadValue(kComplaint, text);
  }
  int64_t port = 0;
  if (!ParseDecimal(port_text, &port) || port < 0 || port > kMaxPort) {
    return BadValue("port must be an integer in 0..65535", text);
  }
  settings->listen = std::string(text);
  settings->listen_host = std::string(host);
  settings->listen_port = static_cast<uint16_t>(port);
  return OkStatus();
}

Status ApplyDataDir(std::string_view text, Settings* settings) {
  if (text.empty()) return Bad("must be a directory path, got ''");
  settings->data_dir = std::string(text);
  return OkStatus();
}

// True when `url` is `scheme` followed by a non-empty authority (the part before '/', '?').
bool HasSchemeAndHost(std::string_view url, std::string_view scheme) {
  if (url.substr(0, scheme.size()) != scheme) return false;
  std::string_view rest = url.substr(scheme.size());
  size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  size_t at = authority.rfind('@');  // skip user:password@
  if (at != std::string_view::npos) authority = authority.substr(at + 1);
  return !authority.empty() && authority.front() != ':';
}

// Store URLs may carry a password, so their complaints never echo the value.
Status ApplyStore(std::string_view text, Settings* settings) {
  StoreKind kind = StoreKind::kSqlite;
  if (text.empty()) {
    kind = StoreKind::kSqlite;
  } else if (text.substr(0, kSqliteScheme.size()) == kSqliteScheme) {
    std::string_view path = text.substr(kSqliteScheme.size());
    if (path.substr(0, 2) == "//") path.remove_prefix(2);
    if (path.empty()) return Bad("sqlite:PATH needs a file path");
  } else if (HasSchemeAndHost(text, "postgres://") || HasSchemeAndHost(text, "postgresql://")) {
    kind = StoreKind::kPostgres;
  } else {
    return Bad("must be empty (SQLite in the data dir), sqlite:PATH or postgres://USER@HOST/DB");
  }
  settings->store_url = std::string(text);
  settings->store_kind = kind;
  return OkStatus();
}

Status ApplyRedis(std::string_view text, Settings* settings) {
  if (!text.empty() && !HasSchemeAndHost(text, "redis://") &&
      !HasSchemeAndHost(text, "rediss://")) {
    return Bad("must be empty (no Redis) or redis://HOST[:PORT][/DB] (rediss:// for TLS)");
  }
  settings->redis_url = std::string(text);
  return OkStatus();
}

template <int64_t Settings::*kMember, int64_t kMin, int64_t kMax>
Status ApplyInteger(std::string_view text, Settings* settings) {
  int64_t value = 0;
  if (!ParseDecimal(text, &value) || value < kMin || value > kMax) {
    return BadValue("must be an integer in " + std::to_string(kMin) + ".." + std::to_string(kMax),
                    text);
  }
  settings->*kMember = value;
  return OkStatus();
}

constexpr std::array<LogLevel, 4> kLogLevels = {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn,
                                                LogLevel::kError};

Status ApplyLogLevel(std::string_view text, Settings* settings) {
  for (LogLevel level : kLogLevels) {
    if (text == LogLevelName(level)) {
      settings->log_level = level;
      return OkStatus();
    }
  }
  return BadValue("must be one of debug, info, warn, error", text);
}

Status ApplyFailureMode(std::string_view text, Settings* settings) {
  for (FailureMode mode : {FailureMode::kDeny, FailureMode::kAllow}) {
    if (text == FailureModeName(mode)) {
      settings->failure_mode = mode;
      return OkStatus();
    }
  }
  return BadValue("must be deny or allow", text);
}

bool IsPrefixChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

template <std::string Settings::*kMember>
Status ApplyKeyPrefix(std::string_view text, Settings* settings) {
  if (text.empty() || text.size() > kMaxKeyPrefixBytes ||
      !std::all_of(text.begin(), text.end(), IsPrefixChar)) {
    return BadValue("must be 1 to 16 characters of A-Z a-z 0-9 - _", text);
  }
  settings->*kMember = std::string(text);
  return OkStatus();
}

// clang-format off
constexpr SettingInfo kSettings[] = {
    {"listen", "KEYGATE_LISTEN", "127.0.0.1:8080", "HOST:PORT ([v6addr]:PORT for IPv6)",
     "Address and port that serve the data plane and the management API; port 0 "
     "picks a free port.",
     ApplyListen},
    {"data", "KEYGATE_DATA", "./data", "directory path",
     "Directory for the SQLite database (when store is empty) and other local state.",
     ApplyDataDir},
    {"store", "KEYGATE_STORE", "", "empty, sqlite:PATH or postgres://USER[:PASS]@HOST[:PORT]/DB",
     "Where keys, usage and the audit log live: empty means <data>/keygate.db; a postgres:// URL "
     "(several replicas sharing one store) is refused at start: not built yet.",
     ApplyStore},
    {"redis", "KEYGATE_REDIS", "", "empty or redis://HOST[:PORT][/DB] (rediss:// for TLS)",
     "Redis holding rolling windows, spend and reservations shared by replicas; empty keeps them "
     "in this process. Not built yet: a URL is refused at start.",
     ApplyRedis},
    {"limits.max_body_bytes", "KEYGATE_LIMITS_MAX_BODY_BYTES", "10485760",
     "integer 1024..1073741824",
     "Largest request body accepted; a larger one is refused with 413.",
     ApplyInteger<&Settings::max_body_bytes, 1024, 1'073'741'824>},
    {"limits.max_body_memory_bytes", "KEYGATE_LIMITS_MAX_BODY_MEMORY_BYTES", "268435456",
     "integer 1048576..68719476736 (raised to limits.max_body_bytes when below it)",
     "Most memory the request bodies being received may hold, summed over every connection "
     "(each holds what has arrived of it); a body that would pass it is refused with 503 and "
     "its connection closed, so that slow or stalled clients cannot exhaust memory.",
     ApplyInteger<&Settings::max_body_memory_bytes, 1'048'576, 68'719'476'736>},
    {"limits.header_timeout_s", "KEYGATE_LIMITS_HEADER_TIMEOUT_S", "10", "integer 1..300",
     "Seconds a client has to send a request's complete header before the connection is closed.",
     ApplyInteger<&Settings::header_timeout_s, 1, 300>},
    {"limits.idle_timeout_s", "KEYGATE_LIMITS_IDLE_TIMEOUT_S", "75", "integer 1..3600",
     "Seconds a keep-alive connection may sit idle between requests, and the longest silence "
     "inside a request's body (as nginx's client_body_timeout: a body that keeps arriving, "
     "however slowly, is not cut; max_body_memory_bytes bounds the memory such clients hold).",
     ApplyInteger<&Settings::idle_timeout_s, 1, 3600>},
    {"limits.drain_timeout_s", "KEYGATE_LIMITS_DRAIN_TIMEOUT_S", "20", "integer 0..3600",
     "Seconds a stop (SIGTERM) lets the requests in flight finish before it cuts them (a model "
     "call cut before its answer is answered 503). Set it above the longest model call to be "
     "waited for, and 25 s below the supervisor's own stop timeout.",
     ApplyInteger<&Settings::drain_timeout_s, 0, 3600>},
    {"limits.max_connections", "KEYGATE_LIMITS_MAX_CONNECTIONS", "10000", "integer 1..1000000",
     "Most client connections held open at once.",
     ApplyInteger<&Settings::max_connections, 1, 1'000'000>},
    {"limits.max_service_keys_per_org", "KEYGATE_LIMITS_MAX_SERVICE_KEYS_PER_ORG", "100000",
     "integer 1..100000000",
     "Most service keys an organization may hold: never deleted (disabled and expired ones "
     "included) or in a rotation's grace period; one more is refused with 403 "
     "(key_quota_exceeded), so that one organization's provisioning key cannot fill the "
     "gateway's memory for every other.",
     ApplyInteger<&Settings::max_service_keys_per_org, 1, 100'000'000>},
    {"limits.management_rps_per_org", "KEYGATE_LIMITS_MANAGEMENT_RPS_PER_ORG", "100",
     "integer 0..1000000",
     "Management calls a second, on average, that an organization's provisioning keys may make "
     "between them (its owners, and its service keys, have a bucket each of their own); past "
     "it and its burst, a call is refused with 429 and Retry-After, so that one organization "
     "cannot write keys, and grow the store every organization shares, as fast as the store "
     "commits. 0 turns the limit off. Model calls are held to each key's own RPM and TPM.",
     ApplyInteger<&Settings::management_rps_per_org, 0, 1'000'000>},
    {"limits.management_burst_per_org", "KEYGATE_LIMITS_MANAGEMENT_BURST_PER_ORG", "1000",
     "integer 1..1000000",
     "Management calls each bucket of limits.management_rps_per_org allows at once (its size; "
     "it refills at that rate).",
     ApplyInteger<&Settings::management_burst_per_org, 1, 1'000'000>},
    {"io_threads", "KEYGATE_IO_THREADS", "0", "integer 0..256",
     "Threads that serve connections, each with its own event loop; 0 means one per core.",
     ApplyInteger<&Settings::io_threads, 0, 256>},
    {"usage.flush_interval_ms", "KEYGATE_USAGE_FLUSH_INTERVAL_MS", "50", "integer 1..50",
     "Longest a model call's usage record waits in memory before it is committed to the store "
     "(in a batch with the others then pending).",
     ApplyInteger<&Settings::usage_flush_interval_ms, 1, 50>},
    {"usage.retention_days", "KEYGATE_USAGE_RETENTION_DAYS", "0", "integer 0..36500",
     "Days each model call's usage record is kept in the store; 0 (the default) keeps them "
     "all, and the store grows by 100-130 bytes a call. The usage totals (total, daily, "
     "weekly, monthly) keep counting the calls whose records are gone.",
     ApplyInteger<&Settings::usage_retention_days, 0, 36500>},
    {"log_level", "KEYGATE_LOG_LEVEL", "info", "debug | info | warn | error",
     "Least severe level written to the structured log on stderr.",
     ApplyLogLevel},
    {"key_prefixes.service", "KEYGATE_KEY_PREFIXES_SERVICE", "sk-kg-", "1..16 of A-Z a-z 0-9 - _",
     "Readable prefix of service account key secrets.",
     ApplyKeyPrefix<&Settings::service_key_prefix>},
    {"key_prefixes.provisioning", "KEYGATE_KEY_PREFIXES_PROVISIONING", "pk-kg-",
     "1..16 of A-Z a-z 0-9 - _",
     "Readable prefix of provisioning key secrets.",
     ApplyKeyPrefix<&Settings::provisioning_key_prefix>},
    {"key_prefixes.owner", "KEYGATE_KEY_PREFIXES_OWNER", "ok-kg-", "1..16 of A-Z a-z 0-9 - _",
     "Readable prefix of owner credential secrets.",
     ApplyKeyPrefix<&Settings::owner_key_prefix>},
    {"failure_mode", "KEYGATE_FAILURE_MODE", "deny", "deny | allow",
     "What the data plane does when the limiter's store is unreachable, or when the store has "
     "not taken usage records for over a second: deny answers 503 (and /readyz too), allow "
     "forwards (without enforcing RPM, TPM or budget in the first case; with its usage waiting "
     "in memory in the second).",
     ApplyFailureMode},
};
// clang-format on

// True when one prefix starts with the other (equal prefixes included).
bool Overlap(std::string_view a, std::string_view b) {
  return a.substr(0, b.size()) == b || b.substr(0, a.size()) == a;
}

void AppendPadded(std::string* out, std::string_view text, size_t width) {
  out->append(text);
  if (text.size() < width) out->append(width - text.size(), ' ');
  out->push_back(' ');
}

}  // namespace

std::string Settings::SqlitePath() const {
  std::string_view url = store_url;
  if (url.empty()) {
    std::string path = data_dir;
    if (!path.empty() && path.back() != '/') path.push_back('/');
    return path + std::string(kDefaultSqliteFile);
  }
  url.remove_prefix(kSqliteScheme.size());
  if (url.substr(0, 2) == "//") url.remove_prefix(2);
  return std::string(url);
}

std::span<const SettingInfo> AllSettings() { return kSettings; }

const SettingInfo* FindSetting(std::string_view name) {
  for (const SettingInfo& info : kSettings) {
    if (info.name == name) return &info;
  }
  return nullptr;
}

Status ApplySetting(std::string_view name, std::string_view text, Settings* settings) {
  const SettingInfo* info = FindSetting(name);
  if (info == nullptr) return Error::InvalidArgument("unknown setting " + std::string(name));
  Status status = info->apply(text, settings);
  if (!status.ok()) {
    return Error::InvalidArgument(std::string(name) + ": " + status.error().message,
                                  std::string(name));
  }
  return OkStatus();
}

Status ValidateSettings(const Settings& settings,
                        const std::function<bool(std::string_view)>& is_set) {
  const std::pair<std::string_view, const std::string*> prefixes[] = {
      {"key_prefixes.service", &settings.service_key_prefix},
      {"key_prefixes.provisioning", &settings.provisioning_key_prefix},
      {"key_prefixes.owner", &settings.owner_key_prefix},
  };
  for (size_t i = 0; i < std::size(prefixes); ++i) {
    for (size_t j = i + 1; j < std::size(prefixes); ++j) {
      if (!Overlap(*prefixes[i].second, *prefixes[j].second)) continue;
      const bool blame_earlier = is_set && is_set(prefixes[i].first) && !is_set(prefixes[j].first);
      return Error::InvalidArgument(std::string(prefixes[i].first) + " and " +
                                        std::string(prefixes[j].first) +
                                        ": must differ and neither may start with the other",
                                    std::string(prefixes[blame_earlier ? i : j].first));
    }
  }
  if (settings.store_kind != StoreKind::kSqlite) {
    return Error::InvalidArgument(
        "store: PostgreSQL is not available in this build yet; leave store empty or use "
        "sqlite:PATH",
        "store");
  }
  if (!settings.redis_url.empty()) {
    return Error::InvalidArgument(
        "redis: shared windows and spend are not available in this build yet; leave redis "
        "empty and run one replica",
        "redis");
  }
  return OkStatus();
}

std::string SettingsHelp() {
  constexpr size_t kNameWidth = 27;
  std::string out = "Settings (config file key, environment variable, default):\n";
  for (const SettingInfo& info : kSettings) {
    out.append("  ");
    AppendPadded(&out, info.name, kNameWidth);
    out.append(info.accepts);
    out.append("\n      ");
    out.append(info.description);
    out.append("\n      env ");
    out.append(info.env);
    out.append(", default ");
    out.append(info.default_value.empty() ? "(empty)" : info.default_value);
    out.append("\n");
  }
  return out;
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string_view FailureModeName(FailureMode mode) {
  return mode == FailureMode::kAllow ? "allow" : "deny";
}

}  // namespace keygate::config
