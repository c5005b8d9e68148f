#include "dialects/common/management.h"

#include <memory>
#include <string>
#include <utility>

namespace keygate::dialects {
namespace {

// The 429 of an organization past its management rate, in the dialect's shape, with the wait:
// whole seconds in Retry-After (rounded up: a client retrying at once would be refused again),
// exact milliseconds in retry-after-ms (as the data plane's 429s).
http::Response TooManyCalls(const limits::OrgRequestLimiter& limiter, int64_t wait_ms,
                            ErrorRenderer render) {
  const std::string seconds = std::to_string((wait_ms + 999) / 1000);
  http::Response response = render(Error{
      ErrorCode::kRateLimited,
      "Too many management calls for this organization: this gateway allows " +
          std::to_string(limiter.per_second()) + " a second, in bursts of up to " +
          std::to_string(limiter.burst()) + ". Retry after " + seconds + " s.",
      {},
      "management_rate_limited"});
  response.headers.emplace_back("Retry-After", seconds);
  response.headers.emplace_back("retry-after-ms", std::to_string(wait_ms));
  return response;
}

// The answer to a call that failed, in the dialect's shape: a failure of keygate's own (5xx)
// is logged with its text (a store's message, a file's path), which the caller is not shown. A
// 503 (the store unavailable: its disk full, say) says a client may retry, as the data plane's
// do (audit BB); not when only a restart helps (the review: a client would retry every second
// until then).
http::Response Failed(ManagementContext& context, const http::Request& request,
                      ErrorRenderer render, const Error& error) {
  if (HttpStatusFor(error.code) >= 500) {
    // No path: a caller may have put a key there (the access line, masked, has it under the
    // same request id).
    context.log.Error("management.failed", {{"method", request.method},
                                            {"request_id", request.request_id},
                                            {"error", error.message}});
  }
  http::Response refusal = render(ShownToCaller(error, request.request_id));
  if (refusal.status == 503 && error.reason != store::kStoreFilesRemoved) {
    refusal.headers.emplace_back("Retry-After", "1");
  }
  return refusal;
}

limits::CallerClass ClassOf(keys::CallerKind kind) {
  switch (kind) {
    case keys::CallerKind::kOwner: return limits::CallerClass::kOwner;
    case keys::CallerKind::kProvisioningKey: return limits::CallerClass::kProvisioningKey;
    case keys::CallerKind::kServiceKey: break;
  }
  return limits::CallerClass::kServiceKey;
}

std::string_view NameOf(limits::CallerClass caller) {
  switch (caller) {
    case limits::CallerClass::kOwner: return "owner";
    case limits::CallerClass::kProvisioningKey: return "provisioning_key";
    case limits::CallerClass::kServiceKey: break;
  }
  return "service_key";
}

}  // namespace

http::Response Json(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

Error ShownToCaller(const Error& error, const std::string& request_id) {
  if (error.code != ErrorCode::kInternal && error.code != ErrorCode::kUnavailable) return error;
  Error shown = error;
  const std::string details = " Its log has the details under request id " + request_id + ".";
  if (error.code == ErrorCode::kInternal) {
    shown.message = "keygate could not complete this request (an internal error)." + details;
  } else if (error.reason == store::kStoreFilesRemoved) {
    // Not applied, or (rarely) committed as the files went: the log says which.
    shown.message = "keygate's store takes no write until keygate is restarted (its files were "
                    "removed or replaced under it), so this request's change was not applied, "
                    "unless it committed as the files went: its log says which, under request "
                    "id " + request_id + ".";
  } else {
    shown.message = "keygate's store is unavailable; retry in a moment." + details;
  }
  return shown;
}

http::Handler ManagementRoute(ManagementContext& context, ErrorRenderer render, Audience audience,
                              RouteBody body) {
  return [&context, render, audience, body = std::move(body)](
             http::Request& request, std::shared_ptr<http::Responder> responder) {
    auto caller = context.keys.Authenticate(request.BearerToken());
    if (!caller.ok()) return responder->Send(Failed(context, request, render, caller.error()));
    // Counted before the audience check: a service key calling a route it may not is paced
    // too (each costs the credential's lookup).
    const limits::CallerClass caller_class = ClassOf(caller->kind);
    const limits::Pacing pacing = context.org_requests.TryTake(caller->org_id, caller_class);
    if (pacing.refused_to_log > 0) {
      context.log.Warn("management.paced",
                       {{"org_id", caller->org_id},
                        {"caller", NameOf(caller_class)},
                        {"refused", pacing.refused_to_log},
                        {"per_second", context.org_requests.per_second()},
                        {"burst", context.org_requests.burst()}});
    }
    if (pacing.wait_ms > 0) {
      return responder->Send(TooManyCalls(context.org_requests, pacing.wait_ms, render));
    }
    Status allowed = OkStatus();
    if (audience == Audience::kManagers) allowed = keys::KeyService::RequireManager(*caller);
    if (audience == Audience::kOwnersOnly) allowed = keys::KeyService::RequireOwner(*caller);
    if (!allowed.ok()) {
      return responder->Send(render(ShownToCaller(allowed.error(), request.request_id)));
    }
    auto response = body(*caller, request);
    if (!response.ok()) return responder->Send(Failed(context, request, render, response.error()));
    responder->Send(std::move(response).value());
  };
}

}  // namespace keygate::dialects
