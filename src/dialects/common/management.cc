#include "dialects/common/management.h"

#include <memory>
#include <utility>

namespace keygate::dialects {

http::Response Json(int status, std::string body) {
  http::Response response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

Error ShownToCaller(const Error& error, const std::string& request_id) {
  if (error.code != ErrorCode::kInternal) return error;
  Error shown = error;
  shown.message = "keygate could not complete this request (an internal error); its log has "
                  "the details under request id " + request_id + ".";
  return shown;
}

http::Handler ManagementRoute(ManagementContext& context, ErrorRenderer render, Audience audience,
                              RouteBody body) {
  return [&context, render, audience, body = std::move(body)](
             http::Request& request, std::shared_ptr<http::Responder> responder) {
    auto caller = context.keys.Authenticate(request.BearerToken());
    if (!caller.ok()) {
      return responder->Send(render(ShownToCaller(caller.error(), request.request_id)));
    }
    Status allowed = OkStatus();
    if (audience == Audience::kManagers) allowed = keys::KeyService::RequireManager(*caller);
    if (audience == Audience::kOwnersOnly) allowed = keys::KeyService::RequireOwner(*caller);
    if (!allowed.ok()) {
      return responder->Send(render(ShownToCaller(allowed.error(), request.request_id)));
    }
    auto response = body(*caller, request);
    if (!response.ok()) {
      const Error& error = response.error();
      if (HttpStatusFor(error.code) >= 500) {
        // No path: a caller may have put a key there (the access line, masked, has it under
        // the same request id).
        context.log.Error("management.failed", {{"method", request.method},
                                                {"request_id", request.request_id},
                                                {"error", error.message}});
      }
      return responder->Send(render(ShownToCaller(error, request.request_id)));
    }
    responder->Send(std::move(response).value());
  };
}

}  // namespace keygate::dialects
