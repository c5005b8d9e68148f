// A strict scanner for HTTP/1.1 messages of the common shape, for the hot paths: a request of a
// client (the session) and an upstream's answer (the upstream client), each usually whole in
// one read. It checks the bytes and returns views into them, with no allocation and no state
// kept between reads.
//
// It knows one shape only: a whole message in the bytes given (head and body), HTTP/1.0 or 1.1,
// fields of plain visible ASCII, the body framed by at most one Content-Length. On anything else
// (the message not yet whole, Transfer-Encoding, obs-fold, a byte outside the plain set, a
// Connection value other than `close` or `keep-alive`, Upgrade, Expect, a repeated
// Content-Length, an answer without a body or a length, a limit reached) it gives up, and the
// caller hands the same bytes to Beast's parser, which knows every rule and error. So it may
// refuse more than HTTP/1.1 allows but never accept more than Beast's parser, and what it
// accepts it reads as Beast's parser does (tests/http/message_scan_test.cc holds the two to
// that, byte by byte).
//
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "http/handler.h"

namespace keygate::http {

struct ScannedField {
  std::string_view name;   // as sent
  std::string_view value;  // without the whitespace around it
};

// A whole message, as views into the bytes scanned.
struct ScannedMessage {
  static constexpr size_t kMaxFields = 32;

  std::string_view method;  // a request's
  std::string_view target;  // a request's
  int status = 0;           // an answer's
  int version = 11;         // 10 or 11
  bool keep_alive = true;   // as Beast's basic_parser::keep_alive() would say
  std::string_view body;
  size_t size = 0;  // bytes of the message, head and body: what the caller consumes

  std::array<ScannedField, kMaxFields> field_storage;
  size_t field_count = 0;

  std::span<const ScannedField> fields() const { return {field_storage.data(), field_count}; }
};

struct ScanLimits {
  size_t max_head_bytes = 0;  // start line, fields and the blank line
  uint64_t max_body_bytes = 0;
};

// True when `bytes` begins with a whole request of the common shape; `*out` then describes it.
// False to give up (`*out` is unspecified).
bool ScanRequest(std::string_view bytes, const ScanLimits& limits, ScannedMessage* out);

// The same for an answer to a request other than HEAD: a status from 200 to 599 but 204 and
// 304, HTTP/1.1, a Content-Length.
bool ScanResponse(std::string_view bytes, const ScanLimits& limits, ScannedMessage* out);

// The message's fields as keygate keeps headers: names lower-cased, in order.
HeaderList LoweredHeaders(const ScannedMessage& message);

// Lower-cases the message's field names where they are, in `bytes`: the bytes it was scanned
// from, which the caller owns and may change. The views of `message` then read lower-cased
// names, with no copy.
void LowerFieldNamesInPlace(char* bytes, const ScannedMessage& message);

}  // namespace keygate::http
