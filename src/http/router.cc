#include "http/router.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "common/ascii.h"
#include "common/secret_shape.h"
#include "common/status.h"
#include "http/error_response.h"

namespace keygate::http {

namespace {

// Splits "/a/b" into {"a", "b"}; "/" and "" give no segments. One trailing slash is dropped,
// so "/a/b/" splits like "/a/b".
std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> segments;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.empty()) return segments;
  size_t start = 0;
  while (true) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      segments.push_back(path.substr(start));
      return segments;
    }
    segments.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
}

std::string JoinMethods(const std::set<std::string, std::less<>>& methods) {
  std::string out;
  for (const std::string& method : methods) {
    if (!out.empty()) out += ", ";
    out += method;
  }
  return out;
}

Error NotFound(std::string_view method, std::string_view raw_path) {
  std::string message = "Invalid URL (";
  message.append(method).append(" ").append(raw_path).append(")");
  return Error::NotFound(std::move(message));
}

Error MethodNotAllowed(std::string_view method, std::string_view raw_path,
                       const std::string& allow) {
  std::string message = "Method ";
  message.append(method).append(" is not allowed on ").append(raw_path);
  message.append(" (allowed: ").append(allow).append(")");
  return Error{ErrorCode::kMethodNotAllowed, std::move(message), {}, {}};
}

void ThrowBadPattern(const std::string& pattern, const char* why) {
  throw std::invalid_argument("route pattern '" + pattern + "': " + why);
}

}  // namespace

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int high = AsciiHexValue(s[i + 1]);
    int low = AsciiHexValue(s[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

void Router::Add(std::string method, std::string pattern, Handler handler, Execution exec,
                 std::string label) {
  if (method.empty()) ThrowBadPattern(pattern, "empty method");
  if (pattern.empty() || pattern.front() != '/') ThrowBadPattern(pattern, "must start with '/'");
  Route route;
  route.pattern = label.empty() ? pattern : std::move(label);
  Endpoint endpoint{std::move(handler), exec, {}};
  for (std::string_view part : SplitPath(pattern)) {
    if (part.empty()) ThrowBadPattern(pattern, "empty segment");
    bool is_param = part.size() >= 2 && part.front() == '{' && part.back() == '}';
    std::string_view inner = is_param ? part.substr(1, part.size() - 2) : part;
    if (inner.find_first_of("{}") != std::string_view::npos || (is_param && inner.empty())) {
      ThrowBadPattern(pattern, "a parameter must be a whole segment '{name}'");
    }
    if (is_param) {
      for (const std::string& seen : endpoint.param_names) {
        if (seen == inner) ThrowBadPattern(pattern, "repeated parameter name");
      }
      endpoint.param_names.emplace_back(inner);
    }
    route.segments.push_back({is_param, is_param ? std::string() : std::string(inner)});
  }
  for (Route& existing : routes_) {
    if (!SameShape(existing.segments, route.segments)) continue;
    if (!existing.endpoints.emplace(method, std::move(endpoint)).second) {
      ThrowBadPattern(pattern, ("duplicate route for method " + method).c_str());
    }
    return;
  }
  route.endpoints.emplace(std::move(method), std::move(endpoint));
  const bool has_params = std::any_of(route.segments.begin(), route.segments.end(),
                                      [](const Segment& segment) { return segment.is_param; });
  if (!has_params) static_routes_.emplace(pattern, routes_.size());
  routes_.push_back(std::move(route));
}

namespace {

// A key's secret part is base-62 (keys/secrets.cc).
constexpr size_t kShortestSecretPart = 16;

// Masks, in `out`, what follows each of `secret_prefixes` up to the first byte `ends` accepts,
// keeping its last four characters when it is long enough to spare them. Only runs of at least
// `min_length`, after a prefix found where `may_start(text, at)` allows. A prefix of letters
// and digits alone (`a`, `key`: configurable) is told from a word's letters only where a word
// begins and only before kShortestSecretPart letters and digits (audit P: with a one-letter
// prefix, "authentication_error" and "/api/" were masked in answers and logs).
template <class Ends, class MayStart>
void MaskAfterPrefixes(std::string* out, std::span<const std::string> secret_prefixes, Ends ends,
                       MayStart may_start, size_t min_length) {
  for (const std::string& prefix : secret_prefixes) {
    if (prefix.empty()) continue;
    const bool plain_word = std::all_of(prefix.begin(), prefix.end(), IsAsciiAlnum);
    for (size_t at = out->find(prefix); at != std::string::npos;
         at = out->find(prefix, at + 1)) {
      if (!may_start(*out, at)) continue;
      if (plain_word && at > 0 && IsAsciiAlnum((*out)[at - 1])) continue;
      const size_t start = at + prefix.size();
      size_t end = start;
      while (end < out->size() && !ends((*out)[end])) ++end;
      const size_t length = end - start;
      if (length < min_length) continue;
      if (plain_word &&
          (length < kShortestSecretPart ||
           !std::all_of(out->begin() + static_cast<std::ptrdiff_t>(start),
                        out->begin() + static_cast<std::ptrdiff_t>(start + kShortestSecretPart),
                        IsAsciiAlnum))) {
        continue;
      }
      constexpr size_t kShown = 4;
      const std::string tail = length > 2 * kShown ? out->substr(end - kShown, kShown) : "";
      out->replace(start, length, "\u2022\u2022\u2022\u2022" + tail);
    }
  }
}

}  // namespace

std::string PathForLog(std::string_view path, std::span<const std::string> secret_prefixes) {
  std::string out(path);
  MaskAfterPrefixes(
      &out, secret_prefixes, [](char c) { return c == '/'; },
      [](const std::string&, size_t) { return true; }, 0);
  // A key issued under a prefix no longer configured is still a key.
  MaskSecretShapes(&out, /*json=*/false);
  return out;
}

void MaskKeysInText(std::string* text, std::span<const std::string> secret_prefixes) {
  // A secret is letters, digits, '-' and '_' (keys/secrets.h) after its prefix; anything else
  // ends it. Wherever the prefix stands (after a letter, a digit or an escape too: "Xsk-kg-…"
  // is as much a leak), unless inside a \uXXXX escape, whose hex digits a short custom prefix
  // could match (masking there would break the JSON); and only a long run (a code like
  // "invalid_api_key" is never a key, whatever the prefix).
  constexpr size_t kEscapeLength = 6;  // \uXXXX
  MaskAfterPrefixes(
      text, secret_prefixes,
      [](char c) {
        const bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_';
        return !token;
      },
      [](const std::string& s, size_t at) {
        for (size_t back = 1; back < kEscapeLength && back <= at; ++back) {
          if (s[at - back] == '\\' && at - back + 1 < s.size() && s[at - back + 1] == 'u') {
            return false;
          }
        }
        return true;
      },
      kShortestSecretPart);
  // A key issued under a prefix no longer configured, or its secret part alone.
  MaskSecretShapes(text, /*json=*/true);
}

std::string Router::Shown(std::string_view raw_path) const {
  if (raw_path.find('%') == std::string_view::npos) return PathForLog(raw_path, secret_prefixes_);
  return PathForLog(PercentDecode(raw_path).value_or(std::string(raw_path)), secret_prefixes_);
}

RouteMatch Router::Match(std::string_view method, std::string_view raw_path) const {
  RouteMatch result;
  if (raw_path.empty() || raw_path.front() != '/') {
    result.rejection = RenderError(raw_path, NotFound(method, Shown(raw_path)));
    return result;
  }
  // A path spelled exactly like a pattern without parameters (nothing to decode) has that
  // route as its most specific match; any other case takes the general search below.
  if (raw_path.find('%') == std::string_view::npos) {
    if (auto it = static_routes_.find(raw_path); it != static_routes_.end()) {
      if (const Endpoint* endpoint = FindEndpoint(routes_[it->second], method)) {
        result.handler = &endpoint->handler;
        result.execution = endpoint->execution;
        result.pattern = routes_[it->second].pattern;
        return result;
      }
    }
  }
  std::vector<std::string> segments;
  for (std::string_view raw : SplitPath(raw_path)) {
    std::optional<std::string> decoded = PercentDecode(raw);
    if (!decoded) {
      result.rejection = RenderError(
          raw_path, Error::InvalidArgument("Malformed percent-encoding in request path"));
      return result;
    }
    segments.push_back(std::move(*decoded));
  }
  const Route* best = nullptr;
  const Endpoint* best_endpoint = nullptr;
  const Route* best_path = nullptr;  // for a 405: the route the path is, whatever the method
  std::set<std::string, std::less<>> allowed;
  for (const Route& route : routes_) {
    if (!Matches(route, segments)) continue;
    for (const auto& entry : route.endpoints) allowed.insert(entry.first);
    if (best_path == nullptr || MoreSpecific(route, *best_path)) best_path = &route;
    const Endpoint* endpoint = FindEndpoint(route, method);
    if (endpoint == nullptr) continue;
    if (best == nullptr || MoreSpecific(route, *best)) {
      best = &route;
      best_endpoint = endpoint;
    }
  }
  if (best == nullptr) {
    if (allowed.empty()) {
      result.rejection = RenderError(raw_path, NotFound(method, Shown(raw_path)));
    } else {
      if (allowed.count("GET") > 0) allowed.insert("HEAD");
      const std::string allow = JoinMethods(allowed);
      result.rejection =
          RenderError(raw_path, MethodNotAllowed(method, Shown(raw_path), allow));
      result.rejection.headers.emplace_back("allow", allow);
      result.pattern = best_path->pattern;
    }
    return result;
  }
  result.handler = &best_endpoint->handler;
  result.execution = best_endpoint->execution;
  result.pattern = best->pattern;
  size_t param_index = 0;
  for (size_t i = 0; i < best->segments.size(); ++i) {
    if (!best->segments[i].is_param) continue;
    result.path_params.emplace_back(best_endpoint->param_names[param_index++],
                                    std::move(segments[i]));
  }
  return result;
}

void Router::SetErrorRenderer(std::string prefix, ErrorRenderer render) {
  if (prefix.empty() || prefix.front() != '/') {
    throw std::invalid_argument("error renderer prefix '" + prefix + "': must start with '/'");
  }
  for (const auto& entry : error_renderers_) {
    if (entry.first == prefix) {
      throw std::invalid_argument("error renderer prefix '" + prefix + "': already set");
    }
  }
  error_renderers_.emplace_back(std::move(prefix), std::move(render));
  std::stable_sort(error_renderers_.begin(), error_renderers_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

const ErrorRenderer* Router::ErrorRendererFor(std::string_view raw_path) const {
  if (error_renderers_.empty()) return nullptr;
  std::optional<std::string> decoded;
  if (raw_path.find('%') != std::string_view::npos) decoded = PercentDecode(raw_path);
  const std::string_view path = decoded ? std::string_view(*decoded) : raw_path;
  for (const auto& [prefix, render] : error_renderers_) {
    if (path.starts_with(prefix)) return &render;
  }
  return nullptr;
}

Response Router::RenderError(std::string_view raw_path, const Error& error) const {
  const ErrorRenderer* render = ErrorRendererFor(raw_path);
  return render != nullptr ? (*render)(error) : ErrorResponse(error);
}

bool Router::SameShape(const std::vector<Segment>& a, const std::vector<Segment>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].is_param != b[i].is_param || a[i].literal != b[i].literal) return false;
  }
  return true;
}

bool Router::MoreSpecific(const Route& a, const Route& b) {
  // Both matched the same path, so they have the same length; the first segment where one is
  // literal and the other a parameter decides.
  for (size_t i = 0; i < a.segments.size() && i < b.segments.size(); ++i) {
    if (a.segments[i].is_param != b.segments[i].is_param) return !a.segments[i].is_param;
  }
  return false;
}

bool Router::Matches(const Route& route, const std::vector<std::string>& segments) {
  if (route.segments.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    const Segment& segment = route.segments[i];
    if (segment.is_param ? segments[i].empty() : segment.literal != segments[i]) return false;
  }
  return true;
}

const Router::Endpoint* Router::FindEndpoint(const Route& route, std::string_view method) {
  auto it = route.endpoints.find(method);
  if (it != route.endpoints.end()) return &it->second;
  // HEAD is GET without a body (RFC 9110 §9.3.2); the server strips the body.
  if (method == "HEAD") {
    it = route.endpoints.find(std::string_view("GET"));
    if (it != route.endpoints.end()) return &it->second;
  }
  return nullptr;
}

}  // namespace keygate::http
