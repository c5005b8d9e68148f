#include "http/handler.h"

#include "common/ascii.h"

namespace keygate::http {

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

const std::string* FindHeader(const HeaderList& headers, std::string_view name) {
  // The server stores names lower-cased; comparing without case also serves handlers and
  // tests that build a Request by hand.
  for (const auto& [key, value] : headers) {
    if (AsciiIEquals(key, name)) return &value;
  }
  return nullptr;
}

}  // namespace

std::string_view Request::Header(std::string_view lower_name) const {
  const std::string* value = FindHeader(headers, lower_name);
  return value == nullptr ? std::string_view() : std::string_view(*value);
}

bool Request::HasHeader(std::string_view lower_name) const {
  return FindHeader(headers, lower_name) != nullptr;
}

std::string_view Request::PathParam(std::string_view name) const {
  for (const auto& [key, value] : path_params) {
    if (key == name) return value;
  }
  return {};
}

ContentType ContentType::Of(std::string_view value) {
  if (value == "application/json") return ContentType("application/json");
  if (value == "text/event-stream") return ContentType("text/event-stream");
  if (value == "text/event-stream; charset=utf-8") {
    return ContentType("text/event-stream; charset=utf-8");
  }
  if (value == "application/json; charset=utf-8") {
    return ContentType("application/json; charset=utf-8");
  }
  return ContentType(std::string(value));
}

std::string_view Request::BearerToken() const {
  static constexpr std::string_view kScheme = "bearer";
  std::string_view value = TrimOws(Header("authorization"));
  if (value.size() <= kScheme.size() ||
      !AsciiIEquals(value.substr(0, kScheme.size()), kScheme)) {
    return {};
  }
  // The scheme must be followed by whitespace: "Bearerabc" is not a bearer credential.
  if (!IsSpace(value[kScheme.size()])) return {};
  return TrimOws(value.substr(kScheme.size()));
}

}  // namespace keygate::http
