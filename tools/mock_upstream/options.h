// Command line of mock_upstream:
//   mock_upstream [--listen HOST:PORT] [--threads N] [--chunks N] [--chunk-delay-ms N]
//                 [--port-file PATH] [--tls-cert PEM --tls-key PEM]
// Each flag also accepts --flag=VALUE. Port 0 binds any free port; --port-file then tells a
// test which one (the file holds the port number and a newline, written atomically).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>

#include "mock_api.h"

namespace mock_upstream {

inline constexpr int kMaxThreads = 256;

struct Options {
  std::string host = "127.0.0.1";  // IPv6 without brackets
  uint16_t port = 9090;
  int threads = 0;  // 0 = one per core
  StreamDefaults stream;
  std::string port_file;  // empty = none
  // Both set: serve HTTPS with this certificate chain and private key (PEM files).
  std::string tls_cert;
  std::string tls_key;
};

enum class ParseOutcome {
  kRun,    // options are complete
  kHelp,   // --help: print Usage() and exit 0
  kError,  // bad arguments: *error says which; print it and Usage() and exit 2
};

ParseOutcome ParseOptions(int argc, char** argv, Options* options, std::string* error);

std::string Usage();

}  // namespace mock_upstream
