// spec §3 step 5 and data-plane.md "Upstream failures": refused or reset 502, timeout 504, the
// upstream's own errors passed through, a caller who disconnects cancels the upstream call;
// and none of them keeps a reservation.
#include <arpa/inet.h>
#include <signal.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "integration/data_plane_fixture.h"
#include "integration/store_lock.h"

namespace keygate::testing {
namespace {

// A budget that holds exactly one call of ChatBody("hi", 100) in flight: 18 + 2 * 100 = 218
// micro-dollars reserved, against a limit of 300. A leaked reservation blocks the next call.
constexpr const char* kOneCallBudget = R"("credit_limit": 0.0003)";

// Sends a streamed call on a raw socket, reads until `events` data lines arrived, then closes.
// Opens a connection to keygate and sends a chat call with `secret`, `body` and the extra
// header lines `headers` ("name: value\r\n" each); returns the socket, or -1.
int SendChat(uint16_t port, const std::string& secret, const std::string& body,
             const std::string& headers) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string request = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: "
                              "Bearer " + secret + "\r\nContent-Type: application/json\r\n" +
                              headers + "Content-Length: " + std::to_string(body.size()) +
                              "\r\n\r\n" + body;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    ADD_FAILURE() << "cannot send the call to port " << port;
    close(fd);
    return -1;
  }
  return fd;
}

void StreamAndHangUp(uint16_t port, const std::string& secret, const std::string& body,
                     int events) {
  const int fd =
      SendChat(port, secret, body, "x-mock-chunks: 40\r\nx-mock-chunk-delay-ms: 100\r\n");
  ASSERT_GE(fd, 0);
  std::string received;
  char buffer[4096];
  size_t seen = 0;
  while (static_cast<int>(seen) < events) {
    const ssize_t n = read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    received.append(buffer, static_cast<size_t>(n));
    seen = 0;
    for (size_t at = received.find("data: "); at != std::string::npos;
         at = received.find("data: ", at + 1)) {
      ++seen;
    }
  }
  close(fd);
  EXPECT_GE(static_cast<int>(seen), events) << received;
}

TEST_F(DataPlaneTest, EveryUpstreamFailureReleasesItsReservation) {
  MintedKey key = Mint(kOneCallBudget);
  const std::string body = ChatBody("hi", 100);
  struct Case {
    std::string fault;
    std::string model;
    int status;
  };
  const Case cases[] = {
      {"500", "mock/echo", 500},      // the upstream's own error, passed through
      {"429", "mock/echo", 429},
      {"400", "mock/echo", 400},
      {"reset", "mock/echo", 502},    // connection reset before any answer
      {"hang", "slow/echo", 504},     // response timeout (300 ms)
      {"", "dead/echo", 502},         // connection refused
  };
  for (const Case& c : cases) {
    TestHttpClient::HeaderList headers;
    if (!c.fault.empty()) headers.emplace_back("x-mock-fault", c.fault);
    auto reply = Call(key.secret, ChatBody("hi", 100, c.model), "/v1/chat/completions", headers);
    EXPECT_EQ(reply.status, c.status) << c.fault << " " << c.model << ": " << reply.body;
    EXPECT_NE(reply.body.find("\"error\""), std::string::npos) << reply.body;
    // The reservation is back: the one call the budget holds still fits.
    auto next = Call(key.secret, body);
    EXPECT_EQ(next.status, 200) << "after " << c.fault << " " << c.model << ": " << next.body;
  }
  auto rows = WaitForUsage(key.hash, 12);
  ASSERT_EQ(rows.size(), 12u);
  for (size_t i = 0; i < rows.size(); i += 2) EXPECT_EQ(rows[i].cost, 0) << rows[i].status;
  EXPECT_EQ(rows[8].status, 504);
  EXPECT_EQ(SumCost(rows), 6 * 8);
}

// Audit BB: keygate out of file descriptors answered 502 "The upstream provider 'mock' failed
// (connect: Too many open files)", counted against the provider, which dashboards then blamed.
// It is keygate's own shortage: a 503 with Retry-After, counted as out_of_resources, released.
TEST_F(DataPlaneTest, OutOfDescriptorsIsTheGatewaysShortageNotTheProviders) {
  MintedKey key = Mint(kOneCallBudget);
  TestHttpClient held("127.0.0.1", process_->port());
  ASSERT_EQ(held.Get("/healthz").status, 200);  // a connection open before the shortage
  const std::string pid = std::to_string(process_->pid());
  // The soft limit only: raising it back to what it was needs no privilege.
  const CommandResult before = RunCommand(
      {"/usr/bin/prlimit", "--pid", pid, "--nofile", "--output=SOFT", "--noheadings"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  std::string soft = before.out;
  while (!soft.empty() && (soft.back() == '\n' || soft.back() == ' ')) soft.pop_back();
  while (!soft.empty() && soft.front() == ' ') soft.erase(0, 1);
  ASSERT_EQ(RunCommand({"/usr/bin/prlimit", "--pid", pid, "--nofile=64:"}).exit_code, 0);
  // Idle connections take what descriptors are left (those past the limit wait unaccepted).
  std::vector<int> idle;
  for (int i = 0; i < 80; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(process_->port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    idle.push_back(fd);
  }
  // Accepted until none is left: the listener says so at its first failure (bounded wait).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (process_->log().find("http.accept_failed") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_NE(process_->log().find("http.accept_failed"), std::string::npos);
  auto refused = held.Request("POST", "/v1/chat/completions", ChatBody("hi", 100),
                              {{"authorization", "Bearer " + key.secret}});
  for (int fd : idle) ::close(fd);
  const CommandResult restored =
      RunCommand({"/usr/bin/prlimit", "--pid", pid, "--nofile=" + soft + ":"});
  ASSERT_EQ(restored.exit_code, 0) << soft << ": " << restored.err;
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("out of file descriptors or memory, not the provider"),
            std::string::npos)
      << refused.body;
  EXPECT_EQ(refused.Header("retry-after"), "1");
  const std::string metrics = client_->Get("/metrics").body;
  EXPECT_NE(metrics.find(R"(keygate_rejections_total{reason="out_of_resources"} 1)"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(metrics.find(R"(outcome="out_of_resources")"), std::string::npos)
      << "counted against the provider: " << metrics;
  // The reservation is back: the one call the budget holds still fits.
  auto next = Call(key.secret, ChatBody("hi", 100));
  EXPECT_EQ(next.status, 200) << next.body;
  // The listener, out of descriptors too, said so once, not ten times a second (audit BB).
  const std::string log = process_->log();
  size_t lines = 0;
  for (size_t at = log.find("http.accept_failed"); at != std::string::npos;
       at = log.find("http.accept_failed", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << log;
  // And when it accepted again, with the failures no line had counted yet.
  EXPECT_NE(log.find(R"("event":"http.accept_recovered","failures":)"), std::string::npos)
      << log;
}

TEST_F(DataPlaneTest, AStreamResetMidwayIsCutAndChargedForWhatWasReceived) {
  MintedKey key = Mint(kOneCallBudget);
  TestHttpClient client("127.0.0.1", process_->port());
  std::string error;
  try {
    client.StreamLines("POST", "/v1/chat/completions",
                       ChatBody("a b c d e f", 100, "mock/echo",
                                R"(,"stream":true)"),
                       {{"Authorization", "Bearer " + key.secret}, {"x-mock-fault", "reset"}});
  } catch (const std::exception& e) {
    error = e.what();  // the stream ends without its terminating chunk
  }
  EXPECT_FALSE(error.empty());
  auto rows = WaitForUsage(key.hash, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, 502);
  EXPECT_GT(rows[0].completion_tokens, 0);  // two content chunks arrived
  EXPECT_LE(rows[0].cost, 218);
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
}

// Audit, 2026-12-07: a stream whose head and a broken body came in one read reached the caller
// as nothing at all (the connection closed before the head left), charged, and logged as a
// caller who left. Nothing of it relayed, it is a failure before the answer, as a plain call's:
// a 502 in the stream's place, released, and the access line keeps keygate's own status.
TEST_F(DataPlaneTest, AStreamBrokenBeforeItsFirstEventIsA502AndReleased) {
  MintedKey key = Mint(kOneCallBudget);
  for (int i = 0; i < 2; ++i) {
    auto reply = Call(key.secret, ChatBody("hi", 100, "mock/echo", R"(,"stream":true)"),
                      "/v1/chat/completions", {{"x-mock-fault", "badchunk"}});
    EXPECT_EQ(reply.status, 502) << reply.body;
    EXPECT_NE(reply.body.find("\"upstream_error\""), std::string::npos) << reply.body;
  }
  // Released: the one call the budget holds still fits.
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
  auto rows = WaitForUsage(key.hash, 3);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].status, 502);
  EXPECT_EQ(rows[0].cost, 0);
  EXPECT_EQ(rows[1].cost, 0);
  EXPECT_EQ(process_->log().find(R"("client_gone":true)"), std::string::npos)
      << process_->log();
}

TEST_F(DataPlaneTest, ACallerWhoHangsUpCancelsTheUpstreamCallAndPaysForWhatCame) {
  MintedKey key = Mint(kOneCallBudget);
  // 40 chunks 100 ms apart: four seconds if it ran to the end.
  StreamAndHangUp(process_->port(), key.secret,
                  ChatBody("one two three four five six seven eight nine ten", 100, "mock/echo",
                           R"(,"stream":true)"),
                  2);
  auto rows = WaitForUsage(key.hash, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, 499);
  EXPECT_LT(rows[0].latency_ms, 3000);  // cancelled, not run to its end
  EXPECT_GT(rows[0].completion_tokens, 0);
  EXPECT_LE(rows[0].cost, 218);
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
  // The access line says the caller left (a stream's status is 200 from its head on).
  EXPECT_NE(process_->log().find(R"("client_gone":true)"), std::string::npos) << process_->log();
}

TEST_F(DataPlaneTest, AnUpstreamWhoseCertificateDoesNotVerifyIsRefused) {
  // A TLS server with a self-signed certificate: the system CA store does not vouch for it.
  const std::string cert = dir_.path() + "/cert.pem", key_file = dir_.path() + "/key.pem";
  ASSERT_EQ(RunCommand({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=127.0.0.1", "-days", "1", "-keyout", key_file, "-out", cert})
                .exit_code,
            0);
  const pid_t server = fork();
  if (server == 0) {
    const std::string accept = std::to_string(tls_port_);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execl("/usr/bin/openssl", "openssl", "s_server", "-quiet", "-accept", accept.c_str(), "-cert",
          cert.c_str(), "-key", key_file.c_str(), "-www", static_cast<char*>(nullptr));
    _exit(127);
  }
  MintedKey key = Mint(kOneCallBudget);
  TestHttpClient::Reply reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {  // until s_server listens: a refused connection is a 502 too, but says so
    reply = Call(key.secret, ChatBody("hi", 100, "selfsigned/echo"));
    if (reply.body.find("refused") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (std::chrono::steady_clock::now() < deadline);
  kill(server, SIGTERM);
  waitpid(server, nullptr, 0);
  EXPECT_EQ(reply.status, 502) << reply.body;
  EXPECT_NE(reply.body.find("certificate verify failed"), std::string::npos) << reply.body;
  EXPECT_NE(reply.body.find("(self-signed certificate)"), std::string::npos) << reply.body;
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);  // nothing stayed reserved
}

TEST_F(DataPlaneTest, ACallerWhoLeavesBeforeTheAnswerIsCounted499NotAsAFault) {
  // An SDK's timeout is the caller's doing: nginx's 499 in the usage record, the access line
  // and the metrics, never a 500 that would page whoever watches keygate's errors.
  MintedKey key = Mint(kOneCallBudget);
  // The upstream holds its answer 5 s; the caller hangs up once the mock has the call.
  const int fd = SendChat(process_->port(), key.secret, ChatBody("hi", 5),
                          "x-mock-fault: delay:5000\r\n");
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 500 && MockChats() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  close(fd);
  ASSERT_EQ(MockChats(), 1);
  auto rows = WaitForUsage(key.hash, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].status, 499);
  // Nothing of the answer came: the reservation is released, nothing charged (audit Y: a
  // charge of the prompt's bound went unnoticed).
  EXPECT_EQ(rows[0].cost, 0);
  EXPECT_EQ(rows[0].prompt_tokens, 0);
  EXPECT_EQ(rows[0].completion_tokens, 0);
  const std::string counted =
      R"(keygate_http_requests_total{route="/v1/chat/completions",method="POST",status="499"} 1)";
  std::string text = client_->Get("/metrics").body;
  for (int i = 0; i < 100 && text.find(counted) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    text = client_->Get("/metrics").body;
  }
  EXPECT_NE(text.find(counted), std::string::npos) << text;
  EXPECT_EQ(text.find(R"(route="/v1/chat/completions",method="POST",status="500")"),
            std::string::npos)
      << text;
  EXPECT_EQ(process_->log().find("http.no_response"), std::string::npos) << process_->log();
  EXPECT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
}

// RFC 9110 §15.2: interim answers (100 Continue, 103 Early Hints) come before the final one.
// Taken for the answer, the final one would stay on the pooled connection and reach the next
// call, of any key: each call must get its own answer.
TEST_F(DataPlaneTest, AnInterimAnswerIsSkippedAndTheNextCallGetsItsOwnAnswer) {
  MintedKey first = Mint(kOneCallBudget);
  MintedKey second = Mint(kOneCallBudget);
  // One connection to keygate, so both calls use one upstream connection.
  TestHttpClient client("127.0.0.1", process_->port());
  auto call = [&](const MintedKey& key, const std::string& body,
                  const std::string& interim) {
    TestHttpClient::HeaderList headers = {{"Authorization", "Bearer " + key.secret},
                                          {"Content-Type", "application/json"}};
    if (!interim.empty()) headers.emplace_back("x-mock-interim", interim);
    return client.Request("POST", "/v1/chat/completions", body, headers);
  };
  auto continued = call(first, ChatBody("first", 5), "100");
  EXPECT_EQ(continued.status, 200) << continued.body;
  EXPECT_NE(continued.body.find("echo: first"), std::string::npos) << continued.body;
  auto next = call(second, ChatBody("second", 5), "");
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_NE(next.body.find("echo: second"), std::string::npos) << next.body;
  auto hinted = call(first, ChatBody("third", 5, "mock/echo", R"(,"stream":true)"), "103");
  EXPECT_EQ(hinted.status, 200) << hinted.body;
  EXPECT_NE(hinted.body.find("data: [DONE]"), std::string::npos) << hinted.body;
  EXPECT_EQ(hinted.Header("link"), "");  // the interim answer's headers are not the caller's
  auto last = call(second, ChatBody("fourth", 5), "");
  EXPECT_NE(last.body.find("echo: fourth"), std::string::npos) << last.body;
  EXPECT_EQ(MockChats(), 4);
  for (const MintedKey* key : {&first, &second}) {
    const auto rows = WaitForUsage(key->hash, 2);
    ASSERT_EQ(rows.size(), 2u);
    for (const UsageRow& row : rows) EXPECT_EQ(row.status, 200);
  }
  // 101 Switching Protocols was never asked for: a broken upstream, 502.
  auto switched = call(second, ChatBody("fifth", 5), "101");
  EXPECT_EQ(switched.status, 502) << switched.body;
  EXPECT_NE(switched.body.find("101"), std::string::npos) << switched.body;
}

// An upstream that reports more usage than the call could use (above the prompt's upper bound
// and the cap keygate sent) is charged at the reservation, so that spend still never passes
// the limit; one that reports a negative count is charged as if it reported none, never free.
TEST_F(DataPlaneTest, ReportedUsageIsBoundedByTheReservationAndNeverNegative) {
  MintedKey key = Mint(kOneCallBudget);  // admits a call whose worst case is at most $0.0003
  for (const std::string& stream : {std::string(), std::string(R"(,"stream":true)")}) {
    auto inflated = Call(key.secret, ChatBody("hi", 5, "mock/echo", stream),
                         "/v1/chat/completions", {{"x-mock-usage", "1000000000,1000000000"}});
    EXPECT_EQ(inflated.status, 200) << inflated.body;
  }
  auto rows = WaitForUsage(key.hash, 2);
  ASSERT_EQ(rows.size(), 2u);
  for (const UsageRow& row : rows) {
    EXPECT_EQ(row.completion_tokens, 5);  // the cap sent upstream
    EXPECT_GT(row.prompt_tokens, 0);
    EXPECT_LT(row.prompt_tokens, 1000);  // the prompt's upper bound, not the report
    EXPECT_LE(row.cost, 300);
  }
  EXPECT_LE(UsageTotalMicros(key), 300 * 2);
  EXPECT_NE(process_->log().find(R"("level":"error","event":"proxy.usage_above_reservation")"),
            std::string::npos)
      << process_->log();

  MintedKey negative = Mint(kOneCallBudget);
  auto reply = Call(negative.secret, ChatBody("hi", 5), "/v1/chat/completions",
                    {{"x-mock-usage", "-1000,-5000"}});
  EXPECT_EQ(reply.status, 200) << reply.body;
  rows = WaitForUsage(negative.hash, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_GT(rows[0].prompt_tokens, 0);  // the prompt's upper bound, as for an answer without usage
  EXPECT_GT(rows[0].cost, 0);

  // A key without a credit or TPM limit gets no cap sent upstream: its usage counts as
  // reported, even past the catalog's maximum output.
  MintedKey unbounded = Mint();
  reply = Call(unbounded.secret, ChatBody("hi", 5), "/v1/chat/completions",
               {{"x-mock-usage", "1000000,5000"}});
  EXPECT_EQ(reply.status, 200) << reply.body;
  rows = WaitForUsage(unbounded.hash, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].prompt_tokens, 1000000);
  EXPECT_EQ(rows[0].completion_tokens, 5000);
  EXPECT_EQ(rows[0].cost, 1000000 * kEchoInputMicros + 5000 * kEchoOutputMicros);

  // Audit Z: a count no model reaches (5e18 tokens) was charged as reported too, and two such
  // calls wrapped the key's tokens of the minute and its spend negative: a TPM limit set then
  // admitted every call. It is no usage now, charged as an answer without one.
  MintedKey absurd = Mint();
  for (const std::string& stream : {std::string(), std::string(R"(,"stream":true)")}) {
    reply = Call(absurd.secret, ChatBody("hi", 5, "mock/echo", stream), "/v1/chat/completions",
                 {{"x-mock-usage", "5000000000000000000,0"}});
    EXPECT_EQ(reply.status, 200) << reply.body;
  }
  rows = WaitForUsage(absurd.hash, 2);
  ASSERT_EQ(rows.size(), 2u);
  for (const UsageRow& row : rows) {
    EXPECT_GT(row.prompt_tokens, 0);
    EXPECT_LT(row.prompt_tokens, 1000);  // the prompt's upper bound
    EXPECT_GT(row.cost, 0);
  }
  EXPECT_GT(UsageTotalMicros(absurd), 0);
  Update(absurd, R"("tpm_limit": 100)");
  int admitted = 0;
  for (int i = 0; i < 6; ++i) {
    admitted += Call(absurd.secret, ChatBody("hi", 20)).status == 200 ? 1 : 0;
  }
  EXPECT_LT(admitted, 6);  // each reserves 38 tokens, settled to what the mock reports
  rows = WaitForUsage(absurd.hash, 2 + admitted);
  int64_t tokens_of_the_minute = 0;
  for (const UsageRow& row : rows) {
    tokens_of_the_minute += row.prompt_tokens + row.completion_tokens;
  }
  EXPECT_LE(tokens_of_the_minute, 100);
}

// keygate asks upstreams for identity (Accept-Encoding); an answer encoded anyway would reach
// the caller as bytes its client cannot read, without the header that says how. It is a 502,
// plain or streamed, and like every failure releases its reservation.
TEST_F(DataPlaneTest, AnAnswerEncodedThoughNotAskedForIsA502ChargedAsWithoutUsage) {
  MintedKey key = Mint(kOneCallBudget);
  for (const std::string& stream : {std::string(), std::string(R"(,"stream":true)")}) {
    auto reply = Call(key.secret, ChatBody("hi", 5, "mock/echo", stream), "/v1/chat/completions",
                      {{"x-mock-content-encoding", "gzip"}});
    EXPECT_EQ(reply.status, 502) << reply.body;
    EXPECT_NE(reply.body.find("Content-Encoding 'gzip'"), std::string::npos) << reply.body;
    EXPECT_EQ(reply.Header("content-encoding"), "");
  }
  // "identity" is no encoding at all.
  auto plain = Call(key.secret, ChatBody("hi", 5), "/v1/chat/completions",
                    {{"x-mock-content-encoding", "Identity"}});
  EXPECT_EQ(plain.status, 200) << plain.body;
  const auto rows = WaitForUsage(key.hash, 3);
  ASSERT_EQ(rows.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(rows[i].status, 502);
    EXPECT_EQ(rows[i].cost, 0);
  }
  EXPECT_EQ(rows[2].status, 200);
}

// decision 0011, "A crash": calls in flight when keygate is killed are not forgotten. The next
// start charges them at their reservation and puts them back into the windows, so the key
// cannot be admitted its limits over again while they may still run at the provider.
TEST_F(DataPlaneTest, CallsInFlightAtACrashAreChargedAndCountedAfterTheRestart) {
  MintedKey key = Mint(R"("rpm_limit": 2, "credit_limit": 1)");
  const std::string slow = "x-mock-chunks: 40\r\nx-mock-chunk-delay-ms: 100\r\n";
  std::vector<int> streams;
  for (int i = 0; i < 2; ++i) {
    streams.push_back(SendChat(process_->port(), key.secret,
                               ChatBody("hi", 50, "mock/echo", R"(,"stream":true)"), slow));
    ASSERT_GE(streams.back(), 0);
  }
  for (int i = 0; i < 500 && MockChats() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(MockChats(), 2);
  // Past a flush interval (50 ms) the calls are kept in the store.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  process_->Kill();
  for (int fd : streams) close(fd);
  EXPECT_TRUE(UsageRows(key.hash).empty());  // neither call ended

  ASSERT_TRUE(process_->Start({std::string(kUpstreamKeyEnv) + "=" + kUpstreamKey}))
      << process_->log();
  client_ = std::make_unique<TestHttpClient>("127.0.0.1", process_->port());
  EXPECT_NE(process_->log().find("usage.open_calls_charged"), std::string::npos)
      << process_->log();
  const auto rows = UsageRows(key.hash);
  ASSERT_EQ(rows.size(), 2u);
  for (const UsageRow& row : rows) {
    EXPECT_EQ(row.status, 0);          // no answer recorded
    EXPECT_EQ(row.completion_tokens, 50);  // the reserved output
    EXPECT_GT(row.cost, 0);
  }
  EXPECT_EQ(UsageTotalMicros(key), SumCost(rows));
  // Both are in the minute's window: RPM 2 admits no third call.
  EXPECT_EQ(Call(key.secret, ChatBody("again", 5)).status, 429);
  // A clean stop and start charge nothing twice.
  process_->Stop();
  ASSERT_TRUE(process_->Start({std::string(kUpstreamKeyEnv) + "=" + kUpstreamKey}));
  EXPECT_EQ(UsageRows(key.hash).size(), 2u);
}

// Audit, 2026-12-06: with the store refusing writes, a stop dropped every usage record since,
// exited 0, and the restarted server let the key spend its budget again.
TEST_F(DataPlaneTest, WhileTheStoreTakesNoUsageModelCallsAreRefusedAndAStopWaitsForIt) {
  MintedKey key = Mint(R"("credit_limit": 1)");
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 200);
  StoreLock lock(dir_.path() + "/keygate.db");
  // Admitted until usage is a second behind, then refused: 503, usage_unrecorded.
  int admitted = 0;
  TestHttpClient::Reply refused;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    refused = Call(key.secret, ChatBody("hi", 5));
    if (refused.status != 200) break;
    ++admitted;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(refused.status, 503) << refused.body;
  EXPECT_NE(refused.body.find("usage_unrecorded"), std::string::npos) << refused.body;
  EXPECT_EQ(refused.Header("retry-after"), "1");
  EXPECT_GT(admitted, 0);
  EXPECT_EQ(client_->Get("/readyz").status, 503);
  EXPECT_NE(client_->Get("/metrics").body.find(
                "keygate_rejections_total{reason=\"usage_unrecorded\"}"),
            std::string::npos);
  // A stop while the store still refuses waits for it (up to 5 s): released after a second,
  // every admitted call is stored and the stop is clean.
  process_->Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  lock.Release();
  EXPECT_EQ(process_->Wait(), 0) << process_->log();
  EXPECT_EQ(UsageRows(key.hash).size(), static_cast<size_t>(admitted) + 1);
}

// Audit, 2026-12-07: a stream keygate cut at a stop (a second signal, or the drain's deadline)
// was recorded as a caller who left (499, client_gone). It is keygate's doing: the record says
// 503 and the access line does not blame the client. It is charged for what it relayed.
TEST_F(DataPlaneTest, AStreamCutByAStopIsRecordedAsKeygatesNotTheCallers) {
  MintedKey key = Mint();
  std::thread caller([this, &key] {
    TestHttpClient client("127.0.0.1", process_->port());
    try {
      client.StreamLines("POST", "/v1/chat/completions",
                         ChatBody("a b c d e f g h", 100, "mock/echo", R"(,"stream":true)"),
                         {{"Authorization", "Bearer " + key.secret},
                          {"x-mock-chunks", "20"},
                          {"x-mock-chunk-delay-ms", "200"}});
    } catch (const std::exception&) {
      // cut: the stream ends without its last chunk
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  process_->Signal(SIGTERM);  // drains: the stream may run on
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  process_->Signal(SIGINT);  // a second signal cuts it
  EXPECT_EQ(process_->Wait(), 0) << process_->log();
  caller.join();
  auto rows = UsageRows(key.hash);
  ASSERT_EQ(rows.size(), 1u) << process_->log();
  EXPECT_EQ(rows[0].status, 503);
  EXPECT_GT(rows[0].completion_tokens, 0);  // what was relayed
  EXPECT_EQ(process_->log().find(R"("client_gone":true)"), std::string::npos) << process_->log();
}

// Audit, 2026-12-07: a call keygate cut at a stop before any of its answer had gone out got a
// bare close (logged 500, recorded 503). Its caller is told 503 in OpenAI's shape, the access
// line says 503, and the record 503.
class CutTest : public DataPlaneTest {
 protected:
  // Makes a call the mock holds 10 s, runs `stop` once the mock has it, and checks the cut.
  void ExpectACallCutBeforeItsAnswerIsAnswered503(const std::function<void()>& stop) {
    MintedKey key = Mint();
    TestHttpClient::Reply reply;
    std::thread caller([this, &key, &reply] {
      try {
        reply = Call(key.secret, ChatBody("hi", 5), "/v1/chat/completions",
                     {{"x-mock-fault", "delay:10000"}, {"x-request-id", "cut-before-answer"}});
      } catch (const std::exception&) {
        // no answer at all: the status stays 0 and the test fails below
      }
    });
    for (int i = 0; i < 500 && MockChats() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stop();
    EXPECT_EQ(process_->Wait(), 0) << process_->log();
    caller.join();
    EXPECT_EQ(reply.status, 503) << reply.body;
    EXPECT_NE(reply.body.find(R"("error":{)"), std::string::npos) << reply.body;
    EXPECT_NE(reply.body.find("stopping"), std::string::npos) << reply.body;
    EXPECT_EQ(reply.Header("connection"), "close");
    auto rows = UsageRows(key.hash);
    ASSERT_EQ(rows.size(), 1u) << process_->log();
    EXPECT_EQ(rows[0].status, 503);
    std::istringstream log(process_->log());
    std::string access;
    for (std::string line; std::getline(log, line);) {
      if (line.find(R"("event":"http.request")") != std::string::npos &&
          line.find("cut-before-answer") != std::string::npos) {
        access = line;
      }
    }
    EXPECT_NE(access.find(R"("status":503)"), std::string::npos) << process_->log();
  }
};

TEST_F(CutTest, ACallCutByASecondSignalBeforeItsAnswerIsAnswered503) {
  ExpectACallCutBeforeItsAnswerIsAnswered503([this] {
    process_->Signal(SIGTERM);  // drains: the call may run on
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    process_->Signal(SIGINT);  // a second signal cuts it
  });
}

// limits.drain_timeout_s: 0 cuts at once what a stop finds in flight.
class DrainAtOnceTest : public CutTest {
 protected:
  void BeforeStart() override { extra_env_.push_back("KEYGATE_LIMITS_DRAIN_TIMEOUT_S=0"); }
};

TEST_F(DrainAtOnceTest, ACallCutAtTheDrainsEndBeforeItsAnswerIsAnswered503) {
  const auto start = std::chrono::steady_clock::now();
  ExpectACallCutBeforeItsAnswerIsAnswered503([this] { process_->Signal(SIGTERM); });
  // Not the default drain's 20 s, nor the mock's 10.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
}

TEST_F(DataPlaneTest, AStopThatCannotStoreUsageSaysSoAndFails) {
  MintedKey key = Mint(R"("credit_limit": 1)");
  StoreLock lock(dir_.path() + "/keygate.db");
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5)).status, 200);
  // Held past the stop's 5 s of retries: the record is lost, and the exit says so.
  EXPECT_EQ(process_->Stop(), 1) << process_->log();
  EXPECT_NE(process_->log().find("\"event\":\"usage.final_flush_failed\""), std::string::npos);
  EXPECT_NE(process_->log().find("stopped without storing 1 usage records"), std::string::npos)
      << process_->log();
}

TEST_F(DataPlaneTest, MetricsCountRequestsRejectionsAndUpstreamErrors) {
  MintedKey key = Mint(kOneCallBudget);
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 100)).status, 200);
  ASSERT_EQ(Call("sk-kg-notakey", ChatBody("hi", 100)).status, 401);
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 100, "dead/echo")).status, 502);
  auto metrics = client_->Get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.Header("content-type").substr(0, 10), "text/plain");
  const std::string& text = metrics.body;
  EXPECT_NE(text.find(R"(keygate_http_requests_total{route="/v1/chat/completions",method="POST",status="200"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(keygate_http_requests_total{route="/v1/chat/completions",method="POST",status="401"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(keygate_rejections_total{reason="invalid_api_key"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(keygate_upstream_errors_total{provider="dead",outcome="connect_failed"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find("keygate_service_keys "), std::string::npos);
  EXPECT_NE(text.find("keygate_http_connections_open "), std::string::npos);
  // Counts only: no secret, no key hash.
  EXPECT_EQ(text.find(key.secret), std::string::npos);
  EXPECT_EQ(text.find(key.hash), std::string::npos);
}

// Audit DD: a provider refusing keygate's credential for it (a revoked or mistyped provider
// key) showed only as 401s to callers, which read like refusals of their own keys: neither
// counted nor logged. It is relayed as before, and counted and logged for the operator; the
// caller's own mistakes the upstream answers (a 400) are not counted.
TEST_F(DataPlaneTest, AProvidersRefusalOfItsCredentialIsCountedAndLogged) {
  MintedKey key = Mint();
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5), "/v1/chat/completions",
                 {{"x-mock-echo-auth", "1"}})
                .status,
            401);
  ASSERT_EQ(Call(key.secret, ChatBody("hi", 5), "/v1/chat/completions", {{"x-mock-fault", "400"}})
                .status,
            400);
  const std::string text = client_->Get("/metrics").body;
  EXPECT_NE(text.find(R"(keygate_upstream_errors_total{provider="mock",outcome="status_401"} 1)"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find(R"(outcome="status_400")"), std::string::npos) << text;
  EXPECT_EQ(text.find(R"(keygate_rejections_total{reason="invalid_api_key"})"), std::string::npos)
      << text;
  const std::string log = process_->log();
  const size_t line = log.find(R"("event":"proxy.upstream_refused_credential")");
  ASSERT_NE(line, std::string::npos) << log;
  EXPECT_NE(log.find(R"("provider":"mock","status":401)", line), std::string::npos) << log;
}

}  // namespace
}  // namespace keygate::testing
