#include "common/status.h"

namespace keygate {

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kUnauthenticated: return 401;
    case ErrorCode::kPaymentRequired: return 402;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kMethodNotAllowed: return 405;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kPayloadTooLarge: return 413;
    case ErrorCode::kHeaderTooLarge: return 431;
    case ErrorCode::kRateLimited: return 429;
    case ErrorCode::kInternal: return 500;
    case ErrorCode::kUpstreamFailed: return 502;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kUpstreamTimeout: return 504;
  }
  return 500;
}

std::string_view ReasonOf(const Error& error) {
  return error.reason.empty() ? std::string_view(DefaultReason(error.code)) : error.reason;
}

const char* DefaultReason(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_request";
    case ErrorCode::kUnauthenticated: return "invalid_api_key";
    case ErrorCode::kPaymentRequired: return "budget_exceeded";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kMethodNotAllowed: return "method_not_allowed";
    case ErrorCode::kConflict: return "conflict";
    case ErrorCode::kPayloadTooLarge: return "payload_too_large";
    case ErrorCode::kHeaderTooLarge: return "request_header_too_large";
    case ErrorCode::kRateLimited: return "rate_limit_exceeded";
    case ErrorCode::kInternal: return "internal_error";
    case ErrorCode::kUpstreamFailed: return "upstream_error";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kUpstreamTimeout: return "upstream_timeout";
  }
  return "internal_error";
}

const char* ErrorTypeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kNotFound:
    case ErrorCode::kMethodNotAllowed:
    case ErrorCode::kConflict:
    case ErrorCode::kPayloadTooLarge:
    case ErrorCode::kHeaderTooLarge: return "invalid_request_error";
    case ErrorCode::kUnauthenticated: return "authentication_error";
    case ErrorCode::kPermissionDenied: return "permission_error";
    case ErrorCode::kPaymentRequired: return "insufficient_quota";
    case ErrorCode::kRateLimited: return "rate_limit_error";
    case ErrorCode::kInternal:
    case ErrorCode::kUnavailable: return "server_error";
    case ErrorCode::kUpstreamFailed:
    case ErrorCode::kUpstreamTimeout: return "upstream_error";
  }
  return "server_error";
}

}  // namespace keygate
