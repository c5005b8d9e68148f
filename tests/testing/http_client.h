// A small blocking HTTP/1.1 client for tests: one kept-alive connection to one server,
// reconnecting transparently when the server has closed it, plus raw-bytes helpers for
// malformed or unusual requests. Beast stays in http_client.cc.
//
// Every operation gives up after timeout() (10 s by default) so that a broken server fails a
// test instead of hanging it. Failures (cannot connect, timeout, connection lost mid-reply)
// throw std::runtime_error with a message saying what failed; gtest reports them.
//
// Thread safety: not thread-safe; use one client per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keygate::testing {

class TestHttpClient {
 public:
  using HeaderList = std::vector<std::pair<std::string, std::string>>;

  struct Reply {
    int status = 0;
    std::string body;
    // Lower-case names; a repeated header's values are joined with ", ".
    std::map<std::string, std::string> headers;

    // The header's value, or "" if absent. `lower_name` must be lower-case.
    std::string Header(const std::string& lower_name) const;
  };

  // Does not connect yet; the first request does.
  TestHttpClient(std::string host, uint16_t port);
  ~TestHttpClient();
  TestHttpClient(const TestHttpClient&) = delete;
  TestHttpClient& operator=(const TestHttpClient&) = delete;

  // Sends one request on the kept-alive connection and reads the whole reply (chunked bodies
  // are de-chunked). A body is sent with Content-Length when non-empty or when the method is
  // POST, PUT or PATCH. If a reused connection turns out to be closed by the server before any
  // reply byte arrived, reconnects and sends once more. The connection is dropped after a
  // reply that says Connection: close.
  // Throws std::runtime_error on connect failure, timeout or a broken reply.
  Reply Request(std::string method, std::string target, std::string body = "",
                HeaderList headers = {});

  // Shorthands; a bearer of "" sends no Authorization header.
  Reply Get(std::string target, std::string bearer = "");
  Reply Post(std::string target, std::string body, std::string bearer = "");
  Reply Patch(std::string target, std::string body, std::string bearer = "");
  Reply Delete(std::string target, std::string bearer = "");

  // Sends a request whose reply is a (chunked) Server-Sent Events stream, reads it to the end
  // and returns its non-empty lines without line terminators (blank event separators are
  // dropped). Throws like Request().
  std::vector<std::string> StreamLines(std::string method, std::string target,
                                       std::string body = "", HeaderList headers = {});

  // On a fresh connection of its own: writes `bytes` as they are, then reads until the server
  // closes the connection and returns everything read. Throws std::runtime_error if the
  // server has not closed within timeout().
  std::string RawExchange(std::string_view bytes);

  // On a fresh connection of its own: writes `bytes`, then closes the connection at once
  // without reading (a client that gives up).
  void SendAndDisconnect(std::string_view bytes);

  // Closes the kept-alive connection, if any.
  void Close();

  // Number of TCP connections the kept-alive path has opened so far (1 after the first
  // request; more if the server closed connections).
  int connections_opened() const;

  std::chrono::milliseconds timeout() const;
  void set_timeout(std::chrono::milliseconds timeout);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keygate::testing
