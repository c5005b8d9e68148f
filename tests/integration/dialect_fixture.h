// Helpers for the OpenRouter and router-keys v2 dialect tests, on top of ManagementTest (a
// running keygate with two organizations, each with an owner key and a provisioning key).
//
// Thread safety: one test thread owns a fixture.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include <boost/json.hpp>

#include "integration/management_fixture.h"

namespace keygate::testing {

class DialectTest : public ManagementTest {
 protected:
  using Reply = TestHttpClient::Reply;

  // The reply's body as an object (an empty object, and a test failure, if it is not one).
  static boost::json::object Obj(const Reply& reply) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(reply.body, ec);
    EXPECT_FALSE(ec) << "not JSON: " << reply.body;
    EXPECT_TRUE(v.is_object()) << reply.body;
    return v.is_object() ? v.as_object() : boost::json::object{};
  }

  static std::string Str(const boost::json::value& v) {
    return v.is_string() ? std::string(v.as_string()) : "";
  }

  // One request with `bearer` (none when empty).
  Reply Call(const std::string& method, const std::string& path, const std::string& body,
             const std::string& bearer) {
    TestHttpClient::HeaderList headers;
    if (!bearer.empty()) headers.emplace_back("authorization", "Bearer " + bearer);
    return client_->Request(method, path, body, headers);
  }

  // POST /api/v1/keys; expects 201 and returns the whole answer ({"data", "key"}).
  boost::json::object OrCreate(const std::string& bearer, const std::string& body) {
    Reply reply = Call("POST", "/api/v1/keys", body, bearer);
    EXPECT_EQ(reply.status, 201) << body << " → " << reply.body;
    return Obj(reply);
  }
  // The hash of a key made through OpenRouter's dialect with `name`.
  std::string OrCreateHash(const OrgKeys& org, const std::string& name) {
    auto created = OrCreate(org.pk, R"({"name":")" + name + R"("})");
    auto* data = created.if_contains("data");
    return data && data->is_object() ? Str(data->as_object().at("hash")) : "";
  }

  // POST /v2/api-keys; expects 201 and returns the record (with its raw token).
  boost::json::object V2Create(const std::string& bearer, const std::string& body) {
    Reply reply = Call("POST", "/v2/api-keys", body, bearer);
    EXPECT_EQ(reply.status, 201) << body << " → " << reply.body;
    return Obj(reply);
  }

  // Calls `probe` until it returns true or `limit` has passed; returns its last answer. For
  // real grace periods and expiries: the wait is bounded, and ends as soon as the state holds.
  static bool Eventually(const std::function<bool()>& probe,
                         std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    constexpr auto kPollInterval = std::chrono::milliseconds(50);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!probe()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(kPollInterval);
    }
    return true;
  }
};

}  // namespace keygate::testing
