// The owner API (spec §2a): provisioning keys, every service key of the org (router and
// workspace), and the audit log, under /api/owner/, for owner credentials only. Bodies and
// errors are shaped like the OpenRouter dialect.
//
// Thread safety: registration before serving; handlers run concurrently.
#pragma once

#include "dialects/common/management.h"

namespace keygate::http {
class Router;
}

namespace keygate::owner {

// `context` must outlive the router.
void Register(http::Router& router, dialects::ManagementContext& context);

}  // namespace keygate::owner
