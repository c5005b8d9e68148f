#include "store/sqlite/row_codec.h"

#include <cstdint>

#include "common/json_text.h"
#include "common/log.h"

namespace keygate::store::sqlite {
namespace {

constexpr int64_t kMsPerDay = 86'400'000;

// A strict parser for the one JSON shape these columns hold: an array of strings.
class StringArrayParser {
 public:
  explicit StringArrayParser(std::string_view in) : in_(in) {}

  bool Parse(std::vector<std::string>* out) {
    SkipSpace();
    if (!Consume('[')) return false;
    SkipSpace();
    if (!Consume(']')) {
      while (true) {
        std::string value;
        if (!ParseString(&value)) return false;
        out->push_back(std::move(value));
        SkipSpace();
        if (Consume(']')) break;
        if (!Consume(',')) return false;
        SkipSpace();
      }
    }
    SkipSpace();
    return pos_ == in_.size();
  }

 private:
  void SkipSpace() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\n' || in_[pos_] == '\r' || in_[pos_] == '\t')) {
      ++pos_;
    }
  }

  bool Consume(char c) {
    if (pos_ >= in_.size() || in_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  bool ParseString(std::string* out) {
    if (!Consume('"')) return false;
    while (pos_ < in_.size()) {
      const char c = in_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (!ParseEscape(out)) return false;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return false;
      } else {
        out->push_back(c);
      }
    }
    return false;
  }

  bool ParseEscape(std::string* out) {
    if (pos_ >= in_.size()) return false;
    switch (in_[pos_++]) {
      case '"':
        out->push_back('"');
        return true;
      case '\\':
        out->push_back('\\');
        return true;
      case '/':
        out->push_back('/');
        return true;
      case 'b':
        out->push_back('\b');
        return true;
      case 'f':
        out->push_back('\f');
        return true;
      case 'n':
        out->push_back('\n');
        return true;
      case 'r':
        out->push_back('\r');
        return true;
      case 't':
        out->push_back('\t');
        return true;
      case 'u':
        return ParseUnicodeEscape(out);
      default:
        return false;
    }
  }

  // After "\u": one code unit, or a surrogate pair written as two escapes.
  bool ParseUnicodeEscape(std::string* out) {
    uint32_t cp = 0;
    if (!ParseHex4(&cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      uint32_t low = 0;
      if (!Consume('\\') || !Consume('u') || !ParseHex4(&low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(cp, out);
    return true;
  }

  bool ParseHex4(uint32_t* cp) {
    constexpr size_t kDigits = 4;
    if (in_.size() - pos_ < kDigits) return false;
    uint32_t value = 0;
    for (size_t i = 0; i < kDigits; ++i) {
      const char c = in_[pos_++];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        value |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        value |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *cp = value;
    return true;
  }

  std::string_view in_;
  size_t pos_ = 0;
};

Result<keys::KeySource> ParseKeySource(std::string_view text) {
  if (text == "router") return keys::KeySource::kRouter;
  if (text == "workspace") return keys::KeySource::kWorkspace;
  return Error::Internal("corrupt service_keys.source value '" + std::string(text) + "'");
}

Result<keys::ResetInterval> ParseResetInterval(std::string_view text) {
  if (text.empty()) return keys::ResetInterval::kNever;
  if (text == "daily") return keys::ResetInterval::kDaily;
  if (text == "weekly") return keys::ResetInterval::kWeekly;
  if (text == "monthly") return keys::ResetInterval::kMonthly;
  return Error::Internal("corrupt service_keys.reset_interval value '" + std::string(text) + "'");
}

// Column indexes of kServiceKeyColumns.
enum ServiceKeyColumn {
  kHash,
  kOrgId,
  kName,
  kMasked,
  kProjectId,
  kProjectName,
  kSource,
  kModelsJson,
  kCreditLimit,
  kResetInterval,
  kRpmLimit,
  kTpmLimit,
  kExpiresAt,
  kDisabled,
  kMetadataJson,
  kTagsJson,
  kIncludeByok,
  kCreatorUserId,
  kExternalUser,
  kCreatedBy,
  kLineage,
  kCreatedAt,
  kUpdatedAt,
  kLastUsedAt,
  kRevokeAt,
  kVersion,
};

// The enum- and JSON-typed columns, which can fail to decode.
Status ReadDecodedServiceKeyColumns(const Statement& stmt, keys::ServiceKey* key) {
  auto source = ParseKeySource(stmt.ColumnText(kSource));
  if (!source.ok()) return source.error();
  key->source = *source;
  auto interval = ParseResetInterval(stmt.ColumnText(kResetInterval));
  if (!interval.ok()) return interval.error();
  key->guardrails.reset_interval = *interval;
  if (!stmt.ColumnIsNull(kModelsJson)) {
    auto models = DecodeStringArray(stmt.ColumnText(kModelsJson));
    if (!models.ok()) return models.error();
    key->guardrails.models = std::move(*models);
  }
  auto tags = DecodeStringArray(stmt.ColumnText(kTagsJson));
  if (!tags.ok()) return tags.error();
  key->tags = std::move(*tags);
  return OkStatus();
}

}  // namespace

std::string EncodeStringArray(const std::vector<std::string>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendJsonString(&out, values[i]);
  }
  out.push_back(']');
  return out;
}

Result<std::vector<std::string>> DecodeStringArray(std::string_view json) {
  std::vector<std::string> out;
  if (!StringArrayParser(json).Parse(&out)) {
    return Error::Internal("corrupt JSON string list in the sqlite store: " + std::string(json));
  }
  return out;
}

int64_t DayOf(UnixMillis at) {
  const int64_t day = at / kMsPerDay;
  return (at % kMsPerDay < 0) ? day - 1 : day;
}

const char* const kServiceKeyColumns =
    "k.hash, k.org_id, k.name, k.masked, k.project_id, p.name, k.source, k.models_json, "
    "k.credit_limit, k.reset_interval, k.rpm_limit, k.tpm_limit, k.expires_at, k.disabled, "
    "k.metadata_json, k.tags_json, k.include_byok_in_limit, k.creator_user_id, k.external_user, "
    "k.created_by, k.lineage, k.created_at, k.updated_at, k.last_used_at, k.revoke_at, "
    "k.version";

const char* const kServiceKeyFrom = "service_keys k LEFT JOIN projects p ON p.id = k.project_id";

Result<keys::ServiceKey> ReadServiceKey(const Statement& stmt) {
  keys::ServiceKey key;
  key.hash = stmt.ColumnText(kHash);
  key.org_id = stmt.ColumnText(kOrgId);
  key.name = stmt.ColumnText(kName);
  key.masked = stmt.ColumnText(kMasked);
  key.project_id = stmt.ColumnText(kProjectId);
  key.project_name = stmt.ColumnText(kProjectName);
  KG_RETURN_IF_ERROR(ReadDecodedServiceKeyColumns(stmt, &key));
  key.guardrails.credit_limit = stmt.ColumnOptionalInt(kCreditLimit);
  key.guardrails.rpm_limit = stmt.ColumnOptionalInt(kRpmLimit);
  key.guardrails.tpm_limit = stmt.ColumnOptionalInt(kTpmLimit);
  key.guardrails.expires_at = stmt.ColumnOptionalInt(kExpiresAt);
  key.disabled = stmt.ColumnInt(kDisabled) != 0;
  key.metadata_json = stmt.ColumnText(kMetadataJson);
  key.include_byok_in_limit = stmt.ColumnInt(kIncludeByok) != 0;
  key.creator_user_id = stmt.ColumnText(kCreatorUserId);
  key.external_user = stmt.ColumnText(kExternalUser);
  key.created_by = stmt.ColumnText(kCreatedBy);
  key.lineage = stmt.ColumnText(kLineage);
  key.created_at = stmt.ColumnInt(kCreatedAt);
  key.updated_at = stmt.ColumnOptionalInt(kUpdatedAt);
  key.last_used_at = stmt.ColumnOptionalInt(kLastUsedAt);
  key.revoke_at = stmt.ColumnOptionalInt(kRevokeAt);
  key.version = stmt.ColumnInt(kVersion);
  return key;
}

void BindMutableServiceKeyFields(Statement& stmt, int first, const keys::ServiceKey& key) {
  const keys::Guardrails& g = key.guardrails;
  int i = first;
  stmt.Bind(i++, key.name);
  stmt.BindTextOrNull(i++, key.project_id);
  if (g.models.has_value()) {
    stmt.Bind(i++, EncodeStringArray(*g.models));
  } else {
    stmt.BindNull(i++);
  }
  stmt.Bind(i++, g.credit_limit);
  stmt.BindTextOrNull(i++, keys::ToString(g.reset_interval));
  stmt.Bind(i++, g.rpm_limit);
  stmt.Bind(i++, g.tpm_limit);
  stmt.Bind(i++, g.expires_at);
  stmt.Bind(i++, int64_t{key.disabled ? 1 : 0});
  stmt.BindTextOrNull(i++, key.metadata_json);
  stmt.Bind(i++, EncodeStringArray(key.tags));
  stmt.Bind(i++, int64_t{key.include_byok_in_limit ? 1 : 0});
  stmt.BindTextOrNull(i++, key.creator_user_id);
  stmt.BindTextOrNull(i++, key.external_user);
  stmt.Bind(i++, key.updated_at);
  stmt.Bind(i++, key.revoke_at);
}

const char* const kProvisioningKeyColumns =
    "hash, org_id, name, masked, disabled, created_at, last_used_at";

keys::ProvisioningKey ReadProvisioningKey(const Statement& stmt) {
  keys::ProvisioningKey key;
  key.hash = stmt.ColumnText(0);
  key.org_id = stmt.ColumnText(1);
  key.name = stmt.ColumnText(2);
  key.masked = stmt.ColumnText(3);
  key.disabled = stmt.ColumnInt(4) != 0;
  key.created_at = stmt.ColumnInt(5);
  key.last_used_at = stmt.ColumnOptionalInt(6);
  return key;
}

const char* const kAuditColumns =
    "org_seq, org_id, at, actor, actor_name, action, target, changes_json, request_id";

keys::AuditEntry ReadAuditEntry(const Statement& stmt) {
  keys::AuditEntry entry;
  entry.id = stmt.ColumnInt(0);
  entry.org_id = stmt.ColumnText(1);
  entry.at = stmt.ColumnInt(2);
  entry.actor = stmt.ColumnText(3);
  entry.actor_name = stmt.ColumnText(4);
  entry.action = stmt.ColumnText(5);
  entry.target = stmt.ColumnText(6);
  entry.changes_json = stmt.ColumnText(7);
  entry.request_id = stmt.ColumnText(8);
  return entry;
}

const char* const kUsageColumns =
    "k.key_hash, l.key_hash, k.org_id, r.value ->> 1, r.value ->> 2, r.value ->> 3, "
    "r.value ->> 4, r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9, "
    "r.value ->> 10";
const char* const kUsageFrom =
    "usage_keys l JOIN usage_chunks c ON c.lineage_id = l.id JOIN json_each(c.records) r "
    "JOIN usage_keys k ON k.id = r.value ->> 0";

UsageRecord ReadUsageRecord(const Statement& stmt) {
  UsageRecord record;
  record.key_hash = stmt.ColumnText(0);
  record.lineage = stmt.ColumnText(1);
  record.org_id = stmt.ColumnText(2);
  record.model = stmt.ColumnText(3);
  record.provider = stmt.ColumnText(4);
  record.prompt_tokens = stmt.ColumnInt(5);
  record.completion_tokens = stmt.ColumnInt(6);
  record.cost = stmt.ColumnInt(7);
  record.status = static_cast<int>(stmt.ColumnInt(8));
  record.latency_ms = stmt.ColumnInt(9);
  record.ttfb_ms = stmt.ColumnInt(10);
  record.request_id = stmt.ColumnText(11);
  record.at = stmt.ColumnInt(12);
  return record;
}

}  // namespace keygate::store::sqlite
