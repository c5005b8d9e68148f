// keygate's fleet filters for service-key lists, shared by every dialect that has a list
// (issue 4 "Fleet filters"): `tag` / `tags` (keys having all of them; repeatable and
// comma-separated), `project_id`, `project_name`, `status` (active, disabled, expired, with or
// without an API_KEY_STATUS_ prefix) and `search` (name substring). A dialect passes each query
// parameter here first and handles what is not a fleet filter itself.
//
// Thread safety: pure functions.
#pragma once

#include <string_view>

#include "common/status.h"
#include "keys/key_service.h"

namespace keygate::dialects {

// If `name` is a fleet filter, applies `value` to `options` and returns true; otherwise leaves
// `options` alone and returns false. An empty value is no filter. InvalidArgument naming the
// parameter for an unknown status.
Result<bool> ApplyFleetFilter(std::string_view name, std::string_view value,
                              keys::ServiceKeyListOptions* options);

}  // namespace keygate::dialects
