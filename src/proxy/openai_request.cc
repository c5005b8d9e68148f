#include "proxy/openai_request.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <span>
#include <utility>
#include <vector>

#include <boost/json/error.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/json_text.h"
#include "proxy/chat_fast_parse.h"
#include "proxy/openai_params.h"

namespace keygate::proxy {
namespace {

namespace json = boost::json;

// Fields outside `messages` that the model reads as part of its prompt: tool and function
// schemas and the response format are rendered into it.
constexpr std::string_view kPromptFields[] = {"tools", "functions", "tool_choice",
                                              "function_call", "response_format"};

// The members each endpoint reads itself (their text is counted where they are read).
constexpr std::string_view kReadChatFields[] = {"model", "messages", "max_tokens",
                                                "max_completion_tokens", "n", "stream",
                                                "stream_options"};
constexpr std::string_view kReadEmbeddingFields[] = {"model", "input"};

Error Invalid(std::string message, std::string param) {
  return Error::InvalidArgument(std::move(message), std::move(param));
}

std::string Indexed(std::string_view base, size_t index) {
  return std::string(base) + "[" + std::to_string(index) + "]";
}

// UTF-8 bytes of a value as the model would read it: a string's own bytes, the JSON text of
// anything else (an upper bound of its rendering).
int64_t TextBytes(const json::value& value) {
  if (value.is_string()) return static_cast<int64_t>(value.get_string().size());
  if (value.is_null()) return 0;
  return static_cast<int64_t>(json::serialize(value).size());
}

// The text of the top-level members of `body` keygate knows nothing of (neither read nor in
// openai_params.h's table): a provider's extensions, forwarded as written, which may well reach
// the model (vLLM's `documents` and `chat_template`, `system`, `prompt`...), so they count
// toward the prompt (audit R: they went upstream uncounted, and usage above the reservation was
// not charged; audit S: on embeddings too).
int64_t UnknownMembersBytes(const json::object& body, Endpoint endpoint) {
  const bool chat = endpoint == Endpoint::kChatCompletions;
  const auto read = chat ? std::span<const std::string_view>(kReadChatFields)
                         : std::span<const std::string_view>(kReadEmbeddingFields);
  int64_t bytes = 0;
  for (const json::key_value_pair& member : body) {
    if (FindParamRule(endpoint, member.key()) != nullptr ||
        std::find(read.begin(), read.end(), member.key()) != read.end()) {
      continue;
    }
    bytes += TextBytes(member.value());
  }
  return bytes;
}

// Bytes of the stack arena a body is parsed into; a larger body continues on the heap.
constexpr size_t kArenaBytes = 4096;

// Parses `body` with a parser the thread reuses, into `resource`. The value lives as long as
// the resource.
Result<json::value> ParseObject(std::string_view body, json::monotonic_resource& resource) {
  thread_local json::parser parser(json::storage_ptr(), [] {
    json::parse_options options;
    options.max_depth = kMaxBodyDepth;
    return options;
  }());
  parser.reset(&resource);
  boost::system::error_code ec;
  parser.write(body.data(), body.size(), ec);
  if (ec) {
    parser.reset();
    if (ec == json::error::too_deep) {
      return Invalid("the request body nests deeper than " + std::to_string(kMaxBodyDepth) +
                         " levels of objects and arrays",
                     "");
    }
    return Invalid("the request body is not valid JSON (" + ec.message() +
                       "); send a JSON object with Content-Type: application/json",
                   "");
  }
  json::value document = parser.release();
  if (!document.is_object()) return Invalid("the request body must be a JSON object", "");
  return document;
}

bool IsIntegral(const json::value& value) {
  if (value.is_int64() || value.is_uint64()) return true;
  return value.is_double() && std::isfinite(value.get_double()) &&
         std::floor(value.get_double()) == value.get_double();
}

// Whether `value` is of a kind `kinds` (JsonKind bits) allows and, for a number, at least `min`.
bool Fits(const json::value& value, unsigned kinds, int64_t min) {
  switch (value.kind()) {
    case json::kind::null: return (kinds & kJsonNull) != 0;
    case json::kind::bool_: return (kinds & kJsonBool) != 0;
    case json::kind::string: return (kinds & kJsonString) != 0;
    case json::kind::object: return (kinds & kJsonObject) != 0;
    case json::kind::array: return (kinds & kJsonArray) != 0;
    default: break;
  }
  // A number beyond a double's range (1e400) reads as infinite: no provider means anything by it.
  const double number = value.to_number<double>();
  const bool kind_ok =
      (kinds & kJsonNumber) != 0 || ((kinds & kJsonInteger) != 0 && IsIntegral(value));
  return kind_ok && std::isfinite(number) && number >= static_cast<double>(min);
}

// Whether `value` fits `rule`, its elements or member values included.
bool FitsRule(const json::value& value, const ParamRule& rule) {
  if (!Fits(value, rule.kinds, rule.min)) return false;
  if (rule.item_kinds == 0) return true;
  const auto item_fits = [&rule](const json::value& item) {
    return Fits(item, rule.item_kinds, INT64_MIN);
  };
  if (const json::array* items = value.if_array()) {
    return std::all_of(items->begin(), items->end(), item_fits);
  }
  if (const json::object* members = value.if_object()) {
    return std::all_of(members->begin(), members->end(),
                       [&](const json::key_value_pair& member) { return item_fits(member.value()); });
  }
  return true;
}

// The members of openai_params.h's table, each of the kind it must be.
Status CheckParams(const json::object& body, Endpoint endpoint) {
  for (const auto& member : body) {
    const ParamRule* rule = FindParamRule(endpoint, member.key());
    if (rule == nullptr || FitsRule(member.value(), *rule)) continue;
    return Invalid(std::string(rule->name) + " must be " + std::string(rule->expected),
                   std::string(rule->name));
  }
  return OkStatus();
}

// The body without `model`, as written (ModelRequest::body_without_model): `text` is the body
// that parsed into `body`.
std::string BodyWithoutModel(std::string_view text, const json::object& body, Endpoint endpoint,
                             bool stream) {
  const std::vector<JsonMemberText> members = ObjectMembers(text);
  std::vector<std::string> names;
  names.reserve(members.size());
  for (const JsonMemberText& member : members) names.push_back(JsonUnescape(member.raw_name));
  std::string out;
  out.reserve(text.size() + 40);
  out += '{';
  for (size_t i = 0; i < members.size(); ++i) {
    const std::string& name = names[i];
    const bool cap = endpoint == Endpoint::kChatCompletions &&
                     (name == "max_tokens" || name == "max_completion_tokens");
    const bool repeated_later =
        std::find(names.begin() + static_cast<std::ptrdiff_t>(i) + 1, names.end(), name) !=
        names.end();
    if (name == "model" || name == "stream_options" || cap || repeated_later) continue;
    if (out.size() > 1) out += ',';
    out.append("\"").append(members[i].raw_name).append("\":").append(members[i].value);
  }
  if (stream) {
    // Usage is always asked for, so that the real cost settles (spec data-plane.md
    // "Streaming"); the caller's other stream options are kept.
    json::object options;
    const json::value* given = body.if_contains("stream_options");
    if (given != nullptr && given->is_object()) options = given->get_object();
    options["include_usage"] = true;
    if (out.size() > 1) out += ',';
    out.append("\"stream_options\":").append(json::serialize(options));
  }
  out += '}';
  return out;
}

Result<std::string> ReadModel(const json::object& body) {
  const json::value* model = body.if_contains("model");
  if (model == nullptr || model->is_null()) {
    return Invalid("you must provide a model parameter, e.g. \"provider/model\"", "model");
  }
  if (!model->is_string()) return Invalid("model must be a string", "model");
  if (model->get_string().empty()) return Invalid("model must not be empty", "model");
  return std::string(model->get_string());
}

// An optional integer field in [min, max]; nullopt when absent or null.
Result<std::optional<int64_t>> ReadBoundedInt(const json::object& body, std::string_view key,
                                              int64_t min, int64_t max) {
  const json::value* value = body.if_contains(key);
  if (value == nullptr || value->is_null()) return std::optional<int64_t>();
  const bool in_range = value->is_int64() && value->get_int64() >= min && value->get_int64() <= max;
  if (!in_range) {
    // A fraction or an exponent would come back rewritten (1E1 for 10.0): not echoed.
    const std::string got = value->is_double() ? "" : ", got " + json::serialize(*value);
    return Invalid(std::string(key) + " must be an integer from " + std::to_string(min) + " to " +
                       std::to_string(max) + got,
                   std::string(key));
  }
  return std::optional<int64_t>(value->get_int64());
}

Status AddContentParts(const json::array& parts, const std::string& param, InputSize* size) {
  for (size_t i = 0; i < parts.size(); ++i) {
    const json::object* part = parts[i].if_object();
    const json::value* type = part ? part->if_contains("type") : nullptr;
    if (type == nullptr || !type->is_string()) {
      return Invalid(Indexed(param, i) + " must be an object with a string type",
                     Indexed(param, i));
    }
    const std::string_view kind = type->get_string();
    if (kind != "text" && kind != "refusal") {
      // An image, audio or file: no byte bound on its tokens.
      size->unbounded = true;
      continue;
    }
    const json::value* text = part->if_contains(kind);
    if (text == nullptr || !text->is_string()) {
      return Invalid(Indexed(param, i) + "." + std::string(kind) + " must be a string",
                     Indexed(param, i) + "." + std::string(kind));
    }
    size->text_bytes += static_cast<int64_t>(text->get_string().size());
    // Its other members are forwarded too, and count as a message's do (audit S).
    for (const json::key_value_pair& member : *part) {
      if (member.key() != "type" && member.key() != kind) {
        size->text_bytes += TextBytes(member.value());
      }
    }
  }
  return OkStatus();
}

Status AddMessage(const json::value& value, size_t index, InputSize* size) {
  // The parameter's name is built only for an error.
  auto param = [index] { return Indexed("messages", index); };
  const json::object* message = value.if_object();
  const json::value* role = message ? message->if_contains("role") : nullptr;
  if (role == nullptr || !role->is_string()) {
    return Invalid(param() + ".role must be a string (each message is an object with a role)",
                   param() + ".role");
  }
  if (!IsKnownRole(role->get_string())) {
    return Invalid(param() + ".role must be one of " + KnownRolesText() + ", got '" +
                       std::string(role->get_string()) + "'",
                   param() + ".role");
  }
  for (const auto& field : *message) {
    if (field.key() == "content") continue;
    const bool text_field = field.key() == "name" || field.key() == "tool_call_id";
    if (text_field && !Fits(field.value(), kJsonString | kJsonNull, INT64_MIN)) {
      return Invalid(param() + "." + std::string(field.key()) + " must be a string or null",
                     param() + "." + std::string(field.key()));
    }
    if (field.key() == "tool_calls" && !Fits(field.value(), kJsonArray | kJsonNull, INT64_MIN)) {
      return Invalid(param() + ".tool_calls must be an array or null", param() + ".tool_calls");
    }
    // An earlier audio answer referenced by id: the model reads audio tokens again.
    if (field.key() == "audio" && !field.value().is_null()) size->unbounded = true;
    size->text_bytes += TextBytes(field.value());
  }
  size->overhead_tokens += kPerMessageTokens;
  const json::value* content = message->if_contains("content");
  if (content == nullptr || content->is_null()) return OkStatus();
  if (content->is_string()) {
    size->text_bytes += static_cast<int64_t>(content->get_string().size());
    return OkStatus();
  }
  if (content->is_array()) return AddContentParts(content->get_array(), param() + ".content", size);
  return Invalid(param() + ".content must be a string, an array of content parts or null",
                 param() + ".content");
}

Status ReadMessages(const json::object& body, ModelRequest* request) {
  const json::value* messages = body.if_contains("messages");
  if (messages == nullptr || messages->is_null()) {
    return Invalid("you must provide a messages parameter", "messages");
  }
  if (!messages->is_array()) return Invalid("messages must be an array", "messages");
  if (messages->get_array().empty()) return Invalid("messages must not be empty", "messages");
  InputSize conversation;
  conversation.overhead_tokens = kPerConversationTokens;
  const json::array& list = messages->get_array();
  for (size_t i = 0; i < list.size(); ++i) KG_RETURN_IF_ERROR(AddMessage(list[i], i, &conversation));
  for (std::string_view key : kPromptFields) {
    if (const json::value* field = body.if_contains(key)) conversation.text_bytes += TextBytes(*field);
  }
  conversation.text_bytes += UnknownMembersBytes(body, Endpoint::kChatCompletions);
  // Search results join the prompt, of no size the request bounds: only the context bounds
  // them (as a part that is not text).
  if (const json::value* search = body.if_contains("web_search_options");
      search != nullptr && !search->is_null()) {
    conversation.unbounded = true;
  }
  request->prompt.inputs.push_back(conversation);
  return OkStatus();
}

Status ReadStreamFields(const json::object& body, ModelRequest* request) {
  if (const json::value* stream = body.if_contains("stream"); stream && !stream->is_null()) {
    if (!stream->is_bool()) return Invalid("stream must be a boolean", "stream");
    request->stream = stream->get_bool();
  }
  const json::value* options = body.if_contains("stream_options");
  if (options == nullptr || options->is_null()) return OkStatus();
  if (!options->is_object()) return Invalid("stream_options must be an object", "stream_options");
  const json::value* usage = options->get_object().if_contains("include_usage");
  if (usage == nullptr || usage->is_null()) return OkStatus();
  if (!usage->is_bool()) {
    return Invalid("stream_options.include_usage must be a boolean",
                   "stream_options.include_usage");
  }
  request->caller_wants_usage = usage->get_bool();
  return OkStatus();
}

Status ReadCompletionLimits(const json::object& body, ModelRequest* request) {
  auto max_tokens = ReadBoundedInt(body, "max_tokens", 1, kMaxCompletionTokensField);
  if (!max_tokens.ok()) return max_tokens.error();
  auto max_completion = ReadBoundedInt(body, "max_completion_tokens", 1, kMaxCompletionTokensField);
  if (!max_completion.ok()) return max_completion.error();
  // The upstream honours one of the two; the larger bounds whichever it picks.
  if (max_tokens->has_value() || max_completion->has_value()) {
    request->max_completion_tokens =
        std::max(max_tokens->value_or(0), max_completion->value_or(0));
    if (max_completion->value_or(0) > max_tokens->value_or(0)) {
      request->cap_member = "max_completion_tokens";
    }
  }
  auto choices = ReadBoundedInt(body, "n", 1, kMaxChoices);
  if (!choices.ok()) return choices.error();
  request->choices = choices->value_or(1);
  return OkStatus();
}

Status AddEmbeddingInput(const json::value& input, const std::string& param, PromptSize* prompt) {
  InputSize size;
  size.overhead_tokens = kPerInputTokens;
  if (input.is_string()) {
    if (input.get_string().empty()) return Invalid(param + " must not be an empty string", param);
    size.text_bytes = static_cast<int64_t>(input.get_string().size());
  } else if (input.is_array() && !input.get_array().empty()) {
    for (const json::value& id : input.get_array()) {
      if (!id.is_int64() || id.get_int64() < 0) {
        return Invalid(param + " must be a string or an array of token ids", param);
      }
    }
    size.token_ids = static_cast<int64_t>(input.get_array().size());
  } else {
    return Invalid(param + " must be a non-empty string or array of token ids", param);
  }
  prompt->inputs.push_back(size);
  return OkStatus();
}

Status ReadEmbeddingInput(const json::object& body, ModelRequest* request) {
  const json::value* input = body.if_contains("input");
  if (input == nullptr || input->is_null()) {
    return Invalid("you must provide an input parameter", "input");
  }
  if (input->is_string()) return AddEmbeddingInput(*input, "input", &request->prompt);
  if (!input->is_array() || input->get_array().empty()) {
    return Invalid("input must be a non-empty string or array", "input");
  }
  const json::array& list = input->get_array();
  // A flat array of integers is one input given as token ids.
  if (std::all_of(list.begin(), list.end(), [](const json::value& v) { return v.is_number(); })) {
    return AddEmbeddingInput(*input, "input", &request->prompt);
  }
  for (size_t i = 0; i < list.size(); ++i) {
    KG_RETURN_IF_ERROR(AddEmbeddingInput(list[i], Indexed("input", i), &request->prompt));
  }
  return OkStatus();
}

Status ReadEmbeddingFields(const json::object& body, ModelRequest* request) {
  KG_RETURN_IF_ERROR(ReadEmbeddingInput(body, request));
  // Members of a provider's own, as one more input (each is capped at the context).
  if (const int64_t bytes = UnknownMembersBytes(body, Endpoint::kEmbeddings); bytes > 0) {
    request->prompt.inputs.push_back(InputSize{bytes, 0, 0, false});
  }
  return OkStatus();
}

// The parse every endpoint shares: the body as a JSON object (in a stack arena), its `model`,
// then the endpoint's own fields (`read_fields`), then the body to forward without `model`.
template <class ReadFields>
Result<ModelRequest> ParseModelRequest(std::string_view body, Endpoint endpoint,
                                       ReadFields read_fields) {
  unsigned char arena[kArenaBytes];
  json::monotonic_resource resource(arena, sizeof arena);
  auto document = ParseObject(body, resource);
  if (!document.ok()) return document.error();
  json::object& object = document->get_object();
  ModelRequest request;
  request.endpoint = endpoint;
  auto model = ReadModel(object);
  if (!model.ok()) return model.error();
  request.model = std::move(*model);
  // OpenRouter's list of fallback models: forwarded to an OpenRouter upstream, it would run the
  // call on models the key may not call, at prices the catalog does not know (audit S).
  if (const json::value* fallbacks = object.if_contains("models");
      fallbacks != nullptr && !fallbacks->is_null()) {
    return Invalid("models (a list of fallback models) is not supported: keygate holds a call "
                   "to the one model named in model, which the key must be allowed to call",
                   "models");
  }
  KG_RETURN_IF_ERROR(read_fields(object, &request));
  KG_RETURN_IF_ERROR(CheckParams(object, endpoint));
  request.body_without_model = BodyWithoutModel(body, object, endpoint, request.stream);
  return request;
}

}  // namespace

Result<ModelRequest> ParseChatRequest(std::string_view body) {
  if (std::optional<ModelRequest> fast = internal::FastParseChatRequest(body)) {
    return std::move(*fast);
  }
  return internal::ParseChatRequestFully(body);
}

Result<ModelRequest> internal::ParseChatRequestFully(std::string_view body) {
  return ParseModelRequest(body, Endpoint::kChatCompletions,
                           [](const json::object& object, ModelRequest* request) -> Status {
                             KG_RETURN_IF_ERROR(ReadMessages(object, request));
                             KG_RETURN_IF_ERROR(ReadCompletionLimits(object, request));
                             return ReadStreamFields(object, request);
                           });
}

Result<ModelRequest> ParseEmbeddingsRequest(std::string_view body) {
  return ParseModelRequest(body, Endpoint::kEmbeddings, ReadEmbeddingFields);
}

std::string UpstreamBody(const ModelRequest& request, std::string_view upstream_model,
                         OutputCap cap) {
  const std::string_view rest = request.body_without_model;  // "{...}"
  const int64_t tokens = request.endpoint != Endpoint::kChatCompletions ? 0
                        : request.max_completion_tokens ? *request.max_completion_tokens
                                                        : cap.tokens;
  std::string out;
  const size_t cap_bytes = tokens > 0 ? cap.field.size() + 24 : 0;
  out.reserve(rest.size() + upstream_model.size() + 16 + cap_bytes);
  out += "{\"model\":";
  out += json::serialize(json::string_view(upstream_model.data(), upstream_model.size()));
  if (tokens > 0) {
    out.append(",\"").append(cap.field).append("\":");
    out += std::to_string(tokens);
  }
  if (rest.size() > 2) {
    out += ',';
    out.append(rest.substr(1));
  } else {
    out += '}';
  }
  return out;
}

}  // namespace keygate::proxy
