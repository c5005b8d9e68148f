// The command line beside a running server: `owner create` adds an owner credential (spec §1),
// commands other than `init` never make a store by mistake, and one store has one server (two
// would each hold a key's windows and spend in memory: twice its limits).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "integration/management_fixture.h"

namespace keygate::testing {
namespace {

TEST_F(ManagementTest, OwnerCreateAddsACredentialOfTheOrgThatWorksBesideTheServer) {
  const CommandResult made =
      RunCommand({KEYGATE_BINARY, "owner", "create", "--data", process_->data_dir(), "--org",
                  a_.org_id, "--name", "second owner"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  const std::string secret = JsonField(made.out, "owner_key");
  const std::string id = JsonField(made.out, "id");
  ASSERT_EQ(secret.rfind("ok-kg-", 0), 0u) << made.out;
  EXPECT_EQ(id.size(), 64u);
  EXPECT_EQ(made.err.find(secret), std::string::npos);
  // Made by another process: the server finds it in the store (bounded wait).
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  do {
    status = client_->Get("/api/owner/keys", secret).status;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (status != 200 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(status, 200);
  // Its own org only.
  const std::string b_key = CreateKeyHash(b_, "of-b");
  EXPECT_EQ(client_->Get("/api/owner/keys/" + b_key, secret).status, 404);
  const auto audit = client_->Get("/api/owner/audit?key=" + id, a_.owner_key);
  EXPECT_NE(audit.body.find("\"owner.create\""), std::string::npos) << audit.body;
  EXPECT_EQ(audit.body.find(secret), std::string::npos);

  const CommandResult stray = RunCommand({KEYGATE_BINARY, "owner", "create", "--data",
                                          process_->data_dir(), "--org", "org_none", "--name",
                                          "x"});
  EXPECT_EQ(stray.exit_code, 1);
  EXPECT_NE(stray.err.find("organization not found"), std::string::npos) << stray.err;
}

TEST_F(ManagementTest, NamesFromTheCommandLineMustBeUtf8AndCountCharacters) {
  // Copied into audit entries and answers, a name that is not UTF-8 would make them invalid.
  const CommandResult bad = RunCommand({KEYGATE_BINARY, "owner", "create", "--data",
                                        process_->data_dir(), "--org", a_.org_id, "--name",
                                        "caf\xe9"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("name must be valid UTF-8"), std::string::npos) << bad.err;
  // 200 characters of three bytes each are 200 characters, within the 256 allowed.
  std::string long_name;
  for (int i = 0; i < 200; ++i) long_name += "\xe9\x8d\xb5";
  auto created = client_->Post("/api/owner/provisioning-keys",
                               R"({"name":")" + long_name + R"("})", a_.owner_key);
  EXPECT_EQ(created.status, 201) << created.body;
  const auto audit = client_->Get("/api/owner/audit", a_.owner_key);
  EXPECT_EQ(audit.status, 200);
  Parse(audit.body);  // still JSON
}

TEST_F(ManagementTest, CommandsOtherThanInitNeverMakeAStore) {
  TempDir empty;
  const std::string data = empty.path() + "/data";
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{KEYGATE_BINARY, "provisioning-key", "create", "--data", data,
                                 "--org", a_.org_id, "--name", "x"},
        std::vector<std::string>{KEYGATE_BINARY, "owner", "create", "--data", data, "--org",
                                 a_.org_id, "--name", "x"}}) {
    const CommandResult refused = RunCommand(command);
    EXPECT_EQ(refused.exit_code, 1) << command[1];
    EXPECT_NE(refused.err.find("no store at " + data + "/keygate.db"), std::string::npos)
        << refused.err;
    EXPECT_FALSE(std::filesystem::exists(data + "/keygate.db")) << command[1];
    // An empty file (a failed copy, an interrupted init) is no store either, and stays empty.
    std::filesystem::create_directories(data);
    { std::ofstream touch(data + "/keygate.db"); }
    const CommandResult on_empty = RunCommand(command);
    EXPECT_EQ(on_empty.exit_code, 1) << command[1];
    EXPECT_NE(on_empty.err.find("no store at"), std::string::npos) << on_empty.err;
    EXPECT_EQ(std::filesystem::file_size(data + "/keygate.db"), 0u) << command[1];
    std::filesystem::remove(data + "/keygate.db");
  }
}

// Audit, 2026-12-07: `init --org ""` failed after making an empty store, which the other
// commands then took for one; a name of spaces was taken; an unknown command was not named.
TEST_F(ManagementTest, InitChecksItsArgumentsBeforeMakingAStoreAndUnknownCommandsAreNamed) {
  TempDir empty;
  const std::string data = empty.path() + "/data";
  for (const std::string& org : {std::string(), std::string("   "), std::string(300, 'o')}) {
    const CommandResult refused =
        RunCommand({KEYGATE_BINARY, "init", "--data", data, "--org", org});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_NE(refused.err.find("org must"), std::string::npos) << refused.err;
    EXPECT_FALSE(std::filesystem::exists(data + "/keygate.db"));
  }
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{KEYGATE_BINARY, "bogus"},
        std::vector<std::string>{KEYGATE_BINARY, "provisioning-key", "list"}}) {
    const CommandResult unknown = RunCommand(command);
    EXPECT_NE(unknown.exit_code, 0);
    EXPECT_NE(unknown.err.find("unknown command '" + command.back() + "'"), std::string::npos)
        << unknown.err;
  }
}

// Audit V: a flag given an empty value (`--data "$DATA_DIR"`, the variable unset) was taken
// for a flag not given: serve started on a new, empty store in ./data, or on 127.0.0.1:8080.
TEST_F(ManagementTest, AFlagGivenAnEmptyValueIsRefused) {
  for (const char* flag : {"--data", "--config", "--listen"}) {
    for (const char* command : {"serve", "init"}) {
      if (std::string(flag) == "--listen" && std::string(command) == "init") continue;
      const CommandResult refused = RunCommand({KEYGATE_BINARY, command, flag, ""});
      EXPECT_NE(refused.exit_code, 0) << command << " " << flag;
      EXPECT_NE(refused.err.find(std::string(flag) + ": must not be empty"), std::string::npos)
          << refused.err;
    }
  }
  EXPECT_FALSE(std::filesystem::exists("data/keygate.db"));
}

TEST_F(ManagementTest, ASecondServerOnTheSameStoreIsRefusedUntilTheFirstIsGone) {
  KeygateProcess second(process_->data_dir());
  EXPECT_FALSE(second.Start());
  EXPECT_NE(second.log().find("already serves the store"), std::string::npos) << second.log();
  EXPECT_NE(second.log().find("(pid "), std::string::npos) << second.log();
  EXPECT_EQ(client_->Get("/healthz").status, 200);  // the first one serves on
  // The lock goes with its process, however it ends.
  process_->Kill();
  ASSERT_TRUE(second.Start()) << second.log();
  TestHttpClient other("127.0.0.1", second.port());
  EXPECT_EQ(other.Get("/api/owner/keys", a_.owner_key).status, 200);
}

// Audit AA: after an operator removed the store's -wal under a running server, the CLI wrote
// to a -wal of its own, which the server never read: three `provisioning-key create` printed
// secrets, and a kill -9 of the server lost two of them. Beside a server, a missing -wal or
// -shm makes every command refuse, writing nothing; the server's restart lets them run again.
TEST_F(ManagementTest, CommandsRefuseToWriteBesideAServerWhoseFilesWereRemoved) {
  const std::string db = process_->data_dir() + "/keygate.db";
  for (const char* suffix : {"-wal", "-shm"}) {
    ASSERT_TRUE(std::filesystem::remove(db + suffix)) << suffix;
    const std::vector<std::vector<std::string>> commands = {
        {KEYGATE_BINARY, "provisioning-key", "create", "--data", process_->data_dir(), "--org",
         a_.org_id, "--name", "after-removal"},
        {KEYGATE_BINARY, "owner", "create", "--data", process_->data_dir(), "--org", a_.org_id,
         "--name", "after-removal"},
        {KEYGATE_BINARY, "init", "--data", process_->data_dir(), "--org", "after-removal"}};
    for (const auto& command : commands) {
      const CommandResult refused = RunCommand(command);
      EXPECT_EQ(refused.exit_code, 1) << command[1] << " " << refused.out;
      EXPECT_EQ(refused.out, "") << command[1];
      EXPECT_NE(refused.err.find(db + suffix + " is missing"), std::string::npos)
          << command[1] << " " << refused.err;
      EXPECT_NE(refused.err.find("(pid "), std::string::npos) << refused.err;
    }
    EXPECT_FALSE(std::filesystem::exists(db + suffix)) << "made anew by a command: " << suffix;
    process_->Stop();  // exits 1: its files were removed
    ASSERT_TRUE(process_->Start()) << process_->log();
  }
  // Beside a whole store, and with no server at all, they run.
  const CommandResult made =
      RunCommand({KEYGATE_BINARY, "provisioning-key", "create", "--data", process_->data_dir(),
                  "--org", a_.org_id, "--name", "beside-a-whole-store"});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(process_->Stop(), 0);
  const CommandResult alone =
      RunCommand({KEYGATE_BINARY, "provisioning-key", "create", "--data", process_->data_dir(),
                  "--org", a_.org_id, "--name", "with-no-server"});
  EXPECT_EQ(alone.exit_code, 0) << alone.err;
}

// Audit BB: under a descriptor limit of 64 and limits.max_connections at 10,000, keygate ran
// out long before it refused a connection, and nothing said so at the start. The soft limit is
// raised to the hard one; a hard limit too low is told. (`--data` names a file: serve stops
// right after the warning.)
TEST_F(ManagementTest, AStartUnderALowDescriptorLimitWarns) {
  const std::string file = dir_.path() + "/not-a-directory";
  std::ofstream(file) << "x";
  const CommandResult low = RunCommand({"/usr/bin/prlimit", "--nofile=512:512", KEYGATE_BINARY,
                                        "serve", "--data", file, "--listen", "127.0.0.1:0"});
  EXPECT_EQ(low.exit_code, 1) << low.err;
  EXPECT_NE(low.err.find(R"("event":"server.descriptor_limit","open_files_limit":512)"),
            std::string::npos)
      << low.err;
  // A soft limit below a hard one that suffices: raised, no warning (where this machine's hard
  // limit suffices: raising it takes a privilege).
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < 2 * 10'000 + 256) return;
  const std::string hard =
      limit.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(limit.rlim_max);
  const CommandResult raised =
      RunCommand({"/usr/bin/prlimit", "--nofile=512:" + hard, KEYGATE_BINARY, "serve", "--data",
                  file, "--listen", "127.0.0.1:0"});
  EXPECT_EQ(raised.exit_code, 1) << raised.err;
  EXPECT_EQ(raised.err.find("server.descriptor_limit"), std::string::npos) << raised.err;
}

// Audit BB (session 22): the log was written as each line was made, so a reader that stopped
// reading it (a stalled log shipper) stopped the gateway, /healthz included, once the pipe was
// full. Nobody reads this server's stderr: hundreds of calls, each logging a line, fill the
// pipe many times over, and every one is answered; once read, the lines are there.
TEST_F(ManagementTest, AGatewayWhoseLogNobodyReadsKeepsServing) {
  ASSERT_EQ(process_->Stop(), 0);
  int log_pipe[2];
  ASSERT_EQ(pipe(log_pipe), 0);
  const std::string listen = "127.0.0.1:" + std::to_string(FreePort());
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(log_pipe[1], STDERR_FILENO);
    dup2(open("/dev/null", O_WRONLY), STDOUT_FILENO);
    close(log_pipe[0]);
    execl(KEYGATE_BINARY, KEYGATE_BINARY, "serve", "--data", dir_.path().c_str(), "--listen",
          listen.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(log_pipe[1]);
  struct Reaped {
    pid_t pid;
    ~Reaped() {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaped{pid};
  TestHttpClient client("127.0.0.1", static_cast<uint16_t>(std::stoi(listen.substr(10))));
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    try {
      up = client.Get("/healthz").status == 200;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ASSERT_TRUE(up);
  constexpr int kCalls = 600;  // ~300 bytes of access line each: the pipe's 64 KiB three times
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_EQ(client.Get("/api/v1/keys", a_.pk).status, 200) << i;
  }
  EXPECT_EQ(client.Get("/healthz").status, 200);
  EXPECT_NE(client.Get("/metrics").body.find("keygate_log_lines_dropped_total 0"),
            std::string::npos);
  // The reader is back: every line, whole, then the stop's.
  kill(pid, SIGTERM);
  std::string log;
  char buffer[65536];
  for (pollfd p{log_pipe[0], POLLIN, 0}; poll(&p, 1, 10'000) > 0;) {
    const ssize_t n = read(log_pipe[0], buffer, sizeof buffer);
    if (n <= 0) break;
    log.append(buffer, static_cast<size_t>(n));
  }
  close(log_pipe[0]);
  size_t calls = 0;
  for (size_t at = log.find("\"path\":\"/api/v1/keys\""); at != std::string::npos;
       at = log.find("\"path\":\"/api/v1/keys\"", at + 1)) {
    ++calls;
  }
  EXPECT_EQ(calls, static_cast<size_t>(kCalls));
  EXPECT_NE(log.find("\"event\":\"server.stopped\""), std::string::npos) << log.substr(0, 500);
}

}  // namespace
}  // namespace keygate::testing
