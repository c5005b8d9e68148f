// The router-keys v2 management dialect (spec dialects.md "Router keys v2: /v2/api-keys…"):
// cursor-paged lists with a `source`, nested `budget` and `rate_limit` objects, `active` /
// `status` switches, DELETE 204 and keygate's one-call rotation, translated onto the one key
// service. Errors are {"code": "<status as a string>", "message"} and name the v2 wire field.
//
// Thread safety: registration happens before serving; handlers run concurrently.
#pragma once

#include "dialects/common/management.h"

namespace keygate::http {
class Router;
}

namespace keygate::dialects::routerkeys {

// Adds GET|POST /v2/api-keys, GET|PATCH|DELETE /v2/api-keys/{id} and
// POST /v2/api-keys/{id}/rotate to `router` (owners and provisioning keys; a service key gets
// 403). `context` must outlive the router.
void Register(http::Router& router, ManagementContext& context);

}  // namespace keygate::dialects::routerkeys
