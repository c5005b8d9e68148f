// FastRouter's management dialect (spec dialects.md "FastRouter: /prod/…"): five routes that
// translate between FastRouter's wire names and the one key service.
//
// Thread safety: registration happens before serving; handlers run concurrently.
#pragma once

#include "dialects/common/management.h"

namespace keygate::http {
class Router;
}

namespace keygate::dialects::fastrouter {

// Adds POST /prod/createServiceKey, GET|POST /prod/getServiceKeys, POST /prod/updateServiceKey,
// POST /prod/deleteServiceKey and POST /prod/rotateServiceKey to `router`.
// `context` must outlive the router.
void Register(http::Router& router, ManagementContext& context);

}  // namespace keygate::dialects::fastrouter
