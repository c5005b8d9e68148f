#include "options.h"

#include <charconv>
#include <string_view>

namespace mock_upstream {
namespace {

constexpr int kMaxPort = 65535;

bool ParseInt(std::string_view text, int min, int max, int* out) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

// HOST:PORT or [V6]:PORT.
bool ParseListen(std::string_view text, Options* options) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = text.substr(0, colon);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
    host = host.substr(1, host.size() - 2);
  }
  int port = 0;
  if (!ParseInt(text.substr(colon + 1), 0, kMaxPort, &port)) return false;
  options->host = std::string(host);
  options->port = static_cast<uint16_t>(port);
  return true;
}

bool Apply(std::string_view flag, std::string_view value, Options* options, std::string* error) {
  bool ok = false;
  if (flag == "--listen") {
    ok = ParseListen(value, options);
  } else if (flag == "--threads") {
    ok = ParseInt(value, 1, kMaxThreads, &options->threads);
  } else if (flag == "--chunks") {
    ok = ParseInt(value, 1, kMaxChunks, &options->stream.chunks);
  } else if (flag == "--chunk-delay-ms") {
    ok = ParseInt(value, 0, kMaxDelayMs, &options->stream.chunk_delay_ms);
  } else if (flag == "--port-file") {
    ok = !value.empty();
    options->port_file = std::string(value);
  } else if (flag == "--tls-cert") {
    ok = !value.empty();
    options->tls_cert = std::string(value);
  } else if (flag == "--tls-key") {
    ok = !value.empty();
    options->tls_key = std::string(value);
  } else {
    *error = "unknown flag " + std::string(flag);
    return false;
  }
  if (!ok) *error = "bad value for " + std::string(flag) + ": '" + std::string(value) + "'";
  return ok;
}

}  // namespace

ParseOutcome ParseOptions(int argc, char** argv, Options* options, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") return ParseOutcome::kHelp;
    std::string_view flag = arg;
    std::string_view value;
    size_t equals = arg.find('=');
    if (equals != std::string_view::npos) flag = arg.substr(0, equals);
    // An unknown flag is named as such, not as one missing its value: Apply() on a scratch
    // copy tells which flags exist.
    Options scratch;
    std::string probe;
    if (!Apply(flag, "", &scratch, &probe) && probe.rfind("unknown flag", 0) == 0) {
      *error = probe;
      return ParseOutcome::kError;
    }
    if (equals != std::string_view::npos) {
      value = arg.substr(equals + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      *error = "missing value for " + std::string(arg);
      return ParseOutcome::kError;
    }
    if (!Apply(flag, value, options, error)) return ParseOutcome::kError;
  }
  if (options->tls_cert.empty() != options->tls_key.empty()) {
    *error = "--tls-cert and --tls-key go together";
    return ParseOutcome::kError;
  }
  return ParseOutcome::kRun;
}

std::string Usage() {
  return "usage: mock_upstream [--listen HOST:PORT] [--threads N] [--chunks N]\n"
         "                     [--chunk-delay-ms N] [--port-file PATH]\n"
         "                     [--tls-cert PEM --tls-key PEM]\n"
         "  --listen HOST:PORT    address to serve on (default 127.0.0.1:9090; port 0 = any free)\n"
         "  --threads N           io threads (default: one per core)\n"
         "  --chunks N            content chunks per stream, 1..10000 (default 4)\n"
         "  --chunk-delay-ms N    pause between stream chunks, 0..600000 (default 0)\n"
         "  --port-file PATH      write the bound port to PATH once listening\n"
         "  --tls-cert, --tls-key serve HTTPS with this certificate chain and key (PEM files)\n"
         "Per request: header x-mock-fault or model suffix @FAULT, FAULT one of delay:MS, 400,\n"
         "429, 500, error200 (a 200 whose body is an error; error200usage: with usage), reset,\n"
         "hang, badchunk (or delay:MS,FAULT); headers x-mock-chunks and\n"
         "x-mock-chunk-delay-ms override the stream shape; x-mock-stream-framing: length sends a\n"
         "stream with Content-Length; x-mock-content-type the answer's Content-Type (none: no\n"
         "header); x-mock-interim: CODE an interim 1xx answer first; x-mock-usage:\n"
         "PROMPT,COMPLETION the usage a chat answer reports; x-mock-content-encoding: NAME a\n"
         "Content-Encoding header (the body stays as it is); x-mock-ignore-stream: a plain\n"
         "answer to a stream request; x-mock-echo-auth: a 401 quoting the Authorization received\n"
         "(x-mock-echo-auth: escaped, every character as a \\u escape; escaped-nan, so and the\n"
         "body not JSON to a strict parser (a NaN); escaped200, escaped in a 200; slash, each\n"
         "/ as \\/;\n"
         "text200, a 200\n"
         "text/plain);\n"
         "x-mock-extra-headers: NAME: VALUE; NAME: VALUE more header lines in the answer;\n"
         "x-mock-echo-auth-in-stream: a stream whose first event quotes the Authorization\n"
         "(escaped: as \\u escapes; escaped-nan: so, with a NaN; slash: / as \\/);\n"
         "x-mock-unterminated: a stream without [DONE], its last event without its blank line;\n"
         "x-mock-stray-after: a second answer, unasked, right after a plain answer;\n"
         "x-mock-body-later-ms: MS a plain answer's head with a few spaces, its body MS ms later.\n"
         "GET /mock/stats, POST /mock/reset.\n";
}

}  // namespace mock_upstream
