// What every management route shares: the services it calls and the wrapper that
// authenticates the caller, checks that it may manage keys (spec §2), counts the call against
// its organization's management rate, runs the route and renders any error in the dialect's
// own shape.
//
// Thread safety: handlers made here are safe to run concurrently (on the blocking pool).
#pragma once

#include <functional>
#include <string>

#include "common/log.h"
#include "common/status.h"
#include "dialects/common/key_view.h"
#include "http/handler.h"
#include "keys/key_service.h"
#include "limits/request_bucket.h"

namespace keygate::dialects {

struct ManagementContext {
  keys::KeyService& keys;
  KeyViewer& viewer;
  Logger& log;
  // Management calls per organization and kind of caller.
  limits::OrgRequestLimiter& org_requests;
};

using ErrorRenderer = http::Response (*)(const Error& error);
using RouteBody =
    std::function<Result<http::Response>(const keys::Caller& caller, const http::Request& request)>;

enum class Audience {
  kManagers,     // owners and provisioning keys; a service key gets 403
  kAnyKey,       // any valid credential (GET /api/v1/key)
  kOwnersOnly,   // owner credentials only
};

// A blocking-pool handler: authenticate → count the call against the organization's rate
// (429 with Retry-After past it) → check audience → `body` → send. Errors (from any step)
// are rendered with `render`.
http::Handler ManagementRoute(ManagementContext& context, ErrorRenderer render, Audience audience,
                              RouteBody body);

// What a caller is told of `error`: an internal error (a fault of keygate's own) or an
// unavailable store says only that, whether a retry may help, and the request id to quote, its
// text (a store's message, a query, a file's path) being for the log; any other error as it is.
Error ShownToCaller(const Error& error, const std::string& request_id);

// A JSON response with the given status.
http::Response Json(int status, std::string body);

}  // namespace keygate::dialects
