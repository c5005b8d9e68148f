// A running keygate in front of the mock upstream, for the data-plane integration tests: the
// mock on a free port (--port-file); a config file in the temp dir with three providers that
// point at it (a normal one, one that caps output with max_completion_tokens, one with a short
// response timeout), one at a closed port and one for a TLS server a test may start; one
// organization with a provisioning key; and helpers to mint service keys, call models, read
// the mock's accounting and the usage records keygate committed.
//
// Thread safety: the fixture belongs to the test thread; Call() may be used from other threads
// (each call opens its own connection).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "testing/http_client.h"
#include "testing/keygate_process.h"

namespace keygate::testing {

// The upstream's API key, as keygate reads it from the environment.
inline constexpr const char* kUpstreamKeyEnv = "KG_TEST_MOCK_KEY";
inline constexpr const char* kUpstreamKey = "sk-upstream-test-0123456789";
// Credentials written in the file as headers of the provider `literal` (no api_key_env).
// (A `/` in it, as in half of base64 credentials: some encoders write it `\/`.)
inline constexpr const char* kLiteralKey = "literal/bearer+0123/456789";
inline constexpr const char* kLiteralApiKey = "literal-x-api-key-0123456789";
// Prices of mock/echo: one micro-dollar per prompt token, two per completion token.
inline constexpr int64_t kEchoInputMicros = 1;
inline constexpr int64_t kEchoOutputMicros = 2;
inline constexpr int64_t kSlowTimeoutMs = 300;

// The mock upstream as a child process, on a free port (or `listen`), with `extra_args`;
// `name` names its port and log files in `dir`.
class MockUpstreamProcess {
 public:
  explicit MockUpstreamProcess(const std::string& dir, std::vector<std::string> extra_args = {},
                               const std::string& name = "mock",
                               const std::string& listen = "127.0.0.1:0")
      : port_file_(dir + "/" + name + ".port") {
    std::vector<std::string> args = {MOCK_UPSTREAM_BINARY, "--listen", listen, "--port-file",
                                     port_file_, "--threads", "2"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string log = dir + "/" + name + ".log";
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out = freopen(log.c_str(), "a", stdout);
      (void)out;
      execv(MOCK_UPSTREAM_BINARY, argv.data());
      _exit(127);
    }
  }
  ~MockUpstreamProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  MockUpstreamProcess(const MockUpstreamProcess&) = delete;
  MockUpstreamProcess& operator=(const MockUpstreamProcess&) = delete;

  // Waits (10 s at most) for the port file; returns the port, or 0.
  uint16_t WaitForPort() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(port_file_);
      int port = 0;
      if (in >> port && port > 0) return static_cast<uint16_t>(port);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return 0;
  }

 private:
  std::string port_file_;
  pid_t pid_ = -1;
};

// A service key as minted: its secret and its public hash.
struct MintedKey {
  std::string secret;
  std::string hash;
};

class DataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    mock_ = std::make_unique<MockUpstreamProcess>(dir_.path());
    mock_port_ = mock_->WaitForPort();
    ASSERT_NE(mock_port_, 0) << "mock upstream did not start";
    const std::string config = dir_.path() + "/keygate.yaml";
    tls_port_ = FreePort();
    trusted_port_ = FreePort();
    std::ofstream(config) << ConfigYaml(mock_port_, FreePort(), tls_port_, trusted_port_);
    ASSERT_NO_FATAL_FAILURE(BeforeStart());
    process_ = std::make_unique<KeygateProcess>(dir_.path(), config);
    auto org = process_->Init("data-plane");
    org_id_ = org.id;
    owner_key_ = org.owner_key;
    pk_ = process_->CreateProvisioningKey(org_id_, "pk").key;
    ASSERT_FALSE(pk_.empty());
    secrets_ = {owner_key_, pk_};
    std::vector<std::string> env = extra_env_;
    env.push_back(std::string(kUpstreamKeyEnv) + "=" + kUpstreamKey);
    ASSERT_TRUE(process_->Start(env)) << process_->log();
    client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
    mock_client_ = std::make_unique<TestHttpClient>("127.0.0.1", mock_port_);
  }

  void TearDown() override {
    // spec §6: keys appear only masked, in logs as in answers.
    const std::string log = process_ ? process_->log() : "";
    for (const std::string& secret : secrets_) {
      EXPECT_EQ(log.find(secret), std::string::npos) << "a secret reached the log";
    }
    for (const char* key : {kUpstreamKey, kLiteralKey, kLiteralApiKey}) {
      EXPECT_EQ(log.find(key), std::string::npos) << "a provider's credential reached the log";
    }
  }

  // Runs in SetUp before keygate starts (which then gets extra_env_ too).
  virtual void BeforeStart() {}

  // `tls_port`: a server whose certificate no CA vouches for (or, in the TLS tests, one for
  // another name, reached as localhost); `trusted_port`: an HTTPS mock whose certificate names
  // "localhost" only (a fixture that starts one trusts its CA).
  static std::string ConfigYaml(uint16_t mock_port, uint16_t dead_port, uint16_t tls_port,
                                uint16_t trusted_port) {
    const std::string mock = "http://127.0.0.1:" + std::to_string(mock_port) + "/v1";
    std::ostringstream out;
    out << "limits:\n  max_body_bytes: 65536\n"
        << "providers:\n"
        << "  - name: mock\n    base_url: " << mock << "\n    api_key_env: " << kUpstreamKeyEnv
        << "\n    headers: {X-Title: keygate-tests}\n"
        << "  - name: literal\n    base_url: " << mock << "\n    headers: {Authorization: \"Bearer "
        << kLiteralKey << "\", X-Api-Key: " << kLiteralApiKey << ", X-Title: keygate-tests}\n"
        << "  - name: reasoning\n    base_url: " << mock
        << "\n    max_tokens_field: max_completion_tokens\n"
        << "  - name: slow\n    base_url: " << mock << "\n    response_timeout_ms: "
        << kSlowTimeoutMs << "\n"
        << "  - name: dead\n    base_url: http://127.0.0.1:" << dead_port
        << "/v1\n    connect_timeout_ms: 2000\n"
        << "  - name: selfsigned\n    base_url: https://127.0.0.1:" << tls_port
        << "/v1\n    connect_timeout_ms: 2000\n"
        << "  - name: trusted\n    base_url: https://localhost:" << trusted_port
        << "/v1\n    api_key_env: " << kUpstreamKeyEnv << "\n    connect_timeout_ms: 2000\n"
        << "  - name: wronghost\n    base_url: https://127.0.0.1:" << trusted_port
        << "/v1\n    connect_timeout_ms: 2000\n"
        << "  - name: othername\n    base_url: https://localhost:" << tls_port
        << "/v1\n    connect_timeout_ms: 2000\n"
        << "models:\n"
        << Model("mock/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("mock/gpt-4o-mini", "gpt-4o-mini", "0.15", "0.60", 128000, 16384)
        << Model("mock/embed", "text-embedding-3-small", "0.02", "0", 8191, 0)
        << Model("literal/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("mock/tiny", "echo", "1.0", "2.0", 1000, 100)
        << Model("mock/small", "echo", "1.0", "2.0", 100, 10)
        << Model("reasoning/tiny", "echo", "1.0", "2.0", 1000, 100)
        << Model("slow/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("dead/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("dead/vendor/family/size/variant/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("selfsigned/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("trusted/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("wronghost/echo", "echo", "1.0", "2.0", 8192, 1024)
        << Model("othername/echo", "echo", "1.0", "2.0", 8192, 1024);
    return out.str();
  }

  static std::string Model(const std::string& id, const std::string& upstream,
                           const std::string& input, const std::string& output, int context,
                           int max_output) {
    return "  - id: " + id + "\n    upstream: " + upstream + "\n    input_usd_per_mtok: " +
           input + "\n    output_usd_per_mtok: " + output + "\n    context_tokens: " +
           std::to_string(context) + "\n    max_output_tokens: " + std::to_string(max_output) +
           "\n";
  }

  static boost::json::value Parse(const std::string& body) {
    boost::system::error_code ec;
    boost::json::value value = boost::json::parse(body, ec);
    EXPECT_FALSE(ec) << body;
    return value;
  }

  // Mints a service key through FastRouter's dialect; `fields` is a JSON fragment of guardrails
  // ("\"rpm_limit\": 5") or "".
  MintedKey Mint(const std::string& fields = "") {
    static int counter = 0;
    std::string body = R"({"api_key_name":"key-)" + std::to_string(++counter) + "\"";
    if (!fields.empty()) body += "," + fields;
    body += "}";
    auto reply = client_->Post("/prod/createServiceKey", body, pk_);
    EXPECT_EQ(reply.status, 201) << reply.body;
    boost::json::value created = Parse(reply.body);
    MintedKey key;
    if (!created.is_object()) return key;
    key.secret = std::string(created.at("api_key").as_string());
    key.hash = std::string(created.at("api_key_id_hash").as_string());
    secrets_.push_back(key.secret);
    return key;
  }

  // Updates a key's guardrails through FastRouter's dialect.
  void Update(const MintedKey& key, const std::string& fields) {
    auto reply = client_->Post("/prod/updateServiceKey",
                               R"({"api_key_id_hash":")" + key.hash + "\"," + fields + "}", pk_);
    ASSERT_EQ(reply.status, 200) << reply.body;
  }

  // The key's record in FastRouter's dialect (usage figures included).
  boost::json::object Record(const MintedKey& key) {
    auto reply = client_->Post("/prod/getServiceKeys", "{}", pk_);
    EXPECT_EQ(reply.status, 200) << reply.body;
    boost::json::value page = Parse(reply.body);
    for (const boost::json::value& item : page.at("data").as_array()) {
      if (item.at("api_key_id_hash") == boost::json::value(key.hash)) return item.as_object();
    }
    ADD_FAILURE() << "key not listed";
    return {};
  }

  // The key's usage.total, in micro-dollars.
  int64_t UsageTotalMicros(const MintedKey& key) {
    boost::json::object record = Record(key);
    return std::llround(boost::json::value_to<double>(record.at("usage").at("total")) * 1e6);
  }

  static std::string ChatBody(const std::string& content, int max_tokens,
                              const std::string& model = "mock/echo", const std::string& extra = "") {
    return R"({"model":")" + model + R"(","messages":[{"role":"user","content":")" + content +
           R"("}],"max_tokens":)" + std::to_string(max_tokens) + extra + "}";
  }

  // POSTs a model call with `secret` on a connection of the calling thread's own.
  TestHttpClient::Reply Call(const std::string& secret, const std::string& body,
                             const std::string& path = "/v1/chat/completions",
                             TestHttpClient::HeaderList headers = {}) {
    TestHttpClient client("127.0.0.1", process_->port());
    if (!secret.empty()) headers.emplace_back("Authorization", "Bearer " + secret);
    headers.emplace_back("Content-Type", "application/json");
    return client.Request("POST", path, body, std::move(headers));
  }

  boost::json::value MockStats() { return Parse(mock_client_->Get("/mock/stats").body); }
  int64_t MockChats() { return MockStats().at("chat").as_int64(); }
  int64_t MockRequests() { return MockStats().at("requests").as_int64(); }

  // One committed usage record.
  struct UsageRow {
    std::string key_hash;
    std::string model;
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
    int64_t cost = 0;
    int status = 0;
    int64_t latency_ms = 0;
    std::string request_id;
  };

  // The usage records committed for `key_hash`, oldest first (read-only, beside the server).
  std::vector<UsageRow> UsageRows(const std::string& key_hash) {
    std::vector<UsageRow> rows;
    sqlite3* db = nullptr;
    const std::string uri = "file:" + dir_.path() + "/keygate.db?mode=ro";
    if (sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) !=
        SQLITE_OK) {
      sqlite3_close(db);
      return rows;
    }
    sqlite3_busy_timeout(db, 2000);
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db,
                       "SELECT key_hash, model, prompt_tokens, completion_tokens, cost, status, "
                       "latency_ms, request_id FROM usage_records WHERE key_hash = ? ORDER BY id",
                       -1, &statement, nullptr);
    sqlite3_bind_text(statement, 1, key_hash.c_str(), -1, SQLITE_TRANSIENT);
    while (sqlite3_step(statement) == SQLITE_ROW) {
      UsageRow row;
      row.key_hash = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
      row.model = reinterpret_cast<const char*>(sqlite3_column_text(statement, 1));
      row.prompt_tokens = sqlite3_column_int64(statement, 2);
      row.completion_tokens = sqlite3_column_int64(statement, 3);
      row.cost = sqlite3_column_int64(statement, 4);
      row.status = sqlite3_column_int(statement, 5);
      row.latency_ms = sqlite3_column_int64(statement, 6);
      row.request_id = reinterpret_cast<const char*>(sqlite3_column_text(statement, 7));
      rows.push_back(row);
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return rows;
  }

  // Polls (5 s at most: usage is written at most 100 ms behind) until `key_hash` has `count`
  // committed records; returns them.
  std::vector<UsageRow> WaitForUsage(const std::string& key_hash, size_t count) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::vector<UsageRow> rows = UsageRows(key_hash);
    while (rows.size() < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      rows = UsageRows(key_hash);
    }
    return rows;
  }

  static int64_t SumCost(const std::vector<UsageRow>& rows) {
    int64_t sum = 0;
    for (const UsageRow& row : rows) sum += row.cost;
    return sum;
  }

  TempDir dir_;
  std::unique_ptr<MockUpstreamProcess> mock_;
  uint16_t mock_port_ = 0;
  uint16_t trusted_port_ = 0;  // the `trusted` and `wronghost` providers' port
  std::vector<std::string> extra_env_;  // for keygate, set by BeforeStart
  uint16_t tls_port_ = 0;  // the `selfsigned` provider's port (nothing listens unless a test starts it)
  std::unique_ptr<KeygateProcess> process_;
  std::unique_ptr<TestHttpClient> client_;
  std::unique_ptr<TestHttpClient> mock_client_;
  std::string org_id_;
  std::string owner_key_;
  std::string pk_;
  std::vector<std::string> secrets_;  // checked against the log in TearDown
};

}  // namespace keygate::testing
