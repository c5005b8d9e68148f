// OpenRouter's KeyData record and error shape (spec dialects.md "OpenRouter"), shared by the
// OpenRouter dialect and the owner API, which the spec shapes like it.
//
// Thread safety: pure functions.
#pragma once

#include <string_view>

#include "common/json_writer.h"
#include "common/status.h"
#include "dialects/common/key_view.h"
#include "http/handler.h"
#include "keys/key_service.h"

namespace boost::json {
class object;
}

namespace keygate::dialects::openrouter {

// Reads OpenRouter's create/update fields (name, limit, limit_reset, include_byok_in_limit,
// expires_at, creator_user_id, external.user, disabled) and keygate's own (models, tpm_limit,
// rpm_limit, tags, metadata, project_id, project_name) from `body`, parsed from the JSON
// `text` (metadata is kept as written). InvalidArgument naming the field.
Result<keys::KeyFields> ReadKeyFields(const boost::json::object& body, std::string_view text);

// Writes the members of KeyData (every field present, nullable ones as null) plus keygate's
// own fields, into an object the caller has opened.
void WriteKeyData(JsonWriter& w, const KeyView& view);

// The whole answer of get, update, create and rotate: {"data": KeyData}, plus "key" (the secret,
// shown once) when `secret` is given, plus "replaces": {"hash", "revoke_at"} when `rotated` is.
// Neither pointer is kept.
std::string KeyDataDocument(const KeyView& view, const std::string* secret,
                            const keys::RotatedServiceKey* rotated);

// {"error": {"code": <status>, "message": "…"}} with the status of the error's code; the
// field at fault is named in the message (and in `param` when known).
http::Response RenderError(const Error& error);

}  // namespace keygate::dialects::openrouter
