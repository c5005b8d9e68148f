// Maps (method, path) to a Handler and says where the handler runs.
//
// Patterns are literal paths whose segments may be `{name}` parameters:
//   router.Add("GET", "/api/v1/keys/{hash}", GetKey);
//   router.Add("POST", "/prod/createServiceKey", CreateKey, Execution::kBlocking);
//   router.Add("GET", "/healthz", Healthz, Execution::kInline);
// Matching works on the raw path of the request target: it is split on '/', then each
// segment is percent-decoded, so "%2F" inside a segment is data, never a separator. A `{name}`
// segment captures one non-empty decoded segment. One trailing slash on the request is
// tolerated ("/api/v1/keys/" matches "/api/v1/keys"). When several patterns match, the one
// whose first differing segment is literal wins ("/keys/current" beats "/keys/{hash}"),
// considering only patterns that accept the request's method. HEAD uses the GET handler when
// no HEAD handler is registered (the server then sends no body).
//
// Thread safety: Add() is for startup and must not run concurrently with anything else.
// Match() is const and safe from any number of threads once all Add() calls are done.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "http/handler.h"

namespace keygate::http {

// Where the server runs a route's handler.
enum class Execution {
  // On the connection's io thread. The handler must not block (no store access, no sleep,
  // no synchronous I/O); it may answer later from any thread through its Responder.
  kInline,
  // On the server's blocking pool (ServerOptions::blocking_threads). The handler may block,
  // for example on the key store; the io threads keep serving other connections meanwhile.
  kBlocking,
};

// The outcome of Router::Match().
struct RouteMatch {
  // The matched handler, owned by the Router; nullptr when nothing matched.
  const Handler* handler = nullptr;
  Execution execution = Execution::kBlocking;
  // The matched pattern as registered ("/api/v1/keys/{hash}"), owned by the Router; for a
  // 405, the pattern the path matched; empty for a 404.
  std::string_view pattern;
  // Decoded values of the pattern's `{name}` segments, in pattern order.
  std::vector<std::pair<std::string, std::string>> path_params;
  // When handler == nullptr: the response to send instead (404 not_found, 405
  // method_not_allowed with an Allow header, or 400 for malformed percent-encoding), in the
  // error shape of the path's prefix (Router::RenderError).
  Response rejection;

  bool ok() const { return handler != nullptr; }
};

// Renders an error in one API's own error shape (status from HttpStatusFor(error.code)).
using ErrorRenderer = std::function<Response(const Error&)>;

// Returns `path` for a log line or an error message, with whatever follows one of
// `secret_prefixes` in a segment masked as keys are everywhere ("sk-kg-••••a91c"): a caller
// that puts its key in the URL (its secret where the key's hash belongs) must find it in no
// log line and no answer.
std::string PathForLog(std::string_view path, std::span<const std::string> secret_prefixes);

// Masks, in place, every key in `text` (one of `secret_prefixes` and the letters, digits, '-'
// and '_' after it) as PathForLog does. The server applies it to the body of every error
// answer: a message that echoes input (a model name, a models pattern) must not echo a key.
void MaskKeysInText(std::string* text, std::span<const std::string> secret_prefixes);

// Decodes %XX escapes of `s` ('+' stays '+'). Returns nullopt if a '%' is not followed by
// two hex digits.
std::optional<std::string> PercentDecode(std::string_view s);

class Router {
 public:
  Router() = default;
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Registers `handler` for `method` (case-sensitive, e.g. "GET") on `pattern`.
  // Throws std::invalid_argument (startup only, never on the request path) if `pattern` does
  // not start with '/', has an empty or repeated `{}` name or a '{' that is not a whole
  // segment, if `method` is empty, or if the same method is already registered on a pattern
  // of the same shape (same literals, parameters in the same places).
  // `label` names the route in RouteMatch::pattern (the metrics' and the log's route) instead
  // of `pattern`: one name for patterns that serve one resource (a model id of one to eight
  // segments is `/v1/models/{model}`). The first registration of a shape sets it.
  void Add(std::string method, std::string pattern, Handler handler,
           Execution exec = Execution::kBlocking, std::string label = {});

  // Finds the handler for `method` on `raw_path` (the request target's path, still
  // percent-encoded, without the query). Returns a RouteMatch with handler != nullptr on
  // success; otherwise handler == nullptr and `rejection` holds the response:
  //   404 not_found           no pattern matches the path;
  //   405 method_not_allowed  a pattern matches but not for `method`; the rejection carries
  //                           `Allow` listing the accepted methods (HEAD whenever GET is);
  //   400 invalid_request     a segment has a malformed percent-escape.
  RouteMatch Match(std::string_view method, std::string_view raw_path) const;

  // The key prefixes ("sk-kg-", ...) masked in the paths the rejections quote (PathForLog).
  void SetSecretPrefixes(std::vector<std::string> prefixes) {
    secret_prefixes_ = std::move(prefixes);
  }

  // Makes `render` the renderer of every error the server itself answers (router rejections,
  // 413, a malformed request, a handler that threw) for request paths that start with
  // `prefix` ("/v2/"), so that a management dialect's clients read every error in their own
  // shape. The longest matching prefix wins; other paths get OpenAI's shape (ErrorResponse).
  // Throws std::invalid_argument (startup only) if `prefix` does not start with '/' or is
  // already registered.
  void SetErrorRenderer(std::string prefix, ErrorRenderer render);

  // The renderer for `raw_path` (percent-encoded: matched as decoded, as routes are), or
  // nullptr for OpenAI's shape. The pointer is valid until the next SetErrorRenderer (all are
  // set at startup, before serving) and while the Router lives.
  const ErrorRenderer* ErrorRendererFor(std::string_view raw_path) const;

  // `error` rendered for `raw_path`: by its prefix's renderer, else ErrorResponse(error).
  Response RenderError(std::string_view raw_path, const Error& error) const;

  // Number of distinct pattern shapes registered.
  size_t size() const { return routes_.size(); }

 private:
  struct Segment {
    bool is_param = false;
    std::string literal;  // decoded literal text; empty for a parameter
  };
  struct Endpoint {
    Handler handler;
    Execution execution = Execution::kBlocking;
    std::vector<std::string> param_names;  // in segment order
  };
  struct Route {
    std::string pattern;  // as first registered, or its label
    std::vector<Segment> segments;
    std::map<std::string, Endpoint, std::less<>> endpoints;  // by method
  };

  // `raw_path` as an answer may quote it, its keys masked (decoded first, so that a key
  // written with escapes, "sk%2Dkg%2D...", is found too).
  std::string Shown(std::string_view raw_path) const;
  static bool SameShape(const std::vector<Segment>& a, const std::vector<Segment>& b);
  static bool MoreSpecific(const Route& a, const Route& b);
  static bool Matches(const Route& route, const std::vector<std::string>& segments);
  static const Endpoint* FindEndpoint(const Route& route, std::string_view method);

  std::vector<Route> routes_;
  std::vector<std::string> secret_prefixes_;
  std::vector<std::pair<std::string, ErrorRenderer>> error_renderers_;  // longest prefix first
  // Patterns without parameters, as written, to their index in routes_: the path of most
  // requests, found without splitting or decoding it.
  std::map<std::string, size_t, std::less<>> static_routes_;
};

}  // namespace keygate::http
