#include "testing/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <optional>
#include <stdexcept>
#include <utility>

namespace keygate::testing {

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::chrono::milliseconds kDefaultTimeout{10'000};
constexpr size_t kRawReadBytes = 4096;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool SendsBody(const std::string& method, const std::string& body) {
  return !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
}

TestHttpClient::HeaderList WithBearer(const std::string& bearer) {
  if (bearer.empty()) return {};
  return {{"Authorization", "Bearer " + bearer}};
}

struct Outcome {
  beast::error_code ec;
  size_t bytes = 0;
};

}  // namespace

std::string TestHttpClient::Reply::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

class TestHttpClient::Impl {
 public:
  Impl(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}

  Reply Request(std::string method, std::string target, std::string body, HeaderList headers);
  std::string RawExchange(std::string_view bytes);
  void SendAndDisconnect(std::string_view bytes);
  void Close();
  int connections_opened() const { return connections_opened_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  struct Attempt {
    beast::error_code ec;
    bool got_reply_bytes = false;
    bool keep_alive = false;
    Reply reply;
  };
  using Message = bhttp::request<bhttp::string_body>;

  // Starts one asynchronous operation through `start(handler)` and runs the io_context until
  // it completes; the stream's timer bounds the wait.
  template <class Start>
  Outcome Await(beast::tcp_stream& stream, Start start) {
    Outcome outcome;
    stream.expires_after(timeout_);
    start([&outcome](beast::error_code ec, size_t bytes = 0) {
      outcome.ec = ec;
      outcome.bytes = bytes;
    });
    ioc_.restart();
    ioc_.run();
    return outcome;
  }

  tcp::endpoint Endpoint();
  std::unique_ptr<beast::tcp_stream> OpenConnection();
  Message BuildMessage(const std::string& method, const std::string& target, std::string body,
                       const HeaderList& headers) const;
  Attempt SendOnce(Message& message, bool head);
  static Reply ToReply(bhttp::response<bhttp::string_body>&& response);

  std::string host_;
  uint16_t port_;
  std::chrono::milliseconds timeout_ = kDefaultTimeout;
  net::io_context ioc_;
  std::unique_ptr<beast::tcp_stream> stream_;  // the kept-alive connection, if open
  beast::flat_buffer buffer_;
  int connections_opened_ = 0;
};

tcp::endpoint TestHttpClient::Impl::Endpoint() {
  beast::error_code ec;
  net::ip::address address = net::ip::make_address(host_, ec);
  if (!ec) return tcp::endpoint(address, port_);
  tcp::resolver resolver(ioc_);
  auto results = resolver.resolve(host_, std::to_string(port_), ec);
  if (ec || results.empty())
    throw std::runtime_error("cannot resolve " + host_ + ": " + ec.message());
  return results.begin()->endpoint();
}

std::unique_ptr<beast::tcp_stream> TestHttpClient::Impl::OpenConnection() {
  auto stream = std::make_unique<beast::tcp_stream>(ioc_);
  tcp::endpoint endpoint = Endpoint();
  Outcome outcome =
      Await(*stream, [&](auto handler) { stream->async_connect(endpoint, std::move(handler)); });
  if (outcome.ec) {
    throw std::runtime_error("cannot connect to " + host_ + ":" + std::to_string(port_) + ": " +
                             outcome.ec.message());
  }
  return stream;
}

TestHttpClient::Impl::Message TestHttpClient::Impl::BuildMessage(const std::string& method,
                                                                 const std::string& target,
                                                                 std::string body,
                                                                 const HeaderList& headers) const {
  Message message;
  bhttp::verb verb = bhttp::string_to_verb(method);
  if (verb == bhttp::verb::unknown) {
    message.method_string(method);
  } else {
    message.method(verb);
  }
  message.target(target);
  message.version(11);
  message.set(bhttp::field::host, host_ + ":" + std::to_string(port_));
  message.set(bhttp::field::user_agent, "keygate-tests");
  for (const auto& [name, value] : headers) {
    if (beast::iequals(name, "host")) {
      message.set(bhttp::field::host, value);
    } else {
      message.insert(name, value);
    }
  }
  if (SendsBody(method, body)) {
    if (message.count(bhttp::field::content_type) == 0) {
      message.set(bhttp::field::content_type, "application/json");
    }
    message.body() = std::move(body);
    message.prepare_payload();
  }
  return message;
}

TestHttpClient::Impl::Attempt TestHttpClient::Impl::SendOnce(Message& message, bool head) {
  Attempt attempt;
  Outcome write = Await(
      *stream_, [&](auto handler) { bhttp::async_write(*stream_, message, std::move(handler)); });
  // Read even if the write failed: the server may have answered before reading the whole
  // body (413) and closed.
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(boost::none);
  parser.skip(head);
  Outcome read = Await(*stream_, [&](auto handler) {
    bhttp::async_read(*stream_, buffer_, parser, std::move(handler));
  });
  if (read.ec) {
    attempt.ec = write.ec ? write.ec : read.ec;
    attempt.got_reply_bytes = parser.got_some();
    return attempt;
  }
  attempt.keep_alive = parser.get().keep_alive() && !write.ec;
  attempt.reply = ToReply(parser.release());
  return attempt;
}

TestHttpClient::Reply TestHttpClient::Impl::ToReply(
    bhttp::response<bhttp::string_body>&& response) {
  Reply reply;
  reply.status = static_cast<int>(response.result_int());
  for (const auto& field : response) {
    std::string name = Lower(field.name_string());
    auto [it, inserted] = reply.headers.emplace(name, std::string(field.value()));
    if (!inserted) it->second.append(", ").append(field.value());
  }
  reply.body = std::move(response.body());
  return reply;
}

TestHttpClient::Reply TestHttpClient::Impl::Request(std::string method, std::string target,
                                                    std::string body, HeaderList headers) {
  Message message = BuildMessage(method, target, std::move(body), headers);
  bool head = method == "HEAD";
  bool reused = stream_ != nullptr;
  if (!reused) {
    stream_ = OpenConnection();
    ++connections_opened_;
  }
  Attempt attempt = SendOnce(message, head);
  if (attempt.ec && reused && !attempt.got_reply_bytes) {
    // The server closed the kept-alive connection while it sat idle: try a fresh one.
    Close();
    stream_ = OpenConnection();
    ++connections_opened_;
    attempt = SendOnce(message, head);
  }
  if (attempt.ec) {
    Close();
    throw std::runtime_error(method + " " + target + ": " + attempt.ec.message());
  }
  if (!attempt.keep_alive) Close();
  return std::move(attempt.reply);
}

std::string TestHttpClient::Impl::RawExchange(std::string_view bytes) {
  std::unique_ptr<beast::tcp_stream> stream = OpenConnection();
  Await(*stream, [&](auto handler) {
    net::async_write(*stream, net::buffer(bytes.data(), bytes.size()), std::move(handler));
  });
  std::string received;
  char chunk[kRawReadBytes];
  while (true) {
    Outcome read = Await(*stream, [&](auto handler) {
      stream->async_read_some(net::buffer(chunk), std::move(handler));
    });
    received.append(chunk, read.bytes);
    if (read.ec == beast::error::timeout) {
      throw std::runtime_error("raw exchange: the server did not close within the timeout; got: " +
                               received);
    }
    if (read.ec) return received;  // end of stream, or a reset after the reply
  }
}

void TestHttpClient::Impl::SendAndDisconnect(std::string_view bytes) {
  std::unique_ptr<beast::tcp_stream> stream = OpenConnection();
  Outcome write = Await(*stream, [&](auto handler) {
    net::async_write(*stream, net::buffer(bytes.data(), bytes.size()), std::move(handler));
  });
  if (write.ec) throw std::runtime_error("send: " + write.ec.message());
  beast::error_code ignored;
  stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream->socket().close(ignored);
}

void TestHttpClient::Impl::Close() {
  buffer_.clear();
  if (!stream_) return;
  beast::error_code ignored;
  stream_->socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_->socket().close(ignored);
  stream_.reset();
}

// TestHttpClient

TestHttpClient::TestHttpClient(std::string host, uint16_t port)
    : impl_(std::make_unique<Impl>(std::move(host), port)) {}

TestHttpClient::~TestHttpClient() = default;

TestHttpClient::Reply TestHttpClient::Request(std::string method, std::string target,
                                              std::string body, HeaderList headers) {
  return impl_->Request(std::move(method), std::move(target), std::move(body), std::move(headers));
}

TestHttpClient::Reply TestHttpClient::Get(std::string target, std::string bearer) {
  return Request("GET", std::move(target), "", WithBearer(bearer));
}

TestHttpClient::Reply TestHttpClient::Post(std::string target, std::string body,
                                           std::string bearer) {
  return Request("POST", std::move(target), std::move(body), WithBearer(bearer));
}

TestHttpClient::Reply TestHttpClient::Patch(std::string target, std::string body,
                                            std::string bearer) {
  return Request("PATCH", std::move(target), std::move(body), WithBearer(bearer));
}

TestHttpClient::Reply TestHttpClient::Delete(std::string target, std::string bearer) {
  return Request("DELETE", std::move(target), "", WithBearer(bearer));
}

std::vector<std::string> TestHttpClient::StreamLines(std::string method, std::string target,
                                                     std::string body, HeaderList headers) {
  Reply reply = Request(std::move(method), std::move(target), std::move(body), std::move(headers));
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < reply.body.size()) {
    size_t end = reply.body.find('\n', start);
    if (end == std::string::npos) end = reply.body.size();
    std::string line = reply.body.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

std::string TestHttpClient::RawExchange(std::string_view bytes) {
  return impl_->RawExchange(bytes);
}

void TestHttpClient::SendAndDisconnect(std::string_view bytes) { impl_->SendAndDisconnect(bytes); }

void TestHttpClient::Close() { impl_->Close(); }

int TestHttpClient::connections_opened() const { return impl_->connections_opened(); }

std::chrono::milliseconds TestHttpClient::timeout() const { return impl_->timeout(); }

void TestHttpClient::set_timeout(std::chrono::milliseconds timeout) { impl_->set_timeout(timeout); }

}  // namespace keygate::testing
