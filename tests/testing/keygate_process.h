// Starting the real build/keygate (and the mock upstream) for integration tests: a temp data
// directory, a free loopback port, stdout/stderr captured to files in that directory, and
// clean or kill -9 stops.
//
// Thread safety: one test thread owns a KeygateProcess.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace keygate::testing {

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback port that was free a moment ago, below the ephemeral range when there is room
// (so that no outgoing connection takes it before the server it is for binds it).
uint16_t FreePort();

// Runs `argv` to completion; returns its exit status and stdout.
struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv);

class KeygateProcess {
 public:
  // `data_dir` is used as --data; `config_path` may be empty.
  KeygateProcess(std::string data_dir, std::string config_path = "");
  ~KeygateProcess();

  // Starts `keygate serve` on a free port and waits until /healthz answers (10 s at most).
  // Returns false (with the log in `log()`) if it does not come up.
  bool Start(const std::vector<std::string>& extra_env = {});
  // SIGTERM and wait; returns the exit status.
  int Stop();
  // Sends `signal` to the server.
  void Signal(int signal) const;
  // Waits for the server to exit; returns the exit status.
  int Wait();
  // SIGKILL and wait.
  void Kill();

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }  // -1 when not running
  const std::string& data_dir() const { return data_dir_; }
  // Everything the process wrote to stderr and stdout so far.
  std::string log() const;

  // `keygate init --data DIR --org NAME` → {org_id, owner_key}.
  struct Org {
    std::string id;
    std::string owner_key;
  };
  Org Init(const std::string& org_name = "test-org") const;
  // `keygate provisioning-key create` → {id, key}.
  struct Issued {
    std::string id;
    std::string key;
  };
  Issued CreateProvisioningKey(const std::string& org_id, const std::string& name) const;

 private:
  std::string data_dir_;
  std::string config_path_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Extracts a top-level string field from a flat JSON text (tests only).
std::string JsonField(const std::string& json, const std::string& field);

}  // namespace keygate::testing
