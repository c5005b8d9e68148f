#include "http/request_parser.h"

#include <string>

#include "common/ascii.h"

namespace keygate::http::internal {

namespace {
// Headers a request usually carries (Host, Authorization, Content-Type, Content-Length,
// User-Agent, Accept, ...): the list is sized once for them.
constexpr size_t kUsualHeaderCount = 8;
}  // namespace

void RequestParser::on_request_impl(boost::beast::http::verb method,
                                    boost::beast::string_view method_string,
                                    boost::beast::string_view target, int version,
                                    boost::beast::error_code&) {
  verb_ = method;
  version_ = version;
  request_.method.assign(method_string.data(), method_string.size());
  target_.assign(target.data(), target.size());
  request_.headers.reserve(kUsualHeaderCount);
}

void RequestParser::on_field_impl(boost::beast::http::field field, boost::beast::string_view name,
                                  boost::beast::string_view value, boost::beast::error_code&) {
  if (is_header_done()) return;  // a trailer field
  if (field == boost::beast::http::field::transfer_encoding) {
    saw_transfer_encoding_ = true;
    if (!transfer_encoding_.empty()) transfer_encoding_ += ',';
    transfer_encoding_.append(value.data(), value.size());
  }
  request_.headers.emplace_back(AsciiLowered(std::string_view(name.data(), name.size())),
                                std::string(value.data(), value.size()));
}

void RequestParser::on_header_impl(boost::beast::error_code& ec) {
  if (!saw_transfer_encoding_) return;
  // The codings, in order: only "chunked", once (keygate decodes no other).
  size_t codings = 0;
  bool only_chunked = true;
  AnyListElement(transfer_encoding_, [&](std::string_view coding) {
    ++codings;
    only_chunked = only_chunked && AsciiIEquals(coding, "chunked");
    return false;  // every element
  });
  if (version_ < 11 || codings != 1 || !only_chunked) {
    ec = boost::beast::http::error::bad_transfer_encoding;
  }
}

bool BodyMemory::TryHold(size_t bytes) {
  size_t held = held_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ || held > limit_ - bytes) return false;
  } while (!held_.compare_exchange_weak(held, held + bytes, std::memory_order_relaxed));
  return true;
}

RequestParser::~RequestParser() {
  if (memory_ != nullptr && held_ > 0) memory_->Release(held_);
}

bool RequestParser::Hold(size_t bytes, boost::beast::error_code& ec) {
  if (memory_ == nullptr || bytes == 0) return true;
  if (!memory_->TryHold(bytes)) {
    body_memory_full_ = true;
    ec = boost::system::errc::make_error_code(boost::system::errc::not_enough_memory);
    return false;
  }
  held_ += bytes;
  return true;
}

void RequestParser::on_body_init_impl(const boost::optional<std::uint64_t>& content_length,
                                      boost::beast::error_code&) {
  // basic_parser has already refused a length over the body limit. Room is made at once for a
  // small body only: a declared length costs nothing until its bytes come (the review: held
  // from the head, a few idle clients declaring large bodies blocked everyone's).
  constexpr std::uint64_t kReservedUpTo = 1024 * 1024;
  if (content_length && *content_length <= kReservedUpTo) {
    request_.body.reserve(static_cast<size_t>(*content_length));
  }
}

size_t RequestParser::on_body_impl(boost::beast::string_view body, boost::beast::error_code& ec) {
  if (!Hold(body.size(), ec)) return 0;  // held as it arrives, whatever the framing
  request_.body.append(body.data(), body.size());
  return body.size();
}

}  // namespace keygate::http::internal
