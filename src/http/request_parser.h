// Parses an HTTP/1.1 request straight into a keygate Request. Internal to the server (it
// includes Beast): sessions feed it the bytes they read.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/verb.hpp>

#include "http/handler.h"

namespace keygate::http::internal {

// The memory the request bodies being received hold, summed over every connection of a
// server, against its limit (ServerOptions::max_body_memory_bytes). Thread-safe.
class BodyMemory {
 public:
  explicit BodyMemory(size_t limit) : limit_(limit) {}
  // Holds `bytes` more if that stays within the limit; false (nothing held) otherwise.
  bool TryHold(size_t bytes);
  void Release(size_t bytes) { held_.fetch_sub(bytes, std::memory_order_relaxed); }
  size_t limit() const { return limit_; }

 private:
  const size_t limit_;
  std::atomic<size_t> held_{0};
};

// Beast's basic_parser does the HTTP/1.1 work (syntax, header and body limits, chunked coding,
// keep-alive); this class keeps what it finds in keygate's own types: method and target as
// sent, header names lower-cased, the body de-chunked. Beast's own request_parser would keep
// the fields in a container that costs an allocation per field, copied into a Request after.
// Not eager: put() returns once the head is complete.
//
// Stricter than basic_parser where a request's framing could be read two ways (RFC 9112 §6.1,
// §6.3): a Transfer-Encoding whose last coding is not chunked, that names chunked twice or
// another coding at all, or that comes with HTTP/1.0, fails with bad_transfer_encoding (the
// session answers 400 and closes: the body's end cannot be known). Trailer fields are read
// and dropped, never merged into the head's (RFC 9110 §6.5.1: an Authorization sent there
// must not authenticate).
//
// With a BodyMemory, the body holds its share of it as its bytes arrive, until the parser is
// destroyed; a body that does not fit fails with body_memory_full() true (the session answers
// 503 and closes).
class RequestParser final : public boost::beast::http::basic_parser<true> {
 public:
  explicit RequestParser(BodyMemory* memory = nullptr) : memory_(memory) {}
  ~RequestParser() override;
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // The last error came from the body not fitting in the BodyMemory.
  bool body_memory_full() const { return body_memory_full_; }

  // Filled as far as parsed: method, target and headers once is_header_done(), the body once
  // is_done(). The other members of Request are the caller's to set.
  const Request& request() const { return request_; }
  Request TakeRequest() { return std::move(request_); }
  // The request target as sent, once is_header_done(): the session splits it into the
  // Request's path and query.
  const std::string& target() const { return target_; }
  std::string TakeTarget() { return std::move(target_); }
  boost::beast::http::verb verb() const { return verb_; }
  int version() const { return version_; }  // 10 or 11

 private:
  void on_request_impl(boost::beast::http::verb method, boost::beast::string_view method_string,
                       boost::beast::string_view target, int version,
                       boost::beast::error_code& ec) override;
  void on_response_impl(int, boost::beast::string_view, int, boost::beast::error_code&) override {
  }
  void on_field_impl(boost::beast::http::field, boost::beast::string_view name,
                     boost::beast::string_view value, boost::beast::error_code& ec) override;
  void on_header_impl(boost::beast::error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                         boost::beast::error_code& ec) override;
  size_t on_body_impl(boost::beast::string_view body, boost::beast::error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t, boost::beast::string_view,
                            boost::beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, boost::beast::string_view body,
                            boost::beast::error_code& ec) override {
    return on_body_impl(body, ec);
  }
  void on_finish_impl(boost::beast::error_code&) override {}
  // Holds `bytes` more of memory_; false (and ec set) if they do not fit.
  bool Hold(size_t bytes, boost::beast::error_code& ec);

  BodyMemory* const memory_;
  size_t held_ = 0;  // of memory_
  bool body_memory_full_ = false;

  Request request_;
  std::string target_;
  std::string transfer_encoding_;  // every Transfer-Encoding field's value, comma-joined
  bool saw_transfer_encoding_ = false;  // even one with an empty value
  boost::beast::http::verb verb_ = boost::beast::http::verb::unknown;
  int version_ = 11;
};

}  // namespace keygate::http::internal
