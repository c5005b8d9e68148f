// Builders for the JSON responses every part of the server emits: errors in OpenAI's shape
// (spec §4: {"error": {"message", "type", "code", "param"}}) and plain JSON bodies.
// The data plane and the server's own errors (router 404/405, 400/413/500, the listener's 503)
// answer through ErrorResponse(), so that an error looks the same whoever produced it.
// Management dialects render their own vendor shapes in dialects/ and give the router that
// renderer for their path prefix (Router::SetErrorRenderer), which the server's own errors on
// their paths then use instead.
//
// Thread safety: pure functions; safe from any thread.
#pragma once

#include <string>

#include "common/status.h"
#include "http/handler.h"

namespace keygate::http {

// Returns a response with status HttpStatusFor(error.code), Content-Type application/json and
// the body {"error":{"message":M,"type":ErrorTypeFor(code),"code":C,"param":P}} where C is
// error.reason if non-empty, else DefaultReason(error.code), and P is error.param as a string,
// or null when empty. Never fails.
Response ErrorResponse(const Error& error);

// Returns the OpenAI-shaped JSON error body alone (the body of ErrorResponse()).
std::string ErrorBody(const Error& error);

// Returns a response with `status`, Content-Type application/json and `body` as given.
// REQUIRES: `body` is valid JSON (not checked).
Response JsonResponse(int status, std::string body);

}  // namespace keygate::http
