// Validation of a service key and the audit diff; both rules live here once for every dialect.
#include <string>
#include <string_view>
#include <utility>

#include "common/ascii.h"
#include "common/log.h"
#include "common/time_format.h"
#include "keys/key_service.h"

namespace keygate::keys {

size_t Utf8Chars(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

namespace {

// Reads the code point at s[*i] into *point and moves *i past it; false if the bytes there are
// not well-formed UTF-8 (RFC 3629): a stray continuation byte, an overlong form, a surrogate,
// anything above U+10FFFF, a sequence cut short.
bool NextCodePoint(std::string_view s, size_t* i, uint32_t* point) {
  const auto c = static_cast<unsigned char>(s[*i]);
  size_t length = 0;
  if (c < 0x80) {
    *point = c;
    ++*i;
    return true;
  } else if ((c & 0xE0) == 0xC0) {
    length = 2;
    *point = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    length = 3;
    *point = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    length = 4;
    *point = c & 0x07;
  } else {
    return false;
  }
  if (*i + length > s.size()) return false;
  for (size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(s[*i + k]);
    if ((next & 0xC0) != 0x80) return false;
    *point = (*point << 6) | (next & 0x3F);
  }
  constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (*point < kSmallest[length] || *point > 0x10FFFF || (*point >= 0xD800 && *point <= 0xDFFF)) {
    return false;
  }
  *i += length;
  return true;
}

bool IsUtf8(std::string_view s) {
  uint32_t point = 0;
  for (size_t i = 0; i < s.size();) {
    if (!NextCodePoint(s, &i, &point)) return false;
  }
  return true;
}

// A character that shows as nothing: the controls (C0, DEL, C1), Unicode's White_Space
// (no-break and typographic spaces, line and paragraph separators, the ideographic space), and
// the invisible ones of Default_Ignorable_Code_Point and the blank letters (the soft hyphen,
// the combining grapheme joiner, the Hangul and Mongolian fillers, zero-width spaces, joiners
// and marks, bidirectional controls, invisible operators, the byte order mark, the braille
// blank).
bool ShowsAsNothing(uint32_t point) {
  constexpr std::pair<uint32_t, uint32_t> kRanges[] = {
      {0x00, 0x20},     {0x7F, 0xA0},     {0xAD, 0xAD},     {0x34F, 0x34F},   {0x115F, 0x1160},
      {0x1680, 0x1680}, {0x180B, 0x180E}, {0x2000, 0x200F}, {0x2028, 0x202F}, {0x205F, 0x206F},
      {0x2800, 0x2800}, {0x3000, 0x3000}, {0x3164, 0x3164}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
      {0xFFA0, 0xFFA0}, {0xE0000, 0xE0FFF}};
  for (const auto& [low, high] : kRanges) {
    if (point >= low && point <= high) return true;
  }
  return false;
}

// True if every character of `s` (valid UTF-8) shows as nothing.
bool IsBlank(std::string_view s) {
  uint32_t point = 0;
  for (size_t i = 0; i < s.size();) {
    if (NextCodePoint(s, &i, &point) && !ShowsAsNothing(point)) return false;
  }
  return true;
}

// "provider/model" or "provider/*": both parts non-empty.
// A models entry that can match a model of the catalog: a provider name as the catalog allows
// it (1..64 of A-Z a-z 0-9 . _ -), '/', and a model name of printable characters without spaces
// (as a catalog id's) or '*' alone. Anything else ("*/*", " openai/x", "openai/gpt-4*") would
// never match, and the key would be refused every model with no word of why.
bool IsModelPattern(std::string_view m) {
  constexpr size_t kMaxProviderChars = 64;
  const size_t slash = m.find('/');
  if (m.size() > ValidationLimits::kMaxModelChars || slash == std::string_view::npos ||
      slash == 0 || slash > kMaxProviderChars || slash + 1 == m.size()) {
    return false;
  }
  for (char c : m.substr(0, slash)) {
    if (!IsAsciiAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  const std::string_view model = m.substr(slash + 1);
  if (model == "*") return true;
  for (char c : model) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '*') return false;
  }
  return true;
}

Status CheckModels(const std::vector<std::string>& models) {
  if (models.size() > ValidationLimits::kMaxModels) {
    return Error::InvalidArgument("models may list at most 1000 entries", "models");
  }
  for (const std::string& m : models) {
    if (!IsModelPattern(m)) {
      return Error::InvalidArgument(
          "models entries must look like provider/model or provider/*: a provider name of "
          "letters, digits, '.', '_' or '-', then a model name without spaces, where '*' may "
          "only stand alone for every model of the provider; got '" +
              m.substr(0, ValidationLimits::kMaxModelChars) + "'",
          "models");
    }
  }
  return OkStatus();
}

Status CheckTags(const std::vector<std::string>& tags) {
  if (tags.size() > ValidationLimits::kMaxTags) {
    return Error::InvalidArgument("tags may hold at most 64 entries", "tags");
  }
  for (const std::string& t : tags) {
    if (t.empty() || Utf8Chars(t) > ValidationLimits::kMaxTagChars) {
      return Error::InvalidArgument("each tag must be 1 to 256 characters", "tags");
    }
  }
  return OkStatus();
}

Status CheckRate(const std::optional<int64_t>& limit, const char* param) {
  if (limit.has_value() && (*limit <= 0 || *limit > ValidationLimits::kMaxRateLimit)) {
    return Error::InvalidArgument(std::string(param) + " must be an integer between 1 and 1000000000",
                                  param);
  }
  return OkStatus();
}

// A tiny JSON writer for the audit diff (keys/ does not depend on a JSON library).
std::string Json(const std::string& s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}
std::string Json(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : "null"; }
std::string Json(bool v) { return v ? "true" : "false"; }
std::string Json(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ",";
    AppendJsonString(&out, v[i]);
  }
  return out + "]";
}
std::string Json(const std::optional<std::vector<std::string>>& v) { return v ? Json(*v) : "null"; }
std::string MoneyJson(const std::optional<MicroUsd>& v) { return v ? FormatUsd(*v) : "null"; }
std::string RawOrNull(const std::string& raw) { return raw.empty() ? "null" : raw; }
std::string OrNull(const std::string& s) { return s.empty() ? "null" : Json(s); }

}  // namespace

Status CheckName(std::string_view name, std::string_view param) {
  const std::string field(param);
  if (name.empty()) return Error::InvalidArgument(field + " must not be empty", field);
  if (!IsUtf8(name)) return Error::InvalidArgument(field + " must be valid UTF-8", field);
  // A name of spaces alone shows as nothing in a list or the console.
  if (IsBlank(name)) return Error::InvalidArgument(field + " must not be only whitespace", field);
  if (Utf8Chars(name) > ValidationLimits::kMaxNameChars) {
    return Error::InvalidArgument(field + " must be at most 256 characters", field);
  }
  return OkStatus();
}

Status ValidateServiceKey(const ServiceKey& key, UnixMillis now, bool expiry_changed,
                          bool models_changed) {
  const Guardrails& g = key.guardrails;
  if (g.models && models_changed) KG_RETURN_IF_ERROR(CheckModels(*g.models));
  if (g.credit_limit && *g.credit_limit <= 0) {
    return Error::InvalidArgument("credit_limit must be greater than 0 (null means unlimited)",
                                  "credit_limit");
  }
  KG_RETURN_IF_ERROR(CheckRate(g.rpm_limit, "rpm_limit"));
  KG_RETURN_IF_ERROR(CheckRate(g.tpm_limit, "tpm_limit"));
  if (expiry_changed && g.expires_at && *g.expires_at <= now) {
    return Error::InvalidArgument("expire_key must be in the future", "expire_key");
  }
  if (key.metadata_json.size() > ValidationLimits::kMaxMetadataBytes) {
    return Error::InvalidArgument("metadata must be at most 16 KiB of JSON", "metadata");
  }
  KG_RETURN_IF_ERROR(CheckTags(key.tags));
  if (key.creator_user_id.size() > ValidationLimits::kMaxNameChars) {
    return Error::InvalidArgument("creator_user_id must be at most 256 characters",
                                  "creator_user_id");
  }
  if (key.external_user.size() > ValidationLimits::kMaxNameChars) {
    return Error::InvalidArgument("external.user must be at most 256 characters", "external");
  }
  return OkStatus();
}

namespace {

std::string TimeJson(std::optional<UnixMillis> at) {
  return at ? "\"" + FormatTimestamp(*at) + "\"" : "null";
}

}  // namespace

std::string TimeChangeJson(std::optional<UnixMillis> before, std::optional<UnixMillis> after) {
  return "{\"before\":" + TimeJson(before) + ",\"after\":" + TimeJson(after) + "}";
}

std::string DiffServiceKeys(const ServiceKey* before, const ServiceKey& after) {
  static const ServiceKey kEmpty{};
  const ServiceKey& b = before ? *before : kEmpty;
  std::string out = "{";
  auto field = [&out](const char* name, const std::string& was, const std::string& now) {
    if (was == now) return;
    if (out.size() > 1) out += ",";
    out += "\"";
    out += name;
    out += "\":{\"before\":" + was + ",\"after\":" + now + "}";
  };
  field("name", before ? Json(b.name) : "null", Json(after.name));
  field("project_id", OrNull(b.project_id), OrNull(after.project_id));
  field("models", Json(b.guardrails.models), Json(after.guardrails.models));
  field("credit_limit", MoneyJson(b.guardrails.credit_limit), MoneyJson(after.guardrails.credit_limit));
  field("reset_budget_interval", OrNull(ToString(b.guardrails.reset_interval)),
        OrNull(ToString(after.guardrails.reset_interval)));
  field("rpm_limit", Json(b.guardrails.rpm_limit), Json(after.guardrails.rpm_limit));
  field("tpm_limit", Json(b.guardrails.tpm_limit), Json(after.guardrails.tpm_limit));
  field("expire_key", TimeJson(b.guardrails.expires_at), TimeJson(after.guardrails.expires_at));
  field("disabled", before ? Json(b.disabled) : "null", Json(after.disabled));
  field("metadata", RawOrNull(b.metadata_json), RawOrNull(after.metadata_json));
  field("tags", before ? Json(b.tags) : "null", Json(after.tags));
  field("include_byok_in_limit", Json(b.include_byok_in_limit), Json(after.include_byok_in_limit));
  field("creator_user_id", OrNull(b.creator_user_id), OrNull(after.creator_user_id));
  field("external_user", OrNull(b.external_user), OrNull(after.external_user));
  return out + "}";
}

}  // namespace keygate::keys
