#include "proxy/openai_params.h"

#include <array>

namespace keygate::proxy {
namespace {

constexpr unsigned kOrNull = kJsonNull;
constexpr std::string_view kNumberOrNull = "a number or null";
constexpr std::string_view kIntegerOrNull = "an integer or null";
constexpr std::string_view kStringOrNull = "a string or null";
constexpr std::string_view kBoolOrNull = "a boolean or null";
constexpr std::string_view kObjectOrNull = "an object or null";
constexpr std::string_view kArrayOrNull = "an array or null";

// OpenAI's chat completion members that keygate forwards as written (those it reads, such as
// messages, max_tokens, n, stream and stream_options, are checked where they are read).
constexpr std::array<ParamRule, 25> kChatRules = {{
    {"temperature", kJsonNumber | kOrNull, 0, "a number >= 0, or null"},
    {"top_p", kJsonNumber | kOrNull, 0, "a number >= 0, or null"},
    {"frequency_penalty", kJsonNumber | kOrNull, INT64_MIN, kNumberOrNull},
    {"presence_penalty", kJsonNumber | kOrNull, INT64_MIN, kNumberOrNull},
    {"seed", kJsonInteger | kOrNull, INT64_MIN, kIntegerOrNull},
    {"top_logprobs", kJsonInteger | kOrNull, 0, "an integer >= 0, or null"},
    {"logprobs", kJsonBool | kOrNull, INT64_MIN, kBoolOrNull},
    {"stop", kJsonString | kJsonArray | kOrNull, INT64_MIN,
     "a string, an array of strings or null", kJsonString},
    {"user", kJsonString | kOrNull, INT64_MIN, kStringOrNull},
    {"logit_bias", kJsonObject | kOrNull, INT64_MIN, "an object of numbers, or null",
     kJsonNumber},
    {"parallel_tool_calls", kJsonBool | kOrNull, INT64_MIN, kBoolOrNull},
    {"store", kJsonBool | kOrNull, INT64_MIN, kBoolOrNull},
    {"metadata", kJsonObject | kOrNull, INT64_MIN, kObjectOrNull},
    {"modalities", kJsonArray | kOrNull, INT64_MIN, kArrayOrNull},
    {"reasoning_effort", kJsonString | kOrNull, INT64_MIN, kStringOrNull},
    {"service_tier", kJsonString | kOrNull, INT64_MIN, kStringOrNull},
    {"verbosity", kJsonString | kOrNull, INT64_MIN, kStringOrNull},
    {"prediction", kJsonObject | kOrNull, INT64_MIN, kObjectOrNull},
    {"audio", kJsonObject | kOrNull, INT64_MIN, kObjectOrNull},
    {"web_search_options", kJsonObject | kOrNull, INT64_MIN, kObjectOrNull},
    {"tools", kJsonArray | kOrNull, INT64_MIN, "an array of objects, or null", kJsonObject},
    {"functions", kJsonArray | kOrNull, INT64_MIN, "an array of objects, or null", kJsonObject},
    {"tool_choice", kJsonString | kJsonObject | kOrNull, INT64_MIN, "a string, an object or null"},
    {"function_call", kJsonString | kJsonObject | kOrNull, INT64_MIN,
     "a string, an object or null"},
    {"response_format", kJsonObject | kOrNull, INT64_MIN, kObjectOrNull},
}};

constexpr std::array<ParamRule, 3> kEmbeddingsRules = {{
    {"dimensions", kJsonInteger | kOrNull, 1, "an integer >= 1, or null"},
    {"encoding_format", kJsonString | kOrNull, INT64_MIN, kStringOrNull},
    {"user", kJsonString | kOrNull, INT64_MIN, kStringOrNull},
}};

}  // namespace

const ParamRule* FindParamRule(Endpoint endpoint, std::string_view name) {
  const auto find = [name](const auto& rules) -> const ParamRule* {
    for (const ParamRule& rule : rules) {
      if (rule.name == name) return &rule;
    }
    return nullptr;
  };
  return endpoint == Endpoint::kChatCompletions ? find(kChatRules) : find(kEmbeddingsRules);
}

namespace {
constexpr std::array<std::string_view, 6> kRoles = {"system", "developer", "user",
                                                    "assistant", "tool", "function"};
}  // namespace

bool IsKnownRole(std::string_view role) {
  for (std::string_view known : kRoles) {
    if (role == known) return true;
  }
  return false;
}

std::string KnownRolesText() {
  std::string text;
  for (size_t i = 0; i < kRoles.size(); ++i) {
    if (i > 0) text += i + 1 == kRoles.size() ? " or " : ", ";
    text += kRoles[i];
  }
  return text;
}

}  // namespace keygate::proxy
