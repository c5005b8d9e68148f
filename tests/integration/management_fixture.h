// A running keygate with two organizations, each with an owner key and a provisioning key,
// for the management-plane integration tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include <boost/json.hpp>

#include "testing/http_client.h"
#include "testing/keygate_process.h"

namespace keygate::testing {

struct OrgKeys {
  std::string org_id;
  std::string owner_key;
  std::string pk_id;
  std::string pk;  // provisioning key secret
};

class ManagementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    process_ = std::make_unique<KeygateProcess>(dir_.path());
    a_ = MakeOrg("org-a");
    b_ = MakeOrg("org-b");
    ASSERT_TRUE(process_->Start()) << process_->log();
    client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  }

  OrgKeys MakeOrg(const std::string& name) {
    OrgKeys org;
    auto created = process_->Init(name);
    org.org_id = created.id;
    org.owner_key = created.owner_key;
    auto pk = process_->CreateProvisioningKey(org.org_id, name + "-pk");
    org.pk_id = pk.id;
    org.pk = pk.key;
    EXPECT_FALSE(org.org_id.empty());
    EXPECT_FALSE(org.pk.empty());
    return org;
  }

  static boost::json::value Parse(const std::string& body) {
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec);
    EXPECT_FALSE(ec) << body;
    return v;
  }

  // Creates a service key through FastRouter's dialect; returns the whole answer.
  boost::json::object CreateKey(const OrgKeys& org, const std::string& body) {
    auto reply = client_->Post("/prod/createServiceKey", body, org.pk);
    EXPECT_EQ(reply.status, 201) << reply.body;
    auto v = Parse(reply.body);
    return v.is_object() ? v.as_object() : boost::json::object{};
  }

  std::string CreateKeyHash(const OrgKeys& org, const std::string& name) {
    auto created = CreateKey(org, R"({"api_key_name":")" + name + R"("})");
    auto* hash = created.if_contains("api_key_id_hash");
    return hash && hash->is_string() ? std::string(hash->as_string()) : "";
  }

  TempDir dir_;
  std::unique_ptr<KeygateProcess> process_;
  std::unique_ptr<TestHttpClient> client_;
  OrgKeys a_, b_;
};

}  // namespace keygate::testing
