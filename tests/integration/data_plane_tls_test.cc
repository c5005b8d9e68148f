// An HTTPS upstream (issue 3, the upstream client): verified against the system CA store
// through OpenSSL's default verify paths, which a test points at a CA of its own with
// SSL_CERT_FILE; its name checked against the certificate; its connections pooled.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "integration/data_plane_fixture.h"

namespace keygate::testing {
namespace {

constexpr const char* kBudget = R"("credit_limit": 1)";

class TlsUpstreamTest : public DataPlaneTest {
 protected:
  // A CA, a certificate it signs for "localhost" only, and the mock serving HTTPS with it on
  // the `trusted` providers' port; keygate trusts the CA. The same CA vouches for
  // "other.example" on the `othername` provider's port, which that provider reaches as
  // localhost.
  void BeforeStart() override {
    ca_ = dir_.path() + "/ca.pem";
    Openssl({"req", "-x509", "-subj", "/CN=keygate test CA", "-days", "1", "-keyout",
             dir_.path() + "/ca.key", "-out", ca_},
            EcKey());
    ASSERT_NO_FATAL_FAILURE(tls_mock_ = ServeHttps("server", "localhost", trusted_port_));
    ASSERT_NO_FATAL_FAILURE(other_mock_ = ServeHttps("other", "other.example", tls_port_));
    extra_env_.push_back("SSL_CERT_FILE=" + ca_);
  }

  // EC keys: made in milliseconds.
  static std::vector<std::string> EcKey() {
    return {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"};
  }

  // A mock serving HTTPS on `port` with NAME.key and NAME.pem, made in the temp dir: a
  // certificate the CA signs for `host` only.
  std::unique_ptr<MockUpstreamProcess> ServeHttps(const std::string& name,
                                                  const std::string& host, uint16_t port) {
    const std::string d = dir_.path() + "/" + name;
    Openssl({"req", "-subj", "/CN=" + host, "-keyout", d + ".key", "-out", d + ".csr"}, EcKey());
    std::ofstream(d + ".ext") << "subjectAltName=DNS:" << host << "\n";
    Openssl({"x509", "-req", "-in", d + ".csr", "-CA", ca_, "-CAkey", dir_.path() + "/ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", d + ".ext", "-out", d + ".pem"},
            {});
    auto mock = std::make_unique<MockUpstreamProcess>(
        dir_.path(), std::vector<std::string>{"--tls-cert", d + ".pem", "--tls-key", d + ".key"},
        name + "-mock", "127.0.0.1:" + std::to_string(port));
    EXPECT_EQ(mock->WaitForPort(), port) << "the HTTPS mock for " << host << " did not start";
    return mock;
  }

  static void Openssl(std::vector<std::string> args, const std::vector<std::string>& extra) {
    args.insert(args.begin(), "/usr/bin/openssl");
    args.insert(args.begin() + 2, extra.begin(), extra.end());
    const CommandResult made = RunCommand(args);
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }

  // GET /mock/stats of the HTTPS mock, through curl trusting the same CA.
  boost::json::value TlsMockStats() {
    const CommandResult got =
        RunCommand({"/usr/bin/curl", "-s", "--cacert", ca_,
                    "https://localhost:" + std::to_string(trusted_port_) + "/mock/stats"});
    EXPECT_EQ(got.exit_code, 0) << got.err;
    return Parse(got.out);
  }

  std::string ca_;
  std::unique_ptr<MockUpstreamProcess> tls_mock_;
  std::unique_ptr<MockUpstreamProcess> other_mock_;
};

TEST_F(TlsUpstreamTest, CallsToAVerifiedUpstreamAreRelayedOnOnePooledConnection) {
  MintedKey key = Mint(kBudget);
  // One connection to keygate: one io thread, so one pool of upstream connections.
  TestHttpClient client("127.0.0.1", process_->port());
  const TestHttpClient::HeaderList headers = {{"Authorization", "Bearer " + key.secret},
                                              {"Content-Type", "application/json"}};
  auto plain = client.Request("POST", "/v1/chat/completions",
                              ChatBody("hello", 50, "trusted/echo"), headers);
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_NE(plain.body.find("echo: hello"), std::string::npos) << plain.body;
  auto stream = client.Request("POST", "/v1/chat/completions",
                               ChatBody("hello", 50, "trusted/echo", R"(,"stream":true)"),
                               headers);
  ASSERT_EQ(stream.status, 200) << stream.body;
  EXPECT_NE(stream.body.find("data: [DONE]"), std::string::npos) << stream.body;
  auto again = client.Request("POST", "/v1/chat/completions",
                              ChatBody("again", 50, "trusted/echo"), headers);
  ASSERT_EQ(again.status, 200) << again.body;

  const boost::json::value stats = TlsMockStats();
  EXPECT_EQ(stats.at("chat"), 3);
  // keygate's one connection for its three calls, and curl's own for the stats.
  EXPECT_EQ(stats.at("connections"), 2) << "three calls, one TLS connection";
  // The provider's key went upstream, never the caller's.
  EXPECT_EQ(stats.at("last_authorization"), boost::json::value(std::string("Bearer ") +
                                                               kUpstreamKey));
  const auto rows = WaitForUsage(key.hash, 3);
  ASSERT_EQ(rows.size(), 3u);
  for (const UsageRow& row : rows) {
    EXPECT_EQ(row.model, "trusted/echo");
    EXPECT_EQ(row.status, 200);
    EXPECT_GT(row.cost, 0);
  }
}

// An upstream that writes a second answer nobody asked for right after its answer (audit,
// 2026-12-07): over TLS the stray record comes in the same read as the answer's, and sits in
// OpenSSL's buffers, not in the socket. The connection must not be reused, or the next call
// (another key's) would get it for its answer. The same over plain HTTP.
TEST_F(TlsUpstreamTest, AnAnswerNobodyAskedForNeverReachesTheNextCaller) {
  MintedKey first = Mint();
  MintedKey second = Mint();
  for (const char* model : {"trusted/echo", "mock/echo"}) {
    SCOPED_TRACE(model);
    TestHttpClient client("127.0.0.1", process_->port());  // one io thread, one pool
    for (int i = 0; i < 3; ++i) {
      auto asked = client.Request("POST", "/v1/chat/completions",
                                  ChatBody("mine", 50, model),
                                  {{"Authorization", "Bearer " + first.secret},
                                   {"Content-Type", "application/json"},
                                   {"x-mock-stray-after", "1"}});
      ASSERT_EQ(asked.status, 200) << asked.body;
      EXPECT_NE(asked.body.find("echo: mine"), std::string::npos) << asked.body;
      // The stray must be at keygate before the next call: one sent after it, while the call
      // is on its way, no client can tell from its answer (decision 0011).
      const bool tls = std::string(model) == "trusted/echo";
      const auto by = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while ((tls ? TlsMockStats() : MockStats()).at("strays").to_number<int64_t>() < i + 1 &&
             std::chrono::steady_clock::now() < by) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      auto next = client.Request("POST", "/v1/chat/completions", ChatBody("yours", 50, model),
                                 {{"Authorization", "Bearer " + second.secret},
                                  {"Content-Type", "application/json"}});
      ASSERT_EQ(next.status, 200) << next.body;
      EXPECT_NE(next.body.find("echo: yours"), std::string::npos) << next.body;
      EXPECT_EQ(next.body.find("STRAY"), std::string::npos) << next.body;
    }
  }
}

// A name the certificate does not hold (a trusted CA's certificate for another host): refused,
// and the log says why (audit N: every failure read "certificate verify failed").
TEST_F(TlsUpstreamTest, ACertificateForAnotherHostNameIsRefused) {
  MintedKey key = Mint(kBudget);
  auto reply = Call(key.secret, ChatBody("hi", 50, "othername/echo"));
  EXPECT_EQ(reply.status, 502) << reply.body;
  EXPECT_NE(reply.body.find("(hostname mismatch)"), std::string::npos) << reply.body;
  EXPECT_NE(process_->log().find("hostname mismatch"), std::string::npos);
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 50, "trusted/echo")).status, 200);
}

TEST_F(TlsUpstreamTest, ACertificateForAnotherNameIsRefusedAndChargesNothing) {
  // The same server, reached as 127.0.0.1: its certificate names localhost only.
  MintedKey key = Mint(kBudget);
  auto reply = Call(key.secret, ChatBody("hi", 50, "wronghost/echo"));
  EXPECT_EQ(reply.status, 502) << reply.body;
  EXPECT_NE(reply.body.find("certificate verify failed"), std::string::npos) << reply.body;
  // Which check failed (audit N: every failure read the same).
  EXPECT_NE(reply.body.find("(IP address mismatch)"), std::string::npos) << reply.body;
  EXPECT_EQ(TlsMockStats().at("chat"), 0);
  const auto rows = WaitForUsage(key.hash, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, 502);
  EXPECT_EQ(rows[0].cost, 0);
  EXPECT_EQ(UsageTotalMicros(key), 0);
}

}  // namespace
}  // namespace keygate::testing
