#include "mock_api.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace mock_upstream {
namespace json = boost::json;

namespace {

constexpr size_t kParseBufferBytes = 16 * 1024;  // most request bodies parse without the heap
constexpr int kTokensPerMessage = 3;
constexpr int kBytesPerToken = 4;
constexpr size_t kEmbeddingDimensions = 8;
constexpr int kRetryAfterSeconds = 1;
constexpr std::string_view kDelayPrefix = "delay:";

struct NamedFault {
  std::string_view name;
  FaultKind kind;
};
constexpr NamedFault kNamedFaults[] = {
    {"400", FaultKind::kBadRequest},  {"429", FaultKind::kRateLimit},
    {"500", FaultKind::kServerError}, {"reset", FaultKind::kReset},
    {"hang", FaultKind::kHang},       {"badchunk", FaultKind::kBadChunk},
    {"error200", FaultKind::kError200},
    {"error200usage", FaultKind::kError200Usage},
};

constexpr std::string_view kModelsBody =
    R"({"object":"list","data":[)"
    R"({"id":"echo","object":"model","created":1700000000,"owned_by":"mock"},)"
    R"({"id":"gpt-4o-mini","object":"model","created":1700000000,"owned_by":"mock"},)"
    R"({"id":"text-embedding-3-small","object":"model","created":1700000000,"owned_by":"mock"}]})";

// ---- small writers ---------------------------------------------------------------------------

void AppendJsonString(std::string* out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (u < 0x20) {
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 0xf]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

void AppendJsonStringOrNull(std::string* out, std::string_view text) {
  if (text.empty()) {
    out->append("null");
  } else {
    AppendJsonString(out, text);
  }
}

void AppendInt(std::string* out, int64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), value);
  out->append(digits, end);
}

void AppendBase64(std::string* out, const unsigned char* data, size_t size) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < size; i += 3) {
    uint32_t n = static_cast<uint32_t>(data[i]) << 16;
    if (i + 1 < size) n |= static_cast<uint32_t>(data[i + 1]) << 8;
    if (i + 2 < size) n |= data[i + 2];
    out->push_back(kAlphabet[(n >> 18) & 63]);
    out->push_back(kAlphabet[(n >> 12) & 63]);
    out->push_back(i + 1 < size ? kAlphabet[(n >> 6) & 63] : '=');
    out->push_back(i + 2 < size ? kAlphabet[n & 63] : '=');
  }
}

// OpenAI's error shape: {"error": {"message", "type", "param", "code"}}.
void SetError(Reply* reply, int status, std::string_view message, std::string_view type,
              std::string_view param = {}, std::string_view code = {}) {
  reply->action = Action::kRespond;
  reply->status = status;
  reply->content_type = "application/json";
  std::string& out = reply->body;
  out.clear();
  out.append(R"({"error":{"message":)");
  AppendJsonString(&out, message);
  out.append(R"(,"type":)");
  AppendJsonString(&out, type);
  out.append(R"(,"param":)");
  AppendJsonStringOrNull(&out, param);
  out.append(R"(,"code":)");
  AppendJsonStringOrNull(&out, code);
  out.append("}}");
}

void SetInvalid(Reply* reply, std::string_view message, std::string_view param = {}) {
  SetError(reply, 400, message, "invalid_request_error", param);
}

// Applies a fault other than kNone. Returns false when there is none to apply.
bool ApplyFault(const Fault& fault, Reply* reply) {
  reply->delay_ms = fault.delay_ms;
  switch (fault.kind) {
    case FaultKind::kNone:
      return false;
    case FaultKind::kBadRequest:
      SetInvalid(reply, "Invalid request (mock fault 400).");
      return true;
    case FaultKind::kRateLimit:
      SetError(reply, 429, "Rate limit reached for requests (mock fault 429).", "requests", {},
               "rate_limit_exceeded");
      reply->retry_after_s = kRetryAfterSeconds;
      return true;
    case FaultKind::kServerError:
      SetError(reply, 500,
               "The server had an error while processing your request (mock fault 500).",
               "server_error");
      return true;
    case FaultKind::kError200:
      SetError(reply, 200, "The model is overloaded (mock fault error200).", "server_error");
      return true;
    case FaultKind::kError200Usage:
      SetError(reply, 200, "The model is overloaded (mock fault error200usage).", "server_error");
      reply->body.pop_back();  // the object's closing brace
      reply->body.append(R"(,"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7}})");
      return true;
    case FaultKind::kReset:
      reply->action = Action::kClose;
      return true;
    case FaultKind::kHang:
      reply->action = Action::kHang;
      return true;
    case FaultKind::kBadChunk:
      reply->action = Action::kBadChunk;
      return true;
  }
  return false;
}

bool ParseIntIn(std::string_view text, int min, int max, int* out) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

// ---- chat -------------------------------------------------------------------------------------

// The text of a message's content: a string, or the "text" of each content part.
void AppendContentText(const json::value& content, std::string* out) {
  if (const json::string* text = content.if_string()) {
    out->append(text->data(), text->size());
    return;
  }
  const json::array* parts = content.if_array();
  if (parts == nullptr) return;
  for (const json::value& part : *parts) {
    const json::object* object = part.if_object();
    if (object == nullptr) continue;
    auto it = object->find("text");
    if (it != object->end() && it->value().is_string()) {
      out->append(it->value().get_string().data(), it->value().get_string().size());
    }
  }
}

struct ChatRequest {
  std::string_view model;
  const json::array* messages = nullptr;
  std::optional<int64_t> max_tokens;  // max_completion_tokens, else max_tokens
  bool stream = false;
  bool include_usage = false;
};

bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

// Cuts `text` after its first `limit` words; returns the number of words kept.
int64_t KeepWords(std::string* text, std::optional<int64_t> limit) {
  int64_t words = 0;
  size_t i = 0;
  while (i < text->size()) {
    while (i < text->size() && IsAsciiSpace((*text)[i])) ++i;
    if (i == text->size()) break;
    if (limit && words == *limit) {
      text->resize(i);
      while (!text->empty() && IsAsciiSpace(text->back())) text->pop_back();
      return words;
    }
    ++words;
    while (i < text->size() && !IsAsciiSpace((*text)[i])) ++i;
  }
  return words;
}

bool ReadTokenLimit(const json::object& body, std::string_view key, ChatRequest* chat,
                    Reply* reply) {
  auto it = body.find(key);
  if (it == body.end() || it->value().is_null()) return true;
  const json::value& value = it->value();
  int64_t limit = value.is_int64() ? value.get_int64() : (value.is_uint64() ? -1 : 0);
  if (limit < 1) {
    SetInvalid(reply, std::string(key) + " must be an integer of at least 1.", key);
    return false;
  }
  if (!chat->max_tokens) chat->max_tokens = limit;
  return true;
}

bool ReadStreamFlags(const json::object& body, ChatRequest* chat, Reply* reply) {
  if (auto it = body.find("stream"); it != body.end() && !it->value().is_null()) {
    if (!it->value().is_bool()) {
      SetInvalid(reply, "stream must be a boolean.", "stream");
      return false;
    }
    chat->stream = it->value().get_bool();
  }
  auto it = body.find("stream_options");
  if (it == body.end() || it->value().is_null()) return true;
  if (!chat->stream) {
    SetInvalid(reply, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
               "stream_options");
    return false;
  }
  const json::object* options = it->value().if_object();
  auto usage = options ? options->find("include_usage") : nullptr;
  chat->include_usage = usage != nullptr && usage != options->end() && usage->value().is_bool() &&
                        usage->value().get_bool();
  return true;
}

bool ReadChat(const json::object& body, ChatRequest* chat, Reply* reply) {
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->value().is_array() ||
      messages->value().get_array().empty()) {
    SetInvalid(reply, "'messages' must be a non-empty array.", "messages");
    return false;
  }
  chat->messages = &messages->value().get_array();
  for (const json::value& message : *chat->messages) {
    const json::object* object = message.if_object();
    auto role = object ? object->find("role") : nullptr;
    if (object == nullptr || role == object->end() || !role->value().is_string()) {
      SetInvalid(reply, "Each message must be an object with a string 'role'.", "messages");
      return false;
    }
  }
  return ReadTokenLimit(body, "max_completion_tokens", chat, reply) &&
         ReadTokenLimit(body, "max_tokens", chat, reply) && ReadStreamFlags(body, chat, reply);
}

// ---- embeddings -------------------------------------------------------------------------------

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Fnv1a(const void* data, size_t size, uint64_t hash = 0xcbf29ce484222325ULL) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 0x100000001b3ULL;
  return hash;
}

// A unit vector derived only from `seed`.
std::array<float, kEmbeddingDimensions> EmbeddingFor(uint64_t seed) {
  std::array<double, kEmbeddingDimensions> raw{};
  double norm = 0;
  for (size_t i = 0; i < kEmbeddingDimensions; ++i) {
    uint64_t bits = SplitMix64(seed + i);
    raw[i] = static_cast<double>(bits >> 11) * 0x1.0p-53 * 2.0 - 1.0;
    norm += raw[i] * raw[i];
  }
  norm = norm > 0 ? std::sqrt(norm) : 1.0;
  std::array<float, kEmbeddingDimensions> out{};
  for (size_t i = 0; i < kEmbeddingDimensions; ++i) out[i] = static_cast<float>(raw[i] / norm);
  return out;
}

void AppendEmbedding(std::string* out, size_t index, uint64_t seed, bool base64) {
  std::array<float, kEmbeddingDimensions> vector = EmbeddingFor(seed);
  if (index > 0) out->push_back(',');
  out->append(R"({"object":"embedding","index":)");
  AppendInt(out, static_cast<int64_t>(index));
  out->append(R"(,"embedding":)");
  if (base64) {  // little-endian float32, as OpenAI sends it
    std::array<unsigned char, sizeof(vector)> bytes{};
    std::memcpy(bytes.data(), vector.data(), sizeof(vector));
    out->push_back('"');
    AppendBase64(out, bytes.data(), bytes.size());
    out->push_back('"');
  } else {
    out->push_back('[');
    for (size_t i = 0; i < vector.size(); ++i) {
      char number[32];
      int n = std::snprintf(number, sizeof(number), "%s%.8g", i ? "," : "", vector[i]);
      out->append(number, static_cast<size_t>(n));
    }
    out->push_back(']');
  }
  out->push_back('}');
}

// One input: a string, or an array of token ids. Returns false when it is neither.
bool EmbedOne(const json::value& input, size_t index, bool base64, std::string* out,
              int64_t* tokens) {
  if (const json::string* text = input.if_string()) {
    if (text->empty()) return false;
    *tokens += (static_cast<int64_t>(text->size()) + kBytesPerToken - 1) / kBytesPerToken;
    AppendEmbedding(out, index, Fnv1a(text->data(), text->size()), base64);
    return true;
  }
  const json::array* ids = input.if_array();
  if (ids == nullptr || ids->empty()) return false;
  uint64_t seed = 0x84222325cbf29ce4ULL;
  for (const json::value& id : *ids) {
    if (!id.is_int64()) return false;
    int64_t token = id.get_int64();
    seed = Fnv1a(&token, sizeof(token), seed);
  }
  *tokens += static_cast<int64_t>(ids->size());
  AppendEmbedding(out, index, seed, base64);
  return true;
}

// ---- chat replies -----------------------------------------------------------------------------

struct Completion {
  std::string text;
  std::string_view finish_reason;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

size_t ContentBytes(const json::value& content) {
  if (const json::string* text = content.if_string()) return text->size();
  size_t bytes = 0;
  if (const json::array* parts = content.if_array()) {
    for (const json::value& part : *parts) {
      const json::object* object = part.if_object();
      auto it = object ? object->find("text") : nullptr;
      if (object && it != object->end() && it->value().is_string()) {
        bytes += it->value().get_string().size();
      }
    }
  }
  return bytes;
}

Completion Compose(const ChatRequest& chat) {
  Completion completion;
  int64_t content_bytes = 0;
  const json::value* last_user = nullptr;
  for (const json::value& message : *chat.messages) {
    const json::object& object = message.get_object();
    const json::value* content = object.if_contains("content");
    if (content != nullptr) content_bytes += static_cast<int64_t>(ContentBytes(*content));
    if (content != nullptr && object.at("role").get_string() == "user") last_user = content;
  }
  if (last_user != nullptr) AppendContentText(*last_user, &completion.text);
  if (completion.text.empty()) {
    completion.text = kFixedReply;
  } else {
    completion.text.insert(0, "echo: ");
  }
  size_t full_size = completion.text.size();
  completion.completion_tokens = KeepWords(&completion.text, chat.max_tokens);
  completion.finish_reason = completion.text.size() < full_size ? "length" : "stop";
  completion.prompt_tokens =
      ChatPromptTokens(content_bytes, static_cast<int64_t>(chat.messages->size()));
  return completion;
}

void AppendUsage(std::string* out, int64_t prompt_tokens, int64_t completion_tokens) {
  out->append(R"({"prompt_tokens":)");
  AppendInt(out, prompt_tokens);
  out->append(R"(,"completion_tokens":)");
  AppendInt(out, completion_tokens);
  out->append(R"(,"total_tokens":)");
  AppendInt(out, prompt_tokens + completion_tokens);
  out->push_back('}');
}

// {"id":"chatcmpl-mock-N","object":OBJECT,"created":T,"model":M,"system_fingerprint":"fp_mock",
void AppendEnvelope(std::string* out, uint64_t id, std::string_view object,
                    std::string_view model) {
  out->append(R"({"id":"chatcmpl-mock-)");
  AppendInt(out, static_cast<int64_t>(id));
  out->append(R"(","object":")");
  out->append(object);
  out->append(R"(","created":)");
  AppendInt(out, static_cast<int64_t>(std::time(nullptr)));
  out->append(R"(,"model":)");
  AppendJsonString(out, model);
  out->append(R"(,"system_fingerprint":"fp_mock",)");
}

void WriteCompletion(const ChatRequest& chat, const Completion& completion, uint64_t id,
                     Reply* reply) {
  std::string& out = reply->body;
  AppendEnvelope(&out, id, "chat.completion", chat.model);
  out.append(R"("choices":[{"index":0,"message":{"role":"assistant","content":)");
  AppendJsonString(&out, completion.text);
  out.append(R"(,"refusal":null},"logprobs":null,"finish_reason":")");
  out.append(completion.finish_reason);
  out.append(R"("}],"usage":)");
  AppendUsage(&out, completion.prompt_tokens, completion.completion_tokens);
  out.push_back('}');
}

// Where the k-th of `parts` near-equal pieces of `text` starts, moved forward to a UTF-8
// character boundary so that no event carries half a character.
size_t PieceStart(std::string_view text, size_t k, size_t parts) {
  size_t at = text.size() * k / parts;
  while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
  return at;
}

void AppendContentEvent(std::string* out, const ChatRequest& chat, uint64_t id,
                        std::string_view piece, bool first, std::string_view finish_reason) {
  out->append("data: ");
  AppendEnvelope(out, id, "chat.completion.chunk", chat.model);
  out->append(R"("choices":[{"index":0,"delta":{)");
  if (first) out->append(R"("role":"assistant",)");
  out->append(R"("content":)");
  AppendJsonString(out, piece);
  out->append(R"(},"logprobs":null,"finish_reason":)");
  AppendJsonStringOrNull(out, finish_reason);
  out->append("}]");
  if (chat.include_usage) out->append(R"(,"usage":null)");
  out->append("}\n\n");
}

void WriteStream(const ChatRequest& chat, const Completion& completion, uint64_t id, int chunks,
                 Reply* reply) {
  reply->action = Action::kStream;
  reply->content_type = "text/event-stream; charset=utf-8";
  std::string& out = reply->body;
  const auto parts = static_cast<size_t>(chunks);
  for (size_t k = 0; k < parts; ++k) {
    size_t begin = PieceStart(completion.text, k, parts);
    size_t end = PieceStart(completion.text, k + 1, parts);
    std::string_view piece = std::string_view(completion.text).substr(begin, end - begin);
    AppendContentEvent(&out, chat, id, piece, k == 0,
                       k + 1 == parts ? completion.finish_reason : std::string_view());
    reply->event_ends.push_back(out.size());
  }
  reply->content_events = parts;
  if (chat.include_usage) {
    out.append("data: ");
    AppendEnvelope(&out, id, "chat.completion.chunk", chat.model);
    out.append(R"("choices":[],"usage":)");
    AppendUsage(&out, completion.prompt_tokens, completion.completion_tokens);
    out.append("}\n\n");
    reply->event_ends.push_back(out.size());
  }
  out.append("data: [DONE]\n\n");
  reply->event_ends.push_back(out.size());
}

// Per-request stream shape from x-mock-chunks / x-mock-chunk-delay-ms, else the defaults.
bool StreamShape(const RequestView& request, const StreamDefaults& defaults, int* chunks,
                 Reply* reply) {
  *chunks = defaults.chunks;
  reply->chunk_delay_ms = defaults.chunk_delay_ms;
  if (request.chunks && !ParseIntIn(*request.chunks, 1, kMaxChunks, chunks)) {
    SetInvalid(reply, "x-mock-chunks must be an integer in 1..10000.");
    return false;
  }
  if (request.chunk_delay_ms &&
      !ParseIntIn(*request.chunk_delay_ms, 0, kMaxDelayMs, &reply->chunk_delay_ms)) {
    SetInvalid(reply, "x-mock-chunk-delay-ms must be an integer in 0..600000.");
    return false;
  }
  return true;
}

// x-mock-usage "PROMPT,COMPLETION" into `completion`'s counts; false (a 400 in `reply`) if
// malformed.
bool OverrideUsage(const RequestView& request, Completion* completion, Reply* reply) {
  if (!request.usage) return true;
  const std::string_view text = *request.usage;
  const size_t comma = text.find(',');
  const auto read = [](std::string_view part, int64_t* out) {
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), *out);
    return ec == std::errc() && end == part.data() + part.size() && !part.empty();
  };
  if (comma == std::string_view::npos || !read(text.substr(0, comma), &completion->prompt_tokens) ||
      !read(text.substr(comma + 1), &completion->completion_tokens)) {
    SetInvalid(reply, "x-mock-usage must be two integers, PROMPT,COMPLETION.");
    return false;
  }
  return true;
}

// `reset`: the stream is to be cut after two content events (fault "reset").
void HandleChat(const json::object& body, std::string_view model, const RequestView& request,
                const StreamDefaults& defaults, bool reset, uint64_t id, Reply* reply) {
  ChatRequest chat;
  chat.model = model;
  if (!ReadChat(body, &chat, reply)) return;
  Completion completion = Compose(chat);
  if (!OverrideUsage(request, &completion, reply)) return;
  if (request.ignore_stream) chat.stream = false;
  if (!chat.stream) return WriteCompletion(chat, completion, id, reply);
  int chunks = 0;
  if (!StreamShape(request, defaults, &chunks, reply)) return;
  WriteStream(chat, completion, id, chunks, reply);
  reply->reset_mid_stream = reset;
}

// ---- embeddings replies -----------------------------------------------------------------------

bool ReadBase64Flag(const json::object& body, bool* base64, Reply* reply) {
  const json::value* format = body.if_contains("encoding_format");
  if (format == nullptr || format->is_null()) return true;
  if (format->is_string() &&
      (format->get_string() == "float" || format->get_string() == "base64")) {
    *base64 = format->get_string() == "base64";
    return true;
  }
  SetInvalid(reply, "encoding_format must be 'float' or 'base64'.", "encoding_format");
  return false;
}

void HandleEmbeddings(const json::object& body, std::string_view model, Reply* reply) {
  bool base64 = false;
  if (!ReadBase64Flag(body, &base64, reply)) return;
  const json::value* input = body.if_contains("input");
  const json::array* many = input ? input->if_array() : nullptr;
  bool single =
      input != nullptr && (many == nullptr || (!many->empty() && many->front().is_number()));
  std::string& out = reply->body;
  out.append(R"({"object":"list","data":[)");
  int64_t tokens = 0;
  bool ok = input != nullptr && (single || !many->empty());
  if (ok && single) ok = EmbedOne(*input, 0, base64, &out, &tokens);
  for (size_t i = 0; ok && !single && i < many->size(); ++i) {
    ok = EmbedOne((*many)[i], i, base64, &out, &tokens);
  }
  if (!ok) {
    SetInvalid(reply, "'input' must be a non-empty string, array of strings or array of token ids.",
               "input");
    return;
  }
  out.append(R"(],"model":)");
  AppendJsonString(&out, model);
  out.append(R"(,"usage":{"prompt_tokens":)");
  AppendInt(&out, tokens);
  out.append(R"(,"total_tokens":)");
  AppendInt(&out, tokens);
  out.append("}}");
}

// ---- routing ----------------------------------------------------------------------------------

enum class Route { kChat, kEmbeddings, kModels, kNotFound, kMethodNotAllowed };

Route RouteOf(std::string_view method, std::string_view path) {
  if (path == "/v1/chat/completions" || path == "/v1/embeddings") {
    if (method != "POST") return Route::kMethodNotAllowed;
    return path == "/v1/embeddings" ? Route::kEmbeddings : Route::kChat;
  }
  if (path == "/v1/models") return method == "GET" ? Route::kModels : Route::kMethodNotAllowed;
  return Route::kNotFound;
}

void HandleControl(std::string_view method, std::string_view path, Stats& stats, Reply* reply) {
  reply->kind = RequestKind::kControl;
  if (path == "/mock/stats" && method == "GET") {
    reply->body = stats.SnapshotJson();
  } else if (path == "/mock/reset" && method == "POST") {
    stats.Reset();
    reply->body = R"({"reset":true})";
  } else if (path == "/mock/stats" || path == "/mock/reset") {
    SetError(reply, 405, "Method not allowed.", "invalid_request_error");
  } else {
    SetError(reply, 404, "Unknown mock control path.", "invalid_request_error");
  }
}

// The fault for a POST: the header's, else the model's "@<fault>" suffix. Returns false (with
// a 400 in `reply`) when either is malformed.
bool ResolveFault(const RequestView& request, std::string_view model, std::optional<Fault>* fault,
                  Reply* reply) {
  if (request.fault) {
    *fault = ParseFault(*request.fault);
    if (!*fault) SetInvalid(reply, "Unknown x-mock-fault '" + std::string(*request.fault) + "'.");
    return fault->has_value();
  }
  size_t at = model.rfind('@');
  if (at == std::string_view::npos) return true;
  *fault = ParseFault(model.substr(at + 1));
  if (!*fault)
    SetInvalid(reply, "Unknown mock fault suffix in model '" + std::string(model) + "'.", "model");
  return fault->has_value();
}

}  // namespace

// ---- public -----------------------------------------------------------------------------------

std::string_view TakeListItem(std::string_view* list, char separator) {
  const size_t end = std::min(list->find(separator), list->size());
  std::string_view item = list->substr(0, end);
  list->remove_prefix(std::min(end + 1, list->size()));
  while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
  while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
  return item;
}

std::optional<Fault> ParseFault(std::string_view spec) {
  Fault fault;
  bool has_delay = false;
  while (!spec.empty()) {
    const std::string_view item = TakeListItem(&spec, ',');
    if (item.substr(0, kDelayPrefix.size()) == kDelayPrefix) {
      std::string_view ms = item.substr(kDelayPrefix.size());
      if (has_delay || !ParseIntIn(ms, 0, kMaxDelayMs, &fault.delay_ms)) return std::nullopt;
      has_delay = true;
      continue;
    }
    auto named = std::find_if(std::begin(kNamedFaults), std::end(kNamedFaults),
                              [&](const NamedFault& f) { return f.name == item; });
    if (named == std::end(kNamedFaults) || fault.kind != FaultKind::kNone) return std::nullopt;
    fault.kind = named->kind;
  }
  if (!has_delay && fault.kind == FaultKind::kNone) return std::nullopt;
  return fault;
}

int64_t ChatPromptTokens(int64_t content_bytes, int64_t message_count) {
  return (content_bytes + kBytesPerToken - 1) / kBytesPerToken + kTokensPerMessage * message_count;
}

void Reply::Clear() {
  action = Action::kRespond;
  kind = RequestKind::kOther;
  delay_ms = 0;
  status = 200;
  content_type = "application/json";
  retry_after_s = 0;
  body.clear();
  event_ends.clear();
  content_events = 0;
  reset_mid_stream = false;
  chunk_delay_ms = 0;
}

}  // namespace mock_upstream

namespace mock_upstream {

void MockApi::Handle(const RequestView& request, Reply* reply) const {
  reply->Clear();
  std::string_view path = request.target.substr(0, request.target.find('?'));
  if (path.substr(0, 6) == "/mock/") return HandleControl(request.method, path, stats_, reply);
  Route route = RouteOf(request.method, path);
  std::string where = std::string(request.method) + " " + std::string(path);
  switch (route) {
    case Route::kNotFound:
      return SetError(reply, 404, "Invalid URL (" + where + ")", "invalid_request_error");
    case Route::kMethodNotAllowed:
      return SetError(reply, 405, "Method not allowed (" + where + ")", "invalid_request_error");
    case Route::kModels: {
      std::optional<Fault> fault;
      if (!ResolveFault(request, {}, &fault, reply)) return;
      if (fault && ApplyFault(*fault, reply)) return;
      reply->body = kModelsBody;
      return;
    }
    case Route::kChat:
    case Route::kEmbeddings:
      return HandlePost(route == Route::kChat, request, reply);
  }
}

void MockApi::HandlePost(bool chat, const RequestView& request, Reply* reply) const {
  reply->kind = chat ? RequestKind::kChat : RequestKind::kEmbeddings;
  unsigned char buffer[kParseBufferBytes];
  json::monotonic_resource resource(buffer, sizeof(buffer));
  json::error_code ec;
  json::value parsed = json::parse(request.body, ec, &resource);
  const json::object* body = ec ? nullptr : parsed.if_object();
  const json::value* model_value = body ? body->if_contains("model") : nullptr;
  std::string_view model = model_value && model_value->is_string()
                               ? std::string_view(model_value->get_string())
                               : std::string_view();
  const json::value* stream = body ? body->if_contains("stream") : nullptr;
  bool streamed = chat && stream != nullptr && stream->is_bool() && stream->get_bool();
  if (streamed) reply->kind = RequestKind::kChatStream;
  std::optional<Fault> fault;
  if (!ResolveFault(request, model, &fault, reply)) return;
  bool reset = fault && fault->kind == FaultKind::kReset;
  if (fault) reply->delay_ms = fault->delay_ms;
  // A stream's reset happens mid-stream, after validation; every other fault happens now.
  if (fault && !(reset && streamed) && ApplyFault(*fault, reply)) return;
  if (body == nullptr) {
    return SetInvalid(reply,
                      "We could not parse the JSON body of your request: it must be a JSON "
                      "object.");
  }
  if (model.empty()) return SetInvalid(reply, "You must provide a model parameter.", "model");
  if (!chat) return HandleEmbeddings(*body, model, reply);
  uint64_t id = next_id_.fetch_add(1, std::memory_order_relaxed) + 1;
  HandleChat(*body, model, request, defaults_, reset, id, reply);
}

}  // namespace mock_upstream
