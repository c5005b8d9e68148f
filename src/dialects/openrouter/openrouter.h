// OpenRouter's management dialect (spec dialects.md "OpenRouter: /api/v1/keys…"): the calls the
// official @openrouter/sdk makes, plus keygate's one-call rotation, translated onto the one key
// service. Records are KeyData (key_data.h); errors are {"error": {"code": <int>, "message"}}.
//
// Thread safety: registration happens before serving; handlers run concurrently.
#pragma once

#include "dialects/common/management.h"

namespace keygate::http {
class Router;
}

namespace keygate::dialects::openrouter {

// Adds to `router`:
//   GET /api/v1/keys (also /api/v1/keys/), POST /api/v1/keys,
//   GET|PATCH|DELETE /api/v1/keys/{hash}, POST /api/v1/keys/{hash}/rotate  (managers only;
//   a service key gets 403),
//   GET /api/v1/key  (any valid credential: the caller itself, OpenRouter's CurrentKey).
// `context` must outlive the router.
void Register(http::Router& router, ManagementContext& context);

}  // namespace keygate::dialects::openrouter
