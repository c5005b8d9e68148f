#include "dialects/common/json_input.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/ascii.h"
#include "common/json_text.h"

namespace keygate::dialects {
namespace {

namespace json = boost::json;

Error WrongType(std::string_view name, std::string_view expected) {
  return Error::InvalidArgument(std::string(name) + " must be " + std::string(expected),
                                std::string(name));
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// application/x-www-form-urlencoded decoding: '+' is a space, %XX a byte.
bool DecodeComponent(std::string_view in, std::string* out) {
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out->push_back(' ');
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = AsciiHexValue(in[i + 1]);
      int lo = AsciiHexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(in[i]);
    }
  }
  return true;
}

}  // namespace

std::optional<std::string> CompactMemberText(std::string_view text, std::string_view name) {
  std::optional<std::string_view> found;
  for (const JsonMemberText& member : ObjectMembers(text)) {
    if (JsonNameIs(member.raw_name, name)) found = member.value;
  }
  if (!found) return std::nullopt;
  return CompactJson(*found);
}

Result<json::object> ParseObjectBody(std::string_view body, bool allow_empty) {
  const bool blank = std::all_of(body.begin(), body.end(),
                                 [](unsigned char c) { return std::isspace(c) != 0; });
  if (blank) {
    if (allow_empty) return json::object{};
    return Error::InvalidArgument("request body must be a JSON object", "body");
  }
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 64;
  json::value value = json::parse(body, ec, {}, options);
  if (ec) {
    return Error::InvalidArgument("request body is not valid JSON: " + ec.message(), "body");
  }
  if (!value.is_object()) return Error::InvalidArgument("request body must be a JSON object", "body");
  return std::move(value.as_object());
}

Result<std::vector<std::pair<std::string, std::string>>> ParseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    std::string_view part = query.substr(start, amp == std::string_view::npos ? amp : amp - start);
    start = amp == std::string_view::npos ? query.size() : amp + 1;
    if (part.empty()) continue;
    size_t eq = part.find('=');
    std::string key, value;
    if (!DecodeComponent(part.substr(0, eq), &key) ||
        (eq != std::string_view::npos && !DecodeComponent(part.substr(eq + 1), &value))) {
      return Error::InvalidArgument("malformed percent-encoding in the query string", "query");
    }
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

bool FieldReader::Has(std::string_view name) const { return object_.contains(name); }

Result<keys::Patch<std::string>> FieldReader::String(std::string_view name) const {
  auto it = object_.find(name);
  if (it == object_.end()) return keys::Patch<std::string>{};
  if (it->value().is_null()) return keys::Patch<std::string>{std::optional<std::string>{}};
  if (!it->value().is_string()) return WrongType(name, "a string");
  return keys::Patch<std::string>{std::string(it->value().as_string())};
}

Result<keys::Patch<int64_t>> FieldReader::Integer(std::string_view name) const {
  auto it = object_.find(name);
  if (it == object_.end()) return keys::Patch<int64_t>{};
  const json::value& v = it->value();
  if (v.is_null()) return keys::Patch<int64_t>{std::optional<int64_t>{}};
  if (v.is_int64()) return keys::Patch<int64_t>{v.as_int64()};
  if (v.is_uint64()) {
    if (v.as_uint64() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return WrongType(name, "an integer in range");
    }
    return keys::Patch<int64_t>{static_cast<int64_t>(v.as_uint64())};
  }
  if (v.is_double()) {
    double d = v.as_double();
    // 1e3 or 10.0 are integers written as floats; 10.5 is not.
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9e15) {
      return keys::Patch<int64_t>{static_cast<int64_t>(d)};
    }
  }
  return WrongType(name, "an integer");
}

Result<std::optional<bool>> FieldReader::Bool(std::string_view name) const {
  auto it = object_.find(name);
  if (it == object_.end()) return std::optional<bool>{};
  if (!it->value().is_bool()) return WrongType(name, "true or false");
  return std::optional<bool>{it->value().as_bool()};
}

Result<keys::Patch<MicroUsd>> FieldReader::Money(std::string_view name) const {
  auto it = object_.find(name);
  if (it == object_.end()) return keys::Patch<MicroUsd>{};
  const json::value& v = it->value();
  if (v.is_null()) return keys::Patch<MicroUsd>{std::optional<MicroUsd>{}};
  Result<MicroUsd> micros = Error::InvalidArgument("", "");
  if (v.is_string()) {
    micros = ParseUsd(std::string_view(v.as_string()), name);
  } else if (v.is_number()) {
    boost::system::error_code ec;
    double d = v.to_number<double>(ec);
    if (ec) return WrongType(name, "a number of USD");
    micros = UsdFromDouble(d, name);
  } else {
    return WrongType(name, "a number of USD or a decimal string");
  }
  if (!micros.ok()) return micros.error();
  if (*micros < 0) return Error::InvalidArgument(std::string(name) + " must not be negative",
                                                 std::string(name));
  return keys::Patch<MicroUsd>{*micros};
}

Result<keys::Patch<UnixMillis>> FieldReader::Timestamp(std::string_view name,
                                                       TimestampStrictness strictness) const {
  auto it = object_.find(name);
  if (it == object_.end()) return keys::Patch<UnixMillis>{};
  if (it->value().is_null()) return keys::Patch<UnixMillis>{std::optional<UnixMillis>{}};
  if (!it->value().is_string()) return WrongType(name, "an ISO 8601 timestamp string");
  auto ms = ParseTimestamp(std::string_view(it->value().as_string()), name, strictness);
  if (!ms.ok()) return ms.error();
  return keys::Patch<UnixMillis>{*ms};
}

Result<keys::Patch<std::vector<std::string>>> FieldReader::StringList(std::string_view name) const {
  using Out = keys::Patch<std::vector<std::string>>;
  auto it = object_.find(name);
  if (it == object_.end()) return Out{};
  if (it->value().is_null()) return Out{std::optional<std::vector<std::string>>{}};
  if (!it->value().is_array()) return WrongType(name, "an array of strings");
  std::vector<std::string> out;
  const json::array& array = it->value().as_array();
  out.reserve(array.size());
  for (const json::value& item : array) {
    if (!item.is_string()) return WrongType(name, "an array of strings");
    out.emplace_back(item.as_string());
  }
  return Out{std::move(out)};
}

Result<keys::Patch<std::string>> FieldReader::ObjectJson(std::string_view name) const {
  auto it = object_.find(name);
  if (it == object_.end()) return keys::Patch<std::string>{};
  if (it->value().is_null()) return keys::Patch<std::string>{std::optional<std::string>{}};
  if (!it->value().is_object()) return WrongType(name, "a JSON object");
  if (!text_.empty()) {
    // Kept only when it is the very value parsed (a text that is not the object's own, or a
    // scanner slip, falls back to serializing the value).
    std::optional<std::string> as_sent = CompactMemberText(text_, name);
    boost::system::error_code ec;
    if (as_sent && json::parse(*as_sent, ec) == it->value() && !ec) {
      return keys::Patch<std::string>{std::move(*as_sent)};
    }
  }
  return keys::Patch<std::string>{json::serialize(it->value())};
}

Result<keys::Patch<keys::ResetInterval>> FieldReader::Interval(std::string_view name) const {
  using Out = keys::Patch<keys::ResetInterval>;
  auto it = object_.find(name);
  if (it == object_.end()) return Out{};
  if (it->value().is_null()) return Out{std::optional<keys::ResetInterval>{}};
  if (!it->value().is_string()) return WrongType(name, "one of daily, weekly, monthly or null");
  std::string v = Lower(std::string_view(it->value().as_string()));
  if (v == "daily") return Out{keys::ResetInterval::kDaily};
  if (v == "weekly") return Out{keys::ResetInterval::kWeekly};
  if (v == "monthly") return Out{keys::ResetInterval::kMonthly};
  return Error::InvalidArgument(std::string(name) + " must be one of daily, weekly, monthly or null",
                                std::string(name));
}

Result<int64_t> ParseIntegerParam(std::string_view text, std::string_view param) {
  bool negative = !text.empty() && text.front() == '-';
  std::string_view digits = negative ? text.substr(1) : text;
  if (digits.empty() || digits.size() > 18 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return Error::InvalidArgument(std::string(param) + " must be an integer", std::string(param));
  }
  int64_t v = 0;
  for (char c : digits) v = v * 10 + (c - '0');
  return negative ? -v : v;
}

Result<bool> ParseBoolParam(std::string_view text, std::string_view param) {
  std::string v = Lower(text);
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  return Error::InvalidArgument(std::string(param) + " must be true or false", std::string(param));
}

Result<keys::KeyStatus> ParseStatusParam(std::string_view text, std::string_view param) {
  std::string v = Lower(text);
  constexpr std::string_view kPrefix = "api_key_status_";
  if (v.rfind(kPrefix, 0) == 0) v.erase(0, kPrefix.size());
  if (v == "active") return keys::KeyStatus::kActive;
  if (v == "disabled" || v == "inactive") return keys::KeyStatus::kDisabled;
  if (v == "expired") return keys::KeyStatus::kExpired;
  return Error::InvalidArgument(std::string(param) + " must be one of active, disabled, expired",
                                std::string(param));
}

Error RenameParam(Error error,
                  const std::vector<std::pair<std::string_view, std::string_view>>& renames) {
  for (const auto& [model, wire] : renames) {
    if (error.param != model) continue;
    error.param = std::string(wire);
    size_t at = error.message.find(model);
    if (at != std::string::npos) error.message.replace(at, model.size(), wire);
    break;
  }
  return error;
}

}  // namespace keygate::dialects
