// Error values for every domain and store function (no exceptions on the request path).
//
// Error carries a closed ErrorCode, a message that names the offending field, an optional
// `param` (the field name on the wire) and an optional machine `reason` such as
// "invalid_api_key" or "budget_exceeded" that dialects put in their `code` slot.
// Result<T> holds either a T or an Error; Status is Result<void>.
//
// Thread safety: values; safe to copy between threads.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace keygate {

enum class ErrorCode {
  kInvalidArgument,   // bad input: 400
  kNotFound,          // unknown route or entity, or another org's entity: 404
  kMethodNotAllowed,  // route exists, method does not: 405
  kConflict,          // uniqueness violated (duplicate name): 409
  kUnauthenticated,   // missing, unknown, expired or disabled-provisioning credential: 401
  kPaymentRequired,   // budget exhausted: 402
  kPermissionDenied,  // authenticated but not allowed: 403
  kPayloadTooLarge,   // body over the configured limit: 413
  kHeaderTooLarge,    // request head over the server's limit: 431
  kRateLimited,       // RPM or TPM window full: 429
  kInternal,          // keygate's own fault: 500
  kUpstreamFailed,    // upstream refused or reset: 502
  kUnavailable,       // store unreachable, shutting down: 503
  kUpstreamTimeout,   // upstream too slow: 504
};

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  std::string param;   // wire name of the field at fault, or empty
  std::string reason;  // machine-readable code, e.g. "invalid_api_key"; empty = derived from code

  static Error InvalidArgument(std::string message, std::string param = {}) {
    return {ErrorCode::kInvalidArgument, std::move(message), std::move(param), {}};
  }
  static Error NotFound(std::string message) { return {ErrorCode::kNotFound, std::move(message), {}, {}}; }
  static Error Conflict(std::string message, std::string param = {}) {
    return {ErrorCode::kConflict, std::move(message), std::move(param), {}};
  }
  static Error Unauthenticated(std::string message, std::string reason = "invalid_api_key") {
    return {ErrorCode::kUnauthenticated, std::move(message), {}, std::move(reason)};
  }
  static Error PermissionDenied(std::string message, std::string reason = "permission_denied") {
    return {ErrorCode::kPermissionDenied, std::move(message), {}, std::move(reason)};
  }
  static Error Internal(std::string message) { return {ErrorCode::kInternal, std::move(message), {}, {}}; }
  static Error Unavailable(std::string message) {
    return {ErrorCode::kUnavailable, std::move(message), {}, {}};
  }
};

// The single mapping from ErrorCode to HTTP status (style: map codes in one function).
int HttpStatusFor(ErrorCode code);
// A default machine reason for a code ("invalid_request_error", "not_found", ...).
const char* DefaultReason(ErrorCode code);
// The machine reason of `error`: its own, or DefaultReason(error.code) when it has none.
std::string_view ReasonOf(const Error& error);
// The OpenAI-style error `type` for a code ("invalid_request_error", "authentication_error", ...).
const char* ErrorTypeFor(ErrorCode code);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // REQUIRES: ok().
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  // REQUIRES: !ok().
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  // REQUIRES: !ok().
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status OkStatus() { return {}; }

}  // namespace keygate

// Propagates an error from an expression returning Result<T>/Status.
#define KG_RETURN_IF_ERROR(expr)              \
  do {                                        \
    auto kg_status_ = (expr);                 \
    if (!kg_status_.ok()) return kg_status_.error(); \
  } while (0)
