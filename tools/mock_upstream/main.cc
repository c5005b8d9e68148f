// mock_upstream: an OpenAI-compatible fake provider for keygate's tests, benchmarks and the
// `make run` demo. Behaviour: mock_api.h. Command line: options.h. Transport: server.h.
//
// Prints "mock_upstream listening on HOST:PORT" on stdout once it accepts connections, writes
// the port to --port-file if given, and exits 0 on SIGINT or SIGTERM; exits 1 if it cannot
// listen and 2 on bad arguments.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "mock_api.h"
#include "options.h"
#include "server.h"
#include "stats.h"

namespace {

// Writes "<port>\n" to a temporary file and renames it into place, so that a test polling
// `path` never reads a half-written number.
bool WritePortFile(const std::string& path, uint16_t port) {
  std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << port << "\n";
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  return !ec;
}

int Serve(const mock_upstream::Options& options) {
  mock_upstream::Stats stats(mock_upstream::Server::ThreadCount(options));
  mock_upstream::MockApi api(options.stream, stats);
  mock_upstream::Server server(options, api, stats);
  if (!options.port_file.empty() && !WritePortFile(options.port_file, server.port())) {
    std::fprintf(stderr, "mock_upstream: cannot write port file %s\n", options.port_file.c_str());
    return 1;
  }
  std::printf("mock_upstream listening on %s\n", server.address().c_str());
  std::fflush(stdout);
  server.Run();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mock_upstream::Options options;
  std::string error;
  switch (mock_upstream::ParseOptions(argc, argv, &options, &error)) {
    case mock_upstream::ParseOutcome::kHelp:
      std::fputs(mock_upstream::Usage().c_str(), stdout);
      return 0;
    case mock_upstream::ParseOutcome::kError:
      std::fprintf(stderr, "mock_upstream: %s\n%s", error.c_str(), mock_upstream::Usage().c_str());
      return 2;
    case mock_upstream::ParseOutcome::kRun:
      break;
  }
  try {
    return Serve(options);
  } catch (const std::exception& e) {  // startup only: cannot bind, bad address
    std::fprintf(stderr, "mock_upstream: cannot listen on %s:%u: %s\n", options.host.c_str(),
                 static_cast<unsigned>(options.port), e.what());
    return 1;
  }
}
