#include "testing/keygate_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <boost/json/parse.hpp>

namespace keygate::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// fork/exec with stdout and stderr redirected to files; returns the child's pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& out_path,
            const std::string& err_path, const std::vector<std::string>& env) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  dup2(out, STDOUT_FILENO);
  dup2(err, STDERR_FILENO);
  for (const std::string& kv : env) putenv(const_cast<char*>(kv.c_str()));
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

bool HealthzAnswers(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (ok) {
    const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ok = write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1);
    char buf[64] = {};
    ok = ok && read(fd, buf, sizeof buf - 1) > 0 && std::string(buf).find(" 200 ") != std::string::npos;
  }
  close(fd);
  return ok;
}

}  // namespace

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "keygate-test-XXXXXX").string();
  path_ = mkdtemp(tmpl.data());
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

// The lowest port the kernel hands out for outgoing connections (and for a bind to port 0).
int EphemeralLow() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  int high = 0;
  return range >> low >> high ? low : 32768;
}

// Whether `port` can be bound on loopback now.
bool Bindable(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return bound;
}

}  // namespace

uint16_t FreePort() {
  // Below the ephemeral range when there is room: a port from it can be taken, between this
  // pick and the server's bind, as the local port of any outgoing connection (a fixture's
  // HTTPS mock once failed to start so).
  constexpr int kLowest = 10'000;
  const int ephemeral = EphemeralLow();
  if (ephemeral - kLowest >= 1'000) {
    std::random_device random;
    std::uniform_int_distribution<int> pick(kLowest, ephemeral - 1);
    for (int tries = 0; tries < 100; ++tries) {
      const auto port = static_cast<uint16_t>(pick(random));
      if (Bindable(port)) return port;
    }
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

CommandResult RunCommand(const std::vector<std::string>& argv) {
  TempDir dir;
  const std::string out = dir.path() + "/out", err = dir.path() + "/err";
  pid_t pid = Spawn(argv, out, err, {});
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(out), ReadFile(err)};
}

KeygateProcess::KeygateProcess(std::string data_dir, std::string config_path)
    : data_dir_(std::move(data_dir)), config_path_(std::move(config_path)) {}

KeygateProcess::~KeygateProcess() {
  if (pid_ > 0) Kill();
}

bool KeygateProcess::Start(const std::vector<std::string>& extra_env) {
  port_ = FreePort();
  std::vector<std::string> argv = {KEYGATE_BINARY, "serve", "--data", data_dir_, "--listen",
                                   "127.0.0.1:" + std::to_string(port_)};
  if (!config_path_.empty()) {
    argv.push_back("--config");
    argv.push_back(config_path_);
  }
  pid_ = Spawn(argv, data_dir_ + "/stdout.log", data_dir_ + "/stderr.log", extra_env);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (HealthzAnswers(port_)) return true;
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int KeygateProcess::Stop() {
  Signal(SIGTERM);
  return Wait();
}

void KeygateProcess::Signal(int signal) const {
  if (pid_ > 0) kill(pid_, signal);
}

int KeygateProcess::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void KeygateProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::string KeygateProcess::log() const {
  return ReadFile(data_dir_ + "/stderr.log") + ReadFile(data_dir_ + "/stdout.log");
}

KeygateProcess::Org KeygateProcess::Init(const std::string& org_name) const {
  CommandResult r = RunCommand({KEYGATE_BINARY, "init", "--data", data_dir_, "--org", org_name});
  return {JsonField(r.out, "org_id"), JsonField(r.out, "owner_key")};
}

KeygateProcess::Issued KeygateProcess::CreateProvisioningKey(const std::string& org_id,
                                                             const std::string& name) const {
  CommandResult r = RunCommand({KEYGATE_BINARY, "provisioning-key", "create", "--data", data_dir_,
                                "--org", org_id, "--name", name});
  return {JsonField(r.out, "id"), JsonField(r.out, "key")};
}

std::string JsonField(const std::string& json, const std::string& field) {
  boost::system::error_code ec;
  auto value = boost::json::parse(json, ec);
  if (ec || !value.is_object()) return "";
  auto* found = value.as_object().if_contains(field);
  if (found == nullptr || !found->is_string()) return "";
  return std::string(found->as_string());
}

}  // namespace keygate::testing
